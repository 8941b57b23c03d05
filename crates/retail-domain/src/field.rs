//! Parsers and normalisers for single business fields, as the contract defines them.
//!
//! Each takes the source text of one field and returns its normalised value, or `None` when
//! the text breaks the field's rule. They do no allocation unless the result needs it, since
//! [`cleanse`](crate::record::cleanse) runs them on millions of rows.

use chrono::{NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;

/// The number of fractional digits every silver price carries.
pub const UNIT_PRICE_SCALE: u32 = 3;

/// The largest magnitude a unit price may have, exclusive: prices must fit `DECIMAL(18, 3)`.
const UNIT_PRICE_LIMIT_THOUSANDTHS: u64 = 1_000_000_000_000_000_000;

/// Returns the trimmed text, or `None` when the field is absent or blank (the contract's
/// "missing").
pub fn non_blank(field: Option<&str>) -> Option<&str> {
    field.map(str::trim).filter(|text| !text.is_empty())
}

/// Parses a quantity: a whole number with an optional leading `-` or `+` (`6`, `-12`, `+3`).
///
/// The text is trimmed first. A zero fraction is still a whole number, so `6.0` is 6, as a
/// spreadsheet cell exported as text may show; `1.5`, `abc`, an exponent and a value outside
/// `i64` are `None`. Zero parses as 0: rejecting it is the caller's rule (`zero_quantity`).
pub fn parse_quantity(text: &str) -> Option<i64> {
    let text = text.trim();
    let whole = match text.split_once('.') {
        Some((whole, fraction)) if fraction.bytes().all(|b| b == b'0') => whole,
        Some(_) => return None,
        None => text,
    };
    let digits = whole.strip_prefix(['-', '+']).unwrap_or(whole);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    whole.parse().ok()
}

/// Parses an invoice date in one of the contract's forms, as a shop-local timestamp.
///
/// The accepted forms are exactly `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DD HH:MM`,
/// `YYYY-MM-DDTHH:MM:SS` and the US form `M/D/YYYY H:MM` of the UCI CSV exports, where month,
/// day and hour have one or two digits (`12/1/2010 8:26`, `12/01/2010 08:26`). The text is
/// trimmed first. Any other shape, and impossible dates or times (`2011-02-30`, `25:00`),
/// are `None`.
pub fn parse_invoice_date(text: &str) -> Option<NaiveDateTime> {
    let bytes = text.trim().as_bytes();
    if bytes.len() >= 5 && bytes[4] == b'-' {
        parse_iso_date_time(bytes)
    } else {
        parse_us_date_time(bytes)
    }
}

/// Parses `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DD HH:MM` or `YYYY-MM-DDTHH:MM:SS`.
fn parse_iso_date_time(bytes: &[u8]) -> Option<NaiveDateTime> {
    let has_seconds = match bytes.len() {
        19 => true,
        16 => false,
        _ => return None,
    };
    let separator_ok = match bytes[10] {
        b' ' => true,
        b'T' => has_seconds,
        _ => false,
    };
    if !separator_ok || bytes[7] != b'-' || bytes[13] != b':' {
        return None;
    }
    let second = if has_seconds {
        if bytes[16] != b':' {
            return None;
        }
        digits_value(&bytes[17..19])?
    } else {
        0
    };
    build_date_time(
        digits_value(&bytes[0..4])?,
        digits_value(&bytes[5..7])?,
        digits_value(&bytes[8..10])?,
        digits_value(&bytes[11..13])?,
        digits_value(&bytes[14..16])?,
        second,
    )
}

/// Parses the US form `M/D/YYYY H:MM`.
fn parse_us_date_time(bytes: &[u8]) -> Option<NaiveDateTime> {
    let mut cursor = Cursor { bytes, position: 0 };
    let month = cursor.number(1, 2)?;
    cursor.expect(b'/')?;
    let day = cursor.number(1, 2)?;
    cursor.expect(b'/')?;
    let year = cursor.number(4, 4)?;
    cursor.expect(b' ')?;
    let hour = cursor.number(1, 2)?;
    cursor.expect(b':')?;
    let minute = cursor.number(2, 2)?;
    if cursor.position != bytes.len() {
        return None;
    }
    build_date_time(year, month, day, hour, minute, 0)
}

/// Reads fixed-width fields from the US date form.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Cursor<'_> {
    /// Reads a run of `min..=max` ASCII digits (and no more) as a number.
    fn number(&mut self, min: usize, max: usize) -> Option<u32> {
        let rest = &self.bytes[self.position..];
        let length = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if length < min || length > max {
            return None;
        }
        self.position += length;
        digits_value(&rest[..length])
    }

    fn expect(&mut self, expected: u8) -> Option<()> {
        (self.bytes.get(self.position) == Some(&expected)).then(|| self.position += 1)
    }
}

