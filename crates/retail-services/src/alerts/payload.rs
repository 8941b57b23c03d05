//! What a notification looks like on the wire: Alertmanager's webhook payload (version 4), so
//! any tool written for Alertmanager's webhooks reads ours, and a Slack incoming-webhook
//! message.

use chrono::{DateTime, Utc};
use retail_domain::alerts::{Alert, Labels, Notification, Severity, render};
use serde_json::{Value, json};

/// Alertmanager's zero time: `endsAt` of an alert without an end.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The labels (or annotations) every alert of `alerts` has with the same value.
fn common(alerts: &[&Alert], pick: impl Fn(&Alert) -> &Labels) -> Labels {
    let Some(first) = alerts.first() else {
        return Labels::new();
    };
    pick(first)
        .iter()
        .filter(|(name, value)| alerts.iter().all(|a| pick(a).get(*name) == Some(value)))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// Alertmanager's webhook payload (version 4), with `escalation` added (receivers that do not
/// know it ignore it).
pub fn webhook(notification: &Notification, external_url: &str, now: DateTime<Utc>) -> Value {
    let all: Vec<&Alert> = notification
        .firing
        .iter()
        .chain(&notification.resolved)
        .collect();
    let alert = |alert: &Alert, firing: bool| {
        json!({
            "status": if firing { "firing" } else { "resolved" },
            "labels": alert.labels,
            "annotations": alert.annotations,
            "startsAt": time(alert.starts_at),
            "endsAt": match (firing, alert.ends_at) {
                (false, Some(end)) => time(end),
                (false, None) => time(now),
                (true, _) => ZERO_TIME.to_owned(),
            },
            "generatorURL": alert.annotations.get("generator_url").cloned().unwrap_or_default(),
            "fingerprint": alert.fingerprint(),
        })
    };
    let alerts: Vec<Value> = notification
        .firing
        .iter()
        .map(|a| alert(a, true))
        .chain(notification.resolved.iter().map(|a| alert(a, false)))
        .collect();
    json!({
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": 0,
        "status": if notification.firing.is_empty() { "resolved" } else { "firing" },
        "receiver": notification.receiver,
        "groupLabels": notification.group_labels,
        "commonLabels": common(&all, |a| &a.labels),
        "commonAnnotations": common(&all, |a| &a.annotations),
        "externalURL": external_url,
        "alerts": alerts,
        "escalation": notification.escalation,
    })
}

/// A Slack incoming-webhook message: a title line, then one attachment per alert coloured by
/// severity (resolved ones green).
pub fn slack(notification: &Notification) -> Value {
    let title = format!(
        "{}[{}:{}] {}",
        if notification.escalation {
            "ESCALATED "
        } else {
            ""
        },
        if notification.firing.is_empty() {
            "RESOLVED"
        } else {
            "FIRING"
        },
        notification.firing.len().max(notification.resolved.len()),
        render(&notification.group_labels),
    );
    let attachment = |alert: &Alert, firing: bool| {
        let color = match (firing, Severity::of(&alert.labels)) {
            (false, _) => "good",
            (true, Severity::Critical) => "danger",
            (true, Severity::Warning) => "warning",
            (true, Severity::Info) => "#439FE0",
        };
        let summary = alert
            .annotations
            .get("summary")
            .cloned()
            .unwrap_or_default();
        json!({
            "color": color,
            "title": format!(
                "{} {}",
                if firing { "firing" } else { "resolved" },
                alert.labels.get("alertname").map_or("", String::as_str)
            ),
            "text": summary,
            "footer": render(&alert.labels),
        })
    };
    let attachments: Vec<Value> = notification
        .firing
        .iter()
        .map(|a| attachment(a, true))
        .chain(notification.resolved.iter().map(|a| attachment(a, false)))
        .collect();
    json!({ "text": title, "attachments": attachments })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str, severity: &str, route: &str) -> Alert {
        Alert {
            labels: Labels::from([
                ("alertname".to_owned(), name.to_owned()),
                ("severity".to_owned(), severity.to_owned()),
                ("route".to_owned(), route.to_owned()),
            ]),
            annotations: Labels::from([("summary".to_owned(), format!("{route} is slow"))]),
            starts_at: DateTime::from_timestamp(1_800_000_000, 0).expect("time"),
            ends_at: None,
        }
    }

    #[test]
    fn the_webhook_payload_has_alertmanagers_fields_and_the_common_labels() {
        let now = DateTime::from_timestamp(1_800_000_600, 0).expect("time");
        let notification = Notification {
            receiver: "team".into(),
            group_key: "team:{alertname=\"Slow\"}".into(),
            group_labels: Labels::from([("alertname".to_owned(), "Slow".to_owned())]),
            firing: vec![alert("Slow", "warning", "/a")],
            resolved: vec![alert("Slow", "warning", "/b")],
            escalation: false,
        };
        let body = webhook(&notification, "http://retail", now);
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "firing");
        assert_eq!(body["commonLabels"]["severity"], "warning");
        assert!(body["commonLabels"].get("route").is_none());
        assert_eq!(body["alerts"][0]["endsAt"], ZERO_TIME);
        assert_eq!(body["alerts"][1]["status"], "resolved");
        assert_eq!(body["alerts"][1]["endsAt"], "2027-01-15T08:10:00.000Z");
        assert_eq!(body["alerts"][0]["startsAt"], "2027-01-15T08:00:00.000Z");
        let message = slack(&notification);
        assert_eq!(message["text"], "[FIRING:1] {alertname=\"Slow\"}");
        assert_eq!(message["attachments"][0]["color"], "warning");
        assert_eq!(message["attachments"][1]["color"], "good");
    }
}
