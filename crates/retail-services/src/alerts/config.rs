//! `[alerts]`: receivers, routes, inhibitions and the platform's own rules, as a user writes
//! them, and their translation into the alert engine's [`Policy`].

use std::collections::BTreeMap;

use chrono::Duration;
use retail_domain::alerts::{Escalation, Inhibition, Matcher, Policy, Route};
use serde::{Deserialize, Serialize};

/// The receiver every configuration has: notifications written to the log.
pub const LOG_RECEIVER: &str = "log";

/// The alert manager (`[alerts]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Whether `retail serve` evaluates the rules and sends notifications (the API's alert
    /// endpoints answer either way).
    pub enabled: bool,
    /// Seconds between two evaluations of the platform's rules.
    pub evaluate_seconds: u64,
    /// Seconds between two looks for notifications due (group waits, escalations, retries).
    pub tick_seconds: u64,
    /// Attempts to deliver one notification before it is dropped (and logged as an error).
    pub delivery_attempts: u32,
    /// Seconds before the first retry of a failed delivery; each later one doubles.
    pub retry_seconds: u64,
    /// The platform's address, for links in notifications (empty: none).
    pub external_url: String,
    /// Where notifications go, besides the built-in `log` receiver.
    pub receivers: Vec<ReceiverConfig>,
    /// Which alerts go to which receiver; the first route whose matchers all match takes an
    /// alert.
    pub routes: Vec<RouteConfig>,
    /// Alerts that mute others while they fire.
    pub inhibitions: Vec<InhibitionConfig>,
    /// The platform's own rules.
    pub rules: RulesConfig,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            evaluate_seconds: 30,
            tick_seconds: 5,
            delivery_attempts: 5,
            retry_seconds: 10,
            external_url: String::new(),
            receivers: Vec::new(),
            routes: vec![RouteConfig::default()],
            inhibitions: vec![InhibitionConfig::default()],
            rules: RulesConfig::default(),
        }
    }
}

/// What a receiver receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiverKind {
    /// Alertmanager's webhook payload (version 4), posted as JSON.
    Webhook,
    /// A Slack incoming-webhook message (`text` and one attachment per alert).
    Slack,
    /// A line in the log.
    Log,
}

/// A receiver (`[[alerts.receivers]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Its name, as routes name it.
    pub name: String,
    /// `webhook`, `slack` or `log`.
    pub kind: ReceiverKind,
    /// Where to post (`webhook` and `slack`); `https://` leaves this machine only with TLS
    /// (`[tls]`).
    #[serde(default)]
    pub url: String,
}

/// A route (`[[alerts.routes]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    /// `name="value"`, `name!="value"`, `name=~"a|b"`; all must match (none: every alert).
    pub matchers: Vec<String>,
    /// The receiver.
    pub receiver: String,
    /// Labels whose values make a group: one notification per group.
    pub group_by: Vec<String>,
    /// Seconds a new group waits for related alerts before its first notification.
    pub group_wait_seconds: u64,
    /// Seconds between two notifications of a group that changed.
    pub group_interval_seconds: u64,
    /// Seconds before a group that did not change is notified again.
    pub repeat_interval_seconds: u64,
    /// Seconds after its first notification when an unacknowledged critical alert goes to
    /// `escalate_to`; 0: never.
    pub escalate_after_seconds: u64,
    /// The next tier's receiver.
    pub escalate_to: String,
}

impl Default for RouteConfig {
    fn default() -> Self {
        Self {
            matchers: Vec::new(),
            receiver: LOG_RECEIVER.to_owned(),
            group_by: vec!["alertname".to_owned(), "component".to_owned()],
            group_wait_seconds: 30,
            group_interval_seconds: 300,
            repeat_interval_seconds: 4 * 3600,
            escalate_after_seconds: 0,
            escalate_to: String::new(),
        }
    }
}

