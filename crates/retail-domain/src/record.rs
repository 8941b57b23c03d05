//! Source records, the silver cleansing rules and the reasons a row is quarantined.

use std::str::FromStr;

use chrono::NaiveDateTime;
use rust_decimal::Decimal;

use crate::country::{Region, lookup_country};
use crate::error::Error;
use crate::field::{
    MAX_CODE_CHARS, MAX_COUNTRY_CHARS, MAX_DESCRIPTION_CHARS, MAX_QUANTITY, UNIT_PRICE_SCALE,
    breaks_text_rule, is_cancellation_invoice, is_well_formed_email, non_blank,
    normalise_customer_id, normalise_description, parse_invoice_date, parse_quantity,
    parse_unit_price, upper_case,
};
use crate::line_type::LineType;
use crate::score::{ScoreInputs, quality_score};
use crate::transaction::transaction_id;

/// The eight business fields as read from a source (strings, None when the source had no
/// value / column).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawFields<'a> {
    /// The invoice number, as read.
    pub invoice: Option<&'a str>,
    /// The stock code, as read.
    pub stock_code: Option<&'a str>,
    /// The description, as read.
    pub description: Option<&'a str>,
    /// The quantity, as read.
    pub quantity: Option<&'a str>,
    /// The invoice date, as read.
    pub invoice_date: Option<&'a str>,
    /// The unit price, as read.
    pub unit_price: Option<&'a str>,
    /// The customer id, as read.
    pub customer_id: Option<&'a str>,
    /// The country, as read.
    pub country: Option<&'a str>,
}

impl<'a> RawFields<'a> {
    /// Borrows eight owned fields given in [`Column::ALL`](crate::column::Column::ALL) order.
    pub fn from_array(fields: &'a [Option<String>; 8]) -> Self {
        Self {
            invoice: fields[0].as_deref(),
            stock_code: fields[1].as_deref(),
            description: fields[2].as_deref(),
            quantity: fields[3].as_deref(),
            invoice_date: fields[4].as_deref(),
            unit_price: fields[5].as_deref(),
            customer_id: fields[6].as_deref(),
            country: fields[7].as_deref(),
        }
    }

    /// Returns the eight fields in [`Column::ALL`](crate::column::Column::ALL) order.
    pub fn to_array(&self) -> [Option<&'a str>; 8] {
        [
            self.invoice,
            self.stock_code,
            self.description,
            self.quantity,
            self.invoice_date,
            self.unit_price,
            self.customer_id,
            self.country,
        ]
    }

    /// Returns how many of the eight fields are present: neither absent nor blank after
    /// trimming (the score's completeness).
    pub fn count_present(&self) -> u8 {
        let present = self
            .to_array()
            .into_iter()
            .filter(|field| non_blank(*field).is_some())
            .count();
        u8::try_from(present).expect("at most eight fields")
    }
}

/// Why a row cannot enter silver. Every broken rule is reported, in this enum's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuarantineReason {
    /// The record could not be split into fields (wrong field count, bad encoding). Set by
    /// ingestion; [`cleanse`] never reports it, since it only sees records that were split.
    MalformedRecord,
    /// The invoice is absent or blank.
    MissingInvoice,
    /// The stock code is absent or blank.
    MissingStockCode,
    /// The quantity is absent or blank.
    MissingQuantity,
    /// The quantity is not a whole number that fits 64 bits, or its total amount exceeds the
    /// exact decimal range.
    InvalidQuantity,
    /// The quantity is zero.
    ZeroQuantity,
    /// The invoice date is absent or blank.
    MissingInvoiceDate,
    /// The invoice date is in no accepted form, or is not a real date and time.
    InvalidInvoiceDate,
    /// The invoice date is outside the plausible window: before its earliest day (2000-01-01
    /// unless configured) or more than one day after the record was ingested.
    ImplausibleInvoiceDate,
    /// The unit price is absent or blank.
    MissingUnitPrice,
    /// The unit price is not an exact decimal with at most three fractional digits.
    InvalidUnitPrice,
    /// The unit price is below zero.
    NegativeUnitPrice,
    /// The country is absent or blank.
    MissingCountry,
    /// A text field holds a control character (U+0000 to U+001F, U+007F: the invoice, stock
    /// code, customer id or country) or is too long (50 characters for codes, 100 for the
    /// country, 500 for the description).
    InvalidText,
    /// An update or delete names a transaction that is not in silver (never processed, or
    /// already removed). Set by the silver stage, never by [`cleanse`].
    UnknownTransaction,
    /// A change conflicts with another change of the same run (a row re-created after it was
    /// removed in the same run, or a malformed change operation). Replay it after the run.
    ConflictingChange,
}

