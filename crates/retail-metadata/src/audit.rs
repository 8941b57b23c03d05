//! What a reader of the audit trail may ask for, and the SQL both adapters build from it.

use chrono::{DateTime, Utc};
use retail_domain::audit::{AuditEntry, AuditEvent, Outcome};

/// Which audit entries to read, in order of number. Every given condition must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only entries numbered above this (0: from the first). Pages go on from the last
    /// number read.
    pub after_seq: i64,
    /// At most this many.
    pub limit: usize,
    /// The actor, exactly (`user:alice`).
    pub actor: Option<String>,
    /// The action, or an area of actions when it ends with `.` (`auth.`).
    pub action: Option<String>,
    /// Text the target holds (`12347` finds every entry about that customer's routes).
    pub target_contains: Option<String>,
    /// The outcome.
    pub outcome: Option<Outcome>,
    /// Recorded at or after.
    pub since: Option<DateTime<Utc>>,
    /// Recorded before.
    pub until: Option<DateTime<Utc>>,
}

impl Default for AuditFilter {
    fn default() -> Self {
        Self {
            after_seq: 0,
            limit: 100,
            actor: None,
            action: None,
            target_contains: None,
            outcome: None,
            since: None,
            until: None,
        }
    }
}

/// The columns of `audit_log` in the order [`entry`] reads them.
pub(crate) const COLUMNS: &str =
    "seq, at, actor, action, target, source, outcome, detail, prev_hash, hash";

/// The `WHERE ... ORDER BY ... LIMIT` of a filter and its text parameters, with `placeholder(n)`
/// writing parameter `n` (from 1) as the backend wants; the first parameter is `after_seq`
/// (an integer) and the last the limit (an integer).
pub(crate) fn query(
    filter: &AuditFilter,
    placeholder: impl Fn(usize) -> String,
) -> (String, Vec<String>) {
    let mut clauses = vec![format!("seq > {}", placeholder(1))];
    let mut texts = Vec::new();
    let mut add = |clause: &dyn Fn(&str) -> String, value: String| {
        texts.push(value);
        clauses.push(clause(&placeholder(texts.len() + 1)));
    };
    if let Some(actor) = &filter.actor {
        add(&|p| format!("actor = {p}"), actor.clone());
    }
    if let Some(action) = &filter.action {
        if action.ends_with('.') {
            add(
                &|p| format!("action LIKE {p} ESCAPE '\\'"),
                format!("{}%", like_escaped(action)),
            );
        } else {
            add(&|p| format!("action = {p}"), action.clone());
        }
    }
    if let Some(text) = &filter.target_contains {
        add(
            &|p| format!("target LIKE {p} ESCAPE '\\'"),
            format!("%{}%", like_escaped(text)),
        );
    }
    if let Some(outcome) = filter.outcome {
        add(&|p| format!("outcome = {p}"), outcome.as_str().to_owned());
    }
    if let Some(since) = filter.since {
        add(
            &|p| format!("at >= {p}"),
            retail_domain::audit::timestamp(since),
        );
    }
    if let Some(until) = filter.until {
        add(
            &|p| format!("at < {p}"),
            retail_domain::audit::timestamp(until),
        );
    }
    let limit = placeholder(texts.len() + 2);
    (
        format!(
            "SELECT {COLUMNS} FROM audit_log WHERE {} ORDER BY seq LIMIT {limit}",
            clauses.join(" AND ")
        ),
        texts,
    )
}

fn like_escaped(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// An entry from its number and its other columns' text, in the order of [`COLUMNS`].
pub(crate) fn entry(seq: i64, texts: Vec<String>) -> std::result::Result<AuditEntry, String> {
    let [
        at,
        actor,
        action,
        target,
        source,
        outcome,
        detail,
        prev_hash,
        hash,
    ]: [String; 9] = texts
        .try_into()
        .map_err(|_| format!("entry {seq} does not have the trail's columns"))?;
    Ok(AuditEntry {
        seq,
        at,
        event: AuditEvent {
            actor,
            action,
            target,
            source,
            outcome: Outcome::parse(&outcome)
                .ok_or_else(|| format!("entry {seq} has the unknown outcome {outcome:?}"))?,
            detail,
        },
        prev_hash,
        hash,
    })
}
