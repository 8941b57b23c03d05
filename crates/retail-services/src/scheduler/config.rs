//! `[scheduler]`: the schedules and sensors as a user writes them, checked into what the
//! scheduler runs.

use std::path::PathBuf;

use chrono_tz::Tz;
use retail_domain::schedule::{CatchUp, Cron};
use serde::{Deserialize, Serialize};

/// The scheduler (`[scheduler]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Whether `retail serve` runs the schedules and sensors (in the one replica holding the
    /// scheduler's lease). `retail scheduler` runs them whatever this says.
    pub enabled: bool,
    /// Seconds between two looks at the schedules and sensors.
    pub tick_seconds: u64,
    /// Seconds the scheduler's lease lasts unless renewed (every third of it): another replica
    /// takes over at most this long, plus a tick, after the holder dies.
    pub lease_seconds: u64,
    /// Seconds after its time a tick still counts as on time (what `catch_up = "skip"` runs).
    pub grace_seconds: u64,
    /// The most runs one schedule makes to catch up on missed ticks (`catch_up = "each"`).
    pub catch_up_limit: usize,
    /// Cron schedules (`[[scheduler.schedules]]`).
    pub schedules: Vec<ScheduleConfig>,
    /// Sensors (`[[scheduler.sensors]]`).
    pub sensors: Vec<SensorConfig>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tick_seconds: 10,
            lease_seconds: 30,
            grace_seconds: 60,
            catch_up_limit: 24,
            schedules: Vec::new(),
            sensors: Vec::new(),
        }
    }
}

/// A cron schedule (`[[scheduler.schedules]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Its name (letters, digits, `-` and `_`): runs are requested by `schedule:<name>`.
    pub name: String,
    /// When: five cron fields or a shorthand (`@daily`), on the wall clock of `timezone`.
    pub cron: String,
    /// An IANA time zone (`Europe/London`).
    #[serde(default = "utc")]
    pub timezone: String,
    /// The assets to run, with nothing else; empty: every asset.
    #[serde(default)]
    pub assets: Vec<String>,
    /// Rebuild gold even when it is current.
    #[serde(default)]
    pub force: bool,
    /// Ticks missed while no scheduler ran: `skip`, `once` or `each`.
    #[serde(default)]
    pub catch_up: CatchUp,
}

fn utc() -> String {
    "UTC".to_owned()
}

/// What a sensor watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SensorKind {
    /// A landing directory: new and changed files are ingested into bronze, then the
    /// sensor's assets run.
    Landing,
    /// An asset: when one of its tables gets a new version, the sensor's assets run.
    Asset,
    /// An object-store prefix (`s3://bucket/landing/`): as `landing`, for the objects directly
    /// under it, reached with the lake's `storage_options`.
    Prefix,
    /// A stream of `[[streams]]`: when its lag (messages on the broker not yet in bronze)
    /// rises above `max_lag`, the sensor's assets run, once per rise.
    StreamLag,
}

/// A sensor (`[[scheduler.sensors]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    /// Its name (letters, digits, `-` and `_`): work is requested by `sensor:<name>`.
    pub name: String,
    /// `landing`, `prefix` or `asset`.
    pub kind: SensorKind,
    /// The landing directory (`landing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The asset watched (`asset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// The object-store prefix watched (`prefix`): `s3://bucket/landing/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The stream watched (`stream_lag`): the name of a `[[streams]]` entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The most messages the stream may lag before the sensor fires (`stream_lag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag: Option<u64>,
    /// The assets to run when the sensor fires; empty: every asset (for `landing`; an `asset`
    /// sensor must name what it runs).
    #[serde(default)]
    pub assets: Vec<String>,
}

/// What a schedule runs and when, checked.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    pub(crate) config: ScheduleConfig,
    pub(crate) cron: Cron,
    pub(crate) zone: Tz,
}

/// What a sensor watches, checked.
#[derive(Debug, Clone)]
pub(crate) enum Watch {
    Landing(PathBuf),
    Asset(String),
    /// An object-store prefix's URL, ending with `/`.
    Prefix(String),
    /// A stream's name and the most it may lag.
    StreamLag(String, u64),
}

/// A sensor, checked.
#[derive(Debug, Clone)]
pub(crate) struct Sensor {
    pub(crate) config: SensorConfig,
    pub(crate) watch: Watch,
}

