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

#[cfg(test)]
mod tests {
    use super::*;

    /// 2010-12-01 00:00 in micros since the epoch.
    const FIRST_DAY: i64 = 1_291_161_600_000_000;

    #[test]
    fn a_timestamp_falls_on_its_day_also_before_1970() {
        assert_eq!(day_of(FIRST_DAY), 14_944);
        assert_eq!(day_of(FIRST_DAY + MICROS_PER_DAY - 1), 14_944);
        assert_eq!(day_of(FIRST_DAY + MICROS_PER_DAY), 14_945);
        // Euclidean division: one microsecond before the epoch is the day before it.
        assert_eq!(day_of(-1), -1);
        assert_eq!(
            date_of_day(-1),
            NaiveDate::from_ymd_opt(1969, 12, 31).unwrap()
        );
    }

    #[test]
    fn keys_labels_and_indexes_agree_across_a_year_end() {
        let day = day_of(FIRST_DAY);
        assert_eq!(date_key(day), 20_101_201);
        assert_eq!(date_key(day + 31), 20_110_101);
        assert_eq!(month_label(month_index(day)), "2010-12");
        assert_eq!(month_index(day + 31), month_index(day) + 1);
        assert_eq!(month_label(month_index(day + 31)), "2011-01");
        for label in ["2010-12", "2011-01", "0001-01", "9999-12"] {
            assert_eq!(
                parse_month_label(label).map(month_label).as_deref(),
                Some(label)
            );
        }
    }

    #[test]
    fn malformed_month_labels_are_refused() {
        for label in [
            "2011-13", "2011-00", "2011-1", "11-01", "2011/01", "2011-", "", "abcd-ef",
        ] {
            assert_eq!(parse_month_label(label), None, "{label}");
        }
    }
}
