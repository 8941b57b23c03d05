//! The alert manager's rules, without IO: which alerts are firing, which notifications are due,
//! to whom, and when a critical alert escalates. Time is an argument, so every rule is tested
//! with a controllable clock; the service around it stores [`State`] in the metadata store and
//! delivers [`Notification`]s.
//!
//! The semantics follow Prometheus Alertmanager where it has one:
//!
//! - An alert is identified by its labels (`alertname` among them): the same labels received
//!   again update it (**de-duplication**); it is **resolved** when its `ends_at` has passed.
//! - The first [`Route`] whose matchers all match an alert takes it. Its alerts are **grouped**
//!   by the values of the route's `group_by` labels: a group's first notification waits
//!   `group_wait` after its first alert (to gather the related ones), later changes are sent at
//!   most every `group_interval`, and an unchanged firing group is sent again every
//!   `repeat_interval`. A notification lists the group's firing alerts and those resolved since
//!   the last one.
//! - A **silence** (matchers, a start and an end) mutes the alerts it matches while it is active.
//! - An **inhibition** rule mutes the alerts matching its `target` while an alert matching its
//!   `source` fires with the same values of the `equal` labels (a critical alert silences the
//!   warnings it explains).
//! - An alert can be **acknowledged**; a critical alert of a route with an **escalation** that is
//!   still firing and unacknowledged `after` its first notification is sent to the escalation's
//!   receiver, once.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Labels: names to values, ordered.
pub type Labels = BTreeMap<String, String>;

/// How bad an alert is (its `severity` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// For the record.
    Info,
    /// Someone should look.
    Warning,
    /// Someone must act now.
    Critical,
}

impl Severity {
    /// From the `severity` label (`info`, `warning`, `critical`; anything else is a warning).
    pub fn of(labels: &Labels) -> Self {
        match labels.get("severity").map(String::as_str) {
            Some("critical") => Self::Critical,
            Some("info") => Self::Info,
            _ => Self::Warning,
        }
    }
}

/// An alert as a rule or a Prometheus sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// What identifies it (`alertname`, `severity`, ...).
    pub labels: Labels,
    /// What describes it (`summary`, `description`, ...).
    pub annotations: Labels,
    /// When it started firing.
    pub starts_at: DateTime<Utc>,
    /// When it stops (resolved once past); `None`: until told otherwise.
    pub ends_at: Option<DateTime<Utc>>,
}

impl Alert {
    /// Its identity: the FNV-1a hash of its labels, as 16 hex digits.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.labels)
    }

    /// Whether it is resolved at `now`.
    pub fn resolved_at(&self, now: DateTime<Utc>) -> bool {
        self.ends_at.is_some_and(|end| end <= now)
    }
}

/// The identity of a label set.
pub fn fingerprint(labels: &Labels) -> String {
    let bytes = labels.iter().flat_map(|(name, value)| {
        name.bytes()
            .chain([0xff])
            .chain(value.bytes())
            .chain([0xfe])
    });
    format!(
        "{:016x}",
        crate::hash::fnv1a(crate::hash::FNV_OFFSET, bytes)
    )
}

/// Whether `text` is a label name as Prometheus names them: ASCII letters, digits and `_`,
/// not starting with a digit.
pub fn is_label_name(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(|c: char| c.is_ascii_digit())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A condition on one label, written as Alertmanager writes it: `name="value"`,
/// `name!="value"`, or `name=~"a|b"` (one of literal values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Matcher {
    /// The label has this value (a missing label is the empty value).
    Equal(String, String),
    /// The label does not have this value.
    NotEqual(String, String),
    /// The label has one of these values.
    OneOf(String, Vec<String>),
}

impl Matcher {
    /// Whether `labels` satisfy it.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = |name: &str| labels.get(name).map_or("", String::as_str);
        match self {
            Self::Equal(name, wanted) => value(name) == wanted,
            Self::NotEqual(name, unwanted) => value(name) != unwanted,
            Self::OneOf(name, values) => values.iter().any(|v| v == value(name)),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Equal(name, value) => write!(f, "{name}=\"{value}\""),
            Self::NotEqual(name, value) => write!(f, "{name}!=\"{value}\""),
            Self::OneOf(name, values) => write!(f, "{name}=~\"{}\"", values.join("|")),
        }
    }
}

