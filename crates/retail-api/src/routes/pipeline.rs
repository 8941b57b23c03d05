//! `/admin/pipeline/...`: start a run (in the background), follow runs, see where the
//! pipeline stands.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use retail_services::scheduler::SchedulerStatus;
use retail_services::{
    AssetInfo, PipelineStatus, RunFilter, RunKind, RunRecord, RunRequest, RunStatus,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, OptionalJsonBody, TypedQuery};
use crate::state::{AppState, header as header_value};

/// Routes that read (`read:pipelines`).
pub(crate) fn read_routes() -> Router<AppState> {
    Router::new()
        .route("/admin/pipeline/runs", get(runs))
        .route("/admin/pipeline/runs/{run_id}", get(run))
        .route("/admin/pipeline/status", get(status))
        .route("/admin/pipeline/assets", get(assets))
        .route("/admin/scheduler", get(scheduler))
}

/// Routes that act (`manage:pipelines`).
pub(crate) fn manage_routes() -> Router<AppState> {
    Router::new().route("/admin/pipeline/run", post(start))
}

/// Which runs to list. Every given condition must hold.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    /// At most this many, newest first (1 to 1000, default 20).
    #[param(required = false, nullable = false, minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Only runs of this kind: `ingest` or `pipeline`.
    #[param(required = false, nullable = false)]
    kind: Option<RunKind>,
    /// Only runs that ended so (or are still going): `running`, `succeeded`, `up_to_date`,
    /// `failed`.
    #[param(required = false, nullable = false)]
    status: Option<RunStatus>,
    /// Only runs that went through this asset (`gold`: the asset or any table it writes), or
    /// recorded this table or follower (`gold/fact_sales`, `warehouse/postgres`).
    #[param(required = false, nullable = false)]
    asset: Option<String>,
    /// Who asked, exactly (`cli`, `api:alice`, `schedule:nightly`, `sensor:landing`), or
    /// everyone whose name starts so when it ends with `:` (`schedule:`).
    #[param(required = false, nullable = false)]
    requested_by: Option<String>,
    /// Started at or after this time, in UTC: `2026-12-02T11:30:24Z`.
    #[param(required = false, nullable = false)]
    since: Option<String>,
    /// Started before this time, written as `since`.
    #[param(required = false, nullable = false)]
    until: Option<String>,
    /// The next page: the runs after this one (the last run of the page before), as the
    /// `Link` header's `rel="next"` gives it.
    #[param(required = false, nullable = false)]
    before: Option<String>,
}

#[utoipa::path(get, path = "/admin/pipeline/runs", tag = "pipeline", params(RunsQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Recorded runs, newest first; when the page is full, a \
            `Link` header's `rel=\"next\"` names the next page", body = Vec<RunRecord>,
            headers(("link" = String, description = "`</admin/pipeline/runs?...&before=ID>; rel=\"next\"`"))),
        (status = 400, description = "A bad limit, kind, status, time or page", body = ErrorBody),
        (status = 404, description = "`before` names no run", body = ErrorBody)))]
pub(crate) async fn runs(
    State(state): State<AppState>,
    TypedQuery(query): TypedQuery<RunsQuery>,
) -> Result<Response, ApiError> {
    let time = |name: &str, text: &Option<String>| -> Result<Option<DateTime<Utc>>, ApiError> {
        text.as_deref()
            .map(|text| {
                retail_domain::audit::parse_utc_time(text).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "{name} must be a time in UTC such as 2026-12-02T11:30:24Z (years 1900 \
                         to 2100), not {text:?}"
                    ))
                })
            })
            .transpose()
    };
    let filter = RunFilter {
        kind: query.kind,
        status: query.status,
        assets: query.asset.iter().cloned().collect(),
        requested_by: query.requested_by.clone(),
        since: time("since", &query.since)?,
        until: time("until", &query.until)?,
        before: query.before.clone(),
        limit: query.limit.unwrap_or(20),
    };
    let limit = filter.limit;
    let runs = state.services.pipeline.runs(filter).await?;
    let next = (runs.len() == limit)
        .then(|| runs.last().map(|run| next_page(&query, &run.run_id)))
        .flatten();
    let mut response = Json(runs).into_response();
    if let Some(next) = next
        && let Ok(value) = header::HeaderValue::from_str(&next)
    {
        response.headers_mut().insert(header::LINK, value);
    }
    Ok(response)
}

