//! Cron schedules: when a schedule is due in its time zone, and what to do about the ticks
//! missed while no scheduler ran.
//!
//! The expressions are the five fields of cron (minute, hour, day of month, month, day of
//! week) with lists (`1,15`), ranges (`1-5`), steps (`*/15`, `8-18/2`, `5/10`), names of months
//! and days (`JAN`, `mon-fri`, case-insensitive), `7` for Sunday, and the shorthands
//! `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and `@hourly`.
//! As in Vixie cron, when both the day of month and the day of week are restricted (neither is
//! `*`), a day matches when either does.
//!
//! Times are matched on the wall clock of the schedule's time zone. Around daylight saving
//! changes: a tick in the hour that repeats (clocks go back) fires once, at its first
//! occurrence; a tick in the hour that does not exist (clocks go forward) fires at the first
//! minute after the gap, once however many ticks fell into it.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_restricted: bool,
    weekdays_restricted: bool,
}

/// Why an expression is not a schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression {expression:?}: {problem}")]
pub struct CronError {
    expression: String,
    problem: String,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// How far ahead the next tick is looked for: an expression with no tick in this many days
/// (`0 0 30 2 *`) is refused. Eight years cover 29 February across a century's skipped leap day.
const HORIZON_DAYS: i64 = 8 * 366;

impl Cron {
    /// Parses an expression.
    ///
    /// # Errors
    ///
    /// When it does not have five fields (or is not a known shorthand), a field has a value
    /// out of range, a step of 0, a reversed range or an unknown name, or when the expression
    /// can never fire (the 30th of February).
    pub fn parse(expression: &str) -> Result<Self, CronError> {
        let error = |problem: String| CronError {
            expression: expression.to_owned(),
            problem,
        };
        let text = expression.trim();
        let expanded = match text.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *".to_owned(),
            "@monthly" => "0 0 1 * *".to_owned(),
            "@weekly" => "0 0 * * 0".to_owned(),
            "@daily" | "@midnight" => "0 0 * * *".to_owned(),
            "@hourly" => "0 * * * *".to_owned(),
            other if other.starts_with('@') => {
                return Err(error(format!(
                    "unknown shorthand {text} (known: @yearly, @annually, @monthly, @weekly, \
                     @daily, @midnight, @hourly)"
                )));
            }
            _ => text.to_owned(),
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(error(format!(
                "it has {} fields; cron has five: minute, hour, day of month, month, day of week",
                fields.len()
            )));
        };
        let minutes = parse_field(minute, "minute", 0, 59, &[]).map_err(error)?;
        let hours = parse_field(hour, "hour", 0, 23, &[]).map_err(error)?;
        let days = parse_field(day, "day of month", 1, 31, &[]).map_err(error)?;
        let months = parse_field(month, "month", 1, 12, &MONTHS).map_err(error)?;
        let mut weekdays = parse_field(weekday, "day of week", 0, 7, &WEEKDAYS).map_err(error)?;
        // 7 is Sunday too.
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        let cron = Self {
            minutes,
            hours: u32::try_from(hours).unwrap_or(u32::MAX),
            days: u32::try_from(days).unwrap_or(u32::MAX),
            months: u16::try_from(months).unwrap_or(u16::MAX),
            weekdays: u8::try_from(weekdays).unwrap_or(u8::MAX),
            // As in Vixie cron, a field starting with `*` (`*/2` too) is not a restriction.
            days_restricted: !day.starts_with('*'),
            weekdays_restricted: !weekday.starts_with('*'),
        };
        let start = NaiveDate::from_ymd_opt(2000, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|naive| naive.and_utc());
        if start
            .and_then(|start| cron.next_after(start, Tz::UTC))
            .is_none()
        {
            return Err(error("it never fires".to_owned()));
        }
        Ok(cron)
    }