impl From<Matcher> for String {
    fn from(matcher: Matcher) -> Self {
        matcher.to_string()
    }
}

impl TryFrom<String> for Matcher {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

/// Characters a `=~` value may not hold (it is a list of literal values, not a pattern).
const PATTERN_CHARACTERS: &str = "\\.*+?()[]{}^$";

/// The regular expression a matcher's text matches exactly when [`Matcher::parse`] accepts it
/// (the API's schema states it).
pub const MATCHER_PATTERN: &str = r#"^[A-Za-z_][A-Za-z0-9_]*(!=("[^"]*"|[^"]*)|=~("[^"\\.*+?()\[\]{}^$]*"|[^"\\.*+?()\[\]{}^$]*)|=("[^"]*"|[^~"][^"]*|))$"#;

impl Matcher {
    /// Reads `name="value"`, `name!="value"` or `name=~"a|b"` (the value's quotes are
    /// optional; a label name is ASCII letters, digits and `_`, not starting with a digit; no
    /// spaces around the operator): exactly the texts [`MATCHER_PATTERN`] matches.
    ///
    /// # Errors
    ///
    /// A message naming what is wrong with `text`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let expected = || {
            format!(
                "matcher {text:?}: expected name=\"value\", name!=\"value\" or name=~\"a|b\" \
                 (no spaces around the operator)"
            )
        };
        let end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        let (name, rest) = text.split_at(end);
        if !is_label_name(name) {
            return Err(if name.is_empty() && !rest.starts_with(['=', '!']) {
                expected()
            } else {
                format!("matcher {text:?}: {name:?} is not a label name (letters, digits and _)")
            });
        }
        let (op, value) = ["!=", "=~", "="]
            .iter()
            .find_map(|op| rest.strip_prefix(op).map(|value| (*op, value)))
            .ok_or_else(expected)?;
        let value = match value.strip_prefix('"') {
            Some(inner) => inner
                .strip_suffix('"')
                .filter(|inner| !inner.contains('"'))
                .ok_or_else(|| format!("matcher {text:?}: the value's quotes do not close"))?,
            None if value.contains('"') => {
                return Err(format!(
                    "matcher {text:?}: a quote inside a value: quote the whole value"
                ));
            }
            None => value,
        };
        let name = name.to_owned();
        Ok(match op {
            "!=" => Self::NotEqual(name, value.to_owned()),
            "=~" => {
                if value.contains(|c: char| PATTERN_CHARACTERS.contains(c)) {
                    return Err(format!(
                        "matcher {text:?}: =~ takes literal values separated by |, and \
                         {value:?} has pattern characters"
                    ));
                }
                Self::OneOf(name, value.split('|').map(str::to_owned).collect())
            }
            _ => Self::Equal(name, value.to_owned()),
        })
    }
}

fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|matcher| matcher.matches(labels))
}

/// Where critical alerts go when nobody acknowledges them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    /// How long after the group's first notification.
    pub after: Duration,
    /// The next tier's receiver.
    pub receiver: String,
}

/// Which alerts go to which receiver, and how they are grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// All must match; none: every alert.
    pub matchers: Vec<Matcher>,
    /// The receiver's name.
    pub receiver: String,
    /// The labels whose values make a group.
    pub group_by: Vec<String>,
    /// Wait before a new group's first notification.
    pub group_wait: Duration,
    /// Wait between notifications of a changed group.
    pub group_interval: Duration,
    /// Wait before an unchanged firing group is sent again.
    pub repeat_interval: Duration,
    /// Critical alerts not acknowledged in time go to the next tier.
    pub escalation: Option<Escalation>,
}

/// Mutes the alerts matching `target` while one matching `source` fires with the same values
/// of `equal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inhibition {
    /// The alert that explains.
    pub source: Vec<Matcher>,
    /// The alerts it explains.
    pub target: Vec<Matcher>,
    /// Labels both must share.
    pub equal: Vec<String>,
}

