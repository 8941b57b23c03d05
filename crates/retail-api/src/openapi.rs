//! The OpenAPI 3.1 document, generated from the handlers' annotations and completed from the
//! warehouse catalogue: each analytics endpoint's query parameters, and the row of every
//! catalogue query an answer carries, so the document describes every answer's rows.

use retail_domain::column::Column;
use retail_domain::field::{MAX_DESCRIPTION_CHARS, MAX_QUANTITY};
use retail_domain::pattern;
use retail_domain::record::DateWindow;
use retail_services::Catalogue;
use retail_services::catalogue::{ColumnKind, ParamDef, ParamKind, QueryDef};
use retail_services::ingest::MAX_RECORDS;
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::routes::{
    alerts, analytics, audit, entities, gdpr, ingestion, lineage, marketing, models, operations,
    pipeline, recommendations, sales, search, session, transactions,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Retail data platform API", description = "Ingestion, data and analytics over the retail lakehouse. Authenticate with `POST /api/v1/auth/login` and send `Authorization: Bearer <access_token>`, or send an `X-API-Key`."),
    paths(
        operations::health, operations::ready, operations::metrics_text,
        session::login, session::refresh, session::logout,
        analytics::sales_summary, analytics::revenue_trend, analytics::top_products,
        analytics::returns, analytics::rfm, analytics::cohorts, analytics::geography,
        models::forecast, models::anomalies, models::clv, models::models,
        recommendations::product, recommendations::customer,
        search::search, search::suggest,
        entities::customer, entities::product, entities::invoice,
        sales::sales, sales::export,
        pipeline::runs, pipeline::run, pipeline::start, pipeline::status, pipeline::assets,
        pipeline::scheduler, pipeline::start_backfill, pipeline::resume_backfill,
        pipeline::backfill, pipeline::backfill_partitions, pipeline::asset_partitions,
        lineage::lineage,
        ingestion::ingest_transactions,
        transactions::create_transaction, transactions::update_transaction,
        transactions::delete_transaction,
        alerts::receive, alerts::list, alerts::acknowledge, alerts::silences, alerts::silence,
        alerts::expire,
        audit::entries, audit::verify,
        gdpr::forget, gdpr::list, gdpr::report, gdpr::export, gdpr::consent,
        gdpr::record_consent, marketing::audience,
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

/// The schema of a transaction id: 32 lower-case hexadecimal digits.
fn transaction_id() -> Value {
    json!({"type": "string", "pattern": "^[0-9a-f]{32}$"})
}

/// Appends the catalogue's parameters `params` to the operation at `pointer`.
fn add_parameters(json: &mut Value, pointer: &str, params: &[ParamDef]) {
    let Some(operation) = json.pointer_mut(pointer).and_then(Value::as_object_mut) else {
        return;
    };
    let parameters = operation
        .entry("parameters")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(parameters) = parameters.as_array_mut() else {
        return;
    };
    for param in params {
        let mut schema = param.kind.json_schema();
        if let Some(default) = param.default {
            schema["default"] = Value::String(default.to_owned());
        }
        parameters.push(json!({
            "name": param.name,
            "in": "query",
            "required": param.required,
            "description": param.description,
            "schema": schema,
        }));
    }
}

/// Every operation of the document.
fn operations(json: &mut Value) -> impl Iterator<Item = &mut serde_json::Map<String, Value>> {
    json.get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut().filter_map(Value::as_object_mut))
}

/// The answers every operation of a kind can give, whatever its handler does: the guard's
/// (`401`, `403`, `429`, `503`), the body's (`400`, `413`) and the server's (`408`, `500`).
/// An answer an operation documents itself keeps its own description.
fn complete_responses(json: &mut Value) {
    let error = json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
    for operation in operations(json) {
        let protected = operation
            .get("security")
            .and_then(Value::as_array)
            .is_some_and(|s| !s.is_empty());
        let has_body = operation.contains_key("requestBody");
        let has_parameters = operation
            .get("parameters")
            .and_then(Value::as_array)
            .is_some_and(|p| !p.is_empty());
        let mut answers = vec![
            ("408", "The request took longer than api.request_timeout_ms"),
            ("500", "Internal error (logged with the request id)"),
        ];
        if protected {
            answers.extend([
                (
                    "401",
                    "No credential, an unknown, expired or revoked one, or two at once",
                ),
                (
                    "403",
                    "The caller's role lacks the permission this route needs",
                ),
                ("429", "Rate limited: wait Retry-After seconds"),
                (
                    "503",
                    "A dependency (metadata store, Redis, warehouse) is unavailable: retry later",
                ),
            ]);
        }
        if has_body {
            answers.push(("413", "The body is larger than api.body_limit_bytes"));
        }
        let takes_a_key = operation
            .get("parameters")
            .and_then(Value::as_array)
            .is_some_and(|p| p.iter().any(|p| p["name"] == "Idempotency-Key"));
        if takes_a_key {
            answers.push((
                "422",
                "This Idempotency-Key was used before for a different request; nothing written",
            ));
        }
        if has_body || has_parameters {
            answers.push((
                "400",
                "A parameter or the body is not valid; nothing was changed",
            ));
        }
        let Some(responses) = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for (status, description) in answers {
            responses
                .entry(status)
                .or_insert_with(|| json!({"description": description, "content": error.clone()}));
        }
    }
}

/// What the document takes from the running platform: the asset keys a run may name, and the
/// invoice dates a created or updated transaction may carry.
#[derive(Debug, Clone)]
pub struct Context {
    /// The keys of the asset graph's assets.
    pub assets: Vec<String>,
    /// The plausible invoice dates of a record sent now.
    pub dates: DateWindow,
}

impl Context {
    /// The context of the platform `services` serve.
    pub fn of(services: &retail_services::Services) -> Self {
        Self {
            assets: services
                .pipeline
                .assets()
                .into_iter()
                .map(|asset| asset.key.to_owned())
                .collect(),
            dates: services.ingest.plausible_dates(),
        }
    }
}

/// A field of a transaction as JSON: text matching `pattern`, or (`number`) any JSON number the
/// rule accepts as written by a JSON encoder (`17850`, `2.55`).
fn field(pattern: &str, number: Option<Value>, nullable: bool) -> Value {
    let mut choices = vec![json!({"type": "string", "pattern": pattern})];
    choices.extend(number);
    if nullable {
        choices.push(json!({"type": "null"}));
    }
    json!({"anyOf": choices})
}

/// One transaction to create or update: exactly the records the contract's silver rules
/// accept (an invoice date within `dates`' whole years), so a valid document is never refused.
fn transaction_schema(dates: &DateWindow) -> Value {
    let years = dates.whole_years();
    let (first, last) = (*years.start(), *years.end());
    let invoice_date = if first <= last {
        json!({"type": "string", "pattern": pattern::invoice_date(years)})
    } else {
        Value::Bool(false)
    };
    let any_number = json!({"type": "number"});
    json!({
        "type": "object",
        "description": format!(
            "One transaction, checked against the contract's silver rules now: a record they \
             would quarantine is refused. Fields are text or JSON numbers; header variants \
             (`Invoice`, `Price`, `Customer ID`, ...) are accepted as in files, and other keys \
             are kept as extra columns. Invoice dates from {first} to one day after now are \
             accepted; this document lists the whole years {first} to {last}."
        ),
        "properties": {
            "InvoiceNo": field(&pattern::code(), Some(any_number.clone()), false),
            "StockCode": field(&pattern::code(), Some(any_number.clone()), false),
            "Description": {
                "description": format!("At most {MAX_DESCRIPTION_CHARS} characters once white space is collapsed"),
                "anyOf": [{"type": "string", "maxLength": MAX_DESCRIPTION_CHARS}, any_number, {"type": "null"}],
            },
            "Quantity": field(&pattern::quantity(), Some(json!({
                "type": "integer", "minimum": -(MAX_QUANTITY as i64), "maximum": MAX_QUANTITY,
                "not": {"const": 0}})), false),
            "InvoiceDate": invoice_date,
            "UnitPrice": field(&pattern::unit_price(), Some(json!({
                "type": "number", "minimum": 0, "exclusiveMaximum": 1e15, "multipleOf": 0.001})), false),
            "CustomerID": field(&pattern::customer_id(), Some(any_number.clone()), true),
            "Country": field(&pattern::country(), Some(any_number), false),
        },
        "required": ["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "Country"],
    })
}

/// A record sent for ingestion: every field named, text, a number or null. The contract's
/// rules are applied by the pipeline, which quarantines the records that break them.
fn ingest_record_schema() -> Value {
    let value = json!({"type": ["string", "number", "null"]});
    let names = fields();
    let properties: serde_json::Map<String, Value> = names
        .iter()
        .map(|name| ((*name).to_owned(), value.clone()))
        .collect();
    json!({
        "type": "object",
        "description": "One record: the eight fields, each named (null for no value), under these \
                        names or any header variant of files; other keys are kept as extra columns",
        "properties": properties,
        "required": names,
    })
}

/// The names of the eight fields in the UCI sources, in the contract's order.
fn fields() -> [&'static str; 8] {
    Column::ALL.map(Column::source_header)
}

/// CSV in its plainest form: the canonical header, then lines of eight unquoted fields.
fn csv_pattern() -> String {
    let field = r#"[^",\r\n]*"#;
    let row = [field; 8].join(",");
    format!(r"^{}(?:\r?\n{row})+(?:\r?\n)?$", fields().join(","))
}

/// JSON lines of records naming the eight fields, each a string, a whole number or null.
fn json_lines_pattern() -> String {
    let value = r#"(?:null|-?[0-9]{1,15}|"[^"\\\u0000-\u001f]*")"#;
    let object = fields()
        .iter()
        .map(|name| format!(r#""{name}":{value}"#))
        .collect::<Vec<_>>()
        .join(",");
    format!(r"^\{{{object}\}}(?:\n\{{{object}\}})*\n?$")
}

/// The request bodies whose rules the handlers' annotations cannot state.
fn request_bodies(json: &mut Value, context: &Context) {
    let ingest = json!({
        "required": true,
        "description": "Transactions: a JSON object or array of objects, JSON lines or CSV with a \
                        header, as described here; also Parquet (application/vnd.apache.parquet) \
                        or an XLSX workbook \
                        (application/vnd.openxmlformats-officedocument.spreadsheetml.sheet), which \
                        a schema cannot describe. Header variants, quoted fields and extra columns \
                        are accepted as in files. A body with a malformed record is refused whole.",
        "content": {
            "application/json": {"schema": {"oneOf": [
                {"$ref": "#/components/schemas/IngestRecord"},
                {"type": "array", "minItems": 1, "maxItems": MAX_RECORDS,
                 "items": {"$ref": "#/components/schemas/IngestRecord"}},
            ]}},
            "application/x-ndjson": {"schema": {"type": "string", "pattern": json_lines_pattern(),
                "description": "One IngestRecord per line"}},
            "text/csv": {"schema": {"type": "string", "pattern": csv_pattern(),
                "description": "A header and one line per record (RFC 4180 quoting is accepted too)"}},
        },
    });
    let change = json!({
        "required": true,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Transaction"}}},
    });
    let alerts = json!({
        "required": true,
        "content": {"application/json": {"schema": {
            "type": "array", "maxItems": retail_services::alerts::MAX_POSTED,
            "items": {"$ref": "#/components/schemas/PostableAlert"},
        }}},
    });
    for (pointer, body) in [
        (
            "/paths/~1api~1v1~1ingest~1transactions/post/requestBody",
            ingest,
        ),
        ("/paths/~1api~1v2~1alerts/post/requestBody", alerts),
        (
            "/paths/~1api~1v1~1transactions/post/requestBody",
            change.clone(),
        ),
        (
            "/paths/~1api~1v1~1transactions~1{transaction_id}/put/requestBody",
            change,
        ),
    ] {
        if let Some(target) = json.pointer_mut(pointer) {
            let description = target.get("description").cloned();
            *target = body;
            if let (Some(description), None) = (description, target.get("description")) {
                target["description"] = description;
            }
        }
    }
    // A refusal lists the malformed records; a bad header is refused before any is read.
    let refusal = "/paths/~1api~1v1~1ingest~1transactions/post/responses/400/content/application~1json/schema";
    if let Some(schema) = json.pointer_mut(refusal) {
        *schema = json!({"anyOf": [
            {"$ref": "#/components/schemas/IngestRefusal"},
            {"$ref": "#/components/schemas/ErrorBody"},
        ]});
    }
    if let Some(schemas) = json
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        schemas.insert("Transaction".to_owned(), transaction_schema(&context.dates));
        alert_schemas(schemas);
        schemas.insert("IngestRecord".to_owned(), ingest_record_schema());
        if !context.assets.is_empty()
            && let Some(items) = schemas
                .get_mut("StartRun")
                .and_then(|run| run.pointer_mut("/properties/assets"))
        {
            items["items"] = json!({"type": "string", "enum": context.assets});
        }
    }
}

/// The alert manager's bodies, as strict as its checks: matchers of the matcher grammar, at
/// least one; a posted alert's labels named as Prometheus names them, `alertname` required.
fn alert_schemas(schemas: &mut serde_json::Map<String, Value>) {
    use retail_domain::alerts::MATCHER_PATTERN;
    if let Some(matchers) = schemas
        .get_mut("SilenceRequest")
        .and_then(|s| s.pointer_mut("/properties/matchers"))
    {
        matchers["minItems"] = json!(1);
        matchers["items"] = json!({"type": "string", "pattern": MATCHER_PATTERN});
    }
    if let Some(labels) = schemas
        .get_mut("PostableAlert")
        .and_then(|s| s.pointer_mut("/properties/labels"))
    {
        *labels = json!({
            "type": "object",
            "description": "Identify the alert; `alertname` is required. Labels and annotations together are at most 16 KiB.",
            "required": ["alertname"],
            "properties": {"alertname": {"type": "string", "minLength": 1}},
            "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
            "additionalProperties": {"type": "string"},
        });
    }
}

/// The header that makes a retry safe: 1 to 200 visible ASCII characters.
fn idempotency_keys(json: &mut Value) {
    for operation in operations(json) {
        let parameters = operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut);
        for parameter in parameters.into_iter().flatten() {
            if parameter["name"] == "Idempotency-Key" {
                parameter["schema"] = json!({"type": "string", "pattern": "^[!-~]{1,200}$"});
            }
        }
    }
}

/// The document as served at `/openapi.json`.
pub fn document(context: &Context) -> Value {
    let mut json = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let schemas = json
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut);
    if let Some(schemas) = schemas {
        for query in Catalogue::queries() {
            schemas.insert(format!("Row.{}", query.name), row_schema(query));
        }
        // A customer id as the contract reads one (a blank id is answered 422).
        if let Some(request) = schemas.get_mut("ErasureRequest") {
            request["properties"]["customer_id"]["pattern"] = json!(pattern::customer_id());
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
        let pointer = format!("/paths/{}/get", path.replace('/', "~1"));
        if let Ok(query) = Catalogue::get(name) {
            add_parameters(&mut json, &pointer, query.params);
        }
        let response = format!("{pointer}/responses/200/content/application~1json/schema");
        if let Some(schema) = json.pointer_mut(&response) {
            *schema = json!({"$ref": format!("#/components/schemas/AnalyticsAnswer.{name}")});
        }
    }
    // Pages and exports take the filters of their catalogue queries.
    for (path, name) in [
        ("/api/v1/sales", "sales_lines"),
        ("/api/v1/sales/export", "sales_export"),
        ("/api/v1/marketing/audience", "marketing_audience"),
    ] {
        if let Ok(query) = Catalogue::get(name) {
            add_parameters(
                &mut json,
                &format!("/paths/{}/get", path.replace('/', "~1")),
                query.params,
            );
        }
    }
    // Path parameters are checked as the catalogue's text; transaction ids and the audit
    // trail's times are exact.
    let text = ParamKind::Text.json_schema();
    let utc_time = json!({"type": "string",
        "pattern": pattern::utc_time(retail_domain::audit::FILTER_YEARS)});
    let run_id = json!({"type": "string",
        "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"});
    let month = json!({"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"});
    for (path, method, name, schema) in [
        (
            "/api/v1/customers/{customer_id}",
            "get",
            "customer_id",
            text.clone(),
        ),
        (
            "/api/v1/products/{stock_code}",
            "get",
            "stock_code",
            text.clone(),
        ),
        ("/api/v1/invoices/{invoice}", "get", "invoice", text),
        (
            "/api/v1/customers/{customer_id}/export",
            "get",
            "customer_id",
            json!({"type": "string", "pattern": pattern::customer_id()}),
        ),
        (
            "/api/v1/customers/{customer_id}/consent",
            "get",
            "customer_id",
            json!({"type": "string", "pattern": pattern::customer_id()}),
        ),
        (
            "/api/v1/customers/{customer_id}/consent",
            "post",
            "customer_id",
            json!({"type": "string", "pattern": pattern::customer_id()}),
        ),
        (
            "/admin/pipeline/runs/{run_id}",
            "get",
            "run_id",
            run_id.clone(),
        ),
        ("/admin/pipeline/runs", "get", "partition", month.clone()),
        (
            "/admin/pipeline/backfills/{backfill_id}",
            "get",
            "backfill_id",
            run_id.clone(),
        ),
        (
            "/admin/pipeline/backfills/{backfill_id}/partitions",
            "get",
            "backfill_id",
            run_id.clone(),
        ),
        (
            "/admin/pipeline/backfills/{backfill_id}/resume",
            "post",
            "backfill_id",
            run_id.clone(),
        ),
        (
            "/admin/pipeline/backfills/{backfill_id}/partitions",
            "get",
            "after",
            month.clone(),
        ),
        (
            "/admin/pipeline/assets/{asset}/partitions",
            "get",
            "after",
            month,
        ),
        ("/admin/pipeline/runs", "get", "before", run_id),
        ("/admin/pipeline/runs", "get", "since", utc_time.clone()),
        ("/admin/pipeline/runs", "get", "until", utc_time.clone()),
        (
            "/api/v1/transactions/{transaction_id}",
            "put",
            "transaction_id",
            transaction_id(),
        ),
        ("/api/v1/audit", "get", "since", utc_time.clone()),
        ("/api/v1/audit", "get", "until", utc_time),
        (
            "/api/v1/transactions/{transaction_id}",
            "delete",
            "transaction_id",
            transaction_id(),
        ),
    ] {
        let pointer = format!("/paths/{}/{method}/parameters", path.replace('/', "~1"));
        let parameters = json.pointer_mut(&pointer).and_then(Value::as_array_mut);
        for parameter in parameters.into_iter().flatten() {
            if parameter["name"] == name {
                parameter["schema"] = schema.clone();
            }
        }
    }
    request_bodies(&mut json, context);
    idempotency_keys(&mut json);
    complete_responses(&mut json);
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_with_rows_describes_its_columns() {
        let document = document(&Context {
            assets: vec!["silver".to_owned()],
            dates: DateWindow::ingested_now(),
        });
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

    #[test]
    fn every_reference_resolves() {
        fn references<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        found.push(target);
                    }
                    map.values().for_each(|v| references(v, found));
                }
                Value::Array(items) => items.iter().for_each(|v| references(v, found)),
                _ => {}
            }
        }
        let document = document(&Context {
            assets: vec!["silver".to_owned()],
            dates: DateWindow::ingested_now(),
        });
        let mut found = Vec::new();
        references(&document, &mut found);
        assert!(found.len() > 50, "{} references", found.len());
        let unresolved: Vec<_> = found
            .into_iter()
            .filter(|target| {
                target
                    .strip_prefix('#')
                    .and_then(|pointer| document.pointer(pointer))
                    .is_none()
            })
            .collect();
        assert!(unresolved.is_empty(), "unresolved: {unresolved:?}");
    }

    #[test]
    fn lineage_names_every_route_that_answers_with_a_querys_rows() {
        let document = document(&Context {
            assets: vec!["silver".to_owned()],
            dates: DateWindow::ingested_now(),
        });
        let answers = retail_services::lineage::API_ANSWERS;
        for answer in answers {
            assert!(
                document["paths"][answer.route]["get"].is_object(),
                "{} is not a route",
                answer.route
            );
        }
        for (path, query) in analytics::ENDPOINTS {
            assert!(
                answers
                    .iter()
                    .any(|a| a.route == path && a.query == query && a.field == Some("rows")),
                "{path} ({query}) is missing from the lineage's API answers"
            );
        }
    }
}
