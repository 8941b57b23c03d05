//! Regular expressions matching exactly the raw texts the field rules of
//! [`cleanse`](crate::record::cleanse) accept, for documents that describe the rules to
//! clients (the OpenAPI document of the API).
//!
//! Each is written in the syntax common to ECMA 262 (JSON Schema's `pattern`), Python and the
//! Rust `regex` crate, anchored, and tested against the parsers it describes. White space is
//! Rust's (`char::is_whitespace`, what `str::trim` removes) and control characters are the
//! text rule's ([`is_control`](crate::field::is_control)).

use std::fmt::Write as _;
use std::ops::RangeInclusive;

use chrono::NaiveDate;

use crate::field::{MAX_CODE_CHARS, MAX_COUNTRY_CHARS, MAX_QUANTITY};

/// A white-space character: what `str::trim` removes.
const WS: &str = r"[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// A character that is not a control character of the text rule.
const NOT_CONTROL: &str = r"[^\u0000-\u001f\u007f]";

/// A character that is neither white space nor a control character.
const VISIBLE: &str =
    r"[^\u0000-\u0020\u007f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// `core` with any white space around it, anchored.
fn trimmed(core: &str) -> String {
    format!("^{WS}*(?:{core}){WS}*$")
}

/// Text of 1 to `max` characters after trimming, without control characters: an invoice, a
/// stock code or a country.
pub fn required_text(max: usize) -> String {
    trimmed(&format!(
        "{VISIBLE}(?:{NOT_CONTROL}{{0,{}}}{VISIBLE})?",
        max - 2
    ))
}

/// An invoice number or stock code.
pub fn code() -> String {
    required_text(MAX_CODE_CHARS)
}

/// A country.
pub fn country() -> String {
    required_text(MAX_COUNTRY_CHARS)
}

/// A customer id: blank (a guest sale), or after trimming and removing one trailing `.0`, 1 to
/// 50 characters without control characters.
pub fn customer_id() -> String {
    let max = MAX_CODE_CHARS;
    trimmed(&format!(
        "|{VISIBLE}(?:{NOT_CONTROL}{{0,{inner}}}{VISIBLE})?|(?:{VISIBLE}{NOT_CONTROL}{{0,{rest}}})?\\.0",
        inner = max - 2,
        rest = max - 1,
    ))
}

/// A quantity as text: a whole number, not zero, of at most [`MAX_QUANTITY`] in magnitude,
/// with an optional sign and zero fraction.
pub fn quantity() -> String {
    let digits = MAX_QUANTITY.to_string().len();
    debug_assert!(
        MAX_QUANTITY.to_string().bytes().all(|b| b == b'9'),
        "the pattern bounds the quantity by its number of digits"
    );
    trimmed(&format!("[+-]?0*[1-9][0-9]{{0,{}}}(?:\\.0*)?", digits - 1))
}

/// A unit price as text: not negative (`-0` is zero), at most three non-zero fractional
/// digits, below 10^15.
pub fn unit_price() -> String {
    let fraction = r"\.[0-9]{0,3}0*";
    trimmed(&format!(
        r"\+?(?:0*[0-9]{{1,15}}(?:{fraction})?|\.[0-9]{{1,3}}0*)|-(?:0+(?:\.0*)?|\.0+)"
    ))
}

/// An alternation of the years of `years`, and of its leap years.
fn years_and_leap_years(years: RangeInclusive<i32>) -> (String, String) {
    let join = |filter: &dyn Fn(i32) -> bool| {
        years
            .clone()
            .filter(|y| filter(*y))
            .fold(String::new(), |mut out, year| {
                if !out.is_empty() {
                    out.push('|');
                }
                let _ = write!(out, "{year:04}");
                out
            })
    };
    let is_leap = |year: i32| NaiveDate::from_ymd_opt(year, 2, 29).is_some();
    (join(&|_| true), join(&is_leap))
}

/// A real day `YYYY-MM-DD` of one of `years` (four digits each).
fn iso_day(years: &str, leap_years: &str) -> String {
    let iso_leap = if leap_years.is_empty() {
        String::new()
    } else {
        format!("|(?:{leap_years})-02-29")
    };
    format!(
        "(?:(?:{years})-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])\
         |(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31){iso_leap})"
    )
}

/// A time in UTC as the audit trail's filters take it (`2026-12-02T11:30:24Z`, with up to six
/// digits of fraction): exactly what [`parse_utc_time`](crate::audit::parse_utc_time) accepts.
pub fn utc_time(years: RangeInclusive<i32>) -> String {
    let (years, leap_years) = years_and_leap_years(years);
    let day = iso_day(&years, &leap_years);
    format!("^{day}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{{1,6}})?Z$")
}

