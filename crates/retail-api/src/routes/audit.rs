//! `/api/v1/audit`: the audit trail, filtered and paged, and its verification (`manage:audit`,
//! which only the admin role has).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use retail_domain::audit::{AuditEntry, ChainCheck, Outcome};
use retail_services::audit::AuditFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::extract::TypedQuery;
use crate::state::AppState;

/// The largest entry number a request may name (15 digits).
const MAX_SEQ: i64 = 999_999_999_999_999;

/// Reading and verifying the trail (`manage:audit`).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/audit", get(entries))
        .route("/api/v1/audit/verify", get(verify))
}

/// Which entries to read; every given condition must hold.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Only entries numbered above this (default 0: from the first); pass the last answer's
    /// `next_after` for the next page.
    #[param(
        required = false,
        nullable = false,
        minimum = 0,
        maximum = 999999999999999.0
    )]
    after: Option<i64>,
    /// At most this many, in order of number (1 to 1000, default 100).
    #[param(required = false, nullable = false, minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The actor, exactly: `user:alice`, `key:<id>`, `cli:root`, `anonymous`.
    #[param(required = false, nullable = false)]
    actor: Option<String>,
    /// The action (`auth.login`), or an area of actions ending with a dot (`auth.`).
    #[param(required = false, nullable = false)]
    action: Option<String>,
    /// Text the target holds, such as a customer id.
    #[param(required = false, nullable = false)]
    target: Option<String>,
    /// `success`, `failure` or `denied`.
    #[param(required = false, nullable = false, value_type = String, pattern = "^(success|failure|denied)$")]
    outcome: Option<Outcome>,
    /// Recorded at or after this time, in UTC: `2026-12-02T11:30:24Z` (a fraction of up to six
    /// digits may follow the seconds; years 1900 to 2100).
    #[param(required = false, nullable = false)]
    since: Option<String>,
    /// Recorded before this time, written as `since`.
    #[param(required = false, nullable = false)]
    until: Option<String>,
}

/// One entry of the trail, as stored: its hash can be recomputed from its fields (the README's
/// "Audit trail" gives the rule).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditEntryView {
    /// Its number: 1, 2, 3, ... with no gap.
    seq: i64,
    /// When it was recorded (RFC 3339, UTC, microseconds).
    at: String,
    /// Who: `user:<name>`, `key:<id>`, `cli:<os user>`, `anonymous`, `system`.
    actor: String,
    /// What: `auth.login`, `http.write`, `http.denied`, `data.read_customer`, `data.export`, ...
    action: String,
    /// To what: the method and path with its query, a command, a user.
    target: String,
    /// From where: the client's address, or `cli@<host>`.
    source: String,
    /// `success`, `failure` or `denied`.
    outcome: String,
    /// Anything else, as the JSON text that was hashed.
    detail: String,
    /// The previous entry's hash.
    prev_hash: String,
    /// This entry's hash.
    hash: String,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(entry: AuditEntry) -> Self {
        Self {
            seq: entry.seq,
            at: entry.at,
            actor: entry.event.actor,
            action: entry.event.action,
            target: entry.event.target,
            source: entry.event.source,
            outcome: entry.event.outcome.as_str().to_owned(),
            detail: entry.event.detail,
            prev_hash: entry.prev_hash,
            hash: entry.hash,
        }
    }
}

/// A page of the trail.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    /// The entries, in order of number.
    entries: Vec<AuditEntryView>,
    /// The `after` of the next page; absent on the last page.
    next_after: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Entries in order of number (reading the trail is itself audited)", body = AuditPage),
        (status = 400, description = "A bad number, limit, outcome or time", body = ErrorBody)))]
pub(crate) async fn entries(
    State(state): State<AppState>,
    TypedQuery(query): TypedQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = super::page_limit(query.limit)?;
    let after = query.after.unwrap_or(0);
    if !(0..=MAX_SEQ).contains(&after) {
        return Err(ApiError::invalid(format!(
            "after must be 0 to {MAX_SEQ}, not {after}"
        )));
    }
    let time = |name: &str, text: Option<String>| -> Result<Option<DateTime<Utc>>, ApiError> {
        text.map(|text| {
            retail_domain::audit::parse_utc_time(&text).ok_or_else(|| {
                ApiError::invalid(format!(
                    "{name} must be a time in UTC such as 2026-12-02T11:30:24Z (years 1900 to \
                     2100), not {text:?}"
                ))
            })
        })
        .transpose()
    };
    let (since, until) = (time("since", query.since)?, time("until", query.until)?);
    let filter = AuditFilter {
        after_seq: after,
        limit,
        actor: query.actor,
        action: query.action,
        target_contains: query.target,
        outcome: query.outcome,
        since,
        until,
    };
    let entries = state.services.audit.entries(&filter).await?;
    let next_after = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AuditPage {
        entries: entries.into_iter().map(AuditEntryView::from).collect(),
        next_after,
    }))
}

/// What to verify against.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyQuery {
    /// A head an earlier verification gave, as `SEQ:HASH`: the trail must still hold it.
    #[param(
        required = false,
        nullable = false,
        pattern = "^[1-9][0-9]{0,14}:[0-9a-f]{64}$"
    )]
    expect_head: Option<String>,
}

/// The verdict on the whole chain.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Verification {
    /// Whether every entry is as it was recorded, with none missing.
    intact: bool,
    /// Entries checked before the first problem.
    verified: u64,
    /// The last entry checked, as `SEQ:HASH`: keep it elsewhere and pass it as
    /// `expect_head` later to prove nothing up to it was rewritten.
    head: Option<String>,
    /// The first problem, for people.
    problem: Option<String>,
    /// The entry where it shows.
    problem_seq: Option<i64>,
}

impl From<ChainCheck> for Verification {
    fn from(check: ChainCheck) -> Self {
        use retail_domain::audit::ChainProblem;
        let problem_seq = check.problem.as_ref().map(|problem| match problem {
            ChainProblem::Altered { seq }
            | ChainProblem::Broken { seq }
            | ChainProblem::HeadMismatch { seq, .. } => *seq,
            ChainProblem::Missing { expected, .. } => *expected,
        });
        Self {
            intact: check.problem.is_none(),
            verified: check.verified,
            head: check.head.map(|(seq, hash)| format!("{seq}:{hash}")),
            problem: check.problem.map(|p| p.to_string()),
            problem_seq,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", params(VerifyQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The verdict (a broken chain is an answer, not an error)", body = Verification),
        (status = 400, description = "A bad expected head", body = ErrorBody)))]
pub(crate) async fn verify(
    State(state): State<AppState>,
    TypedQuery(query): TypedQuery<VerifyQuery>,
) -> Result<Json<Verification>, ApiError> {
    let expect_head = query
        .expect_head
        .as_deref()
        .map(retail_domain::audit::parse_head)
        .transpose()
        .map_err(ApiError::invalid)?;
    let check = state.services.audit.verify(expect_head, &|_| {}).await?;
    Ok(Json(check.into()))
}