/// An inhibition (`[[alerts.inhibitions]]`): while an alert matching `source` fires, alerts
/// matching `target` with the same values of `equal` are muted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InhibitionConfig {
    /// The alert that explains.
    pub source: Vec<String>,
    /// The alerts it explains.
    pub target: Vec<String>,
    /// Labels both must share.
    pub equal: Vec<String>,
}

impl Default for InhibitionConfig {
    /// A critical alert mutes the warnings of its component.
    fn default() -> Self {
        Self {
            source: vec!["severity=\"critical\"".to_owned()],
            target: vec!["severity=\"warning\"".to_owned()],
            equal: vec!["component".to_owned()],
        }
    }
}

/// The platform's own rules (`[alerts.rules]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// `BronzeStale` fires when bronze has had no new rows for this many minutes of trading
    /// hours; 0: off.
    pub freshness_minutes: u64,
    /// Trading hours, `HH:MM-HH:MM` in local time (`utc_offset_minutes`).
    pub trading_hours: String,
    /// Trading days: `mon` ... `sun`.
    pub trading_days: Vec<String>,
    /// Local time minus UTC, in minutes.
    pub utc_offset_minutes: i32,
    /// `QuarantineShareHigh` fires when the latest run quarantined more than this share of
    /// the rows it processed; 0: off.
    pub quarantine_share: f64,
    /// `QualityScoreDrop` fires when the latest run's mean row score is lower than the run
    /// before's by more than this; 0: off.
    pub score_drop: f64,
    /// `PipelineFailed` fires while the latest pipeline run failed.
    pub pipeline_failures: bool,
    /// `SalesAnomaly` fires for each anomaly the anomaly detector found among the latest
    /// `anomaly_days` scored trading days; 0: off.
    pub anomaly_days: usize,
    /// Thresholds on the platform's own metrics.
    pub metrics: Vec<MetricRuleConfig>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        let rule = |name: &str, metric: &str, function, above, severity: &str, component: &str| {
            MetricRuleConfig {
                name: name.to_owned(),
                metric: metric.to_owned(),
                matchers: Vec::new(),
                function,
                window_seconds: 300,
                sum: false,
                above,
                severity: severity.to_owned(),
                component: component.to_owned(),
                summary: String::new(),
            }
        };
        Self {
            freshness_minutes: 60,
            trading_hours: "08:00-20:00".to_owned(),
            trading_days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                .map(str::to_owned)
                .to_vec(),
            utc_offset_minutes: 0,
            quarantine_share: 0.05,
            score_drop: 0.05,
            pipeline_failures: true,
            anomaly_days: 1,
            metrics: vec![
                MetricRuleConfig {
                    matchers: vec!["status=~\"500|502|503|504\"".to_owned()],
                    sum: true,
                    summary: "the API answers server errors".to_owned(),
                    ..rule(
                        "ApiServerErrors",
                        "retail_http_requests_total",
                        Function::Rate,
                        0.05,
                        "warning",
                        "api",
                    )
                },
                MetricRuleConfig {
                    summary: "the warehouse's circuit breaker is open".to_owned(),
                    ..rule(
                        "WarehouseCircuitOpen",
                        "retail_warehouse_breaker_state",
                        Function::Value,
                        1.5,
                        "critical",
                        "warehouse",
                    )
                },
                MetricRuleConfig {
                    summary: "a stream consumer is far behind its broker".to_owned(),
                    ..rule(
                        "StreamLagHigh",
                        "retail_stream_lag",
                        Function::Value,
                        100_000.0,
                        "warning",
                        "streams",
                    )
                },
                MetricRuleConfig {
                    summary: "a stream consumer does not reach its broker".to_owned(),
                    ..rule(
                        "StreamDisconnected",
                        "retail_stream_connected",
                        Function::Below,
                        0.5,
                        "critical",
                        "streams",
                    )
                },
            ],
        }
    }
}

/// How a metric rule reads its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    /// The value: fires above `above`.
    Value,
    /// The value: fires below `above` (read as the floor).
    Below,
    /// The increase per second over `window_seconds` (a counter; resets are handled as
    /// Prometheus's `rate` does): fires above `above`.
    Rate,
}