    /// The first tick strictly after `after`, on the wall clock of `zone`; `None` when there is
    /// none within eight years.
    pub fn next_after(&self, after: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&zone).naive_local();
        let mut candidate = local.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let limit = local + Duration::days(HORIZON_DAYS);
        while candidate <= limit {
            if !self.month_matches(candidate.month()) {
                candidate = first_of_next_month(candidate)?;
            } else if !self.day_matches(candidate.date()) {
                candidate = (candidate.date() + Duration::days(1)).and_hms_opt(0, 0, 0)?;
            } else if self.hours & (1 << candidate.hour()) == 0 {
                candidate = candidate.with_minute(0)? + Duration::hours(1);
            } else if self.minutes & (1 << candidate.minute()) == 0 {
                candidate += Duration::minutes(1);
            } else {
                match instant(candidate, zone) {
                    Some(at) if at > after => return Some(at),
                    // The first occurrence of a repeated hour, already past.
                    _ => candidate += Duration::minutes(1),
                }
            }
        }
        None
    }

    /// Every tick in `(after, until]`, at most `limit` of them, oldest first.
    pub fn ticks_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        zone: Tz,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut ticks = Vec::new();
        let mut from = after;
        while ticks.len() < limit {
            match self.next_after(from, zone) {
                Some(tick) if tick <= until => {
                    ticks.push(tick);
                    from = tick;
                }
                _ => break,
            }
        }
        ticks
    }

    fn month_matches(&self, month: u32) -> bool {
        self.months & (1 << month) != 0
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let day = self.days & (1 << date.day()) != 0;
        let weekday = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => day || weekday,
            _ => day && weekday,
        }
    }
}

impl std::str::FromStr for Cron {
    type Err = CronError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// The instant a wall-clock minute names in `zone`: its first occurrence when the hour repeats,
/// the end of the gap when it does not exist.
fn instant(local: NaiveDateTime, zone: Tz) -> Option<DateTime<Utc>> {
    let mut minute = local;
    // Gaps are at most a few hours (a day when a zone skipped a whole date).
    for _ in 0..(26 * 60) {
        if let Some(at) = zone.from_local_datetime(&minute).earliest() {
            return Some(at.with_timezone(&Utc));
        }
        minute += Duration::minutes(1);
    }
    None
}

fn first_of_next_month(at: NaiveDateTime) -> Option<NaiveDateTime> {
    let (year, month) = if at.month() == 12 {
        (at.year() + 1, 1)
    } else {
        (at.year(), at.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1)?.and_hms_opt(0, 0, 0)
}

/// One field as a bit set of the values it allows.
fn parse_field(text: &str, name: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let value = |word: &str| -> Result<u32, String> {
        if let Some(index) = names.iter().position(|n| n.eq_ignore_ascii_case(word)) {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            // Months are named from 1, days of the week from 0.
            return Ok(index + min);
        }
        let number: u32 = word
            .parse()
            .map_err(|_| format!("{word:?} is not a {name} value"))?;
        if number < min || number > max {
            return Err(format!("{name} {number} is out of range {min}-{max}"));
        }
        Ok(number)
    };
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .map_err(|_| format!("{step:?} is not a step in the {name} field"))?;
                if step == 0 {
                    return Err(format!("a step of 0 in the {name} field"));
                }
                (range, step)
            }
            None => (item, 1),
        };
        let (low, high) = if range == "*" {
            (min, max)
        } else if let Some((low, high)) = range.split_once('-') {
            let (low, high) = (value(low)?, value(high)?);
            if low > high {
                return Err(format!("the {name} range {range} is reversed"));
            }
            (low, high)
        } else {
            let low = value(range)?;
            // `5/10`: from 5 to the end by 10.
            (low, if item.contains('/') { max } else { low })
        };
        let mut current = low;
        while current <= high {
            bits |= 1 << current;
            current += step;
        }
    }
    Ok(bits)
}

/// What a schedule does about ticks that passed while no scheduler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Missed ticks are dropped; only a tick within the grace period runs.
    #[default]
    Skip,
    /// Every missed tick together runs once.
    Once,
    /// Each missed tick runs, oldest first (at most the catch-up limit).
    Each,
}

/// What a schedule owes at some instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The ticks to run now, oldest first: one run each.
    pub runs: Vec<DateTime<Utc>>,
    /// Ticks passed over (dropped by `skip`, merged by `once`, beyond the limit for `each`).
    pub passed_over: usize,
    /// The last tick accounted for: the schedule's cursor once the runs are done.
    pub handled_until: DateTime<Utc>,
}

