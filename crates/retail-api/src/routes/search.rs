//! `/api/v1/search` and `/api/v1/search/suggest`: products, customers and invoices by words,
//! typos forgiven, by meaning (semantic) or both (hybrid).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use retail_services::search::{SearchPage, SearchQuery, SuggestItem};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ErrorBody};
use crate::extract::TypedQuery;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/search", get(search))
        .route("/api/v1/search/suggest", get(suggest))
}

/// What to search for.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchParams {
    /// The words (1 to 200 characters, not only white space): a description, a stock code, a customer id, an
    /// invoice number, a country.
    #[param(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    q: String,
    /// `product` (default), `customer` or `invoice`.
    #[param(
        required = false,
        nullable = false,
        pattern = "^(product|customer|invoice)$"
    )]
    r#type: Option<String>,
    /// `keyword` (default: BM25, typos forgiven), `semantic` (products by meaning) or
    /// `hybrid` (both, fused by reciprocal rank); customers and invoices are always searched by
    /// keyword (the answer's `mode` says which ranked).
    #[param(
        required = false,
        nullable = false,
        pattern = "^(keyword|semantic|hybrid)$"
    )]
    mode: Option<String>,
    /// Only documents of this country (a product: sold there).
    #[param(required = false, nullable = false)]
    country: Option<String>,
    /// A product's price or an invoice's total at least this.
    #[param(required = false, nullable = false)]
    min_price: Option<f64>,
    /// A product's price or an invoice's total at most this (a reversed range selects nothing).
    #[param(required = false, nullable = false)]
    max_price: Option<f64>,
    /// Products of this line type (`product`, `shipping`, `discount`, ...).
    #[param(required = false, nullable = false)]
    line_type: Option<String>,
    /// Sold, bought or invoiced on or after this day, `YYYY-MM-DD`.
    #[param(required = false, nullable = false)]
    from: Option<NaiveDate>,
    /// Sold, bought or invoiced on or before this day (a reversed period selects nothing).
    #[param(required = false, nullable = false)]
    to: Option<NaiveDate>,
    /// Results per page (1 to 100, default 20).
    #[param(required = false, nullable = false, minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// The previous page's `next_cursor`.
    #[param(required = false, nullable = false, pattern = "^o[0-9]{1,3}$")]
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/search", tag = "search",
    summary = "Search products, customers or invoices, with facets, highlights and pages",
    params(SearchParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of results, the facets and the corrections made", body = SearchPage),
        (status = 400, description = "A parameter is unknown or out of range (a filter that does not apply to the type selects nothing; with search.engine = typesense, semantic and hybrid are refused)", body = ErrorBody),
        (status = 503, description = "The index has not been built yet", body = ErrorBody)))]
pub(crate) async fn search(
    State(state): State<AppState>,
    TypedQuery(params): TypedQuery<SearchParams>,
) -> Result<Json<SearchPage>, ApiError> {
    let query = SearchQuery {
        q: params.q,
        kind: params.r#type,
        mode: params.mode,
        country: params.country,
        min_price: params.min_price,
        max_price: params.max_price,
        line_type: params.line_type,
        from: params.from,
        to: params.to,
        limit: params.limit,
        cursor: params.cursor,
    };
    Ok(Json(state.services.search.search(&query).await?))
}

/// What is being typed.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct SuggestParams {
    /// The words typed so far; the last one is completed.
    #[param(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    q: String,
    /// Only this kind (`product`, `customer`, `invoice`); absent: any.
    #[param(
        required = false,
        nullable = false,
        pattern = "^(product|customer|invoice)$"
    )]
    r#type: Option<String>,
    /// Completions (1 to 50, default 10).
    #[param(required = false, nullable = false, minimum = 1, maximum = 50)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/search/suggest", tag = "search",
    summary = "Type-ahead: documents whose words start with what is typed, best sellers first",
    params(SuggestParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The completions", body = Vec<SuggestItem>),
        (status = 400, description = "A parameter is unknown or out of range", body = ErrorBody),
        (status = 503, description = "The index has not been built yet", body = ErrorBody)))]
pub(crate) async fn suggest(
    State(state): State<AppState>,
    TypedQuery(params): TypedQuery<SuggestParams>,
) -> Result<Json<Vec<SuggestItem>>, ApiError> {
    Ok(Json(
        state
            .services
            .search
            .suggest(&params.q, params.r#type.as_deref(), params.limit)
            .await?,
    ))
}
