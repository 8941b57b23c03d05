//! The OpenAPI 3.1 document, generated from the handlers' annotations; the analytics
//! endpoints' query parameters come from the warehouse catalogue's definitions.

use retail_warehouse::Catalogue;
use retail_warehouse::catalogue::ParamKind;
use utoipa::OpenApi;

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "Retail data platform API", description = "Ingestion, data and analytics over the retail lakehouse. Authenticate with `POST /api/v1/auth/login` and send `Authorization: Bearer <access_token>`, or send an `X-API-Key`."),
    paths(
        routes::health, routes::ready, routes::metrics_text,
        routes::login, routes::refresh, routes::logout,
        routes::sales_summary, routes::revenue_trend, routes::top_products, routes::returns,
        routes::rfm, routes::cohorts, routes::geography,
        routes::customer, routes::product, routes::invoice, routes::sales, routes::export,
        routes::pipeline_runs, routes::pipeline_run, routes::ingest_transactions,
        crate::changes::create_transaction, crate::changes::update_transaction,
        crate::changes::delete_transaction,
    ),
    modifiers(&Security),
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// Which catalogue query each analytics path runs.
const ANALYTICS: [(&str, &str); 7] = [
    ("/api/v2/analytics/sales-summary", "sales_summary"),
    ("/api/v2/analytics/revenue-trend", "revenue_trend"),
    ("/api/v2/analytics/top-products", "top_products"),
    ("/api/v2/analytics/returns", "returns"),
    ("/api/v2/analytics/customers/rfm", "rfm_segments"),
    ("/api/v2/analytics/cohorts", "cohort_retention"),
    ("/api/v2/analytics/geography", "geography"),
];

/// The document as served at `/openapi.json`, with the analytics parameters filled in from
/// the catalogue.
pub(crate) fn document_json() -> serde_json::Value {
    let mut json = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    for (path, name) in ANALYTICS {
        let Ok(query) = Catalogue::get(name) else {
            continue;
        };
        let parameters: Vec<serde_json::Value> = query
            .params
            .iter()
            .map(|param| {
                let schema = match param.kind {
                    ParamKind::Date => serde_json::json!({"type": "string", "format": "date"}),
                    ParamKind::Month => {
                        serde_json::json!({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"})
                    }
                    ParamKind::Text => {
                        serde_json::json!({"type": "string", "minLength": 1, "maxLength": 200})
                    }
                    ParamKind::Int { min, max } => {
                        serde_json::json!({"type": "integer", "minimum": min, "maximum": max})
                    }
                    ParamKind::Choice(words) => {
                        serde_json::json!({"type": "string", "enum": words})
                    }
                    ParamKind::Cursor => serde_json::json!({"type": "string"}),
                };
                let mut schema = schema;
                if let Some(default) = param.default {
                    schema["default"] = serde_json::Value::String(default.to_owned());
                }
                serde_json::json!({
                    "name": param.name,
                    "in": "query",
                    "required": param.required,
                    "description": param.description,
                    "schema": schema,
                })
            })
            .collect();
        if let Some(operation) = json
            .pointer_mut(&format!("/paths/{}/get", path.replace('/', "~1")))
            .and_then(serde_json::Value::as_object_mut)
        {
            operation.insert(
                "parameters".to_owned(),
                serde_json::Value::Array(parameters),
            );
        }
    }
    json
}