/// An invoice date in one of the contract's four forms, a real date and time, in one of
/// `years` (four digits each).
pub fn invoice_date(years: RangeInclusive<i32>) -> String {
    let (years, leap_years) = years_and_leap_years(years);
    let minute = "[0-5][0-9]";
    let us_leap = if leap_years.is_empty() {
        String::new()
    } else {
        format!("|0?2/29/(?:{leap_years})")
    };
    let iso_day = iso_day(&years, &leap_years);
    let iso = format!(
        "{iso_day}(?: (?:[01][0-9]|2[0-3]):{minute}(?::{minute})?|T(?:[01][0-9]|2[0-3]):{minute}:{minute})"
    );
    let us_day = format!(
        "(?:(?:(?:0?[1-9]|1[0-2])/(?:0?[1-9]|1[0-9]|2[0-8])|(?:0?1|0?[3-9]|1[0-2])/(?:29|30)\
         |(?:0?[13578]|1[02])/31)/(?:{years}){us_leap})"
    );
    let us = format!("{us_day} (?:[01]?[0-9]|2[0-3]):{minute}");
    trimmed(&format!("{iso}|{us}"))
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::*;
    use crate::field::{
        breaks_text_rule, non_blank, normalise_customer_id, parse_invoice_date, parse_quantity,
        parse_unit_price,
    };

    /// Texts that probe the edges of every rule: white space and control characters at the
    /// ends and inside, lengths around each limit, signs, fractions and digits.
    fn probes() -> Vec<String> {
        let mut texts: Vec<String> = [
            "",
            " ",
            "\t",
            "x",
            " x ",
            "\tx\n",
            "a b",
            "a\tb",
            "a\u{7f}b",
            "\u{85}x",
            "x\u{a0}",
            "\u{3000}x\u{2028}",
            "\u{feff}",
            "\u{80}",
            "é",
            ".0",
            "x.0",
            " x.0 ",
            "x .0",
            "0",
            "-0",
            "+0",
            "-0.0",
            "-.0",
            "-",
            "+",
            ".",
            "5.",
            ".5",
            "+5",
            "--5",
            "+-5",
            "6.0",
            "6.00",
            "6.5",
            "1e3",
            "0006",
            "-12",
            "2.55",
            "2.5500",
            "0.001",
            "0.0015",
            "-1",
            "-0.001",
            "1,000",
            "£5",
            "999999999",
            "1000000000",
            "-999999999",
            "-1000000000",
            "999999999999999",
            "1000000000000000",
            "999999999999999.999",
            "0000000000000000001",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        for length in [48, 49, 50, 51, 52, 99, 100, 101] {
            texts.push("x".repeat(length));
            texts.push(format!(" {} ", "x".repeat(length)));
            texts.push(format!("{}.0", "x".repeat(length)));
            texts.push(format!("{} .0", "x".repeat(length - 1)));
        }
        texts.extend((0..=0x3001u32).filter_map(char::from_u32).map(String::from));
        texts.extend(
            (0..=0x3001u32)
                .filter_map(char::from_u32)
                .map(|c| format!("a{c}b")),
        );
        texts
    }

    fn check(pattern: &str, texts: &[String], accepts: impl Fn(&str) -> bool) {
        let regex = Regex::new(pattern).expect("the pattern compiles");
        for text in texts {
            assert_eq!(regex.is_match(text), accepts(text), "{pattern}: {text:?}");
        }
    }

    fn text_rule(max: usize) -> impl Fn(&str) -> bool {
        move |text| non_blank(Some(text)).is_some_and(|t| !breaks_text_rule(t, max))
    }

    #[test]
    fn the_text_patterns_accept_exactly_what_the_text_rules_accept() {
        let texts = probes();
        check(&code(), &texts, text_rule(MAX_CODE_CHARS));
        check(&country(), &texts, text_rule(MAX_COUNTRY_CHARS));
        check(&customer_id(), &texts, |text| {
            normalise_customer_id(text).is_none_or(|id| !breaks_text_rule(id, MAX_CODE_CHARS))
        });
    }

    #[test]
    fn the_number_patterns_accept_exactly_what_the_number_rules_accept() {
        let mut texts = probes();
        texts.extend((-1100..=1100).map(|n| format!("{}", f64::from(n) / 1000.0)));
        check(&quantity(), &texts, |text| {
            parse_quantity(text).is_some_and(|q| q != 0 && q.unsigned_abs() <= MAX_QUANTITY)
        });
        check(&unit_price(), &texts, |text| {
            parse_unit_price(text).is_some_and(|p| !p.is_sign_negative() || p.is_zero())
        });
    }

    #[test]
    fn the_date_pattern_accepts_exactly_the_real_dates_of_its_years_in_the_four_forms() {
        let years = 2000..=2025;
        let mut texts = Vec::new();
        let mut day = NaiveDate::from_ymd_opt(1999, 1, 1).unwrap();
        while day <= NaiveDate::from_ymd_opt(2026, 12, 31).unwrap() {
            for form in [
                "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%d %H:%M",
                "%Y-%m-%dT%H:%M:%S",
                "%-m/%-d/%Y %-H:%M",
            ] {
                texts.push(
                    day.and_hms_opt(23, 59, 59)
                        .unwrap()
                        .format(form)
                        .to_string(),
                );
            }
            day = day.succ_opt().unwrap();
        }
        for text in [
            "2011-02-29 10:00",
            "2012-02-29 10:00",
            "2/29/2012 8:26",
            "2/29/2011 8:26",
            "02/29/2012 08:26",
            "12/1/2010 8:26",
            "12/01/2010 08:26",
            "12/1/2010 08:26 ",
            " 2010-12-01 08:26:00",
            "2010-12-01T08:26",
            "2010-12-01 24:00",
            "2010-12-01 08:60",
            "2010-12-01 08:26:60",
            "2010-12-1 08:26",
            "2010-12-01 8:26",
            "13/1/2010 8:26",
            "0/1/2010 8:26",
            "1/0/2010 8:26",
            "1/1/10 8:26",
            "1/1/2010 8:6",
            "1/1/2010 24:00",
            "4/31/2010 8:26",
            "4/30/2010 8:26",
            "2010-04-31 08:26",
            "2000-02-29 00:00",
            "1900-02-29 00:00",
            "2010-12-01 08:26:00\t",
            "2010-12-01  08:26",
        ] {
            texts.push(text.to_owned());
        }
        check(&invoice_date(years.clone()), &texts, |text| {
            parse_invoice_date(text).is_some_and(|at| years.contains(&chrono::Datelike::year(&at)))
        });
    }
}
