//! What kind of line an invoice line is, derived from its stock code.

use std::str::FromStr;

use crate::error::Error;

/// The kind of an invoice line: a product sold, or one of the non-product lines the shop
/// books with special stock codes (postage, discounts, fees, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LineType {
    /// An ordinary product (any stock code not listed below).
    Product,
    /// Postage and carriage: `POST`, `DOT`, `C2`.
    Shipping,
    /// A discount: `D`.
    Discount,
    /// A manual booking: `M`.
    Manual,
    /// A free sample: `S`.
    Sample,
    /// A fee or charity line: `BANK CHARGES`, `AMAZONFEE`, `CRUK`.
    Fee,
    /// A bad-debt adjustment: `B`.
    Adjustment,
    /// A gift voucher: any stock code starting with `GIFT_`.
    GiftVoucher,
}

impl LineType {
    /// Every line type, in declaration order.
    pub const ALL: [Self; 8] = [
        Self::Product,
        Self::Shipping,
        Self::Discount,
        Self::Manual,
        Self::Sample,
        Self::Fee,
        Self::Adjustment,
        Self::GiftVoucher,
    ];

    /// Returns the line type of a normalised (trimmed, upper-cased) stock code.
    ///
    /// Matching is ASCII case-insensitive as well, so `m` and `gift_0001_20` classify the same
    /// as `M` and `GIFT_0001_20` even when a caller passes a code that is not yet upper-cased.
    pub fn from_stock_code(normalised: &str) -> Self {
        const SPECIAL: [(&str, LineType); 10] = [
            ("POST", LineType::Shipping),
            ("DOT", LineType::Shipping),
            ("C2", LineType::Shipping),
            ("D", LineType::Discount),
            ("M", LineType::Manual),
            ("S", LineType::Sample),
            ("BANK CHARGES", LineType::Fee),
            ("AMAZONFEE", LineType::Fee),
            ("CRUK", LineType::Fee),
            ("B", LineType::Adjustment),
        ];
        const GIFT_PREFIX: &str = "GIFT_";

        // Product codes are digits first (`85123A`), so they leave the table after one
        // length or first-byte comparison.
        if let Some((_, line_type)) = SPECIAL
            .iter()
            .find(|(code, _)| code.eq_ignore_ascii_case(normalised))
        {
            return *line_type;
        }
        let is_gift_voucher = normalised
            .get(..GIFT_PREFIX.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(GIFT_PREFIX));
        if is_gift_voucher {
            LineType::GiftVoucher
        } else {
            LineType::Product
        }
    }

    /// Returns the stable `snake_case` code stored in silver and gold.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Product => "product",
            Self::Shipping => "shipping",
            Self::Discount => "discount",
            Self::Manual => "manual",
            Self::Sample => "sample",
            Self::Fee => "fee",
            Self::Adjustment => "adjustment",
            Self::GiftVoucher => "gift_voucher",
        }
    }

    /// Returns the line type whose [`as_str`](Self::as_str) code is `code`, if any.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|line_type| line_type.as_str() == code)
    }
}

impl std::fmt::Display for LineType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LineType {
    type Err = Error;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Self::parse(code).ok_or_else(|| Error::UnknownCode {
            what: "line type",
            code: code.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_special_stock_code() {
        let cases = [
            ("POST", LineType::Shipping),
            ("DOT", LineType::Shipping),
            ("C2", LineType::Shipping),
            ("D", LineType::Discount),
            ("M", LineType::Manual),
            ("S", LineType::Sample),
            ("BANK CHARGES", LineType::Fee),
            ("AMAZONFEE", LineType::Fee),
            ("CRUK", LineType::Fee),
            ("B", LineType::Adjustment),
            ("GIFT_0001_20", LineType::GiftVoucher),
            ("GIFT_", LineType::GiftVoucher),
            ("85123A", LineType::Product),
        ];
        for (code, expected) in cases {
            assert_eq!(LineType::from_stock_code(code), expected, "{code}");
        }
    }

    #[test]
    fn classifies_lower_case_codes_like_upper_case_ones() {
        assert_eq!(
            LineType::from_stock_code("gift_0001_20"),
            LineType::GiftVoucher
        );
        assert_eq!(LineType::from_stock_code("m"), LineType::Manual);
        assert_eq!(LineType::from_stock_code("post"), LineType::Shipping);
        assert_eq!(LineType::from_stock_code("Bank Charges"), LineType::Fee);
    }

    #[test]
    fn codes_that_only_resemble_special_codes_are_products() {
        for code in [
            "DCGSSBOY", "DCGS0003", "PADS", "POSTAGE", "C", "MM", "GIFT", "GIFT0001", "DD", "",
        ] {
            assert_eq!(
                LineType::from_stock_code(code),
                LineType::Product,
                "{code:?}"
            );
        }
    }

    #[test]
    fn codes_round_trip_through_parse() {
        let codes: Vec<&str> = LineType::ALL
            .iter()
            .map(|line_type| line_type.as_str())
            .collect();
        assert_eq!(
            codes,
            [
                "product",
                "shipping",
                "discount",
                "manual",
                "sample",
                "fee",
                "adjustment",
                "gift_voucher"
            ]
        );
        for line_type in LineType::ALL {
            assert_eq!(LineType::parse(line_type.as_str()), Some(line_type));
            assert_eq!(line_type.as_str().parse::<LineType>(), Ok(line_type));
        }
        assert_eq!(LineType::parse("Product"), None);
        assert!("widget".parse::<LineType>().is_err());
    }
}