/// The routing configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// First match wins; an alert no route takes is kept but sent nowhere.
    pub routes: Vec<Route>,
    /// Inhibition rules.
    pub inhibitions: Vec<Inhibition>,
}

impl Policy {
    /// The route that takes an alert of `labels`, if any does.
    pub fn route_of(&self, labels: &Labels) -> Option<&Route> {
        group_of(self, labels).map(|(index, _, _)| &self.routes[index])
    }
}

/// A silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Its id.
    pub id: String,
    /// All must match.
    pub matchers: Vec<Matcher>,
    /// From.
    pub starts_at: DateTime<Utc>,
    /// Until (it expires then).
    pub ends_at: DateTime<Utc>,
    /// Who.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// Whether it mutes `labels` at `now`.
    pub fn mutes(&self, labels: &Labels, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && now < self.ends_at && all_match(&self.matchers, labels)
    }
}

/// What the manager knows of one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    /// The alert as last received.
    pub alert: Alert,
    /// When it was first received (a new group's wait counts from there).
    pub received_at: DateTime<Utc>,
    /// Who acknowledged it and when.
    pub acknowledged: Option<(String, DateTime<Utc>)>,
    /// When a notification first announced it firing (escalation counts from there).
    pub notified_at: Option<DateTime<Utc>>,
    /// Whether it went to the next tier.
    pub escalated: bool,
    /// Whether its resolution was notified (then it is forgotten).
    pub resolution_sent: bool,
}

/// What the manager knows of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The route's index.
    pub route: usize,
    /// The `group_by` labels' values.
    pub labels: Labels,
    /// When its first alert was received (the first notification waits from there).
    pub since: DateTime<Utc>,
    /// When it was last notified.
    pub sent_at: Option<DateTime<Utc>>,
    /// The firing fingerprints of that notification.
    pub sent_firing: BTreeSet<String>,
}

/// The manager's whole state: stored, so that it survives restarts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct State {
    /// Alerts by fingerprint.
    pub alerts: BTreeMap<String, Tracked>,
    /// Groups by key (`receiver` and the group labels).
    pub groups: BTreeMap<String, Group>,
    /// Silences by id.
    pub silences: BTreeMap<String, Silence>,
}

/// Why an alert is not notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Muted {
    /// A silence matches it.
    Silenced,
    /// A firing alert explains it.
    Inhibited,
}

/// A message due to a receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The receiver's name.
    pub receiver: String,
    /// The group's key.
    pub group_key: String,
    /// The group's labels.
    pub group_labels: Labels,
    /// The firing alerts.
    pub firing: Vec<Alert>,
    /// Alerts resolved since.
    pub resolved: Vec<Alert>,
    /// Whether this is an escalation (unacknowledged critical alerts to the next tier).
    pub escalation: bool,
}

/// An acknowledgement of an unknown alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlert(pub String);

impl State {
    /// Takes alerts in at `now`: new ones are tracked, known ones (same labels) updated.
    pub fn receive(&mut self, alerts: impl IntoIterator<Item = Alert>, now: DateTime<Utc>) {
        for alert in alerts {
            let key = alert.fingerprint();
            match self.alerts.get_mut(&key) {
                Some(tracked) => {
                    // A resolved alert that fires again starts over.
                    let restarted = tracked.alert.resolved_at(now) && !alert.resolved_at(now);
                    tracked.alert.annotations = alert.annotations;
                    tracked.alert.ends_at = alert.ends_at;
                    if restarted || tracked.resolution_sent {
                        tracked.alert.starts_at = alert.starts_at;
                        tracked.received_at = now;
                        tracked.acknowledged = None;
                        tracked.notified_at = None;
                        tracked.escalated = false;
                        tracked.resolution_sent = false;
                    }
                }
                None => {
                    self.alerts.insert(
                        key,
                        Tracked {
                            alert,
                            received_at: now,
                            acknowledged: None,
                            notified_at: None,
                            escalated: false,
                            resolution_sent: false,
                        },
                    );
                }
            }
        }
    }