impl QuarantineReason {
    /// Every reason, in declaration (reporting) order.
    pub const ALL: [Self; 16] = [
        Self::MalformedRecord,
        Self::MissingInvoice,
        Self::MissingStockCode,
        Self::MissingQuantity,
        Self::InvalidQuantity,
        Self::ZeroQuantity,
        Self::MissingInvoiceDate,
        Self::InvalidInvoiceDate,
        Self::ImplausibleInvoiceDate,
        Self::MissingUnitPrice,
        Self::InvalidUnitPrice,
        Self::NegativeUnitPrice,
        Self::MissingCountry,
        Self::InvalidText,
        Self::UnknownTransaction,
        Self::ConflictingChange,
    ];

    /// Returns the stable `snake_case` reason code stored in the quarantine table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedRecord => "malformed_record",
            Self::MissingInvoice => "missing_invoice",
            Self::MissingStockCode => "missing_stock_code",
            Self::MissingQuantity => "missing_quantity",
            Self::InvalidQuantity => "invalid_quantity",
            Self::ZeroQuantity => "zero_quantity",
            Self::MissingInvoiceDate => "missing_invoice_date",
            Self::InvalidInvoiceDate => "invalid_invoice_date",
            Self::ImplausibleInvoiceDate => "implausible_invoice_date",
            Self::MissingUnitPrice => "missing_unit_price",
            Self::InvalidUnitPrice => "invalid_unit_price",
            Self::NegativeUnitPrice => "negative_unit_price",
            Self::MissingCountry => "missing_country",
            Self::InvalidText => "invalid_text",
            Self::UnknownTransaction => "unknown_transaction",
            Self::ConflictingChange => "conflicting_change",
        }
    }

    /// Returns the reason whose [`as_str`](Self::as_str) code is `s`, if any (exact match).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == s)
    }
}

impl std::fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QuarantineReason {
    type Err = Error;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Self::parse(code).ok_or_else(|| Error::UnknownCode {
            what: "quarantine reason",
            code: code.to_owned(),
        })
    }
}

/// A row that passed every required rule, normalised per the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanTransaction {
    /// The deterministic id of the eight normalised fields; see [`transaction_id`].
    pub transaction_id: String,
    /// The invoice number, trimmed.
    pub invoice: String,
    /// The stock code, trimmed and upper-cased.
    pub stock_code: String,
    /// The description, trimmed with white space runs collapsed; `None` when empty.
    pub description: Option<String>,
    /// The number of units, never zero; negative for a return.
    pub quantity: i64,
    /// When the invoice was issued, shop-local time.
    pub invoice_date: NaiveDateTime,
    /// The price of one unit, never negative, with scale exactly 3.
    pub unit_price: Decimal,
    /// The customer, with a trailing `.0` removed; `None` for a guest sale.
    pub customer_id: Option<String>,
    /// The country as the source spells it, trimmed (`EIRE`).
    pub country: String,
    /// The standard English name of the country (`Ireland`).
    pub country_name: String,
    /// The ISO 3166-1 alpha-2 code of the country, where it has one.
    pub country_code: Option<&'static str>,
    /// The coarse region of the country, used to partition silver.
    pub region: Region,
    /// `quantity × unit_price`, exact, with scale 3.
    pub total_amount: Decimal,
    /// Whether the line returns goods: `quantity < 0`.
    pub is_return: bool,
    /// Whether the invoice is a cancellation: it starts with `C` (or `c`).
    pub is_cancellation: bool,
    /// The kind of line, from the stock code.
    pub line_type: LineType,
    /// The row's data quality score, 0.00 to 1.00, scale 2.
    pub data_quality_score: Decimal,
    /// The checks the score was computed from (the table-level quality report sums them).
    pub score_inputs: ScoreInputs,
}

/// The invoice dates a record may carry: from `earliest` to one day after the record was
/// ingested, so that one record can never stretch the calendar of every gold table (a date in
/// year 9999 would make `dim_date` millions of rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateWindow {
    /// The earliest plausible invoice date and time.
    pub earliest: NaiveDateTime,
    /// The latest plausible invoice date and time.
    pub latest: NaiveDateTime,
}

