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
    AssetInfo, BackfillRequest, BackfillSummary, PartitionFilter, PartitionScope, PartitionState,
    PartitionStatus, PipelineStatus, RunFilter, RunKind, RunRecord, RunRequest, RunStatus,
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
        .route(
            "/admin/pipeline/assets/{asset}/partitions",
            get(asset_partitions),
        )
        .route("/admin/pipeline/backfills/{backfill_id}", get(backfill))
        .route(
            "/admin/pipeline/backfills/{backfill_id}/partitions",
            get(backfill_partitions),
        )
        .route("/admin/scheduler", get(scheduler))
}

/// Routes that act (`manage:pipelines`).
pub(crate) fn manage_routes() -> Router<AppState> {
    Router::new()
        .route("/admin/pipeline/run", post(start))
        .route("/admin/pipeline/backfills", post(start_backfill))
        .route(
            "/admin/pipeline/backfills/{backfill_id}/resume",
            post(resume_backfill),
        )
}

/// Which runs to list. Every given condition must hold.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    /// At most this many, newest first (1 to 1000, default 20).
    #[param(required = false, nullable = false, minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Only runs of this kind: `ingest`, `pipeline` or `backfill`.
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
    /// Only runs that built this invoice month of gold (`2011-03`): incremental runs and
    /// backfill runs that recomputed it, full builds, and backfills that asked for it.
    #[param(required = false, nullable = false)]
    partition: Option<String>,
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
        partition: query
            .partition
            .as_deref()
            .map(|month| {
                retail_services::invoice_month(month)
                    .map(|_| month.to_owned())
                    .map_err(|_| {
                        ApiError::invalid(format!(
                            "partition must be an invoice month such as 2011-03, not {month:?}"
                        ))
                    })
            })
            .transpose()?,
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
        ("partition", &query.partition),
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
            ..RunRequest::default()
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

/// An invoice month, `2011-03`.
#[derive(ToSchema)]
#[schema(value_type = String, pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
#[allow(dead_code)] // a schema only
pub(crate) struct Month(String);

/// A backfill: the months from `from` to `to`, or those listed in `partitions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartBackfill {
    /// The first invoice month, `2011-01` (with `to`).
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
    from: Option<String>,
    /// The last invoice month, included, `2011-03` (with `from`).
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
    to: Option<String>,
    /// Or the months one by one (instead of `from` and `to`).
    #[serde(default)]
    #[schema(value_type = Vec<Month>)]
    partitions: Vec<String>,
    /// Months per pipeline run (1 to 120, default 1): more is faster, fewer is finer when a
    /// run fails.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 120)]
    partitions_per_run: Option<u32>,
}

impl StartBackfill {
    /// The request for the runner, or what is wrong with it.
    pub(crate) fn into_request(self, requested_by: String) -> Result<BackfillRequest, ApiError> {
        let partitions = match (self.from, self.to, self.partitions.is_empty()) {
            (Some(from), Some(to), true) => {
                retail_services::months_between(&from, &to).map_err(retail_services::Error::from)?
            }
            (None, None, false) => self.partitions,
            _ => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unprocessable",
                    "give either from and to (both) or partitions, not both",
                ));
            }
        };
        let partitions_per_run = self.partitions_per_run.unwrap_or(1);
        if !(1..=120).contains(&partitions_per_run) {
            return Err(ApiError::invalid(
                "partitions_per_run must be from 1 to 120",
            ));
        }
        Ok(BackfillRequest {
            partitions,
            partitions_per_run,
            requested_by,
        })
    }
}

#[utoipa::path(post, path = "/admin/pipeline/backfills", tag = "pipeline", request_body = StartBackfill,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "Started in the background (kind `backfill`); follow it at \
            the Location", body = RunRecord),
        (status = 400, description = "A month malformed", body = ErrorBody),
        (status = 409, description = "Another run is in progress", body = ErrorBody),
        (status = 422, description = "No months, a reversed range, months holding no data, or \
            both a range and a list", body = ErrorBody)))]
pub(crate) async fn start_backfill(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<StartBackfill>,
) -> Result<Response, ApiError> {
    let request = body.into_request(requested_by(caller.as_ref()))?;
    let backfill = state.services.pipeline.start_backfill(request).await?;
    Ok(accepted_backfill(backfill))
}

#[utoipa::path(post, path = "/admin/pipeline/backfills/{backfill_id}/resume", tag = "pipeline",
    params(("backfill_id" = String, Path, description = "The backfill's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "Resumed in the background: its months not yet \
            succeeded run again", body = RunRecord),
        (status = 400, description = "Not a backfill id", body = ErrorBody),
        (status = 404, description = "No such backfill", body = ErrorBody),
        (status = 409, description = "It has not failed, or another run is in progress", body = ErrorBody)))]
pub(crate) async fn resume_backfill(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(backfill_id): Path<String>,
) -> Result<Response, ApiError> {
    let backfill = state
        .services
        .pipeline
        .start_resume_backfill(&backfill_id, &requested_by(caller.as_ref()))
        .await?;
    Ok(accepted_backfill(backfill))
}