    /// Acknowledges the alert of `fingerprint`.
    ///
    /// # Errors
    ///
    /// When no such alert is tracked.
    pub fn acknowledge(
        &mut self,
        fingerprint: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), UnknownAlert> {
        let tracked = self
            .alerts
            .get_mut(fingerprint)
            .ok_or_else(|| UnknownAlert(fingerprint.to_owned()))?;
        tracked.acknowledged = Some((by.to_owned(), now));
        Ok(())
    }

    /// Why `alert` is muted at `now`, if it is.
    pub fn muted(&self, policy: &Policy, labels: &Labels, now: DateTime<Utc>) -> Option<Muted> {
        if self.silences.values().any(|s| s.mutes(labels, now)) {
            return Some(Muted::Silenced);
        }
        let inhibited = policy.inhibitions.iter().any(|rule| {
            all_match(&rule.target, labels)
                && self.alerts.values().any(|source| {
                    !source.alert.resolved_at(now)
                        && source.alert.labels != *labels
                        && all_match(&rule.source, &source.alert.labels)
                        && rule
                            .equal
                            .iter()
                            .all(|name| source.alert.labels.get(name) == labels.get(name))
                })
        });
        inhibited.then_some(Muted::Inhibited)
    }

    /// The notifications due at `now`, recording them as sent; expired silences, notified
    /// resolutions and empty groups are dropped.
    pub fn tick(&mut self, policy: &Policy, now: DateTime<Utc>) -> Vec<Notification> {
        self.silences.retain(|_, silence| silence.ends_at > now);
        let mut members: BTreeMap<String, (usize, Labels, Vec<String>)> = BTreeMap::new();
        for (key, tracked) in &self.alerts {
            if let Some((route, labels, group_key)) = group_of(policy, &tracked.alert.labels) {
                members
                    .entry(group_key)
                    .or_insert_with(|| (route, labels, Vec::new()))
                    .2
                    .push(key.clone());
            }
        }
        let mut out = Vec::new();
        for (group_key, (index, group_labels, keys)) in members {
            out.extend(self.tick_group(policy, index, &group_key, &group_labels, &keys, now));
        }
        // Forget resolved alerts once their resolution is sent, or at once when no
        // notification announced them; then groups without alerts.
        let announced: BTreeSet<String> = self
            .groups
            .values()
            .flat_map(|group| group.sent_firing.iter().cloned())
            .collect();
        self.alerts.retain(|key, tracked| {
            !tracked.alert.resolved_at(now) || (!tracked.resolution_sent && announced.contains(key))
        });
        let alive: BTreeSet<String> = self
            .alerts
            .values()
            .filter_map(|tracked| group_of(policy, &tracked.alert.labels).map(|(_, _, key)| key))
            .collect();
        self.groups.retain(|key, _| alive.contains(key));
        out
    }

    fn tick_group(
        &mut self,
        policy: &Policy,
        index: usize,
        group_key: &str,
        group_labels: &Labels,
        keys: &[String],
        now: DateTime<Utc>,
    ) -> Vec<Notification> {
        let route = &policy.routes[index];
        let (mut firing, mut resolved) = (Vec::new(), Vec::new());
        for key in keys {
            let tracked = &self.alerts[key];
            if tracked.alert.resolved_at(now) {
                if !tracked.resolution_sent {
                    resolved.push(key.clone());
                }
            } else if self.muted(policy, &tracked.alert.labels, now).is_none() {
                firing.push(key.clone());
            }
        }
        let since = keys
            .iter()
            .map(|key| self.alerts[key].received_at)
            .min()
            .unwrap_or(now);
        let group = self
            .groups
            .entry(group_key.to_owned())
            .or_insert_with(|| Group {
                route: index,
                labels: group_labels.clone(),
                since,
                sent_at: None,
                sent_firing: BTreeSet::new(),
            });
        let firing_set: BTreeSet<String> = firing.iter().cloned().collect();
        // A resolution is news only for an alert a notification announced.
        resolved.retain(|key| group.sent_firing.contains(key));
        let due = match group.sent_at {
            None => !firing.is_empty() && now >= group.since + route.group_wait,
            Some(at) => {
                let changed = firing_set != group.sent_firing || !resolved.is_empty();
                (changed && now >= at + route.group_interval)
                    || (!firing.is_empty() && now >= at + route.repeat_interval)
            }
        };
        let mut out = Vec::new();
        if due && firing.is_empty() && resolved.is_empty() {
            // Everything left in the group is muted: nothing to say, but when the mute ends
            // the alerts are news again.
            group.sent_firing = firing_set;
        } else if due {
            group.sent_at = Some(now);
            group.sent_firing = firing_set;
            for key in &firing {
                let tracked = self.alerts.get_mut(key).expect("a member");
                tracked.notified_at.get_or_insert(now);
            }
            for key in &resolved {
                self.alerts.get_mut(key).expect("a member").resolution_sent = true;
            }
            out.push(self.notification(
                &route.receiver,
                group_key,
                group_labels,
                &firing,
                &resolved,
                false,
            ));
        }
        if let Some(escalation) = &route.escalation {
            let overdue: Vec<String> = firing
                .iter()
                .filter(|key| {
                    let tracked = &self.alerts[*key];
                    Severity::of(&tracked.alert.labels) == Severity::Critical
                        && tracked.acknowledged.is_none()
                        && !tracked.escalated
                        && tracked
                            .notified_at
                            .is_some_and(|at| now >= at + escalation.after)
                })
                .cloned()
                .collect();
            if !overdue.is_empty() {
                for key in &overdue {
                    self.alerts.get_mut(key).expect("a member").escalated = true;
                }
                out.push(self.notification(
                    &escalation.receiver,
                    group_key,
                    group_labels,
                    &overdue,
                    &[],
                    true,
                ));
            }
        }
        out
    }

