//! The alert manager: alerts in (from the platform's own rules and from any Prometheus, through
//! the Alertmanager-compatible endpoint), notifications out (webhooks, Slack, the log), with
//! grouping, silences, inhibition, acknowledgement and escalation decided by
//! [`retail_domain::alerts`].
//!
//! Its state is one document in the metadata store, changed by compare and swap, so that it
//! survives restarts and API replicas change it without losing each other's changes; the
//! process holding the `alerts` claim evaluates the rules and sends notifications. A
//! notification due is first written to the state's outbox, then posted, then removed: a crash
//! between the two sends it again rather than never (at least once), and a receiver that fails
//! is retried with a doubling wait `delivery_attempts` times.

pub mod config;
pub mod payload;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use retail_domain::alerts::{Alert, Labels, Matcher, Muted, Notification, Policy, Silence, State};
use retail_metadata::{MetadataStore, RunKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::clock::{Clock, ManualClock, SystemClock};
use crate::error::{Error, Result};
use crate::models::{AnomalyQuery, ModelsService};
use crate::operations::MetricsRenderer;
pub use config::{
    AlertsConfig, InhibitionConfig, Receiver, ReceiverConfig, ReceiverKind, RouteConfig,
    RulesConfig,
};

/// Posts a JSON body to a URL (the port the webhook adapter implements).
#[async_trait]
pub trait Webhook: Send + Sync {
    /// Posts `body` to `url`; the error says what went wrong (status, connection).
    async fn post(&self, url: &str, body: &serde_json::Value) -> std::result::Result<(), String>;
}

/// An alert as Prometheus (or anything speaking Alertmanager's API v2) posts it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostableAlert {
    /// Identify it; `alertname` is required.
    pub labels: BTreeMap<String, String>,
    /// Describe it (`summary`, `description`, ...).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When it started firing (default: now).
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    /// When it stops firing: a time in the past resolves it (one before `startsAt` too);
    /// none: until told.
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// Where it comes from (a Prometheus graph link).
    #[serde(default, rename = "generatorURL")]
    pub generator_url: Option<String>,
}

/// An alert as the manager knows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertView {
    /// Its identity (from its labels): what to acknowledge.
    pub fingerprint: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// `firing` or `resolved` (a resolution not yet notified).
    pub status: &'static str,
    /// `silenced` or `inhibited` when it is not notified.
    pub muted: Option<&'static str>,
    /// The receiver its route sends it to (none: no route takes it).
    pub receiver: Option<String>,
    /// When it started firing.
    pub starts_at: DateTime<Utc>,
    /// When it ends, if known.
    pub ends_at: Option<DateTime<Utc>>,
    /// When a notification first announced it.
    pub notified_at: Option<DateTime<Utc>>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Whether it went to the next tier.
    pub escalated: bool,
}

/// A new silence.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    /// `name="value"`, `name!="value"` or `name=~"a|b"`; all must match; at least one.
    pub matchers: Vec<String>,
    /// How long it lasts, in minutes (1 to 43,200: 30 days).
    #[schema(minimum = 1, maximum = 43_200)]
    #[serde(deserialize_with = "whole_number")]
    pub minutes: u32,
    /// Why (required: more than white space).
    #[schema(pattern = "[^ \t\r\n]")]
    pub comment: String,
}

/// A whole number as JSON may write it (`90` or `90.0`, as JSON Schema's `integer` allows).
fn whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<u32, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if value.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&value) {
        // In range and whole: the conversion is exact.
        Ok(value as u32)
    } else {
        Err(serde::de::Error::custom(format!(
            "{value} is not a whole number of minutes"
        )))
    }
}

/// A silence.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SilenceView {
    /// Its id.
    pub id: String,
    /// What it mutes.
    pub matchers: Vec<String>,
    /// From.
    pub starts_at: DateTime<Utc>,
    /// Until.
    pub ends_at: DateTime<Utc>,
    /// Who.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

impl From<&Silence> for SilenceView {
    fn from(silence: &Silence) -> Self {
        Self {
            id: silence.id.clone(),
            matchers: silence.matchers.iter().map(ToString::to_string).collect(),
            starts_at: silence.starts_at,
            ends_at: silence.ends_at,
            created_by: silence.created_by.clone(),
            comment: silence.comment.clone(),
        }
    }
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// Notifications delivered.
    pub delivered: usize,
    /// Deliveries that failed (to be retried, or dropped after the last attempt).
    pub failed: usize,
    /// Notifications still waiting to be delivered.
    pub pending: usize,
}

