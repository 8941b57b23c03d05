//! Deterministic hashes of a transaction's business fields.

use chrono::{Datelike, NaiveDateTime, Timelike};
use rust_decimal::{Decimal, RoundingStrategy};
use sha2::{Digest, Sha256};

use crate::record::RawFields;

/// Separates fields in the hashed text: the ASCII unit separator, which no real field holds.
const FIELD_SEPARATOR: &str = "\u{1f}";

/// How many leading bytes of the SHA-256 digest make an id (16 bytes, 32 hex characters).
const ID_BYTES: usize = 16;

/// Feeds fields into a SHA-256 state without building the joined string first.
struct FieldHasher {
    state: Sha256,
    fields: usize,
}

impl FieldHasher {
    fn new() -> Self {
        Self {
            state: Sha256::new(),
            fields: 0,
        }
    }

    /// Hashes the next field, after the separator unless it is the first.
    fn field(&mut self, bytes: &[u8]) {
        if self.fields > 0 {
            self.state.update(FIELD_SEPARATOR.as_bytes());
        }
        self.fields += 1;
        self.state.update(bytes);
    }

    fn finish(self) -> String {
        debug_assert_eq!(self.fields, 8, "all eight business fields are hashed");
        let digest = self.state.finalize();
        hex::encode(&digest[..ID_BYTES])
    }
}

/// Deterministic id: lowercase hex of the first 16 bytes of SHA-256 over the eight normalised
/// fields joined by `'\u{1f}'`, in [`Column::ALL`](crate::column::Column::ALL) order, with
/// description/customer `None` as empty string, quantity as decimal integer, `invoice_date`
/// formatted `"%Y-%m-%d %H:%M:%S"`, `unit_price` formatted with exactly 3 decimals, country
/// as the trimmed source text.
///
/// The fields are those of [`CleanTransaction`](crate::record::CleanTransaction), so two rows
/// equal on the eight normalised fields get the same id: the id is the silver duplicate key.
/// A price with more than three decimals is rounded to three (midpoint away from zero) before
/// hashing; silver prices always have scale 3, so this never happens in the pipeline.
#[allow(clippy::too_many_arguments)] // one argument per business field, in contract order
pub fn transaction_id(
    invoice: &str,
    stock_code: &str,
    description: Option<&str>,
    quantity: i64,
    invoice_date: NaiveDateTime,
    unit_price: Decimal,
    customer_id: Option<&str>,
    country: &str,
) -> String {
    // Numbers are formatted by hand into stack buffers: `format!` machinery would cost more
    // than the hashing itself, and this runs once per silver row.
    let mut number = DigitBuffer::new();
    let mut hasher = FieldHasher::new();
    hasher.field(invoice.as_bytes());
    hasher.field(stock_code.as_bytes());
    hasher.field(description.unwrap_or("").as_bytes());
    hasher.field(number.format_integer(i128::from(quantity)));
    hash_timestamp(&mut hasher, invoice_date);
    hasher.field(number.format_thousandths(price_in_thousandths(unit_price)));
    hasher.field(customer_id.unwrap_or("").as_bytes());
    hasher.field(country.as_bytes());
    hasher.finish()
}

/// Hash of the eight raw business fields as read (`None` = empty), same construction, 32 hex
/// chars: used in bronze.
///
/// The fields are hashed exactly as read, untrimmed, so the hash identifies the source
/// record, not the transaction (see [`transaction_id`] for that).
pub fn raw_record_hash(raw: &RawFields<'_>) -> String {
    let mut hasher = FieldHasher::new();
    for field in [
        raw.invoice,
        raw.stock_code,
        raw.description,
        raw.quantity,
        raw.invoice_date,
        raw.unit_price,
        raw.customer_id,
        raw.country,
    ] {
        hasher.field(field.unwrap_or("").as_bytes());
    }
    hasher.finish()
}

/// Returns the price as a whole number of thousandths, rounding a finer price half away
/// from zero.
fn price_in_thousandths(unit_price: Decimal) -> i128 {
    let mut price = unit_price.round_dp_with_strategy(3, RoundingStrategy::MidpointAwayFromZero);
    price.rescale(3);
    price.mantissa()
}

/// Formats integers right-aligned into a fixed buffer, large enough for any `i128`.
struct DigitBuffer {
    bytes: [u8; 48],
}

impl DigitBuffer {
    fn new() -> Self {
        Self { bytes: [0; 48] }
    }

    /// Returns `value` in decimal, with a leading `-` when negative.
    fn format_integer(&mut self, value: i128) -> &[u8] {
        let start = self.write_digits(value.unsigned_abs(), 1, self.bytes.len());
        self.with_sign(value < 0, start)
    }

