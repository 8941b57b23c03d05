//! The platform's own rules: from what the platform knows of itself (bronze's last commit, the
//! latest runs' quality reports, the anomaly detector's days, its own metrics) to the alerts
//! that fire now. Pure: the service gathers the [`Signals`] and keeps the [`MetricHistory`].

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Datelike as _, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use retail_domain::alerts::{Alert, Labels, Matcher};
use retail_metadata::{RunRecord, RunStatus};

use super::config::{Function, MetricRuleConfig, RulesConfig};

/// What the rules look at.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// When bronze last changed (`None`: empty or unreadable).
    pub bronze_changed_at: Option<DateTime<Utc>>,
    /// The latest pipeline runs, newest first.
    pub pipeline_runs: Vec<RunRecord>,
    /// The anomaly detector's scored days, oldest first: (day, score, is anomaly, the metric
    /// that made it most unusual).
    pub scored_days: Vec<(NaiveDate, f64, bool, String)>,
    /// The assets with a freshness policy, their lag and whether it is over the limit.
    pub freshness: Vec<retail_pipeline::Freshness>,
    /// `/metrics`, as the Prometheus text format.
    pub metrics: String,
}

/// Trading hours in UTC terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradingHours {
    open: NaiveTime,
    close: NaiveTime,
    days: [bool; 7],
    offset: Duration,
}

impl TradingHours {
    /// From `[alerts.rules]`.
    ///
    /// # Errors
    ///
    /// A message naming the setting that is wrong.
    pub fn parse(rules: &RulesConfig) -> Result<Self, String> {
        let bad = || {
            format!(
                "alerts.rules.trading_hours must be HH:MM-HH:MM with the opening first, not {:?}",
                rules.trading_hours
            )
        };
        let (open, close) = rules.trading_hours.split_once('-').ok_or_else(bad)?;
        let time = |text: &str| NaiveTime::parse_from_str(text.trim(), "%H:%M").map_err(|_| bad());
        let (open, close) = (time(open)?, time(close)?);
        if open >= close {
            return Err(bad());
        }
        let mut days = [false; 7];
        for day in &rules.trading_days {
            let weekday: Weekday = day.parse().map_err(|_| {
                format!("alerts.rules.trading_days: {day:?} is not a day (mon ... sun)")
            })?;
            days[weekday.num_days_from_monday() as usize] = true;
        }
        if !(-14 * 60..=14 * 60).contains(&rules.utc_offset_minutes) {
            return Err(format!(
                "alerts.rules.utc_offset_minutes must be -840 to 840, not {}",
                rules.utc_offset_minutes
            ));
        }
        Ok(Self {
            open,
            close,
            days,
            offset: Duration::minutes(i64::from(rules.utc_offset_minutes)),
        })
    }

    /// Minutes of trading hours between `from` and `to` (at most 31 days are looked at).
    pub fn minutes_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        if to <= from {
            return 0;
        }
        let (from, to) = (
            (from + self.offset).naive_utc(),
            (to + self.offset).naive_utc(),
        );
        let to = to.min(from + Duration::days(31));
        let mut total = Duration::zero();
        let mut day = from.date();
        while day <= to.date() {
            if self.days[day.weekday().num_days_from_monday() as usize] {
                let start = day.and_time(self.open).max(from);
                let end = day.and_time(self.close).min(to);
                if end > start {
                    total += end - start;
                }
            }
            day = day.succ_opt().unwrap_or(day);
            if day == NaiveDate::MAX {
                break;
            }
        }
        total.num_minutes()
    }
}

/// A series' samples within its rule's window, oldest first.
type Window = VecDeque<(DateTime<Utc>, f64)>;

/// The samples metric rules of kind `rate` keep, by rule and series.
#[derive(Debug, Default)]
pub struct MetricHistory {
    samples: BTreeMap<(String, String), Window>,
}

/// One series of the text format: its labels and value.
type Sample = (Labels, f64);

/// The samples of `metric` in a Prometheus text exposition.
fn samples(text: &str, metric: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(metric)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(inner) => {
                    let close = inner.rfind('}')?;
                    (parse_labels(&inner[..close])?, inner[close + 1..].trim())
                }
                None if rest.starts_with(' ') => (Labels::new(), rest.trim()),
                None => return None,
            };
            let value = value.split_whitespace().next()?;
            Some((labels, value.parse().ok()?))
        })
        .collect()
}

fn parse_labels(inner: &str) -> Option<Labels> {
    let mut labels = Labels::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (at, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break at,
                other => value.push(other),
            }
        };
        labels.insert(name.trim().trim_start_matches(',').trim().to_owned(), value);
        rest = after[end + 1..].trim_start_matches(',').trim();
    }
    Some(labels)
}