/// What callers do with alerts.
#[async_trait]
pub trait AlertsService: Send + Sync {
    /// Takes alerts in (Alertmanager's `POST /api/v2/alerts`): all or none.
    async fn receive(&self, alerts: Vec<PostableAlert>) -> Result<usize>;
    /// Every alert the manager tracks, firing first, then by name.
    async fn alerts(&self) -> Result<Vec<AlertView>>;
    /// Acknowledges an alert (a critical alert acknowledged in time does not escalate).
    async fn acknowledge(&self, fingerprint: &str, by: &str) -> Result<AlertView>;
    /// The active silences.
    async fn silences(&self) -> Result<Vec<SilenceView>>;
    /// Adds a silence.
    async fn silence(&self, request: SilenceRequest, by: &str) -> Result<SilenceView>;
    /// Ends a silence now.
    async fn expire_silence(&self, id: &str) -> Result<()>;
    /// Evaluates the platform's rules and takes their alerts in; returns how many fire.
    async fn evaluate(&self) -> Result<usize>;
    /// Sends the notifications due.
    async fn tick(&self) -> Result<TickReport>;
}

/// A notification waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Outgoing {
    id: u64,
    notification: Notification,
    attempts: u32,
    next_at: DateTime<Utc>,
}

/// The stored document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    state: State,
    #[serde(default)]
    outbox: Vec<Outgoing>,
    #[serde(default)]
    next_id: u64,
}

/// Where the platform's rules read their signals.
pub struct RuleSources {
    /// The lake (bronze's last commit).
    pub lake: retail_lake::Lake,
    /// The models (anomalies).
    pub models: Arc<dyn ModelsService>,
    /// `/metrics`.
    pub metrics: MetricsRenderer,
    /// The pipeline (freshness of the assets with a policy).
    pub pipeline: Arc<dyn crate::PipelineService>,
}

/// The alert manager.
pub struct AlertManager {
    store: Arc<dyn MetadataStore>,
    config: AlertsConfig,
    policy: Policy,
    receivers: BTreeMap<String, Receiver>,
    clock: Arc<dyn Clock>,
    webhook: Arc<dyn Webhook>,
    sources: Option<RuleSources>,
    /// Rate samples, and the rule alerts of the last evaluation (resolved when they stop).
    evaluation: tokio::sync::Mutex<(rules::MetricHistory, BTreeMap<String, Alert>)>,
}

impl AlertManager {
    /// An alert manager over `store`, its routing from `config`.
    ///
    /// # Errors
    ///
    /// When `config` is invalid (every problem named).
    pub fn new(
        store: Arc<dyn MetadataStore>,
        config: AlertsConfig,
        clock: Arc<dyn Clock>,
        webhook: Arc<dyn Webhook>,
        sources: Option<RuleSources>,
    ) -> std::result::Result<Self, Vec<String>> {
        let (policy, receivers) = config.policy()?;
        Ok(Self {
            store,
            config,
            policy,
            receivers,
            clock,
            webhook,
            sources,
            evaluation: tokio::sync::Mutex::default(),
        })
    }

    /// Reads the state, applies `change` at the current time and writes it back, again from
    /// a fresh read when another writer was first.
    async fn update<T>(
        &self,
        mut change: impl FnMut(&mut Stored, DateTime<Utc>) -> Result<T>,
    ) -> Result<T> {
        for _ in 0..50 {
            let (version, document) = self.store.alert_state().await?;
            let mut stored = parse(document.as_deref())?;
            let out = change(&mut stored, self.clock.now())?;
            let text = serde_json::to_string(&stored).map_err(|e| {
                Error::new(retail_domain::error::ErrorKind::Internal, e.to_string())
            })?;
            if self.store.save_alert_state(version, &text).await? {
                return Ok(out);
            }
        }
        Err(Error::unavailable(
            "the alert state kept changing while this change was applied; try again",
            1,
        ))
    }

    async fn read(&self) -> Result<Stored> {
        parse(self.store.alert_state().await?.1.as_deref())
    }