fn requested_by(caller: Option<&retail_services::Principal>) -> String {
    caller.map_or_else(|| "api".to_owned(), |p| format!("api:{}", p.subject))
}

fn accepted_backfill(backfill: RunRecord) -> Response {
    let location = format!("/admin/pipeline/backfills/{}", backfill.run_id);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, header_value(location))],
        Json(backfill),
    )
        .into_response()
}

#[utoipa::path(get, path = "/admin/pipeline/backfills/{backfill_id}", tag = "pipeline",
    params(("backfill_id" = String, Path, description = "The backfill's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The backfill and how many of its months are in each \
            state", body = BackfillSummary),
        (status = 400, description = "Not a backfill id", body = ErrorBody),
        (status = 404, description = "No such backfill", body = ErrorBody)))]
pub(crate) async fn backfill(
    State(state): State<AppState>,
    Path(backfill_id): Path<String>,
) -> Result<Json<BackfillSummary>, ApiError> {
    Ok(Json(
        state
            .services
            .pipeline
            .backfill_summary(&backfill_id)
            .await?,
    ))
}

/// Which partitions to read: in key order, a page at a time.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct PartitionsQuery {
    /// At most this many (1 to 1000, default 100).
    #[param(required = false, nullable = false, minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Only partitions in this state: `pending`, `running`, `succeeded`, `failed`.
    #[param(required = false, nullable = false)]
    status: Option<PartitionStatus>,
    /// The next page: partitions after this one (the last of the page before), as the
    /// `Link` header's `rel="next"` gives it.
    #[param(
        required = false,
        nullable = false,
        pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
    )]
    after: Option<String>,
}

#[utoipa::path(get, path = "/admin/pipeline/backfills/{backfill_id}/partitions", tag = "pipeline",
    params(("backfill_id" = String, Path, description = "The backfill's id"), PartitionsQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of the backfill's months in order, each with its \
            state, run, attempts, rows and error; when the page is full, a `Link` header's \
            `rel=\"next\"` names the next page", body = Vec<PartitionState>,
            headers(("link" = String, description = "`<...&after=2011-03>; rel=\"next\"`"))),
        (status = 400, description = "A bad id, limit, status or page", body = ErrorBody),
        (status = 404, description = "No such backfill", body = ErrorBody)))]
pub(crate) async fn backfill_partitions(
    State(state): State<AppState>,
    Path(backfill_id): Path<String>,
    TypedQuery(query): TypedQuery<PartitionsQuery>,
) -> Result<Response, ApiError> {
    let path = format!("/admin/pipeline/backfills/{backfill_id}/partitions");
    partition_page(&state, PartitionScope::Backfill(backfill_id), &path, &query).await
}

#[utoipa::path(get, path = "/admin/pipeline/assets/{asset}/partitions", tag = "pipeline",
    params(("asset" = String, Path, description = "A partitioned asset: `gold` (by invoice \
        month)"), PartitionsQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of the asset's partitions in order, each with the \
            run that last built it and its rows; when the page is full, a `Link` header's \
            `rel=\"next\"` names the next page", body = Vec<PartitionState>,
            headers(("link" = String, description = "`<...&after=2011-03>; rel=\"next\"`"))),
        (status = 400, description = "A bad limit, status or page", body = ErrorBody),
        (status = 404, description = "No such asset, or it is not partitioned", body = ErrorBody)))]
pub(crate) async fn asset_partitions(
    State(state): State<AppState>,
    Path(asset): Path<String>,
    TypedQuery(query): TypedQuery<PartitionsQuery>,
) -> Result<Response, ApiError> {
    let path = format!("/admin/pipeline/assets/{asset}/partitions");
    partition_page(&state, PartitionScope::Asset(asset), &path, &query).await
}

/// One page of partitions, with the `Link` to the next when it is full.
async fn partition_page(
    state: &AppState,
    scope: PartitionScope,
    path: &str,
    query: &PartitionsQuery,
) -> Result<Response, ApiError> {
    let filter = PartitionFilter {
        status: query.status,
        after: query.after.clone(),
        limit: query.limit.unwrap_or(100),
    };
    let limit = filter.limit;
    let page = state.services.pipeline.partitions(scope, filter).await?;
    let next = (page.len() == limit)
        .then(|| page.last())
        .flatten()
        .map(|last| {
            let mut pairs = url::form_urlencoded::Serializer::new(String::new());
            if let Some(limit) = query.limit {
                pairs.append_pair("limit", &limit.to_string());
            }
            if let Some(status) = query.status {
                pairs.append_pair("status", status.as_str());
            }
            pairs.append_pair("after", &last.partition);
            format!("<{path}?{}>; rel=\"next\"", pairs.finish())
        });
    let mut response = Json(page).into_response();
    if let Some(next) = next
        && let Ok(value) = header::HeaderValue::from_str(&next)
    {
        response.headers_mut().insert(header::LINK, value);
    }
    Ok(response)
}