/// A threshold on one of the platform's metrics (`[[alerts.rules.metrics]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricRuleConfig {
    /// The alert's name.
    pub name: String,
    /// The metric, as `/metrics` names it.
    pub metric: String,
    /// Conditions on the series' labels.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// `value`, `below` or `rate`.
    pub function: Function,
    /// The window of `rate`, in seconds.
    #[serde(default = "default_window")]
    pub window_seconds: u64,
    /// Add the matching series up into one (one alert) instead of one alert per series.
    #[serde(default)]
    pub sum: bool,
    /// The threshold.
    pub above: f64,
    /// `critical`, `warning` or `info`.
    pub severity: String,
    /// The `component` label (inhibition and grouping use it).
    pub component: String,
    /// What the alert says.
    #[serde(default)]
    pub summary: String,
}

fn default_window() -> u64 {
    300
}

/// A receiver, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    /// Its name.
    pub name: String,
    /// What it receives.
    pub kind: ReceiverKind,
    /// Where to post.
    pub url: String,
}

impl AlertsConfig {
    /// The routing policy and the receivers by name (the built-in `log` among them).
    ///
    /// # Errors
    ///
    /// Every problem, each naming its setting.
    pub fn policy(&self) -> Result<(Policy, BTreeMap<String, Receiver>), Vec<String>> {
        let mut problems = Vec::new();
        let mut receivers = BTreeMap::from([(
            LOG_RECEIVER.to_owned(),
            Receiver {
                name: LOG_RECEIVER.to_owned(),
                kind: ReceiverKind::Log,
                url: String::new(),
            },
        )]);
        for (index, receiver) in self.receivers.iter().enumerate() {
            let at = format!("alerts.receivers[{index}]");
            if receiver.name.trim().is_empty() {
                problems.push(format!("{at}.name must not be empty"));
            }
            let web = matches!(receiver.kind, ReceiverKind::Webhook | ReceiverKind::Slack);
            let url_ok =
                receiver.url.starts_with("http://") || receiver.url.starts_with("https://");
            if web && !url_ok {
                problems.push(format!(
                    "{at}.url must be an http:// or https:// URL, not {:?}",
                    receiver.url
                ));
            }
            let checked = Receiver {
                name: receiver.name.clone(),
                kind: receiver.kind,
                url: receiver.url.clone(),
            };
            if receivers.insert(receiver.name.clone(), checked).is_some() {
                problems.push(format!("{at}: a receiver named {:?} exists", receiver.name));
            }
        }
        let mut matchers = |at: &str, texts: &[String]| -> Vec<Matcher> {
            texts
                .iter()
                .filter_map(|text| {
                    Matcher::parse(text)
                        .map_err(|error| problems.push(format!("{at}: {error}")))
                        .ok()
                })
                .collect()
        };
        let seconds = |s: u64| Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
        let mut routes = Vec::new();
        for (index, route) in self.routes.iter().enumerate() {
            let at = format!("alerts.routes[{index}]");
            let escalation = (route.escalate_after_seconds > 0).then(|| Escalation {
                after: seconds(route.escalate_after_seconds),
                receiver: route.escalate_to.clone(),
            });
            routes.push(Route {
                matchers: matchers(&format!("{at}.matchers"), &route.matchers),
                receiver: route.receiver.clone(),
                group_by: route.group_by.clone(),
                group_wait: seconds(route.group_wait_seconds),
                group_interval: seconds(route.group_interval_seconds),
                repeat_interval: seconds(route.repeat_interval_seconds),
                escalation,
            });
        }
        let inhibitions = self
            .inhibitions
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                let at = format!("alerts.inhibitions[{index}]");
                Inhibition {
                    source: matchers(&format!("{at}.source"), &rule.source),
                    target: matchers(&format!("{at}.target"), &rule.target),
                    equal: rule.equal.clone(),
                }
            })
            .collect();
        for (index, route) in self.routes.iter().enumerate() {
            let at = format!("alerts.routes[{index}]");
            if !receivers.contains_key(&route.receiver) {
                problems.push(format!(
                    "{at}.receiver: no receiver is named {:?}",
                    route.receiver
                ));
            }
            if route.escalate_after_seconds > 0 && !receivers.contains_key(&route.escalate_to) {
                problems.push(format!(
                    "{at}.escalate_to: no receiver is named {:?}",
                    route.escalate_to
                ));
            }
            if route.group_interval_seconds == 0 || route.repeat_interval_seconds == 0 {
                problems.push(format!(
                    "{at}: group_interval_seconds and repeat_interval_seconds must be above 0"
                ));
            }
        }
        for (name, value) in [
            ("evaluate_seconds", self.evaluate_seconds),
            ("tick_seconds", self.tick_seconds),
            ("retry_seconds", self.retry_seconds),
        ] {
            if value == 0 {
                problems.push(format!("alerts.{name} must be above 0"));
            }
        }
        if self.delivery_attempts == 0 {
            problems.push("alerts.delivery_attempts must be at least 1".to_owned());
        }
        problems.extend(self.rules.problems());
        if problems.is_empty() {
            Ok((
                Policy {
                    routes,
                    inhibitions,
                },
                receivers,
            ))
        } else {
            Err(problems)
        }
    }
}