impl DateWindow {
    /// The default earliest plausible invoice date: 2000-01-01 00:00.
    pub fn default_earliest() -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
            .and_then(|day| day.and_hms_opt(0, 0, 0))
            .expect("a real date")
    }

    /// The window of a record ingested at `ingested_at` (UTC): from `earliest` to one day
    /// after ingestion (the day also absorbs any shop's time zone).
    pub fn for_record(earliest: NaiveDateTime, ingested_at: NaiveDateTime) -> Self {
        Self {
            earliest,
            latest: ingested_at
                .checked_add_signed(chrono::Duration::days(1))
                .unwrap_or(NaiveDateTime::MAX),
        }
    }

    /// The window of a record ingested now, from the default earliest date.
    pub fn ingested_now() -> Self {
        Self::for_record(Self::default_earliest(), chrono::Utc::now().naive_utc())
    }

    /// The calendar years wholly inside the window, up to the year before its end's (empty
    /// when there is none): what a document can promise for every record sent this year.
    pub fn whole_years(&self) -> std::ops::RangeInclusive<i32> {
        use chrono::{Datelike as _, Timelike as _};
        let starts_a_year =
            self.earliest.ordinal() == 1 && self.earliest.num_seconds_from_midnight() == 0;
        let first = self.earliest.year() + i32::from(!starts_a_year);
        first..=self.latest.year() - 1
    }

    /// Whether `at` is plausible.
    pub fn contains(&self, at: NaiveDateTime) -> bool {
        (self.earliest..=self.latest).contains(&at)
    }
}

/// The shortest customer id that passes the score's accuracy check.
const MIN_CUSTOMER_ID_CHARS: usize = 5;

/// Applies the contract's silver rules. `email` is an optional extra source column (validity
/// check); `window` the plausible invoice dates of the record. Returns every broken rule
/// (non-empty, in enum order) on failure.
///
/// A field that is absent or blank after trimming is missing. The rules per field are those
/// of the [`field`](crate::field) parsers: a missing field reports `missing_*`, a present
/// one that does not parse `invalid_*`, and a zero quantity or a negative price
/// `zero_quantity` or `negative_unit_price`. A quantity of more than
/// [`MAX_QUANTITY`] units either way is `invalid_quantity`, so every total amount is exact.
///
/// The quality score counts the eight raw fields present; its accuracy checks are
/// `unit_price > 0`, `quantity != 0` and a customer id of at least five characters (a guest
/// passes); its validity checks are a well-formed `email` (absent or blank passes, see
/// [`is_well_formed_email`]) and a country with an ISO code.
///
/// # Errors
///
/// Returns the [`QuarantineReason`]s of every rule the row breaks, at least one, in the
/// enum's order. [`QuarantineReason::MalformedRecord`] is never among them.
///
/// ```
/// use retail_domain::record::{cleanse, DateWindow, RawFields};
///
/// let raw = RawFields {
///     invoice: Some("536365"),
///     stock_code: Some("85123A"),
///     description: Some("WHITE HANGING HEART T-LIGHT HOLDER"),
///     quantity: Some("6"),
///     invoice_date: Some("2010-12-01 08:26:00"),
///     unit_price: Some("2.55"),
///     customer_id: Some("17850.0"),
///     country: Some("United Kingdom"),
/// };
/// let window = DateWindow::ingested_now();
/// let clean = cleanse(&raw, None, &window).expect("the first real row is clean");
/// assert_eq!(clean.total_amount.to_string(), "15.300");
/// assert_eq!(clean.customer_id.as_deref(), Some("17850"));
/// ```
pub fn cleanse(
    raw: &RawFields<'_>,
    email: Option<&str>,
    window: &DateWindow,
) -> Result<CleanTransaction, Vec<QuarantineReason>> {
    use QuarantineReason as Reason;

    // Vec::new does not allocate: clean rows pay nothing for the list of reasons.
    let mut reasons = Vec::new();
    let invoice = require(raw.invoice, Reason::MissingInvoice, &mut reasons);
    let stock_code = require(raw.stock_code, Reason::MissingStockCode, &mut reasons);
    // Fields are judged in the order of their reasons in the enum, so `reasons` comes out
    // in that order without sorting.
    let quantity = judge(
        raw.quantity,
        Reason::MissingQuantity,
        &mut reasons,
        |text| match parse_quantity(text) {
            None => Err(Reason::InvalidQuantity),
            Some(0) => Err(Reason::ZeroQuantity),
            Some(quantity) if quantity.unsigned_abs() > MAX_QUANTITY => {
                Err(Reason::InvalidQuantity)
            }
            Some(quantity) => Ok(quantity),
        },
    );
    let invoice_date = judge(
        raw.invoice_date,
        Reason::MissingInvoiceDate,
        &mut reasons,
        |text| match parse_invoice_date(text) {
            None => Err(Reason::InvalidInvoiceDate),
            Some(at) if !window.contains(at) => Err(Reason::ImplausibleInvoiceDate),
            Some(at) => Ok(at),
        },
    );
    let unit_price = judge(
        raw.unit_price,
        Reason::MissingUnitPrice,
        &mut reasons,
        |text| match parse_unit_price(text) {
            None => Err(Reason::InvalidUnitPrice),
            Some(price) if price < Decimal::ZERO => Err(Reason::NegativeUnitPrice),
            Some(price) => Ok(price),
        },
    );
    let country = require(raw.country, Reason::MissingCountry, &mut reasons);
    let description = raw.description.and_then(normalise_description);
    let customer_id = raw.customer_id.and_then(normalise_customer_id);
    let breaks_text = [
        (invoice, MAX_CODE_CHARS),
        (stock_code, MAX_CODE_CHARS),
        (customer_id, MAX_CODE_CHARS),
        (country, MAX_COUNTRY_CHARS),
        (description.as_deref(), MAX_DESCRIPTION_CHARS),
    ]
    .into_iter()
    .any(|(text, max)| text.is_some_and(|text| breaks_text_rule(text, max)));
    if breaks_text {
        reasons.push(Reason::InvalidText);
    }

    let total_amount = match (quantity, unit_price) {
        (Some(quantity), Some(unit_price)) => {
            let total = exact_total_amount(quantity, unit_price);
            if total.is_none() {
                reasons.push(Reason::InvalidQuantity);
                reasons.sort_unstable();
            }
            total
        }
        _ => None,
    };

    let (
        Some(invoice),
        Some(stock_code),
        Some(quantity),
        Some(invoice_date),
        Some(unit_price),
        Some(country),
        Some(total_amount),
    ) = (
        invoice,
        stock_code,
        quantity,
        invoice_date,
        unit_price,
        country,
        total_amount,
    )
    else {
        debug_assert!(
            !reasons.is_empty(),
            "every missing value has reported its reason"
        );
        return Err(reasons);
    };
    if !reasons.is_empty() {
        // Text broken in fields whose values are all there.
        return Err(reasons);
    }

    let stock_code = upper_case(stock_code);
    let country_info = lookup_country(country);

    let accuracy_checks = [
        unit_price > Decimal::ZERO,
        quantity != 0,
        customer_id.is_none_or(|id| id.chars().count() >= MIN_CUSTOMER_ID_CHARS),
    ];
    let validity_checks = [
        non_blank(email).is_none_or(is_well_formed_email),
        country_info.code.is_some(),
    ];
    let score_inputs = ScoreInputs {
        present_fields: raw.count_present(),
        accuracy_passed: count_passed(&accuracy_checks),
        validity_passed: count_passed(&validity_checks),
    };
    let data_quality_score = quality_score(score_inputs);

    Ok(CleanTransaction {
        transaction_id: transaction_id(
            invoice,
            &stock_code,
            description.as_deref(),
            quantity,
            invoice_date,
            unit_price,
            customer_id,
            country,
        ),
        invoice: invoice.to_owned(),
        line_type: LineType::from_stock_code(&stock_code),
        stock_code,
        description,
        quantity,
        invoice_date,
        unit_price,
        customer_id: customer_id.map(str::to_owned),
        country: country.to_owned(),
        country_name: country_info.name,
        country_code: country_info.code,
        region: country_info.region,
        total_amount,
        is_return: quantity < 0,
        is_cancellation: is_cancellation_invoice(invoice),
        data_quality_score,
        score_inputs,
    })
}