/// The runs a schedule owes at `now`, its ticks up to `last` already handled. A tick is on time
/// while `now` is within `grace` of it; `skip` runs only an on-time tick, `once` the newest of
/// the ticks owed, `each` every tick owed (at most `limit`, the newest ones).
pub fn due(
    cron: &Cron,
    zone: Tz,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    catch_up: CatchUp,
    grace: Duration,
    limit: usize,
) -> Due {
    // Count past the limit only as far as needed to know the newest tick.
    let mut ticks = Vec::new();
    let mut from = last;
    let mut total = 0usize;
    while let Some(tick) = cron.next_after(from, zone).filter(|tick| *tick <= now) {
        total += 1;
        ticks.push(tick);
        if ticks.len() > limit.max(1) {
            ticks.remove(0);
        }
        from = tick;
    }
    let Some(&newest) = ticks.last() else {
        return Due {
            runs: Vec::new(),
            passed_over: 0,
            handled_until: last,
        };
    };
    let runs = match catch_up {
        CatchUp::Skip if now - newest <= grace => vec![newest],
        CatchUp::Skip => Vec::new(),
        CatchUp::Once => vec![newest],
        CatchUp::Each => {
            let keep = ticks.len().min(limit.max(1));
            ticks[ticks.len() - keep..].to_vec()
        }
    };
    Due {
        passed_over: total - runs.len(),
        runs,
        handled_until: newest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn next(expression: &str, after: &str, zone: Tz) -> String {
        Cron::parse(expression)
            .unwrap()
            .next_after(utc(after), zone)
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn fields_lists_ranges_steps_and_names() {
        let z = Tz::UTC;
        assert_eq!(
            next("*/15 * * * *", "2026-12-03T10:07:30Z", z),
            "2026-12-03T10:15:00+00:00"
        );
        assert_eq!(
            next("0 8-18/2 * * *", "2026-12-03T10:00:00Z", z),
            "2026-12-03T12:00:00+00:00"
        );
        assert_eq!(
            next("5/20 * * * *", "2026-12-03T10:46:00Z", z),
            "2026-12-03T11:05:00+00:00"
        );
        assert_eq!(
            next("0 0 1,15 * *", "2026-12-03T00:00:00Z", z),
            "2026-12-15T00:00:00+00:00"
        );
        assert_eq!(
            next("30 6 * FEB mon-FRI", "2026-12-03T00:00:00Z", z),
            "2027-02-01T06:30:00+00:00"
        );
        // 7 is Sunday; 2026-12-06 is a Sunday.
        assert_eq!(
            next("0 0 * * 7", "2026-12-03T00:00:00Z", z),
            "2026-12-06T00:00:00+00:00"
        );
        assert_eq!(
            next("@monthly", "2026-12-03T00:00:00Z", z),
            "2027-01-01T00:00:00+00:00"
        );
        assert_eq!(
            next("@hourly", "2026-12-03T23:00:00Z", z),
            "2026-12-04T00:00:00+00:00"
        );
        // Strictly after: a tick at `after` itself is not next.
        assert_eq!(
            next("@daily", "2026-12-03T00:00:00Z", z),
            "2026-12-04T00:00:00+00:00"
        );
        // 29 February: the next leap year.
        assert_eq!(
            next("0 0 29 2 *", "2026-12-03T00:00:00Z", z),
            "2028-02-29T00:00:00+00:00"
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_restricted() {
        // The 13th or any Friday (Vixie cron): 2026-12-04 is a Friday.
        assert_eq!(
            next("0 0 13 * 5", "2026-12-03T00:00:00Z", Tz::UTC),
            "2026-12-04T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 13 * 5", "2026-12-11T00:00:00Z", Tz::UTC),
            "2026-12-13T00:00:00+00:00"
        );
        // Only one restricted: both must hold (the 13th that is a Friday... any 13th here).
        assert_eq!(
            next("0 0 13 * *", "2026-12-03T00:00:00Z", Tz::UTC),
            "2026-12-13T00:00:00+00:00"
        );
    }

    #[test]
    fn a_time_zone_moves_the_ticks_and_its_clock_changes_fire_once() {
        let london: Tz = "Europe/London".parse().unwrap();
        // Winter: London is UTC; summer: UTC+1.
        assert_eq!(
            next("0 2 * * *", "2026-12-03T00:00:00Z", london),
            "2026-12-03T02:00:00+00:00"
        );
        assert_eq!(
            next("0 2 * * *", "2026-07-03T00:00:00Z", london),
            "2026-07-03T01:00:00+00:00"
        );
        // 2026-03-29: 01:00 local does not exist (clocks go from 01:00 to 02:00); a 01:30
        // tick fires at 02:00 BST = 01:00 UTC, once.
        let cron = Cron::parse("30 1 * * *").unwrap();
        let ticks = cron.ticks_between(
            utc("2026-03-28T12:00:00Z"),
            utc("2026-03-30T12:00:00Z"),
            london,
            10,
        );
        let ticks: Vec<String> = ticks.iter().map(DateTime::to_rfc3339).collect();
        assert_eq!(
            ticks,
            ["2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00"]
        );
        // Every quarter hour of 01:00-02:59 local: 01:00-01:45 fall in the gap and fire once at
        // 02:00 BST (01:00 UTC); 02:15-02:45 follow.
        let quarter = Cron::parse("*/15 1-2 29 3 *").unwrap();
        let ticks = quarter.ticks_between(
            utc("2026-03-29T00:00:00Z"),
            utc("2026-03-29T02:00:00Z"),
            london,
            20,
        );
        let ticks: Vec<String> = ticks.iter().map(DateTime::to_rfc3339).collect();
        assert_eq!(
            ticks,
            [
                "2026-03-29T01:00:00+00:00",
                "2026-03-29T01:15:00+00:00",
                "2026-03-29T01:30:00+00:00",
                "2026-03-29T01:45:00+00:00"
            ]
        );
        // 2026-10-25: 01:00-01:59 happens twice; a 01:30 tick fires at the first one only.
        let ticks = cron.ticks_between(
            utc("2026-10-24T12:00:00Z"),
            utc("2026-10-25T12:00:00Z"),
            london,
            10,
        );
        let ticks: Vec<String> = ticks.iter().map(DateTime::to_rfc3339).collect();
        assert_eq!(ticks, ["2026-10-25T00:30:00+00:00"]);
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (expression, problem) in [
            ("* * * *", "it has 4 fields"),
            ("60 * * * *", "minute 60 is out of range 0-59"),
            ("*/0 * * * *", "a step of 0"),
            ("0 0 * foo *", "\"foo\" is not a month value"),
            ("0 10-2 * * *", "the hour range 10-2 is reversed"),
            ("0 0 30 2 *", "it never fires"),
            ("@fortnightly", "unknown shorthand"),
            ("", "it has 0 fields"),
        ] {
            let error = Cron::parse(expression).unwrap_err().to_string();
            assert!(error.contains(problem), "{expression:?}: {error}");
        }
    }

    #[test]
    fn catch_up_rules_decide_the_missed_ticks() {
        let cron = Cron::parse("0 * * * *").unwrap();
        let last = utc("2026-12-03T00:00:00Z");
        let grace = Duration::minutes(5);
        let due = |now: &str, catch_up| due(&cron, Tz::UTC, last, utc(now), catch_up, grace, 3);
        // Nothing due before the next tick.
        let nothing = due("2026-12-03T00:59:59Z", CatchUp::Each);
        assert!(nothing.runs.is_empty());
        assert_eq!(nothing.handled_until, last);
        // On time: every rule runs it.
        for catch_up in [CatchUp::Skip, CatchUp::Once, CatchUp::Each] {
            let on_time = due("2026-12-03T01:00:10Z", catch_up);
            assert_eq!(on_time.runs, [utc("2026-12-03T01:00:00Z")]);
            assert_eq!(on_time.passed_over, 0);
        }
        // Down from 00:00 to 05:30: ticks 01:00..05:00 were missed.
        let skip = due("2026-12-03T05:30:00Z", CatchUp::Skip);
        assert!(skip.runs.is_empty());
        assert_eq!(skip.passed_over, 5);
        assert_eq!(skip.handled_until, utc("2026-12-03T05:00:00Z"));
        let once = due("2026-12-03T05:30:00Z", CatchUp::Once);
        assert_eq!(once.runs, [utc("2026-12-03T05:00:00Z")]);
        assert_eq!(once.passed_over, 4);
        let each = due("2026-12-03T05:30:00Z", CatchUp::Each);
        assert_eq!(
            each.runs,
            [
                utc("2026-12-03T03:00:00Z"),
                utc("2026-12-03T04:00:00Z"),
                utc("2026-12-03T05:00:00Z")
            ]
        );
        assert_eq!(each.passed_over, 2, "beyond the limit of 3");
        // Back within the grace of the newest missed tick: skip runs that one.
        let skip = due("2026-12-03T05:03:00Z", CatchUp::Skip);
        assert_eq!(skip.runs, [utc("2026-12-03T05:00:00Z")]);
        assert_eq!(skip.passed_over, 4);
    }
}