/// A name for cursors, logs and `requested_by`.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl SchedulerConfig {
    /// Every problem of the settings, schedules and sensors on their own (the assets they name
    /// are checked when the scheduler is built, against the runner's graph).
    pub fn problems(&self) -> Vec<String> {
        self.checked(None).err().unwrap_or_default()
    }

    /// The schedules and sensors, checked against each other and, given `assets`, against the
    /// assets the runner knows; every problem is listed.
    pub(crate) fn checked(
        &self,
        assets: Option<&[&str]>,
    ) -> Result<(Vec<Schedule>, Vec<Sensor>), Vec<String>> {
        let known = |asset: &str| assets.is_none_or(|assets| assets.contains(&asset));
        let listed = assets.map(|assets| assets.join(", ")).unwrap_or_default();
        let mut problems = Vec::new();
        for (name, value) in [
            ("tick_seconds", self.tick_seconds),
            ("lease_seconds", self.lease_seconds),
        ] {
            if value == 0 {
                problems.push(format!("scheduler.{name} must be above 0"));
            }
        }
        if self.lease_seconds < 3 * self.tick_seconds.max(1) / 2 {
            problems.push(format!(
                "scheduler.lease_seconds ({}) must be at least one and a half ticks \
                 (scheduler.tick_seconds = {}), or the lease lapses between renewals",
                self.lease_seconds, self.tick_seconds
            ));
        }
        if self.catch_up_limit == 0 {
            problems.push("scheduler.catch_up_limit must be at least 1".to_owned());
        }
        let mut names: Vec<String> = Vec::new();
        let mut check_name = |at: &str, name: &str, problems: &mut Vec<String>| {
            if !plain_name(name) {
                problems.push(format!(
                    "{at}.name {name:?} must be 1 to 64 letters, digits, '-' or '_'"
                ));
            } else if names.iter().any(|n| n == name) {
                problems.push(format!("{at}: a schedule or sensor named {name:?} exists"));
            }
            names.push(name.to_owned());
        };
        let check_assets = |at: &str, selected: &[String], problems: &mut Vec<String>| {
            for asset in selected {
                if !known(asset) {
                    problems.push(format!(
                        "{at}.assets names {asset:?}, not an asset (known: {listed})"
                    ));
                }
            }
        };

        let mut schedules = Vec::new();
        for (index, schedule) in self.schedules.iter().enumerate() {
            let at = format!("scheduler.schedules[{index}]");
            check_name(&at, &schedule.name, &mut problems);
            check_assets(&at, &schedule.assets, &mut problems);
            let cron = Cron::parse(&schedule.cron)
                .map_err(|error| problems.push(format!("{at}.cron: {error}")));
            let zone = schedule.timezone.parse::<Tz>().map_err(|_| {
                problems.push(format!(
                    "{at}.timezone {:?} is not an IANA time zone (such as \"Europe/London\" or \
                     \"UTC\")",
                    schedule.timezone
                ));
            });
            if let (Ok(cron), Ok(zone)) = (cron, zone) {
                schedules.push(Schedule {
                    config: schedule.clone(),
                    cron,
                    zone,
                });
            }
        }

        let mut sensors = Vec::new();
        for (index, sensor) in self.sensors.iter().enumerate() {
            let at = format!("scheduler.sensors[{index}]");
            check_name(&at, &sensor.name, &mut problems);
            check_assets(&at, &sensor.assets, &mut problems);
            let stream_lag = sensor.kind == SensorKind::StreamLag;
            let watch = match (sensor.kind, &sensor.path, &sensor.asset) {
                _ if (sensor.stream.is_some() || sensor.max_lag.is_some()) != stream_lag => {
                    problems.push(format!(
                        "{at}: `stream` and `max_lag` are for a stream_lag sensor, and a \
                         stream_lag sensor needs both (and no `path`, `url` or `asset`)"
                    ));
                    None
                }
                (SensorKind::StreamLag, None, None) if sensor.url.is_none() => {
                    let stream = sensor.stream.clone().unwrap_or_default();
                    if stream.trim().is_empty() {
                        problems.push(format!("{at}.stream must name a [[streams]] entry"));
                    }
                    if sensor.assets.is_empty() {
                        problems.push(format!(
                            "{at}: a stream_lag sensor needs `assets`, what to run when the lag \
                             rises"
                        ));
                    }
                    Some(Watch::StreamLag(stream, sensor.max_lag.unwrap_or_default()))
                }
                (SensorKind::StreamLag, _, _) => {
                    problems.push(format!(
                        "{at}: a stream_lag sensor needs `stream` and `max_lag`, and no `path`, \
                         `url` or `asset`"
                    ));
                    None
                }
                _ if sensor.url.is_some() != (sensor.kind == SensorKind::Prefix) => {
                    problems.push(format!(
                        "{at}: `url` is for a prefix sensor, and a prefix sensor needs it (and no \
                         `path` or `asset`)"
                    ));
                    None
                }
                (SensorKind::Prefix, None, None) => {
                    let url = sensor.url.clone().unwrap_or_default();
                    let scheme = ["s3://", "s3a://", "file:///"]
                        .iter()
                        .find(|scheme| url.starts_with(*scheme));
                    if scheme.is_some_and(|scheme| url.len() > scheme.len() + 1)
                        && url.ends_with('/')
                    {
                        Some(Watch::Prefix(url))
                    } else {
                        problems.push(format!(
                            "{at}.url {url:?} must be an s3:// or file:/// URL ending with '/'"
                        ));
                        None
                    }
                }
                (SensorKind::Prefix, _, _) => {
                    problems.push(format!(
                        "{at}: a prefix sensor needs `url` and no `path` or `asset`"
                    ));
                    None
                }
                (SensorKind::Landing, Some(path), None) => Some(Watch::Landing(path.clone())),
                (SensorKind::Landing, _, _) => {
                    problems.push(format!(
                        "{at}: a landing sensor needs `path` (the directory) and no `asset`"
                    ));
                    None
                }
                (SensorKind::Asset, None, Some(asset)) => {
                    if !known(asset) {
                        problems.push(format!(
                            "{at}.asset {asset:?} is not an asset (known: {listed})"
                        ));
                    }
                    if sensor.assets.is_empty() {
                        problems.push(format!(
                            "{at}: an asset sensor needs `assets`, what to run when {asset:?} \
                             changes"
                        ));
                    } else if sensor.assets.contains(asset) {
                        problems.push(format!(
                            "{at}.assets must not include the asset it watches ({asset:?}): each \
                             run would fire it again"
                        ));
                    }
                    Some(Watch::Asset(asset.clone()))
                }
                (SensorKind::Asset, _, _) => {
                    problems.push(format!(
                        "{at}: an asset sensor needs `asset` (the asset watched) and no `path`"
                    ));
                    None
                }
            };
            if let Some(watch) = watch {
                sensors.push(Sensor {
                    config: sensor.clone(),
                    watch,
                });
            }
        }
        if problems.is_empty() {
            Ok((schedules, sensors))
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASSETS: &[&str] = &["silver", "gold", "models"];

    fn schedule(name: &str, cron: &str, timezone: &str, assets: &[&str]) -> ScheduleConfig {
        ScheduleConfig {
            name: name.to_owned(),
            cron: cron.to_owned(),
            timezone: timezone.to_owned(),
            assets: assets.iter().map(|a| (*a).to_owned()).collect(),
            force: false,
            catch_up: CatchUp::Skip,
        }
    }

    fn sensor(
        name: &str,
        kind: SensorKind,
        path: Option<&str>,
        asset: Option<&str>,
        assets: &[&str],
    ) -> SensorConfig {
        SensorConfig {
            name: name.to_owned(),
            kind,
            path: path.map(PathBuf::from),
            asset: asset.map(str::to_owned),
            url: None,
            stream: None,
            max_lag: None,
            assets: assets.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    #[test]
    fn a_good_configuration_is_checked_into_schedules_and_sensors() {
        let config = SchedulerConfig {
            schedules: vec![schedule("nightly", "0 2 * * *", "Europe/London", &[])],
            sensors: vec![
                sensor("landing", SensorKind::Landing, Some("/data/in"), None, &[]),
                sensor("models", SensorKind::Asset, None, Some("gold"), &["models"]),
            ],
            ..SchedulerConfig::default()
        };
        let (schedules, sensors) = config.checked(Some(ASSETS)).unwrap();
        assert_eq!(schedules[0].zone, chrono_tz::Europe::London);
        assert_eq!(sensors.len(), 2);
    }

    #[test]
    fn every_problem_is_named() {
        let config = SchedulerConfig {
            lease_seconds: 5,
            schedules: vec![
                schedule("nightly", "0 25 * * *", "Mars/Olympus", &["bronze"]),
                schedule("nightly", "@daily", "UTC", &[]),
                schedule("bad name", "@daily", "UTC", &[]),
            ],
            sensors: vec![
                sensor("landing", SensorKind::Landing, None, None, &[]),
                sensor("loop", SensorKind::Asset, None, Some("gold"), &["gold"]),
                sensor("idle", SensorKind::Asset, None, Some("gold"), &[]),
            ],
            ..SchedulerConfig::default()
        };
        let problems = config.checked(Some(ASSETS)).unwrap_err().join("\n");
        for expected in [
            "scheduler.lease_seconds (5) must be at least one and a half ticks",
            "scheduler.schedules[0].cron: invalid cron expression \"0 25 * * *\": hour 25 is out of range",
            "scheduler.schedules[0].timezone \"Mars/Olympus\" is not an IANA time zone",
            "scheduler.schedules[0].assets names \"bronze\", not an asset (known: silver, gold, models)",
            "scheduler.schedules[1]: a schedule or sensor named \"nightly\" exists",
            "scheduler.schedules[2].name \"bad name\" must be",
            "scheduler.sensors[0]: a landing sensor needs `path`",
            "scheduler.sensors[1].assets must not include the asset it watches",
            "scheduler.sensors[2]: an asset sensor needs `assets`",
        ] {
            assert!(
                problems.contains(expected),
                "missing {expected:?} in:\n{problems}"
            );
        }
    }
}