/// Returns the trimmed field, or records `missing` and returns `None` when it is blank.
fn require<'a>(
    field: Option<&'a str>,
    missing: QuarantineReason,
    reasons: &mut Vec<QuarantineReason>,
) -> Option<&'a str> {
    let present = non_blank(field);
    if present.is_none() {
        reasons.push(missing);
    }
    present
}

/// Judges a field that has a parse rule: records `missing` when it is blank, or the reason
/// `parse` gives when it breaks the rule, and returns the parsed value otherwise.
fn judge<T>(
    field: Option<&str>,
    missing: QuarantineReason,
    reasons: &mut Vec<QuarantineReason>,
    parse: impl FnOnce(&str) -> Result<T, QuarantineReason>,
) -> Option<T> {
    match require(field, missing, reasons).map(parse)? {
        Ok(value) => Some(value),
        Err(broken) => {
            reasons.push(broken);
            None
        }
    }
}

/// Returns `quantity × unit_price` exactly, with the price's scale 3, or `None` when the
/// product leaves `Decimal`'s 96-bit range.
fn exact_total_amount(quantity: i64, unit_price: Decimal) -> Option<Decimal> {
    debug_assert_eq!(unit_price.scale(), UNIT_PRICE_SCALE);
    let thousandths = i128::from(quantity).checked_mul(unit_price.mantissa())?;
    Decimal::try_from_i128_with_scale(thousandths, UNIT_PRICE_SCALE).ok()
}

