//! Catalogue query results as JSON answers.

use retail_services::QueryResult;
use serde::Serialize;

/// Rows of a catalogue query, one object per row, money rounded to cents. The OpenAPI
/// document describes each query's row from the catalogue.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub(crate) struct Rows(pub(crate) QueryResult);

/// The first row of a result as one object (`null` when there is none).
pub(crate) fn first_row(result: &QueryResult) -> serde_json::Value {
    serde_json::to_value(result)
        .ok()
        .and_then(|rows| rows.as_array().and_then(|rows| rows.first().cloned()))
        .unwrap_or_default()
}
