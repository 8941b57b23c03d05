//! The OpenAPI 3.1 document, generated from the handlers' annotations and completed from the
//! warehouse catalogue: each analytics endpoint's query parameters, and the row of every
//! catalogue query an answer carries, so the document describes every answer's rows.

use retail_services::Catalogue;
use retail_services::catalogue::{ColumnKind, ParamKind, QueryDef};
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::routes::{
    analytics, entities, ingestion, operations, pipeline, sales, session, transactions,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Retail data platform API", description = "Ingestion, data and analytics over the retail lakehouse. Authenticate with `POST /api/v1/auth/login` and send `Authorization: Bearer <access_token>`, or send an `X-API-Key`."),
    paths(
        operations::health, operations::ready, operations::metrics_text,
        session::login, session::refresh, session::logout,
        analytics::sales_summary, analytics::revenue_trend, analytics::top_products,
        analytics::returns, analytics::rfm, analytics::cohorts, analytics::geography,
        entities::customer, entities::product, entities::invoice,
        sales::sales, sales::export,
        pipeline::runs, pipeline::run, pipeline::start, pipeline::status, pipeline::assets,
        ingestion::ingest_transactions,
        transactions::create_transaction, transactions::update_transaction,
        transactions::delete_transaction,
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

fn parameter_schema(kind: ParamKind) -> Value {
    match kind {
        ParamKind::Date => json!({"type": "string", "format": "date"}),
        ParamKind::Month => json!({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}),
        ParamKind::Text => json!({"type": "string", "minLength": 1, "maxLength": 200}),
        ParamKind::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
        ParamKind::Choice(words) => json!({"type": "string", "enum": words}),
        ParamKind::Cursor => json!({"type": "string"}),
    }
}

/// The schema of one row of a catalogue query.
fn row_schema(query: &QueryDef) -> Value {
    let mut properties = serde_json::Map::new();
    for column in query.columns {
        let (kind, extra) = match column.kind {
            ColumnKind::Money => ("number", json!({"description": "money, rounded to cents"})),
            ColumnKind::Int => ("integer", json!({})),
            ColumnKind::Float => ("number", json!({})),
            ColumnKind::Text => ("string", json!({})),
            ColumnKind::Date => ("string", json!({"format": "date"})),
            ColumnKind::Timestamp => (
                "string",
                json!({"pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$",
                       "description": "shop-local time, no zone"}),
            ),
            ColumnKind::Bool => ("boolean", json!({})),
        };
        let mut schema = extra;
        schema["type"] = if column.nullable {
            json!([kind, "null"])
        } else {
            json!(kind)
        };
        properties.insert(column.name.to_owned(), schema);
    }
    let required: Vec<&str> = query.columns.iter().map(|c| c.name).collect();
    json!({
        "type": "object",
        "description": query.description,
        "properties": properties,
        "required": required,
    })
}

fn row_ref(query: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/Row.{query}")})
}

/// The document as served at `/openapi.json`.
pub fn document() -> Value {
    let mut json = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let schemas = json
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut);
    if let Some(schemas) = schemas {
        for query in Catalogue::queries() {
            schemas.insert(format!("Row.{}", query.name), row_schema(query));
        }
        // Each analytics endpoint answers with the rows of its query.
        for (_, name) in analytics::ENDPOINTS {
            let mut answer = schemas.get("AnalyticsAnswer").cloned().unwrap_or_default();
            answer["properties"]["rows"] = json!({"type": "array", "items": row_ref(name)});
            schemas.insert(format!("AnalyticsAnswer.{name}"), answer);
        }
        let typed = [
            ("CustomerView", "profile", "customer_profile", false),
            ("CustomerView", "invoices", "customer_history", true),
            ("ProductView", "profile", "product_profile", false),
            ("ProductView", "months", "product_history", true),
            ("InvoiceView", "lines", "sales_lines", true),
            ("SalesPage", "rows", "sales_lines", true),
        ];
        for (schema, property, query, many) in typed {
            if let Some(target) = schemas.get_mut(schema) {
                target["properties"][property] = if many {
                    json!({"type": "array", "items": row_ref(query)})
                } else {
                    row_ref(query)
                };
            }
        }
    }
    for (path, name) in analytics::ENDPOINTS {
        let Ok(query) = Catalogue::get(name) else {
            continue;
        };
        let parameters: Vec<Value> = query
            .params
            .iter()
            .map(|param| {
                let mut schema = parameter_schema(param.kind);
                if let Some(default) = param.default {
                    schema["default"] = Value::String(default.to_owned());
                }
                json!({
                    "name": param.name,
                    "in": "query",
                    "required": param.required,
                    "description": param.description,
                    "schema": schema,
                })
            })
            .collect();
        let pointer = format!("/paths/{}/get", path.replace('/', "~1"));
        if let Some(operation) = json.pointer_mut(&pointer).and_then(Value::as_object_mut) {
            operation.insert("parameters".to_owned(), Value::Array(parameters));
        }
        let response = format!("{pointer}/responses/200/content/application~1json/schema");
        if let Some(schema) = json.pointer_mut(&response) {
            *schema = json!({"$ref": format!("#/components/schemas/AnalyticsAnswer.{name}")});
        }
    }
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_with_rows_describes_its_columns() {
        let document = document();
        let schemas = &document["components"]["schemas"];
        for query in Catalogue::queries() {
            let row = &schemas[format!("Row.{}", query.name)];
            assert_eq!(
                row["properties"].as_object().map(serde_json::Map::len),
                Some(query.columns.len()),
                "{}",
                query.name
            );
        }
        let trend = &document["paths"]["/api/v2/analytics/revenue-trend"]["get"];
        assert!(
            trend["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "grain")
        );
        assert_eq!(
            trend["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/AnalyticsAnswer.revenue_trend"
        );
        assert_eq!(
            schemas["AnalyticsAnswer.revenue_trend"]["properties"]["rows"]["items"]["$ref"],
            "#/components/schemas/Row.revenue_trend"
        );
        assert_eq!(
            schemas["Row.revenue_trend"]["properties"]["net_revenue"]["type"],
            "number"
        );
        assert_eq!(
            schemas["SalesPage"]["properties"]["rows"]["items"]["$ref"],
            "#/components/schemas/Row.sales_lines"
        );
        assert!(schemas["RunRecord"].is_object(), "runs are typed");
    }
}