fn count_passed(checks: &[bool]) -> u8 {
    let passed = checks.iter().filter(|passed| **passed).count();
    u8::try_from(passed).expect("a handful of checks")
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::column::Column;

    /// The first row of the real Online Retail data.
    fn first_row() -> RawFields<'static> {
        RawFields {
            invoice: Some("536365"),
            stock_code: Some("85123A"),
            description: Some("WHITE HANGING HEART T-LIGHT HOLDER"),
            quantity: Some("6"),
            invoice_date: Some("2010-12-01 08:26:00"),
            unit_price: Some("2.55"),
            customer_id: Some("17850.0"),
            country: Some("United Kingdom"),
        }
    }

    fn clean(raw: &RawFields<'_>) -> CleanTransaction {
        cleanse(raw, None, &DateWindow::ingested_now()).expect("row is clean")
    }

    fn reasons(raw: &RawFields<'_>) -> Vec<QuarantineReason> {
        cleanse(raw, None, &DateWindow::ingested_now()).expect_err("row is quarantined")
    }

    #[test]
    fn first_real_row_cleanses_to_a_complete_product_line() {
        let row = clean(&first_row());
        assert_eq!(row.invoice, "536365");
        assert_eq!(row.stock_code, "85123A");
        assert_eq!(
            row.description.as_deref(),
            Some("WHITE HANGING HEART T-LIGHT HOLDER")
        );
        assert_eq!(row.quantity, 6);
        assert_eq!(
            row.invoice_date,
            NaiveDate::from_ymd_opt(2010, 12, 1)
                .and_then(|date| date.and_hms_opt(8, 26, 0))
                .expect("valid date")
        );
        assert_eq!(row.unit_price.to_string(), "2.550");
        assert_eq!(row.customer_id.as_deref(), Some("17850"));
        assert_eq!(row.country, "United Kingdom");
        assert_eq!(row.country_name, "United Kingdom");
        assert_eq!(row.country_code, Some("GB"));
        assert_eq!(row.region, Region::UnitedKingdom);
        assert_eq!(row.total_amount.to_string(), "15.300");
        assert!(!row.is_return);
        assert!(!row.is_cancellation);
        assert_eq!(row.line_type, LineType::Product);
        assert_eq!(row.data_quality_score.to_string(), "1.00");
        assert_eq!(
            row.transaction_id,
            transaction_id(
                "536365",
                "85123A",
                Some("WHITE HANGING HEART T-LIGHT HOLDER"),
                6,
                row.invoice_date,
                Decimal::new(2550, 3),
                Some("17850"),
                "United Kingdom"
            )
        );
    }

    #[test]
    fn header_fixture_row_with_us_date_is_the_same_transaction() {
        let us_form = RawFields {
            invoice_date: Some("12/1/2010 08:26"),
            ..first_row()
        };
        let short_us_form = RawFields {
            invoice_date: Some("12/1/2010 8:26"),
            ..first_row()
        };
        assert_eq!(clean(&us_form), clean(&first_row()));
        assert_eq!(clean(&short_us_form), clean(&first_row()));
    }

    #[test]
    fn normalisation_makes_equal_transactions_share_an_id() {
        let messy = RawFields {
            invoice: Some(" 536365 "),
            stock_code: Some("85123a"),
            description: Some("  WHITE  HANGING HEART\tT-LIGHT HOLDER "),
            quantity: Some(" 6 "),
            invoice_date: Some("2010-12-01T08:26:00"),
            unit_price: Some("2.550"),
            customer_id: Some(" 17850 "),
            country: Some(" United Kingdom "),
        };
        assert_eq!(clean(&messy), clean(&first_row()));
    }

    #[test]
    fn reports_each_broken_rule_on_its_own() {
        let cases: [(RawFields<'_>, QuarantineReason); 11] = [
            (
                RawFields {
                    invoice: None,
                    ..first_row()
                },
                QuarantineReason::MissingInvoice,
            ),
            (
                RawFields {
                    stock_code: Some("  "),
                    ..first_row()
                },
                QuarantineReason::MissingStockCode,
            ),
            (
                RawFields {
                    quantity: Some(""),
                    ..first_row()
                },
                QuarantineReason::MissingQuantity,
            ),
            (
                RawFields {
                    quantity: Some("1.5"),
                    ..first_row()
                },
                QuarantineReason::InvalidQuantity,
            ),
            (
                RawFields {
                    quantity: Some("0"),
                    ..first_row()
                },
                QuarantineReason::ZeroQuantity,
            ),
            (
                RawFields {
                    invoice_date: None,
                    ..first_row()
                },
                QuarantineReason::MissingInvoiceDate,
            ),
            (
                RawFields {
                    invoice_date: Some("2011-02-30 10:00:00"),
                    ..first_row()
                },
                QuarantineReason::InvalidInvoiceDate,
            ),
            (
                RawFields {
                    unit_price: Some(" "),
                    ..first_row()
                },
                QuarantineReason::MissingUnitPrice,
            ),
            (
                RawFields {
                    unit_price: Some("0.0015"),
                    ..first_row()
                },
                QuarantineReason::InvalidUnitPrice,
            ),
            (
                RawFields {
                    unit_price: Some("-11062.06"),
                    ..first_row()
                },
                QuarantineReason::NegativeUnitPrice,
            ),
            (
                RawFields {
                    country: Some(""),
                    ..first_row()
                },
                QuarantineReason::MissingCountry,
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(reasons(&raw), [expected], "{raw:?}");
        }
    }

    #[test]
    fn reports_every_broken_rule_in_enum_order() {
        let raw = RawFields {
            invoice: Some(" "),
            stock_code: None,
            description: None,
            quantity: Some("abc"),
            invoice_date: Some("yesterday"),
            unit_price: Some("-1"),
            customer_id: None,
            country: None,
        };
        assert_eq!(
            reasons(&raw),
            [
                QuarantineReason::MissingInvoice,
                QuarantineReason::MissingStockCode,
                QuarantineReason::InvalidQuantity,
                QuarantineReason::InvalidInvoiceDate,
                QuarantineReason::NegativeUnitPrice,
                QuarantineReason::MissingCountry,
            ]
        );
        let empty = reasons(&RawFields::default());
        assert_eq!(
            empty,
            [
                QuarantineReason::MissingInvoice,
                QuarantineReason::MissingStockCode,
                QuarantineReason::MissingQuantity,
                QuarantineReason::MissingInvoiceDate,
                QuarantineReason::MissingUnitPrice,
                QuarantineReason::MissingCountry,
            ]
        );
        let zero_and_invalid_price = reasons(&RawFields {
            quantity: Some("0"),
            unit_price: Some("1e3"),
            ..first_row()
        });
        assert_eq!(
            zero_and_invalid_price,
            [
                QuarantineReason::ZeroQuantity,
                QuarantineReason::InvalidUnitPrice
            ]
        );
    }

    #[test]
    fn quantities_beyond_a_billion_units_are_invalid_and_every_total_stays_exact() {
        let raw = RawFields {
            quantity: Some("9223372036854775807"),
            unit_price: Some("999999999999999.999"),
            invoice_date: Some("not a date"),
            ..first_row()
        };
        assert_eq!(
            reasons(&raw),
            [
                QuarantineReason::InvalidQuantity,
                QuarantineReason::InvalidInvoiceDate
            ]
        );
        for quantity in ["1000000000", "-1000000000"] {
            let raw = RawFields {
                quantity: Some(quantity),
                ..first_row()
            };
            assert_eq!(reasons(&raw), [QuarantineReason::InvalidQuantity]);
        }
        let largest = RawFields {
            quantity: Some("-999999999"),
            unit_price: Some("999999999999999.999"),
            ..first_row()
        };
        assert_eq!(
            clean(&largest).total_amount.to_string(),
            "-999999998999999999000000.001"
        );
    }

    #[test]
    fn minus_zero_price_is_a_free_line_not_a_negative_price() {
        let row = clean(&RawFields {
            unit_price: Some("-0"),
            ..first_row()
        });
        assert_eq!(row.unit_price.to_string(), "0.000");
        assert!(!row.unit_price.is_sign_negative());
        assert_eq!(row.total_amount.to_string(), "0.000");
    }

    #[test]
    fn total_amount_is_exact_with_scale_three() {
        let tiny = clean(&RawFields {
            quantity: Some("3"),
            unit_price: Some("0.001"),
            ..first_row()
        });
        assert_eq!(tiny.total_amount.to_string(), "0.003");
        let returned = clean(&RawFields {
            quantity: Some("-12"),
            ..first_row()
        });
        assert_eq!(returned.total_amount.to_string(), "-30.600");
        assert!(returned.is_return);
        let whole = clean(&RawFields {
            unit_price: Some("3"),
            ..first_row()
        });
        assert_eq!(whole.unit_price.scale(), 3);
        assert_eq!(whole.total_amount.to_string(), "18.000");
    }

    #[test]
    fn invoices_starting_with_c_in_either_case_are_cancellations() {
        let upper = clean(&RawFields {
            invoice: Some("C536379"),
            quantity: Some("-1"),
            ..first_row()
        });
        assert!(upper.is_cancellation);
        assert!(upper.is_return);
        assert_eq!(upper.invoice, "C536379");
        let lower = clean(&RawFields {
            invoice: Some(" c536379"),
            ..first_row()
        });
        assert!(lower.is_cancellation);
        assert_eq!(lower.invoice, "c536379");
    }

    #[test]
    fn customer_id_loses_its_float_suffix_and_guests_are_kept() {
        assert_eq!(clean(&first_row()).customer_id.as_deref(), Some("17850"));
        for guest in [None, Some(""), Some("  ")] {
            let row = clean(&RawFields {
                customer_id: guest,
                ..first_row()
            });
            assert_eq!(row.customer_id, None);
        }
    }

    #[test]
    fn description_is_collapsed_and_blank_becomes_none() {
        let spaced = clean(&RawFields {
            description: Some("  JUMBO   BAG\t RED "),
            ..first_row()
        });
        assert_eq!(spaced.description.as_deref(), Some("JUMBO BAG RED"));
        let blank = clean(&RawFields {
            description: Some("   "),
            ..first_row()
        });
        assert_eq!(blank.description, None);
        let absent = clean(&RawFields {
            description: None,
            ..first_row()
        });
        assert_eq!(absent.description, None);
        assert_eq!(blank.transaction_id, absent.transaction_id);
    }

    #[test]
    fn stock_code_is_upper_cased() {
        let row = clean(&RawFields {
            stock_code: Some("85123a"),
            ..first_row()
        });
        assert_eq!(row.stock_code, "85123A");
        assert_eq!(row.transaction_id, clean(&first_row()).transaction_id);
    }

    #[test]
    fn line_type_comes_from_the_upper_cased_stock_code() {
        let cases = [
            ("POST", LineType::Shipping),
            ("dot", LineType::Shipping),
            ("C2", LineType::Shipping),
            ("D", LineType::Discount),
            ("m", LineType::Manual),
            ("S", LineType::Sample),
            ("BANK CHARGES", LineType::Fee),
            ("AMAZONFEE", LineType::Fee),
            ("CRUK", LineType::Fee),
            ("B", LineType::Adjustment),
            ("gift_0001_20", LineType::GiftVoucher),
            ("85123a", LineType::Product),
        ];
        for (code, expected) in cases {
            let row = clean(&RawFields {
                stock_code: Some(code),
                ..first_row()
            });
            assert_eq!(row.line_type, expected, "{code}");
            assert_eq!(row.stock_code, code.to_uppercase());
        }
    }

    #[test]
    fn country_is_kept_as_given_and_described_by_its_standard_name() {
        let row = clean(&RawFields {
            country: Some(" EIRE "),
            ..first_row()
        });
        assert_eq!(row.country, "EIRE");
        assert_eq!(row.country_name, "Ireland");
        assert_eq!(row.country_code, Some("IE"));
        assert_eq!(row.region, Region::NorthernEurope);
    }

    #[test]
    fn scores_follow_the_contract_examples() {
        let score = |raw: RawFields<'_>| clean(&raw).data_quality_score.to_string();
        assert_eq!(score(first_row()), "1.00");
        assert_eq!(
            score(RawFields {
                customer_id: None,
                ..first_row()
            }),
            "0.95"
        );
        assert_eq!(
            score(RawFields {
                unit_price: Some("0"),
                ..first_row()
            }),
            "0.90"
        );
        assert_eq!(
            score(RawFields {
                customer_id: Some(""),
                unit_price: Some("0.00"),
                ..first_row()
            }),
            "0.86"
        );
        assert_eq!(
            score(RawFields {
                country: Some("Unspecified"),
                ..first_row()
            }),
            "0.85"
        );
    }

    #[test]
    fn score_checks_customer_length_description_and_email() {
        let short_customer = clean(&RawFields {
            customer_id: Some("1234.0"),
            ..first_row()
        });
        assert_eq!(short_customer.data_quality_score.to_string(), "0.90");
        let no_description = clean(&RawFields {
            description: None,
            ..first_row()
        });
        assert_eq!(no_description.data_quality_score.to_string(), "0.95");

        let with_email = |email| {
            cleanse(&first_row(), email, &DateWindow::ingested_now())
                .expect("clean")
                .data_quality_score
                .to_string()
        };
        assert_eq!(with_email(Some("shop@example.com")), "1.00");
        assert_eq!(with_email(Some("  ")), "1.00");
        assert_eq!(with_email(Some("not an email")), "0.85");
        let both_invalid = cleanse(
            &RawFields {
                country: Some("West Indies"),
                ..first_row()
            },
            Some("x@y"),
            &DateWindow::ingested_now(),
        )
        .expect("clean");
        assert_eq!(both_invalid.data_quality_score.to_string(), "0.70");
    }

    #[test]
    fn invoice_dates_outside_the_plausible_window_are_quarantined() {
        let ingested = chrono::NaiveDate::from_ymd_opt(2011, 12, 9)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap();
        let window = DateWindow::for_record(DateWindow::default_earliest(), ingested);
        let dated = |date| {
            cleanse(
                &RawFields {
                    invoice_date: Some(date),
                    ..first_row()
                },
                None,
                &window,
            )
        };
        for plausible in [
            "2000-01-01 00:00:00",
            "2011-12-09 12:00",
            "2011-12-10 12:00",
        ] {
            assert!(dated(plausible).is_ok(), "{plausible}");
        }
        for implausible in [
            "1999-12-31 23:59:59",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59",
            "2011-12-10 12:01",
        ] {
            assert_eq!(
                dated(implausible).unwrap_err(),
                [QuarantineReason::ImplausibleInvoiceDate],
                "{implausible}"
            );
        }
        // An ingestion time at the end of the calendar does not overflow.
        let last = DateWindow::for_record(DateWindow::default_earliest(), NaiveDateTime::MAX);
        assert!(last.contains(NaiveDateTime::MAX));
    }

    #[test]
    fn control_characters_and_overlong_text_break_the_text_rule() {
        let window = DateWindow::ingested_now();
        let long_code = "9".repeat(51);
        let long_country = "X".repeat(101);
        let long_description = "Y".repeat(501);
        for broken in [
            RawFields {
                invoice: Some("536\u{0}365"),
                ..first_row()
            },
            RawFields {
                stock_code: Some("85123A\u{7f}"),
                ..first_row()
            },
            RawFields {
                customer_id: Some("1785\u{1b}0"),
                ..first_row()
            },
            RawFields {
                country: Some("United\u{1}Kingdom"),
                ..first_row()
            },
            RawFields {
                invoice: Some(long_code.as_str()),
                ..first_row()
            },
            RawFields {
                country: Some(long_country.as_str()),
                ..first_row()
            },
            RawFields {
                description: Some(long_description.as_str()),
                ..first_row()
            },
        ] {
            assert_eq!(
                cleanse(&broken, None, &window).unwrap_err(),
                [QuarantineReason::InvalidText],
                "{broken:?}"
            );
        }
        // A control character in a description becomes a space: the row stays clean.
        let clean = cleanse(
            &RawFields {
                description: Some("WHITE\u{0}HANGING\tHEART"),
                ..first_row()
            },
            None,
            &window,
        )
        .unwrap();
        assert_eq!(clean.description.as_deref(), Some("WHITE HANGING HEART"));
        // The text rule is reported with the others, in enum order.
        let many = cleanse(
            &RawFields {
                quantity: Some("0"),
                country: Some("X\u{0}"),
                ..first_row()
            },
            None,
            &window,
        )
        .unwrap_err();
        assert_eq!(
            many,
            [
                QuarantineReason::ZeroQuantity,
                QuarantineReason::InvalidText
            ]
        );
    }

    #[test]
    fn raw_fields_list_in_column_order() {
        let raw = first_row();
        let fields = raw.to_array();
        assert_eq!(fields.len(), Column::ALL.len());
        assert_eq!(
            fields[Column::ALL
                .iter()
                .position(|c| *c == Column::UnitPrice)
                .expect("listed")],
            Some("2.55")
        );
        assert_eq!(raw.count_present(), 8);
        assert_eq!(
            RawFields {
                customer_id: Some(" "),
                description: None,
                ..raw
            }
            .count_present(),
            6
        );
    }

    #[test]
    fn quarantine_reason_codes_round_trip() {
        let codes: Vec<&str> = QuarantineReason::ALL
            .iter()
            .map(|reason| reason.as_str())
            .collect();
        assert_eq!(
            codes,
            [
                "malformed_record",
                "missing_invoice",
                "missing_stock_code",
                "missing_quantity",
                "invalid_quantity",
                "zero_quantity",
                "missing_invoice_date",
                "invalid_invoice_date",
                "implausible_invoice_date",
                "missing_unit_price",
                "invalid_unit_price",
                "negative_unit_price",
                "missing_country",
                "invalid_text",
                "unknown_transaction",
                "conflicting_change",
            ]
        );
        for reason in QuarantineReason::ALL {
            assert_eq!(QuarantineReason::parse(reason.as_str()), Some(reason));
            assert_eq!(reason.as_str().parse::<QuarantineReason>(), Ok(reason));
            assert_eq!(reason.to_string(), reason.as_str());
        }
        assert_eq!(QuarantineReason::parse("Missing_Invoice"), None);
        assert!("bogus".parse::<QuarantineReason>().is_err());
        let mut sorted = QuarantineReason::ALL;
        sorted.sort();
        assert_eq!(sorted, QuarantineReason::ALL);
    }
}
