//! Days and months as the gold builder counts them: days since 1970-01-01, months since year 0,
//! date keys `yyyymmdd` and month labels `YYYY-MM`.

use chrono::{Datelike as _, NaiveDate};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The day (since 1970-01-01) of a timestamp in micros.
pub(crate) fn day_of(micros: i64) -> i32 {
    micros.div_euclid(MICROS_PER_DAY) as i32
}

/// Parses a `YYYY-MM` label back into a month index.
pub(crate) fn parse_month_label(label: &str) -> Option<i32> {
    let (year, month) = label.split_once('-')?;
    let (year, month): (i32, i32) = (year.parse().ok()?, month.parse().ok()?);
    (label.len() == 7 && (1..=12).contains(&month)).then_some(year * 12 + month - 1)
}

pub(crate) fn date_of_day(day: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(day + 719_163).expect("days of real invoice dates")
}

pub(crate) fn date_key(day: i32) -> i32 {
    let date = date_of_day(day);
    date.year() * 10_000 + date.month() as i32 * 100 + date.day() as i32
}

/// Months since year 0, for month arithmetic.
pub(crate) fn month_index(day: i32) -> i32 {
    let date = date_of_day(day);
    date.year() * 12 + date.month0() as i32
}

pub(crate) fn month_label(index: i32) -> String {
    format!(
        "{:04}-{:02}",
        index.div_euclid(12),
        index.rem_euclid(12) + 1
    )
}