    fn view(&self, state: &State, key: &str, now: DateTime<Utc>) -> Option<AlertView> {
        let tracked = state.alerts.get(key)?;
        let alert = &tracked.alert;
        let resolved = alert.resolved_at(now);
        Some(AlertView {
            fingerprint: key.to_owned(),
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            status: if resolved { "resolved" } else { "firing" },
            muted: match state.muted(&self.policy, &alert.labels, now) {
                _ if resolved => None,
                Some(Muted::Silenced) => Some("silenced"),
                Some(Muted::Inhibited) => Some("inhibited"),
                None => None,
            },
            receiver: self
                .policy
                .route_of(&alert.labels)
                .map(|route| route.receiver.clone()),
            starts_at: alert.starts_at,
            ends_at: alert.ends_at,
            notified_at: tracked.notified_at,
            acknowledged_by: tracked.acknowledged.as_ref().map(|(by, _)| by.clone()),
            acknowledged_at: tracked.acknowledged.as_ref().map(|(_, at)| *at),
            escalated: tracked.escalated,
        })
    }

    async fn signals(&self, sources: &RuleSources) -> rules::Signals {
        let bronze_changed_at = match sources
            .lake
            .last_commit_time(&retail_lake::schema::BRONZE_TRANSACTIONS)
            .await
        {
            Ok(at) => at,
            Err(error) => {
                tracing::warn!(%error, "alert rules: cannot read bronze's last commit");
                None
            }
        };
        let pipeline_runs = match self.store.runs(Some(RunKind::Pipeline), 10).await {
            Ok(runs) => runs,
            Err(error) => {
                tracing::warn!(%error, "alert rules: cannot read the latest runs");
                Vec::new()
            }
        };
        let scored_days = match sources
            .models
            .anomalies(&AnomalyQuery {
                from: None,
                to: None,
                all: true,
            })
            .await
        {
            Ok(answer) => answer
                .days
                .iter()
                .map(|day| {
                    let reason = day
                        .reasons
                        .get(0)
                        .and_then(|r| r.get("metric"))
                        .and_then(|m| m.as_str())
                        .unwrap_or("its metrics together")
                        .to_owned();
                    (day.date, day.score, day.is_anomaly, reason)
                })
                .collect(),
            Err(error) => {
                tracing::debug!(%error, "alert rules: no anomaly scores");
                Vec::new()
            }
        };
        let freshness = match sources.pipeline.freshness(self.clock.now()).await {
            Ok(freshness) => freshness,
            Err(error) => {
                tracing::warn!(%error, "alert rules: cannot measure the assets' freshness");
                Vec::new()
            }
        };
        rules::Signals {
            bronze_changed_at,
            pipeline_runs,
            scored_days,
            freshness,
            metrics: (sources.metrics)(),
        }
    }

    /// Posts one notification to its receiver.
    async fn deliver(
        &self,
        outgoing: &Outgoing,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), String> {
        let notification = &outgoing.notification;
        let receiver = self
            .receivers
            .get(&notification.receiver)
            .ok_or_else(|| format!("no receiver is named {:?}", notification.receiver))?;
        match receiver.kind {
            ReceiverKind::Log => {
                tracing::warn!(
                    receiver = %receiver.name,
                    escalation = notification.escalation,
                    group = %notification.group_key,
                    firing = notification.firing.len(),
                    resolved = notification.resolved.len(),
                    summary = %notification
                        .firing
                        .iter()
                        .chain(&notification.resolved)
                        .filter_map(|a| a.annotations.get("summary"))
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; "),
                    "alert notification"
                );
                Ok(())
            }
            ReceiverKind::Webhook => {
                let body = payload::webhook(notification, &self.config.external_url, now);
                self.webhook.post(&receiver.url, &body).await
            }
            ReceiverKind::Slack => {
                self.webhook
                    .post(&receiver.url, &payload::slack(notification))
                    .await
            }
        }
    }
}