/// The alerts firing at `now`, each with the given `ends_at`.
pub fn evaluate(
    rules: &RulesConfig,
    signals: &Signals,
    history: &mut MetricHistory,
    now: DateTime<Utc>,
    ends_at: DateTime<Utc>,
) -> Vec<Alert> {
    let mut out = Vec::new();
    let mut fire =
        |name: &str, severity: &str, component: &str, extra: &[(&str, String)], summary: String| {
            let mut labels = Labels::from([
                ("alertname".to_owned(), name.to_owned()),
                ("severity".to_owned(), severity.to_owned()),
                ("component".to_owned(), component.to_owned()),
            ]);
            for (label, value) in extra {
                labels.insert((*label).to_owned(), value.clone());
            }
            out.push(Alert {
                labels,
                annotations: Labels::from([("summary".to_owned(), summary)]),
                starts_at: now,
                ends_at: Some(ends_at),
            });
        };

    if rules.freshness_minutes > 0
        && let (Ok(hours), Some(changed)) = (TradingHours::parse(rules), signals.bronze_changed_at)
    {
        let stale = hours.minutes_between(changed, now);
        if u64::try_from(stale).unwrap_or(0) >= rules.freshness_minutes {
            fire(
                "BronzeStale",
                "warning",
                "ingestion",
                &[],
                format!(
                    "no new bronze rows for {stale} minutes of trading hours (last at {})",
                    changed.format("%Y-%m-%d %H:%M UTC")
                ),
            );
        }
    }

    for asset in signals.freshness.iter().filter(|f| f.breached) {
        fire(
            "AssetFreshnessBreached",
            &asset.severity,
            "pipeline",
            &[("asset", asset.asset.clone())],
            format!(
                "{} lags {} minutes behind the data upstream of it (limit {}){}",
                asset.asset,
                asset.lag_seconds / 60,
                asset.max_lag_minutes,
                asset.behind_since.map_or_else(String::new, |at| format!(
                    "; the first commit it has not caught up with was at {}",
                    at.format("%Y-%m-%d %H:%M UTC")
                ))
            ),
        );
    }

    let finished: Vec<&RunRecord> = signals
        .pipeline_runs
        .iter()
        .filter(|run| run.status != RunStatus::Running)
        .collect();
    if rules.pipeline_failures
        && let Some(latest) = finished.first()
        && latest.status == RunStatus::Failed
    {
        fire(
            "PipelineFailed",
            "critical",
            "pipeline",
            &[],
            format!(
                "pipeline run {} failed: {}",
                latest.run_id,
                latest.error.as_deref().unwrap_or("no error recorded")
            ),
        );
    }
    let reports: Vec<(&RunRecord, &retail_metadata::QualityReport)> = finished
        .iter()
        .filter_map(|run| run.detail.quality.as_ref().map(|q| (*run, q)))
        .filter(|(_, quality)| quality.rows_checked > 0)
        .collect();
    if let Some((run, latest)) = reports.first() {
        if rules.quarantine_share > 0.0 && latest.quarantine_rate > rules.quarantine_share {
            fire(
                "QuarantineShareHigh",
                "warning",
                "quality",
                &[],
                format!(
                    "run {} quarantined {:.2}% of {} rows (threshold {:.2}%)",
                    run.run_id,
                    latest.quarantine_rate * 100.0,
                    latest.rows_checked,
                    rules.quarantine_share * 100.0
                ),
            );
        }
        if let Some((_, previous)) = reports.get(1)
            && rules.score_drop > 0.0
            && previous.mean_score - latest.mean_score > rules.score_drop
        {
            fire(
                "QualityScoreDrop",
                "warning",
                "quality",
                &[],
                format!(
                    "run {}'s mean row score {:.3} is {:.3} below the run before's {:.3}",
                    run.run_id,
                    latest.mean_score,
                    previous.mean_score - latest.mean_score,
                    previous.mean_score
                ),
            );
        }
    }

    let recent = signals.scored_days.len().saturating_sub(rules.anomaly_days);
    for (day, score, anomaly, reason) in &signals.scored_days[recent..] {
        if *anomaly {
            fire(
                "SalesAnomaly",
                "warning",
                "business",
                &[("date", day.to_string())],
                format!("{day} is unusual (isolation score {score:.3}; most of all {reason})"),
            );
        }
    }

    for rule in &rules.metrics {
        for (labels, value) in metric_values(rule, &signals.metrics, history, now) {
            let fires = match rule.function {
                Function::Below => value < rule.above,
                Function::Value | Function::Rate => value > rule.above,
            };
            if fires {
                let extra: Vec<(&str, String)> = labels
                    .iter()
                    .filter(|(name, _)| {
                        !["alertname", "severity", "component"].contains(&name.as_str())
                    })
                    .map(|(name, value)| (name.as_str(), value.clone()))
                    .collect();
                let summary = if rule.summary.is_empty() {
                    format!("{} is {value}", rule.metric)
                } else {
                    format!("{} ({} is {value:.3})", rule.summary, rule.metric)
                };
                fire(&rule.name, &rule.severity, &rule.component, &extra, summary);
            }
        }
    }
    out
}