/// The `Link` to the page after the one ending with `last`: the same conditions, `before` it.
fn next_page(query: &RunsQuery, last: &str) -> String {
    let mut pairs = url::form_urlencoded::Serializer::new(String::new());
    if let Some(limit) = query.limit {
        pairs.append_pair("limit", &limit.to_string());
    }
    if let Some(kind) = query.kind {
        pairs.append_pair("kind", kind.as_str());
    }
    if let Some(status) = query.status {
        pairs.append_pair("status", status.as_str());
    }
    for (name, value) in [
        ("asset", &query.asset),
        ("requested_by", &query.requested_by),
        ("since", &query.since),
        ("until", &query.until),
    ] {
        if let Some(value) = value {
            pairs.append_pair(name, value);
        }
    }
    pairs.append_pair("before", last);
    format!("</admin/pipeline/runs?{}>; rel=\"next\"", pairs.finish())
}

#[utoipa::path(get, path = "/admin/pipeline/runs/{run_id}", tag = "pipeline",
    params(("run_id" = String, Path, description = "The run's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The run: `running` until it ends", body = RunRecord),
        (status = 404, description = "No such run", body = ErrorBody)))]
pub(crate) async fn run(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<RunRecord>, ApiError> {
    Ok(Json(state.services.pipeline.run_record(&run_id).await?))
}

/// What to run.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartRun {
    /// Asset keys (see `/admin/pipeline/assets`); empty or absent: every asset.
    #[serde(default)]
    assets: Vec<String>,
    /// Rebuild gold from all of silver even when it is up to date.
    #[serde(default)]
    force: bool,
}

#[utoipa::path(post, path = "/admin/pipeline/run", tag = "pipeline", request_body = Option<StartRun>,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "Started in the background; follow it at the Location", body = RunRecord),
        (status = 400, description = "An unknown asset", body = ErrorBody),
        (status = 409, description = "Another run is in progress", body = ErrorBody)))]
pub(crate) async fn start(
    State(state): State<AppState>,
    Caller(caller): Caller,
    OptionalJsonBody(body): OptionalJsonBody<StartRun>,
) -> Result<Response, ApiError> {
    let body = body.unwrap_or_default();
    let requested_by = caller.map_or_else(|| "api".to_owned(), |p| format!("api:{}", p.subject));
    let run = state
        .services
        .pipeline
        .start(RunRequest {
            assets: body.assets,
            force: body.force,
            requested_by,
        })
        .await?;
    let location = format!("/admin/pipeline/runs/{}", run.run_id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, header_value(location))],
        Json(run),
    )
        .into_response())
}

#[utoipa::path(get, path = "/admin/pipeline/status", tag = "pipeline",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, description = "Tables, assets and what is behind", body = PipelineStatus)))]
pub(crate) async fn status(
    State(state): State<AppState>,
) -> Result<Json<PipelineStatus>, ApiError> {
    Ok(Json(state.services.pipeline.status().await?))
}

#[utoipa::path(get, path = "/admin/pipeline/assets", tag = "pipeline",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, description = "The asset graph, in order", body = Vec<AssetInfo>)))]
pub(crate) async fn assets(State(state): State<AppState>) -> Json<Vec<AssetInfo>> {
    Json(state.services.pipeline.assets())
}

#[utoipa::path(get, path = "/admin/scheduler", tag = "pipeline",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The schedules with their last and next ticks, the sensors \
            with their cursors, and who holds the scheduler's lease", body = SchedulerStatus)))]
pub(crate) async fn scheduler(
    State(state): State<AppState>,
) -> Result<Json<SchedulerStatus>, ApiError> {
    Ok(Json(state.services.scheduler.status().await?))
}