impl std::fmt::Debug for AlertManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertManager")
            .field("receivers", &self.receivers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn parse(document: Option<&str>) -> Result<Stored> {
    document.map_or_else(
        || Ok(Stored::default()),
        |text| {
            serde_json::from_str(text).map_err(|error| {
                Error::new(
                    retail_domain::error::ErrorKind::Internal,
                    format!("the stored alert state cannot be read ({error}); it is left as is"),
                )
            })
        },
    )
}

/// The most alerts one request may post.
pub const MAX_POSTED: usize = 1_000;

/// Labels and annotations of one posted alert together, in bytes, at most.
pub const MAX_ALERT_BYTES: usize = 16 * 1024;

/// Checks posted alerts; the first problem names the alert by its position.
fn checked(alerts: Vec<PostableAlert>, now: DateTime<Utc>) -> Result<Vec<Alert>> {
    if alerts.len() > MAX_POSTED {
        return Err(Error::invalid(format!(
            "at most {MAX_POSTED} alerts per request, not {}",
            alerts.len()
        )));
    }
    alerts
        .into_iter()
        .enumerate()
        .map(|(index, posted)| {
            let problem = |what: String| Error::invalid(format!("alert {index}: {what}"));
            if posted.labels.get("alertname").is_none_or(String::is_empty) {
                return Err(problem("labels.alertname is required".to_owned()));
            }
            for name in posted.labels.keys() {
                if !retail_domain::alerts::is_label_name(name) {
                    return Err(problem(format!(
                        "{name:?} is not a label name (letters, digits and _)"
                    )));
                }
            }
            let size: usize = posted
                .labels
                .iter()
                .chain(&posted.annotations)
                .map(|(k, v)| k.len() + v.len())
                .sum();
            if size > MAX_ALERT_BYTES {
                return Err(problem("labels and annotations exceed 16 KiB".to_owned()));
            }
            // An end before the start is an alert resolved at its end.
            let starts_at = match (posted.starts_at.unwrap_or(now), posted.ends_at) {
                (start, Some(end)) if end < start => end,
                (start, _) => start,
            };
            let mut annotations: Labels = posted.annotations;
            if let Some(url) = posted.generator_url.filter(|u| !u.is_empty()) {
                annotations.insert("generator_url".to_owned(), url);
            }
            Ok(Alert {
                labels: posted.labels,
                annotations,
                starts_at,
                ends_at: posted.ends_at,
            })
        })
        .collect()
}

#[async_trait]
impl AlertsService for AlertManager {
    async fn receive(&self, alerts: Vec<PostableAlert>) -> Result<usize> {
        let alerts = checked(alerts, self.clock.now())?;
        let count = alerts.len();
        self.update(|stored, now| {
            stored.state.receive(alerts.iter().cloned(), now);
            Ok(())
        })
        .await?;
        Ok(count)
    }

    async fn alerts(&self) -> Result<Vec<AlertView>> {
        let stored = self.read().await?;
        let now = self.clock.now();
        let mut views: Vec<AlertView> = stored
            .state
            .alerts
            .keys()
            .filter_map(|key| self.view(&stored.state, key, now))
            .collect();
        views.sort_by(|a, b| {
            (
                a.status != "firing",
                a.labels.get("alertname"),
                &a.fingerprint,
            )
                .cmp(&(
                    b.status != "firing",
                    b.labels.get("alertname"),
                    &b.fingerprint,
                ))
        });
        Ok(views)
    }

    async fn acknowledge(&self, fingerprint: &str, by: &str) -> Result<AlertView> {
        let fingerprint = fingerprint.to_owned();
        let state = self
            .update(|stored, now| {
                stored
                    .state
                    .acknowledge(&fingerprint, by, now)
                    .map_err(|unknown| {
                        Error::not_found(format!("no alert has fingerprint {}", unknown.0))
                    })?;
                Ok(stored.state.clone())
            })
            .await?;
        self.view(&state, &fingerprint, self.clock.now())
            .ok_or_else(|| Error::not_found(format!("no alert has fingerprint {fingerprint}")))
    }

    async fn silences(&self) -> Result<Vec<SilenceView>> {
        let now = self.clock.now();
        Ok(self
            .read()
            .await?
            .state
            .silences
            .values()
            .filter(|silence| silence.ends_at > now)
            .map(SilenceView::from)
            .collect())
    }

    async fn silence(&self, request: SilenceRequest, by: &str) -> Result<SilenceView> {
        if request.matchers.is_empty() {
            return Err(Error::invalid(
                "a silence needs at least one matcher (a silence of everything is refused)",
            ));
        }
        let matchers = request
            .matchers
            .iter()
            .map(|text| Matcher::parse(text))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::invalid)?;
        if !(1..=43_200).contains(&request.minutes) {
            return Err(Error::invalid(format!(
                "minutes must be 1 to 43200 (30 days), not {}",
                request.minutes
            )));
        }
        if request
            .comment
            .chars()
            .all(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
        {
            return Err(Error::invalid("a silence needs a comment saying why"));
        }
        let silence = self
            .update(|stored, now| {
                stored.next_id += 1;
                let silence = Silence {
                    id: format!("s{}-{}", now.timestamp(), stored.next_id),
                    matchers: matchers.clone(),
                    starts_at: now,
                    ends_at: now + Duration::minutes(i64::from(request.minutes)),
                    created_by: by.to_owned(),
                    comment: request.comment.trim().to_owned(),
                };
                stored
                    .state
                    .silences
                    .insert(silence.id.clone(), silence.clone());
                Ok(silence)
            })
            .await?;
        Ok(SilenceView::from(&silence))
    }

    async fn expire_silence(&self, id: &str) -> Result<()> {
        self.update(|stored, now| match stored.state.silences.get_mut(id) {
            Some(silence) if silence.ends_at > now => {
                silence.ends_at = now;
                Ok(())
            }
            _ => Err(Error::not_found(format!("no active silence has id {id}"))),
        })
        .await
    }

    async fn evaluate(&self) -> Result<usize> {
        let Some(sources) = &self.sources else {
            return Ok(0);
        };
        let signals = self.signals(sources).await;
        let mut evaluation = self.evaluation.lock().await;
        let now = self.clock.now();
        // Firing until the next evaluations say otherwise: if this process stops evaluating,
        // its alerts resolve by themselves.
        let seconds = i64::try_from(self.config.evaluate_seconds).unwrap_or(60);
        let ends_at = now + Duration::seconds(4 * seconds);
        let (history, previous) = &mut *evaluation;
        let firing = rules::evaluate(&self.config.rules, &signals, history, now, ends_at);
        let firing_keys: BTreeSet<String> = firing.iter().map(Alert::fingerprint).collect();
        let mut sent = firing.clone();
        for (key, alert) in previous.iter() {
            if !firing_keys.contains(key) {
                let mut resolved = alert.clone();
                resolved.ends_at = Some(now);
                sent.push(resolved);
            }
        }
        self.update(|stored, at| {
            stored.state.receive(sent.iter().cloned(), at);
            Ok(())
        })
        .await?;
        *previous = firing.into_iter().map(|a| (a.fingerprint(), a)).collect();
        Ok(previous.len())
    }

    async fn tick(&self) -> Result<TickReport> {
        let due = self
            .update(|stored, now| {
                for notification in stored.state.tick(&self.policy, now) {
                    stored.next_id += 1;
                    stored.outbox.push(Outgoing {
                        id: stored.next_id,
                        notification,
                        attempts: 0,
                        next_at: now,
                    });
                }
                let state = &stored.state;
                let notified = state
                    .alerts
                    .values()
                    .filter(|t| {
                        !t.alert.resolved_at(now)
                            && state.muted(&self.policy, &t.alert.labels, now).is_none()
                    })
                    .count();
                retail_telemetry::metrics::set_alerts_firing(notified);
                Ok(stored
                    .outbox
                    .iter()
                    .filter(|o| o.next_at <= now)
                    .cloned()
                    .collect::<Vec<_>>())
            })
            .await?;
        let mut outcomes = Vec::with_capacity(due.len());
        for outgoing in &due {
            let outcome = self.deliver(outgoing, self.clock.now()).await;
            let receiver = &outgoing.notification.receiver;
            match &outcome {
                Ok(()) => {
                    retail_telemetry::metrics::record_alert_notification(receiver, "delivered")
                }
                Err(error) => {
                    tracing::warn!(%receiver, %error, attempt = outgoing.attempts + 1, "alert notification not delivered");
                    retail_telemetry::metrics::record_alert_notification(receiver, "failed");
                }
            }
            outcomes.push((outgoing.id, outcome.is_ok()));
        }
        let attempts = self.config.delivery_attempts;
        let retry = Duration::seconds(i64::try_from(self.config.retry_seconds).unwrap_or(10));
        let pending = self
            .update(|stored, now| {
                for (id, delivered) in &outcomes {
                    let Some(index) = stored.outbox.iter().position(|o| o.id == *id) else {
                        continue;
                    };
                    if *delivered {
                        stored.outbox.remove(index);
                        continue;
                    }
                    let outgoing = &mut stored.outbox[index];
                    outgoing.attempts += 1;
                    if outgoing.attempts >= attempts {
                        tracing::error!(
                            receiver = %outgoing.notification.receiver,
                            group = %outgoing.notification.group_key,
                            attempts,
                            "alert notification dropped after its last attempt"
                        );
                        retail_telemetry::metrics::record_alert_notification(
                            &outgoing.notification.receiver,
                            "dropped",
                        );
                        stored.outbox.remove(index);
                    } else {
                        outgoing.next_at = now + retry * 2_i32.pow((outgoing.attempts - 1).min(16));
                    }
                }
                Ok(stored.outbox.len())
            })
            .await?;
        let delivered = outcomes.iter().filter(|(_, ok)| *ok).count();
        Ok(TickReport {
            delivered,
            failed: outcomes.len() - delivered,
            pending,
        })
    }
}