impl RulesConfig {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(error) = super::rules::TradingHours::parse(self) {
            problems.push(error);
        }
        for (name, share) in [
            ("quarantine_share", self.quarantine_share),
            ("score_drop", self.score_drop),
        ] {
            if !(0.0..=1.0).contains(&share) {
                problems.push(format!("alerts.rules.{name} must be 0 to 1, not {share}"));
            }
        }
        for (index, rule) in self.metrics.iter().enumerate() {
            let at = format!("alerts.rules.metrics[{index}]");
            let name_ok = retail_domain::alerts::is_label_name;
            if !name_ok(&rule.name) {
                problems.push(format!("{at}.name must be letters, digits and _"));
            }
            if !name_ok(&rule.metric) {
                problems.push(format!("{at}.metric must be a metric name"));
            }
            for text in &rule.matchers {
                if let Err(error) = Matcher::parse(text) {
                    problems.push(format!("{at}.matchers: {error}"));
                }
            }
            if !["critical", "warning", "info"].contains(&rule.severity.as_str()) {
                problems.push(format!(
                    "{at}.severity must be critical, warning or info, not {:?}",
                    rule.severity
                ));
            }
            if rule.function == Function::Rate && rule.window_seconds == 0 {
                problems.push(format!("{at}.window_seconds must be above 0"));
            }
            if !rule.above.is_finite() {
                problems.push(format!("{at}.above must be a number"));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_make_a_policy_and_mistakes_are_all_named() {
        let (policy, receivers) = AlertsConfig::default().policy().expect("valid defaults");
        assert_eq!(policy.routes.len(), 1);
        assert_eq!(policy.routes[0].receiver, LOG_RECEIVER);
        assert!(receivers.contains_key(LOG_RECEIVER));
        let bad = AlertsConfig {
            receivers: vec![ReceiverConfig {
                name: "pager".into(),
                kind: ReceiverKind::Webhook,
                url: "ftp://x".into(),
            }],
            routes: vec![RouteConfig {
                matchers: vec!["severity".into()],
                receiver: "nobody".into(),
                escalate_after_seconds: 60,
                escalate_to: "boss".into(),
                ..RouteConfig::default()
            }],
            tick_seconds: 0,
            ..AlertsConfig::default()
        };
        let problems = bad.policy().expect_err("invalid").join("\n");
        for says in [
            "alerts.receivers[0].url",
            "alerts.routes[0].matchers",
            "no receiver is named \"nobody\"",
            "escalate_to: no receiver is named \"boss\"",
            "alerts.tick_seconds",
        ] {
            assert!(problems.contains(says), "{says} in {problems}");
        }
    }
}