/// The rule's values per series (one when `sum`), with the series' labels.
fn metric_values(
    rule: &MetricRuleConfig,
    text: &str,
    history: &mut MetricHistory,
    now: DateTime<Utc>,
) -> Vec<(Labels, f64)> {
    let matchers: Vec<Matcher> = rule
        .matchers
        .iter()
        .filter_map(|m| Matcher::parse(m).ok())
        .collect();
    let mut series: Vec<Sample> = samples(text, &rule.metric)
        .into_iter()
        .filter(|(labels, _)| matchers.iter().all(|m| m.matches(labels)))
        .collect();
    if rule.sum && !series.is_empty() {
        series = vec![(Labels::new(), series.iter().map(|(_, v)| v).sum())];
    }
    if rule.function != Function::Rate {
        return series;
    }
    let window = Duration::seconds(i64::try_from(rule.window_seconds).unwrap_or(i64::MAX / 1000));
    let mut out = Vec::new();
    for (labels, value) in series {
        let key = (rule.name.clone(), retail_domain::alerts::render(&labels));
        let kept = history.samples.entry(key).or_default();
        kept.push_back((now, value));
        while kept.front().is_some_and(|(at, _)| *at < now - window) {
            kept.pop_front();
        }
        if let (Some(first), Some(last)) = (kept.front(), kept.back())
            && last.0 > first.0
        {
            // A counter that went down restarted: count what it holds since as increase.
            let increase: f64 = kept
                .iter()
                .zip(kept.iter().skip(1))
                .map(|(a, b)| if b.1 >= a.1 { b.1 - a.1 } else { b.1 })
                .sum();
            let seconds = (last.0 - first.0).num_milliseconds() as f64 / 1000.0;
            out.push((labels, increase / seconds));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a time")
            .with_timezone(&Utc)
    }

    fn names(alerts: &[Alert]) -> Vec<&str> {
        alerts
            .iter()
            .map(|a| a.labels["alertname"].as_str())
            .collect()
    }

    #[test]
    fn only_minutes_of_trading_hours_count_towards_staleness() {
        let rules = RulesConfig {
            trading_days: ["mon", "tue", "wed", "thu", "fri"]
                .map(str::to_owned)
                .to_vec(),
            ..RulesConfig::default()
        };
        let hours = TradingHours::parse(&rules).expect("valid");
        // Friday 19:30 to Monday 08:45 (2026-11-27 is a Friday): 30 + 45 minutes.
        assert_eq!(
            hours.minutes_between(at("2026-11-27T19:30:00Z"), at("2026-11-30T08:45:00Z")),
            75
        );
        assert_eq!(
            hours.minutes_between(at("2026-11-30T09:00:00Z"), at("2026-11-30T08:00:00Z")),
            0
        );
        let local = TradingHours::parse(&RulesConfig {
            utc_offset_minutes: 60,
            ..RulesConfig::default()
        })
        .expect("valid");
        // 07:00-07:30 UTC is 08:00-08:30 local.
        assert_eq!(
            local.minutes_between(at("2026-11-30T06:00:00Z"), at("2026-11-30T07:30:00Z")),
            30
        );
        for (hours, says) in [("20:00-08:00", "opening first"), ("8-20", "HH:MM")] {
            let error = TradingHours::parse(&RulesConfig {
                trading_hours: hours.into(),
                ..RulesConfig::default()
            })
            .expect_err(hours);
            assert!(error.contains(says), "{error}");
        }
    }

    #[test]
    fn stale_bronze_and_metric_thresholds_fire_and_rates_need_two_samples() {
        let rules = RulesConfig::default();
        let now = at("2026-11-30T12:00:00Z");
        let text = "# HELP retail_http_requests_total requests\n\
             retail_http_requests_total{method=\"GET\",route=\"/a\",status=\"500\"} 10\n\
             retail_http_requests_total{method=\"GET\",route=\"/a\",status=\"200\"} 99\n\
             retail_warehouse_breaker_state 2\n\
             retail_stream_connected{stream=\"orders\"} 0\n\
             retail_stream_connected{stream=\"returns\"} 1\n";
        let signals = Signals {
            bronze_changed_at: Some(at("2026-11-30T10:30:00Z")),
            metrics: text.to_owned(),
            ..Signals::default()
        };
        let mut history = MetricHistory::default();
        let fired = evaluate(&rules, &signals, &mut history, now, now);
        assert_eq!(
            names(&fired),
            ["BronzeStale", "WarehouseCircuitOpen", "StreamDisconnected"],
            "a rate needs two samples"
        );
        assert_eq!(fired[2].labels["stream"], "orders");
        let later = Signals {
            metrics: text.replace("} 10\n", "} 70\n"),
            bronze_changed_at: Some(now),
            ..signals
        };
        let fired = evaluate(
            &rules,
            &later,
            &mut history,
            now + Duration::seconds(60),
            now,
        );
        assert!(names(&fired).contains(&"ApiServerErrors"), "{fired:?}");
        let errors = fired
            .iter()
            .find(|a| a.labels["alertname"] == "ApiServerErrors");
        assert!(
            errors.expect("fired").annotations["summary"].contains("is 1.000"),
            "60 errors in 60 s"
        );
        assert!(!names(&fired).contains(&"BronzeStale"));
    }

    fn run_with(mean_score: f64, quarantine_rate: f64) -> RunRecord {
        let mut run = RunRecord::start(retail_metadata::RunKind::Pipeline);
        run.finish(RunStatus::Succeeded);
        run.detail.quality = Some(retail_metadata::QualityReport {
            run_id: run.run_id.clone(),
            rows_checked: 1_000,
            completeness: 1.0,
            accuracy: 1.0,
            validity: 1.0,
            consistency: None,
            timeliness: None,
            mean_score,
            score_distribution: BTreeMap::new(),
            quarantine_rate,
            quarantine_by_reason: BTreeMap::new(),
        });
        run
    }

    #[test]
    fn quality_rules_compare_the_latest_report_with_the_one_before_and_anomalies_are_recent() {
        let rules = RulesConfig::default();
        let now = at("2026-11-30T12:00:00Z");
        let day = |d: u32| NaiveDate::from_ymd_opt(2011, 12, d).expect("a day");
        let signals = Signals {
            // Newest first: the score fell by 0.06, 8 % were quarantined.
            pipeline_runs: vec![run_with(0.90, 0.08), run_with(0.96, 0.01)],
            scored_days: vec![
                (day(7), 0.71, true, "revenue".into()),
                (day(8), 0.40, false, String::new()),
                (day(9), 0.66, true, "returns".into()),
            ],
            ..Signals::default()
        };
        let fired = evaluate(&rules, &signals, &mut MetricHistory::default(), now, now);
        assert_eq!(
            names(&fired),
            ["QuarantineShareHigh", "QualityScoreDrop", "SalesAnomaly"],
            "only the latest scored day counts"
        );
        assert_eq!(fired[2].labels["date"], "2011-12-09");
        assert!(fired[2].annotations["summary"].contains("returns"));
        let calmer = Signals {
            pipeline_runs: vec![run_with(0.92, 0.04), run_with(0.96, 0.01)],
            ..Signals::default()
        };
        let fired = evaluate(&rules, &calmer, &mut MetricHistory::default(), now, now);
        assert!(
            fired.is_empty(),
            "a drop of 0.04 and 4 % are within bounds: {fired:?}"
        );
    }

    #[test]
    fn an_asset_over_its_freshness_limit_fires_with_its_policys_severity() {
        let now = at("2026-11-30T12:00:00Z");
        let asset = |name: &str, lag_seconds: u64, breached: bool| retail_pipeline::Freshness {
            asset: name.to_owned(),
            max_lag_minutes: 60,
            severity: "critical".to_owned(),
            lag_seconds,
            behind_since: Some(now - Duration::seconds(i64::try_from(lag_seconds).unwrap())),
            breached,
        };
        let signals = Signals {
            freshness: vec![
                asset("gold", 95 * 60, true),
                asset("silver", 10 * 60, false),
            ],
            ..Signals::default()
        };
        let fired = evaluate(
            &RulesConfig::default(),
            &signals,
            &mut MetricHistory::default(),
            now,
            now,
        );
        assert_eq!(names(&fired), ["AssetFreshnessBreached"]);
        assert_eq!(fired[0].labels["asset"], "gold");
        assert_eq!(fired[0].labels["severity"], "critical");
        assert_eq!(
            fired[0].annotations["summary"],
            "gold lags 95 minutes behind the data upstream of it (limit 60); the first commit it \
             has not caught up with was at 2026-11-30 10:25 UTC"
        );
    }

    #[test]
    fn the_text_format_is_read_with_escapes_and_without_labels() {
        let text = "m{a=\"x\\\"y\",b=\"2\"} 3.5\nm 4\nmm 5\nm{a=\"z\"} NaN\n";
        let got = samples(text, "m");
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].0["a"], "x\"y");
        assert_eq!(got[0].1, 3.5);
        assert_eq!(got[1], (Labels::new(), 4.0));
    }
}