    /// Returns `thousandths / 1000` with exactly three decimals (`2550` is `2.550`); zero is
    /// never signed.
    fn format_thousandths(&mut self, thousandths: i128) -> &[u8] {
        let magnitude = thousandths.unsigned_abs();
        let end = self.bytes.len();
        let fraction_start = self.write_digits(magnitude % 1000, 3, end);
        self.bytes[fraction_start - 1] = b'.';
        let start = self.write_digits(magnitude / 1000, 1, fraction_start - 1);
        self.with_sign(thousandths < 0, start)
    }

    /// Writes `value` with at least `min_width` digits so that it ends before `end`, and
    /// returns where it starts.
    fn write_digits(&mut self, mut value: u128, min_width: usize, end: usize) -> usize {
        let mut start = end;
        while value > 0 || end - start < min_width {
            start -= 1;
            self.bytes[start] = b'0' + u8::try_from(value % 10).expect("a digit fits u8");
            value /= 10;
        }
        start
    }

    fn with_sign(&mut self, is_negative: bool, mut start: usize) -> &[u8] {
        if is_negative {
            start -= 1;
            self.bytes[start] = b'-';
        }
        &self.bytes[start..]
    }
}

/// Hashes `timestamp` as the next field, formatted `%Y-%m-%d %H:%M:%S`; four-digit years
/// are formatted without chrono's format-string interpreter.
fn hash_timestamp(hasher: &mut FieldHasher, timestamp: NaiveDateTime) {
    let Ok(year @ 0..=9999) = u32::try_from(timestamp.year()) else {
        // chrono's `%Y` adds a sign outside 0..=9999; defer to it for those rare years.
        let text = timestamp.format("%Y-%m-%d %H:%M:%S").to_string();
        hasher.field(text.as_bytes());
        return;
    };
    let mut text = *b"0000-00-00 00:00:00";
    let mut put = |position: usize, width: usize, mut value: u32| {
        for index in (position..position + width).rev() {
            text[index] = b'0' + u8::try_from(value % 10).expect("a digit fits u8");
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, timestamp.month());
    put(8, 2, timestamp.day());
    put(11, 2, timestamp.hour());
    put(14, 2, timestamp.minute());
    put(17, 2, timestamp.second());
    hasher.field(&text);
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn first_row_date() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2010, 12, 1)
            .and_then(|date| date.and_hms_opt(8, 26, 0))
            .expect("valid date")
    }

    fn first_row_id() -> String {
        transaction_id(
            "536365",
            "85123A",
            Some("WHITE HANGING HEART T-LIGHT HOLDER"),
            6,
            first_row_date(),
            Decimal::new(2550, 3),
            Some("17850"),
            "United Kingdom",
        )
    }

    fn sha256_prefix(text: &str) -> String {
        hex::encode(&Sha256::digest(text.as_bytes())[..16])
    }

    #[test]
    fn transaction_id_is_the_hash_of_the_joined_normalised_fields() {
        let joined = [
            "536365",
            "85123A",
            "WHITE HANGING HEART T-LIGHT HOLDER",
            "6",
            "2010-12-01 08:26:00",
            "2.550",
            "17850",
            "United Kingdom",
        ]
        .join("\u{1f}");
        assert_eq!(first_row_id(), sha256_prefix(&joined));
        assert_eq!(first_row_id().len(), 32);
        assert!(
            first_row_id()
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }

    #[test]
    fn transaction_id_is_deterministic() {
        assert_eq!(first_row_id(), first_row_id());
    }

    #[test]
    fn transaction_id_formats_price_with_three_decimals_whatever_its_scale() {
        let date = first_row_date();
        let id = |price: Decimal| transaction_id("1", "A", None, 1, date, price, None, "France");
        assert_eq!(id(Decimal::new(255, 2)), id(Decimal::new(2550, 3)));
        assert_eq!(id(Decimal::new(3, 0)), id(Decimal::new(3000, 3)));
        let joined = [
            "1",
            "A",
            "",
            "1",
            "2010-12-01 08:26:00",
            "3.000",
            "",
            "France",
        ]
        .join("\u{1f}");
        assert_eq!(id(Decimal::new(3, 0)), sha256_prefix(&joined));
    }

    #[test]
    fn transaction_id_differs_when_any_field_differs() {
        let date = first_row_date();
        let price = Decimal::new(2550, 3);
        let base = first_row_id();
        let variants = [
            transaction_id(
                "C536365",
                "85123A",
                Some("WHITE HANGING HEART T-LIGHT HOLDER"),
                6,
                date,
                price,
                Some("17850"),
                "United Kingdom",
            ),
            transaction_id(
                "536365",
                "85123B",
                Some("WHITE HANGING HEART T-LIGHT HOLDER"),
                6,
                date,
                price,
                Some("17850"),
                "United Kingdom",
            ),
            transaction_id(
                "536365",
                "85123A",
                None,
                6,
                date,
                price,
                Some("17850"),
                "United Kingdom",
            ),
            transaction_id(
                "536365",
                "85123A",
                Some("WHITE HANGING HEART T-LIGHT HOLDER"),
                -6,
                date,
                price,
                Some("17850"),
                "United Kingdom",
            ),
            transaction_id(
                "536365",
                "85123A",
                Some("WHITE HANGING HEART T-LIGHT HOLDER"),
                6,
                date + chrono::Duration::seconds(1),
                price,
                Some("17850"),
                "United Kingdom",
            ),
            transaction_id(
                "536365",
                "85123A",
                Some("WHITE HANGING HEART T-LIGHT HOLDER"),
                6,
                date,
                Decimal::new(2551, 3),
                Some("17850"),
                "United Kingdom",
            ),
            transaction_id(
                "536365",
                "85123A",
                Some("WHITE HANGING HEART T-LIGHT HOLDER"),
                6,
                date,
                price,
                None,
                "United Kingdom",
            ),
            transaction_id(
                "536365",
                "85123A",
                Some("WHITE HANGING HEART T-LIGHT HOLDER"),
                6,
                date,
                price,
                Some("17850"),
                "EIRE",
            ),
        ];
        for (index, variant) in variants.iter().enumerate() {
            assert_ne!(variant, &base, "changing field {index} must change the id");
        }
        let mut unique = variants.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), variants.len());
    }

    #[test]
    fn raw_record_hash_hashes_fields_as_read_with_none_as_empty() {
        let raw = RawFields {
            invoice: Some(" 536365"),
            stock_code: Some("85123a"),
            quantity: Some("6"),
            ..RawFields::default()
        };
        let joined = [" 536365", "85123a", "", "6", "", "", "", ""].join("\u{1f}");
        assert_eq!(raw_record_hash(&raw), sha256_prefix(&joined));

        let trimmed = RawFields {
            invoice: Some("536365"),
            ..raw.clone()
        };
        assert_ne!(raw_record_hash(&raw), raw_record_hash(&trimmed));
        assert_eq!(raw_record_hash(&raw), raw_record_hash(&raw.clone()));
        assert_eq!(raw_record_hash(&RawFields::default()).len(), 32);
    }

    #[test]
    fn timestamps_outside_four_digit_years_use_chrono_formatting() {
        for (year, expected) in [
            (12345, "+12345-01-02 03:04:05"),
            (-1, "-0001-01-02 03:04:05"),
        ] {
            let timestamp = NaiveDate::from_ymd_opt(year, 1, 2)
                .and_then(|date| date.and_hms_opt(3, 4, 5))
                .expect("valid date");
            assert_eq!(timestamp.format("%Y-%m-%d %H:%M:%S").to_string(), expected);
            let mut hasher = FieldHasher::new();
            hash_timestamp(&mut hasher, timestamp);
            assert_eq!(hasher.state.finalize(), Sha256::digest(expected.as_bytes()));
        }
    }

    #[test]
    fn timestamps_are_zero_padded() {
        let timestamp = NaiveDate::from_ymd_opt(987, 1, 2)
            .and_then(|date| date.and_hms_opt(3, 4, 5))
            .expect("valid date");
        let mut hasher = FieldHasher::new();
        hash_timestamp(&mut hasher, timestamp);
        assert_eq!(
            hasher.state.finalize(),
            Sha256::digest(b"0987-01-02 03:04:05")
        );
    }

    #[test]
    fn numbers_are_formatted_like_display() {
        let mut buffer = DigitBuffer::new();
        for value in [
            0,
            6,
            -12,
            80995,
            i128::from(i64::MIN),
            i128::from(i64::MAX),
            i128::MIN,
        ] {
            assert_eq!(buffer.format_integer(value), value.to_string().as_bytes());
        }
        let cases = [
            (2550, "2.550"),
            (1, "0.001"),
            (0, "0.000"),
            (-11_062_060, "-11062.060"),
            (-5, "-0.005"),
            (999_999_999_999_999_999, "999999999999999.999"),
        ];
        for (thousandths, expected) in cases {
            assert_eq!(buffer.format_thousandths(thousandths), expected.as_bytes());
        }
    }

    #[test]
    fn finer_prices_round_half_away_from_zero_before_hashing() {
        assert_eq!(price_in_thousandths(Decimal::new(25505, 4)), 2551);
        assert_eq!(price_in_thousandths(Decimal::new(-25505, 4)), -2551);
        assert_eq!(price_in_thousandths(Decimal::new(3, 0)), 3000);
    }
}
