//! `/admin/pipeline/...`: start a run (in the background), follow runs, see where the
//! pipeline stands.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use retail_services::{AssetInfo, PipelineStatus, RunKind, RunRecord, RunRequest};
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
}

/// Routes that act (`manage:pipelines`).
pub(crate) fn manage_routes() -> Router<AppState> {
    Router::new().route("/admin/pipeline/run", post(start))
}

/// Which runs to list.
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
}

#[utoipa::path(get, path = "/admin/pipeline/runs", tag = "pipeline", params(RunsQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Recorded runs, newest first", body = Vec<RunRecord>),
        (status = 400, description = "A bad limit or kind", body = ErrorBody)))]
pub(crate) async fn runs(
    State(state): State<AppState>,
    TypedQuery(query): TypedQuery<RunsQuery>,
) -> Result<Json<Vec<RunRecord>>, ApiError> {
    Ok(Json(
        state
            .services
            .pipeline
            .runs(query.kind, query.limit.unwrap_or(20))
            .await?,
    ))
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
