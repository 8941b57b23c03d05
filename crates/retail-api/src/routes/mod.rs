//! The routes, one module per resource; each handler parses, calls one service method and
//! shapes the answer.
//!
//! To add a resource: write a module with its handlers (annotated with `#[utoipa::path]`) and
//! a `routes()` function, merge it here behind the guard of its permission, and list its
//! handlers in `openapi.rs`.

pub(crate) mod alerts;
pub(crate) mod analytics;
pub(crate) mod audit;
pub(crate) mod entities;
pub(crate) mod gdpr;
pub(crate) mod ingestion;
pub(crate) mod lineage;
pub(crate) mod marketing;
pub(crate) mod models;
pub(crate) mod operations;
pub(crate) mod pipeline;
pub(crate) mod recommendations;
pub(crate) mod rows;
pub(crate) mod sales;
pub(crate) mod search;
pub(crate) mod session;
pub(crate) mod transactions;

use crate::guard::protected;
use crate::state::AppState;
use axum::Router;

/// Every route of the API.
pub(crate) fn routes(state: AppState) -> Router {
    let document = crate::openapi::document(&crate::openapi::Context::of(&state.services));
    Router::new()
        .merge(operations::routes())
        .merge(session::routes())
        .merge(protected(&state, "read:analytics", analytics::routes()))
        .merge(protected(&state, "read:analytics", models::routes()))
        .merge(protected(
            &state,
            "read:analytics",
            recommendations::routes(),
        ))
        .merge(protected(&state, "read:search", search::routes()))
        .merge(protected(&state, "read:data", entities::routes()))
        .merge(protected(&state, "read:reports", sales::routes()))
        .merge(protected(&state, "read:pipelines", pipeline::read_routes()))
        .merge(protected(&state, "read:pipelines", lineage::routes()))
        .merge(protected(
            &state,
            "manage:pipelines",
            pipeline::manage_routes(),
        ))
        .merge(protected(&state, "write:etl", ingestion::routes()))
        .merge(protected(&state, "write:etl", transactions::routes()))
        .merge(protected(&state, "write:alerts", alerts::receive_routes()))
        .merge(protected(&state, "read:alerts", alerts::read_routes()))
        .merge(protected(&state, "manage:alerts", alerts::manage_routes()))
        .merge(protected(&state, "manage:audit", audit::routes()))
        .merge(protected(&state, "manage:gdpr", gdpr::routes()))
        .merge(protected(&state, "manage:consent", gdpr::consent_routes()))
        .merge(protected(&state, "export:marketing", marketing::routes()))
        .merge(
            // Serves /openapi.json (the document with the catalogue's parameters and rows)
            // and the docs.
            utoipa_swagger_ui::SwaggerUi::new("/docs")
                .external_url_unchecked("/openapi.json", document),
        )
        .with_state(state)
}

/// A list's `limit`: 100 when absent, else 1 to 1,000.
pub(crate) fn page_limit(limit: Option<usize>) -> Result<usize, crate::error::ApiError> {
    let limit = limit.unwrap_or(100);
    if (1..=1000).contains(&limit) {
        Ok(limit)
    } else {
        Err(crate::error::ApiError::invalid(format!(
            "limit must be 1 to 1000, not {limit}"
        )))
    }
}