/// Returns the value of a short run of ASCII digits, or `None` if any byte is not a digit.
fn digits_value(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |value, &b| {
        b.is_ascii_digit().then(|| value * 10 + u32::from(b - b'0'))
    })
}

fn build_date_time(
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> Option<NaiveDateTime> {
    let year = i32::try_from(year).ok()?;
    NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(hour, minute, second)
}

/// Parses a unit price as an exact decimal with scale 3.
///
/// The text is trimmed first. Accepted: an optional sign (`-` or `+`), digits with an
/// optional fractional part, at least one digit in all (`2.55`, `0.001`, `3`, `.5`, `5.`,
/// `-11062.06`). At most three fractional digits may be non-zero: `2.5500` is 2.55, while
/// `0.0015` would need rounding and is `None`. Exponents, thousands separators, currency
/// signs and magnitudes of 10^15 or more (beyond `DECIMAL(18, 3)`) are `None`. The result
/// may be negative (rejecting that is the caller's rule); `-0` is zero.
pub fn parse_unit_price(text: &str) -> Option<Decimal> {
    let text = text.trim();
    let (is_negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let is_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !is_digits(whole) || !is_digits(fraction) {
        return None;
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > UNIT_PRICE_SCALE as usize {
        return None;
    }

    let mut whole_units: u64 = 0;
    for digit in whole.bytes() {
        whole_units = whole_units * 10 + u64::from(digit - b'0');
        // Checked after every digit, so the running value never overflows.
        if whole_units * 1000 >= UNIT_PRICE_LIMIT_THOUSANDTHS {
            return None;
        }
    }
    let mut thousandths = whole_units * 1000;
    let mut place = 100;
    for digit in fraction.bytes() {
        thousandths += u64::from(digit - b'0') * place;
        place /= 10;
    }

    let magnitude = i64::try_from(thousandths).expect("prices below 10^18 thousandths fit i64");
    let signed = if is_negative { -magnitude } else { magnitude };
    Some(Decimal::new(signed, UNIT_PRICE_SCALE))
}

/// Normalises a customer id: trimmed, one trailing `.0` removed (`17850.0` is customer
/// `17850`, the float text of the UCI exports); empty becomes `None`, a guest sale.
pub fn normalise_customer_id(text: &str) -> Option<&str> {
    let trimmed = text.trim();
    let customer_id = trimmed.strip_suffix(".0").unwrap_or(trimmed);
    (!customer_id.is_empty()).then_some(customer_id)
}

/// Normalises a description: every control character (see [`is_control`]) becomes a space,
/// then the text is trimmed and every run of white space collapsed to one space; empty becomes
/// `None`.
pub fn normalise_description(text: &str) -> Option<String> {
    let is_gap = |c: char| c.is_whitespace() || is_control(c);
    let trimmed = text.trim_matches(is_gap);
    if trimmed.is_empty() {
        return None;
    }
    // Most descriptions have single spaces only: copy them as they are.
    let mut previous_was_space = false;
    let is_clean = trimmed.chars().all(|c| {
        let gap = is_gap(c);
        let is_clean_char = !gap || (c == ' ' && !previous_was_space);
        previous_was_space = gap;
        is_clean_char
    });
    if is_clean {
        return Some(trimmed.to_owned());
    }
    let mut collapsed = String::with_capacity(trimmed.len());
    for word in trimmed.split(is_gap).filter(|word| !word.is_empty()) {
        if !collapsed.is_empty() {
            collapsed.push(' ');
        }
        collapsed.push_str(word);
    }
    Some(collapsed)
}

/// A control character as the text rule counts them: U+0000 to U+001F, or U+007F.
pub fn is_control(c: char) -> bool {
    c <= '\u{1f}' || c == '\u{7f}'
}

/// The largest magnitude of a quantity: a billion units on one line is no sale (the real
/// data's largest is 80,995), and the bound keeps every `quantity × unit_price` exact.
pub const MAX_QUANTITY: u64 = 999_999_999;

/// Longest invoice, stock code or customer id, in characters (the real data's longest: 7, 12
/// and 5).
pub const MAX_CODE_CHARS: usize = 50;
/// Longest country, in characters (real data: 20).
pub const MAX_COUNTRY_CHARS: usize = 100;
/// Longest description, in characters (real data: 35).
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// Whether a normalised text breaks the text rule: a control character, or more than
/// `max_chars` characters (`invalid_text`).
pub fn breaks_text_rule(text: &str, max_chars: usize) -> bool {
    text.chars().any(is_control) || text.chars().count() > max_chars
}

/// Normalises a stock code: trimmed and upper-cased (`85123a` and `85123A` are one product);
/// blank becomes `None`.
pub fn normalise_stock_code(text: &str) -> Option<String> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| upper_case(trimmed))
}

/// Returns `text` upper-cased, copying it as it is when it has no lower-case letter.
pub(crate) fn upper_case(text: &str) -> String {
    if text
        .bytes()
        .any(|b| !b.is_ascii() || b.is_ascii_lowercase())
    {
        text.to_uppercase()
    } else {
        text.to_owned()
    }
}

/// Returns whether a trimmed invoice number marks a cancellation: it starts with `C`.
///
/// A lower-case `c` counts too, since stock codes are matched without regard to case as well
/// and no real invoice number starts with a lower-case letter.
pub fn is_cancellation_invoice(invoice: &str) -> bool {
    matches!(invoice.as_bytes().first(), Some(b'C' | b'c'))
}

/// Returns whether an email address is well-formed for the validity check: exactly one `@`,
/// a non-empty local part, a domain with a dot that neither starts nor ends it, and no white
/// space anywhere. The caller decides what a missing email means (the score counts it as
/// passing).
pub fn is_well_formed_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date_time(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|date| date.and_hms_opt(h, mi, s))
            .expect("valid test date")
    }

    fn price(text: &str) -> Option<String> {
        parse_unit_price(text).map(|value| value.to_string())
    }

    #[test]
    fn blank_fields_are_missing() {
        assert_eq!(non_blank(None), None);
        assert_eq!(non_blank(Some("")), None);
        assert_eq!(non_blank(Some(" \t ")), None);
        assert_eq!(non_blank(Some(" x ")), Some("x"));
    }

    #[test]
    fn quantity_accepts_whole_numbers_with_a_sign() {
        assert_eq!(parse_quantity("6"), Some(6));
        assert_eq!(parse_quantity("-12"), Some(-12));
        assert_eq!(parse_quantity("+3"), Some(3));
        assert_eq!(parse_quantity(" 80995 "), Some(80995));
        assert_eq!(parse_quantity("0"), Some(0));
        assert_eq!(parse_quantity("-0"), Some(0));
        assert_eq!(parse_quantity("9223372036854775807"), Some(i64::MAX));
    }

    #[test]
    fn quantity_with_a_zero_fraction_is_a_whole_number() {
        assert_eq!(parse_quantity("6.0"), Some(6));
        assert_eq!(parse_quantity("-12.00"), Some(-12));
    }

    #[test]
    fn quantity_rejects_anything_but_a_whole_number() {
        for text in [
            "1.5",
            "abc",
            "",
            "-",
            "+",
            "1e3",
            "1,000",
            "--1",
            "+-1",
            "9223372036854775808",
            ".0",
            "6 7",
            "0x10",
        ] {
            assert_eq!(parse_quantity(text), None, "{text:?}");
        }
    }

    #[test]
    fn parses_every_accepted_date_form() {
        let expected = date_time(2010, 12, 1, 8, 26, 0);
        for text in [
            "2010-12-01 08:26:00",
            "2010-12-01 08:26",
            "2010-12-01T08:26:00",
            "12/1/2010 8:26",
            "12/1/2010 08:26",
            "12/01/2010 08:26",
            " 2010-12-01 08:26:00 ",
        ] {
            assert_eq!(parse_invoice_date(text), Some(expected), "{text:?}");
        }
        assert_eq!(
            parse_invoice_date("2011-12-09 12:50:59"),
            Some(date_time(2011, 12, 9, 12, 50, 59))
        );
        assert_eq!(
            parse_invoice_date("1/9/2011 23:05"),
            Some(date_time(2011, 1, 9, 23, 5, 0))
        );
        assert_eq!(
            parse_invoice_date("2012-02-29 00:00"),
            Some(date_time(2012, 2, 29, 0, 0, 0))
        );
    }

    #[test]
    fn us_dates_are_month_first() {
        assert_eq!(
            parse_invoice_date("3/4/2011 10:00"),
            Some(date_time(2011, 3, 4, 10, 0, 0))
        );
        assert_eq!(parse_invoice_date("13/4/2011 10:00"), None);
    }

    #[test]
    fn rejects_impossible_dates_and_times() {
        for text in [
            "2011-02-30 10:00:00",
            "2011-02-29 10:00",
            "2011-13-01 10:00:00",
            "2011-00-10 10:00:00",
            "2011-01-01 24:00:00",
            "2011-01-01 10:60:00",
            "2011-01-01 10:00:60",
            "2/30/2011 10:00",
            "12/1/2010 24:00",
        ] {
            assert_eq!(parse_invoice_date(text), None, "{text:?}");
        }
    }

    #[test]
    fn rejects_dates_in_other_forms() {
        for text in [
            "",
            "2010-12-01",
            "2010-12-01T08:26",
            "2010-12-01 08:26:00.000",
            "2010-12-01 08:26:00Z",
            "2010-12-01 8:26:00",
            "2010-12-1 08:26:00",
            "2010/12/01 08:26:00",
            "01.12.2010 08:26",
            "12/1/10 8:26",
            "12/1/2010 8:6",
            "12/1/2010 8:26:00",
            "12/1/2010  8:26",
            "12/1/2010",
            "123/1/2010 8:26",
            "12/1/2010 108:26",
            "2010-12-01t08:26:00",
            "+010-12-01 08:26:00",
            "yesterday",
        ] {
            assert_eq!(parse_invoice_date(text), None, "{text:?}");
        }
    }

    #[test]
    fn unit_price_is_exact_with_scale_three() {
        assert_eq!(price("2.55"), Some("2.550".to_owned()));
        assert_eq!(price("0.001"), Some("0.001".to_owned()));
        assert_eq!(price("3"), Some("3.000".to_owned()));
        assert_eq!(price(".5"), Some("0.500".to_owned()));
        assert_eq!(price("5."), Some("5.000".to_owned()));
        assert_eq!(price("+1.25"), Some("1.250".to_owned()));
        assert_eq!(price(" 0 "), Some("0.000".to_owned()));
        assert_eq!(price("-11062.06"), Some("-11062.060".to_owned()));
        assert_eq!(price("2.5500"), Some("2.550".to_owned()));
        assert_eq!(
            price("999999999999999.999"),
            Some("999999999999999.999".to_owned())
        );
        assert_eq!(parse_unit_price("2.55").map(|value| value.scale()), Some(3));
    }

    #[test]
    fn minus_zero_price_is_zero_not_negative() {
        let zero = parse_unit_price("-0").expect("-0 is a price");
        assert!(zero.is_zero());
        assert!(zero >= Decimal::ZERO);
        assert_eq!(parse_unit_price("-0.000"), Some(Decimal::ZERO));
    }

    #[test]
    fn unit_price_rejects_inexact_or_malformed_text() {
        for text in [
            "0.0015",
            "1.2345",
            "",
            "-",
            ".",
            "-.",
            "abc",
            "1e3",
            "1E-3",
            "1,000.00",
            "£2.55",
            "2.55.1",
            "--1",
            "1 000",
            "NaN",
            "inf",
            "1000000000000000",
            "0x10",
        ] {
            assert_eq!(price(text), None, "{text:?}");
        }
    }

    #[test]
    fn customer_id_loses_one_trailing_point_zero() {
        assert_eq!(normalise_customer_id("17850.0"), Some("17850"));
        assert_eq!(normalise_customer_id(" 17850 "), Some("17850"));
        assert_eq!(normalise_customer_id("17850.0.0"), Some("17850.0"));
        assert_eq!(normalise_customer_id("17850.00"), Some("17850.00"));
        assert_eq!(normalise_customer_id("A12.0"), Some("A12"));
    }

    #[test]
    fn empty_customer_id_is_a_guest() {
        assert_eq!(normalise_customer_id(""), None);
        assert_eq!(normalise_customer_id("   "), None);
        assert_eq!(normalise_customer_id(".0"), None);
    }

    #[test]
    fn description_is_trimmed_and_white_space_runs_collapse() {
        assert_eq!(
            normalise_description("  WHITE  HANGING\tHEART \n T-LIGHT HOLDER "),
            Some("WHITE HANGING HEART T-LIGHT HOLDER".to_owned())
        );
        assert_eq!(
            normalise_description("JUMBO BAG RED"),
            Some("JUMBO BAG RED".to_owned())
        );
        assert_eq!(normalise_description("A\u{a0}B"), Some("A B".to_owned()));
        assert_eq!(normalise_description(" \t "), None);
        // Control characters become spaces before white space collapses.
        assert_eq!(
            normalise_description("A\u{0}B\u{1b}[31m  C\u{7f}"),
            Some("A B [31m C".to_owned())
        );
        assert_eq!(normalise_description("\u{0}\u{1}"), None);
        assert!(breaks_text_rule("536365\u{0}", MAX_CODE_CHARS));
        assert!(breaks_text_rule(&"9".repeat(51), MAX_CODE_CHARS));
        assert!(!breaks_text_rule(&"9".repeat(50), MAX_CODE_CHARS));
        assert!(
            !breaks_text_rule("CÔTE D'IVOIRE \u{80}", MAX_COUNTRY_CHARS),
            "C1 controls are text"
        );
        assert_eq!(normalise_description(""), None);
    }

    #[test]
    fn stock_code_is_trimmed_and_upper_cased() {
        assert_eq!(normalise_stock_code(" 85123a "), Some("85123A".to_owned()));
        assert_eq!(normalise_stock_code("85123A"), Some("85123A".to_owned()));
        assert_eq!(
            normalise_stock_code("gift_0001_20"),
            Some("GIFT_0001_20".to_owned())
        );
        assert_eq!(normalise_stock_code("  "), None);
    }

    #[test]
    fn invoices_starting_with_c_are_cancellations() {
        assert!(is_cancellation_invoice("C536379"));
        assert!(is_cancellation_invoice("c536379"));
        assert!(!is_cancellation_invoice("536379"));
        assert!(!is_cancellation_invoice("A563185"));
        assert!(!is_cancellation_invoice(""));
    }

    #[test]
    fn recognises_well_formed_emails() {
        for email in ["a@b.co", "first.last+tag@shop.example.org"] {
            assert!(is_well_formed_email(email), "{email}");
        }
        for email in [
            "",
            "plain",
            "@shop.com",
            "a@b",
            "a@@b.com",
            "a@b@c.com",
            "a b@c.com",
            "a@.com",
            "a@com.",
            "a@b.com ",
        ] {
            assert!(!is_well_formed_email(email), "{email:?}");
        }
    }
}