    fn notification(
        &self,
        receiver: &str,
        group_key: &str,
        group_labels: &Labels,
        firing: &[String],
        resolved: &[String],
        escalation: bool,
    ) -> Notification {
        let alerts = |keys: &[String]| keys.iter().map(|k| self.alerts[k].alert.clone()).collect();
        Notification {
            receiver: receiver.to_owned(),
            group_key: group_key.to_owned(),
            group_labels: group_labels.clone(),
            firing: alerts(firing),
            resolved: alerts(resolved),
            escalation,
        }
    }
}

/// The route that takes `labels`, its group's labels and the group's key.
fn group_of(policy: &Policy, labels: &Labels) -> Option<(usize, Labels, String)> {
    let (index, route) = policy
        .routes
        .iter()
        .enumerate()
        .find(|(_, route)| all_match(&route.matchers, labels))?;
    let group_labels: Labels = route
        .group_by
        .iter()
        .map(|name| (name.clone(), labels.get(name).cloned().unwrap_or_default()))
        .collect();
    let key = format!("{}:{}", route.receiver, render(&group_labels));
    Some((index, group_labels, key))
}

/// `{a="1", b="2"}`.
pub fn render(labels: &Labels) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}={value:?}"))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("a time") + Duration::minutes(minute)
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn alert(pairs: &[(&str, &str)], minute: i64) -> Alert {
        Alert {
            labels: labels(pairs),
            annotations: labels(&[("summary", "something")]),
            starts_at: at(minute),
            ends_at: None,
        }
    }

    fn resolved(mut alert: Alert, minute: i64) -> Alert {
        alert.ends_at = Some(at(minute));
        alert
    }

    fn policy() -> Policy {
        Policy {
            routes: vec![
                Route {
                    matchers: vec![Matcher::Equal("severity".into(), "critical".into())],
                    receiver: "oncall".into(),
                    group_by: vec!["alertname".into()],
                    group_wait: Duration::seconds(30),
                    group_interval: Duration::minutes(5),
                    repeat_interval: Duration::hours(4),
                    escalation: Some(Escalation {
                        after: Duration::minutes(15),
                        receiver: "manager".into(),
                    }),
                },
                Route {
                    matchers: vec![],
                    receiver: "team".into(),
                    group_by: vec!["alertname".into()],
                    group_wait: Duration::seconds(30),
                    group_interval: Duration::minutes(5),
                    repeat_interval: Duration::hours(4),
                    escalation: None,
                },
            ],
            inhibitions: vec![Inhibition {
                source: vec![Matcher::Equal("severity".into(), "critical".into())],
                target: vec![Matcher::Equal("severity".into(), "warning".into())],
                equal: vec!["instance".into()],
            }],
        }
    }

    /// A critical `Down` alert of `instance`, firing since minute 0.
    fn down_on(instance: &str) -> Alert {
        alert(
            &[
                ("alertname", "Down"),
                ("severity", "critical"),
                ("instance", instance),
            ],
            0,
        )
    }

    fn names(notification: &Notification) -> Vec<String> {
        notification
            .firing
            .iter()
            .map(|a| render(&a.labels))
            .collect()
    }

    #[test]
    fn related_alerts_wait_to_be_grouped_and_duplicates_are_one_alert() {
        let policy = policy();
        let mut state = State::default();
        let slow = |route: &str| alert(&[("alertname", "ApiSlow"), ("route", route)], 0);
        state.receive([slow("/a")], at(0));
        assert!(state.tick(&policy, at(0)).is_empty(), "the group waits");
        state.receive([slow("/b"), slow("/a")], at(0));
        assert_eq!(state.alerts.len(), 2, "the same labels are one alert");
        let sent = state.tick(&policy, at(1));
        assert_eq!(sent.len(), 1, "one notification for the group: {sent:?}");
        assert_eq!(sent[0].receiver, "team");
        assert_eq!(sent[0].firing.len(), 2);
        assert_eq!(sent[0].group_labels, labels(&[("alertname", "ApiSlow")]));
        // Nothing new: nothing until the repeat interval.
        state.receive([slow("/a")], at(5));
        assert!(state.tick(&policy, at(10)).is_empty());
        let again = state.tick(&policy, at(1 + 240));
        assert_eq!(again.len(), 1, "repeated after 4 hours");
    }

    #[test]
    fn a_change_waits_for_the_group_interval_and_a_resolution_is_sent_once() {
        let policy = policy();
        let mut state = State::default();
        let a = alert(&[("alertname", "Lag"), ("stream", "k1")], 0);
        state.receive([a.clone()], at(0));
        assert_eq!(state.tick(&policy, at(1)).len(), 1);
        state.receive([alert(&[("alertname", "Lag"), ("stream", "k2")], 2)], at(2));
        assert!(
            state.tick(&policy, at(3)).is_empty(),
            "within the group interval"
        );
        let sent = state.tick(&policy, at(6));
        assert_eq!(sent[0].firing.len(), 2);
        state.receive([resolved(a, 7)], at(7));
        assert!(
            state.tick(&policy, at(8)).is_empty(),
            "within the group interval"
        );
        let sent = state.tick(&policy, at(11));
        assert_eq!((sent[0].firing.len(), sent[0].resolved.len()), (1, 1));
        assert_eq!(
            state.alerts.len(),
            1,
            "the resolved alert is forgotten once sent"
        );
        assert!(state.tick(&policy, at(20)).is_empty());
    }

    #[test]
    fn a_critical_alert_inhibits_the_warnings_it_explains_on_the_same_instance() {
        let policy = policy();
        let mut state = State::default();
        let down = down_on("a");
        let errors_a = alert(
            &[
                ("alertname", "Errors"),
                ("severity", "warning"),
                ("instance", "a"),
            ],
            0,
        );
        let errors_b = alert(
            &[
                ("alertname", "Errors"),
                ("severity", "warning"),
                ("instance", "b"),
            ],
            0,
        );
        state.receive([down.clone(), errors_a.clone(), errors_b.clone()], at(0));
        assert_eq!(
            state.muted(&policy, &errors_a.labels, at(0)),
            Some(Muted::Inhibited)
        );
        assert_eq!(state.muted(&policy, &errors_b.labels, at(0)), None);
        let sent = state.tick(&policy, at(1));
        let by_receiver: BTreeMap<&str, Vec<String>> = sent
            .iter()
            .map(|n| (n.receiver.as_str(), names(n)))
            .collect();
        assert_eq!(by_receiver["oncall"], [render(&down.labels)]);
        assert_eq!(
            by_receiver["team"],
            [render(&errors_b.labels)],
            "only b's warning"
        );
        // The critical alert resolves: the inhibited warning is notified.
        state.receive([resolved(down, 2)], at(2));
        let sent = state.tick(&policy, at(7));
        let team = sent.iter().find(|n| n.receiver == "team").expect("team");
        assert_eq!(team.firing.len(), 2);
    }

    #[test]
    fn a_silence_mutes_what_it_matches_until_it_expires() {
        let policy = policy();
        let mut state = State::default();
        state.silences.insert(
            "s1".into(),
            Silence {
                id: "s1".into(),
                matchers: vec![Matcher::OneOf("alertname".into(), vec!["Lag".into()])],
                starts_at: at(0),
                ends_at: at(30),
                created_by: "ops".into(),
                comment: "broker maintenance".into(),
            },
        );
        state.receive([alert(&[("alertname", "Lag")], 0)], at(0));
        assert!(state.tick(&policy, at(1)).is_empty());
        assert!(state.tick(&policy, at(29)).is_empty());
        let sent = state.tick(&policy, at(30));
        assert_eq!(sent.len(), 1, "the silence expired");
        // A silence that mutes a group already notified: no empty notification, and the
        // alert is news again when the silence ends.
        state.silences.insert(
            "s2".into(),
            Silence {
                id: "s2".into(),
                matchers: vec![Matcher::Equal("alertname".into(), "Lag".into())],
                starts_at: at(31),
                ends_at: at(60),
                created_by: "ops".into(),
                comment: "again".into(),
            },
        );
        assert!(state.tick(&policy, at(40)).is_empty(), "nothing to say");
        assert_eq!(state.tick(&policy, at(60)).len(), 1, "news again");
        assert!(state.silences.is_empty(), "expired silences are dropped");
    }

    #[test]
    fn an_unacknowledged_critical_alert_escalates_once_and_an_acknowledged_one_never() {
        let policy = policy();
        let mut state = State::default();
        let down = down_on("a");
        let failed = alert(
            &[("alertname", "PipelineFailed"), ("severity", "critical")],
            0,
        );
        state.receive([down.clone(), failed.clone()], at(0));
        assert_eq!(state.tick(&policy, at(1)).len(), 2, "two groups for oncall");
        state
            .acknowledge(&failed.fingerprint(), "ana", at(5))
            .expect("known");
        assert!(state.tick(&policy, at(15)).is_empty(), "not yet 15 minutes");
        let sent = state.tick(&policy, at(16));
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(sent[0].escalation);
        assert_eq!(sent[0].receiver, "manager");
        assert_eq!(names(&sent[0]), [render(&down.labels)]);
        assert!(state.tick(&policy, at(60)).is_empty(), "escalated once");
        assert_eq!(
            state.acknowledge("0000000000000000", "ana", at(61)),
            Err(UnknownAlert("0000000000000000".into()))
        );
    }

    #[test]
    fn the_stored_state_resumes_an_escalation_where_it_was() {
        let policy = policy();
        let mut state = State::default();
        state.receive(
            [alert(&[("alertname", "Down"), ("severity", "critical")], 0)],
            at(0),
        );
        state.tick(&policy, at(1));
        // A restart: the state is what the store gives back.
        let mut restored = state.clone();
        assert!(restored.tick(&policy, at(10)).is_empty());
        let sent = restored.tick(&policy, at(16));
        assert!(sent.iter().any(|n| n.escalation), "{sent:?}");
    }

    #[test]
    fn an_alert_that_fires_again_after_its_resolution_starts_over() {
        let policy = policy();
        let mut state = State::default();
        let down = alert(&[("alertname", "Down"), ("severity", "critical")], 0);
        state.receive([down.clone()], at(0));
        state.tick(&policy, at(1));
        state
            .acknowledge(&down.fingerprint(), "ana", at(2))
            .expect("known");
        // Resolved, then firing again before the resolution went out: a new incident.
        state.receive([resolved(down.clone(), 3)], at(3));
        state.receive(
            [alert(&[("alertname", "Down"), ("severity", "critical")], 4)],
            at(4),
        );
        let tracked = &state.alerts[&down.fingerprint()];
        assert_eq!(
            tracked.acknowledged, None,
            "a new incident is not acknowledged"
        );
        assert_eq!(
            (tracked.alert.starts_at, tracked.alert.ends_at),
            (at(4), None)
        );
        // Resolved and notified: forgotten; firing later: tracked afresh.
        state.receive([resolved(down, 5)], at(5));
        assert_eq!(state.tick(&policy, at(7))[0].resolved.len(), 1);
        assert!(state.alerts.is_empty() && state.groups.is_empty());
        state.receive(
            [alert(
                &[("alertname", "Down"), ("severity", "critical")],
                30,
            )],
            at(30),
        );
        assert!(
            state.tick(&policy, at(30)).is_empty(),
            "a new group waits again"
        );
        assert_eq!(state.tick(&policy, at(31)).len(), 1);
    }

    #[test]
    fn matchers_treat_a_missing_label_as_empty_and_fingerprints_follow_labels_only() {
        let with = labels(&[("severity", "critical")]);
        let without = Labels::new();
        assert!(Matcher::Equal("team".into(), String::new()).matches(&with));
        assert!(Matcher::NotEqual("severity".into(), "warning".into()).matches(&with));
        assert!(!Matcher::OneOf("severity".into(), vec!["info".into()]).matches(&with));
        assert_ne!(fingerprint(&with), fingerprint(&without));
        let mut a = alert(&[("alertname", "X")], 0);
        let b = a.clone();
        a.annotations.insert("summary".into(), "changed".into());
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(
            Severity::of(&labels(&[("severity", "page")])),
            Severity::Warning
        );
    }

    #[test]
    fn matchers_read_as_alertmanager_writes_them_and_say_what_is_wrong() {
        let cases = [
            (
                "severity=\"critical\"",
                Matcher::Equal("severity".into(), "critical".into()),
            ),
            ("team!=ops", Matcher::NotEqual("team".into(), "ops".into())),
            (
                "alertname=~\"Down|Lag\"",
                Matcher::OneOf("alertname".into(), vec!["Down".into(), "Lag".into()]),
            ),
        ];
        for (text, want) in cases {
            let got = Matcher::parse(text).expect(text);
            assert_eq!(got, want);
            assert_eq!(Matcher::parse(&got.to_string()), Ok(got), "round trip");
        }
        for (bad, says) in [
            ("severity", "expected name"),
            ("1x=\"a\"", "not a label name"),
            ("a=\"b", "quotes"),
            ("a=~\"x.*\"", "pattern characters"),
            ("a = \"b\"", "no spaces"),
            ("a=b\"c", "quote inside"),
        ] {
            let error = Matcher::parse(bad).expect_err(bad);
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn the_parser_accepts_exactly_what_the_pattern_matches() {
        let pattern = regex::Regex::new(MATCHER_PATTERN).expect("a valid pattern");
        let alphabet: Vec<char> = "a1_=!~\"|. ".chars().collect();
        let mut texts = vec![String::new()];
        let mut checked = 0;
        for _ in 0..5 {
            let mut longer = Vec::new();
            for text in &texts {
                for c in &alphabet {
                    let next = format!("{text}{c}");
                    assert_eq!(
                        Matcher::parse(&next).is_ok(),
                        pattern.is_match(&next),
                        "{next:?}"
                    );
                    checked += 1;
                    longer.push(next);
                }
            }
            texts = longer;
        }
        assert!(checked > 100_000);
    }

    #[test]
    fn the_state_round_trips_through_json_and_a_refreshed_alert_is_not_a_new_incident() {
        let policy = policy();
        let mut state = State::default();
        let mut down = down_on("a");
        down.ends_at = Some(at(4));
        state.receive([down.clone()], at(0));
        state.tick(&policy, at(1));
        state
            .acknowledge(&down.fingerprint(), "ana", at(2))
            .expect("known");
        // Prometheus re-sends a firing alert with a later end.
        down.ends_at = Some(at(8));
        state.receive([down.clone()], at(3));
        let tracked = &state.alerts[&down.fingerprint()];
        assert!(tracked.acknowledged.is_some(), "the same incident");
        assert_eq!(tracked.alert.ends_at, Some(at(8)));
        let text = serde_json::to_string(&state).expect("json");
        let back: State = serde_json::from_str(&text).expect("read back");
        assert_eq!(back, state);
    }
}
