//! Analytics answers equal the warehouse catalogue's; bad input gets a clear 4xx.

use axum::http::{Method, StatusCode};
use retail_lake::arrow::array::AsArray as _;
use retail_services::ApiConfig;
use retail_warehouse::{Catalogue, EmbeddedWarehouse, Params, Warehouse as _};

use crate::api::support::{TestApp, assert_error};

/// Equal JSON, numbers to 1e-9 relative (averages are summed in parallel, in any order).
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Asks every analytics endpoint twice and compares the answers with the catalogue's own,
/// run on a warehouse of the app's gold.
async fn endpoints_answer_the_catalogue_and_cache(app: &TestApp) {
    let bearer = format!("Bearer {}", app.token("data_analyst").await);
    let reference = EmbeddedWarehouse::new(app.lake().clone());
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: [Case<'_>; 8] = [
        ("/api/v2/analytics/sales-summary", "sales_summary", &[]),
        (
            "/api/v2/analytics/sales-summary?country=United%20Kingdom&from=2010-12-02&to=2010-12-15",
            "sales_summary",
            &[
                ("country", "United Kingdom"),
                ("from", "2010-12-02"),
                ("to", "2010-12-15"),
            ],
        ),
        (
            "/api/v2/analytics/revenue-trend?grain=day",
            "revenue_trend",
            &[("grain", "day")],
        ),
        (
            "/api/v2/analytics/top-products?limit=5&by=units",
            "top_products",
            &[("limit", "5"), ("by", "units")],
        ),
        ("/api/v2/analytics/returns", "returns", &[]),
        ("/api/v2/analytics/customers/rfm", "rfm_segments", &[]),
        ("/api/v2/analytics/cohorts", "cohort_retention", &[]),
        ("/api/v2/analytics/geography", "geography", &[]),
    ];
    for (path, name, raw) in cases {
        let (status, headers, json) = app.get(path, &[("authorization", &bearer)]).await;
        assert_eq!(status, StatusCode::OK, "{path}: {json}");
        assert_eq!(headers["x-cache"], "miss", "{path}");
        let query = Catalogue::get(name).unwrap();
        let params = Params::parse(query, raw.iter().copied()).unwrap();
        let expected =
            serde_json::to_value(reference.query(query, &params).await.unwrap()).unwrap();
        assert!(
            same_json(&json["rows"], &expected),
            "{path}: {} vs {expected}",
            json["rows"]
        );
        assert_eq!(json["query"], name);
        assert_eq!(json["backend"], "embedded");
        assert!(!expected.as_array().unwrap().is_empty(), "{path} has rows");
        let (_, headers, again) = app.get(path, &[("authorization", &bearer)]).await;
        assert_eq!(headers["x-cache"], "hit", "{path}");
        assert_eq!(again, json);
    }
}

#[tokio::test]
async fn every_analytics_endpoint_answers_what_the_catalogue_answers_and_caches_it() {
    let app = TestApp::generated(6_000, ApiConfig::default()).await;
    endpoints_answer_the_catalogue_and_cache(&app).await;
}

#[tokio::test]
async fn on_the_whole_real_dataset_the_api_serves_the_contract_figures() {
    let Some(app) = TestApp::real(usize::MAX, ApiConfig::default()).await else {
        return;
    };
    endpoints_answer_the_catalogue_and_cache(&app).await;
    let bearer = format!("Bearer {}", app.token("data_analyst").await);
    // The contract's figure, rounded to cents on its way out.
    let (_, _, json) = app
        .get(
            "/api/v2/analytics/sales-summary",
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(json["rows"][0]["net_revenue"].as_f64(), Some(9_748_131.07));
    assert_eq!(json["rows"][0]["customers"], 4372);
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_in_the_error_shape() {
    let config = ApiConfig {
        body_limit_bytes: 1024,
        ..ApiConfig::default()
    };
    let app = TestApp::generated(500, config).await;
    let bearer = format!("Bearer {}", app.token("data_engineer").await);
    let auth = [("authorization", bearer.as_str())];
    for (path, needle) in [
        (
            "/api/v2/analytics/sales-summary?colour=red",
            "unknown parameter",
        ),
        (
            "/api/v2/analytics/sales-summary?from=2011-02-30",
            "not a real date",
        ),
        (
            "/api/v2/analytics/top-products?limit=100000",
            "from 1 to 100",
        ),
        ("/api/v2/analytics/revenue-trend?grain=year", "one of"),
        ("/admin/pipeline/runs?limit=0", "limit"),
        // Dates beyond four-digit years 1900 to 2100 (this one closed the connection with a
        // panic once).
        (
            "/api/v2/analytics/top-products?from=%2B262142-12-15",
            "not a real date",
        ),
        (
            "/api/v2/analytics/revenue-trend?to=1899-12-31",
            "not a real date",
        ),
        (
            "/api/v2/analytics/cohorts?from_cohort=%2B262142-12",
            "not a month",
        ),
        (
            "/api/v1/sales?cursor=%2B262142-12-15T00:00:00~0123456789abcdef0123456789abcdef",
            "not a cursor",
        ),
    ] {
        let (status, _, json) = app.get(path, &auth).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {json}");
        assert_error(&json, "invalid_input");
        assert!(
            json["error"]["message"].as_str().unwrap().contains(needle),
            "{path}: {json}"
        );
    }
    // A reversed period is valid and empty (the document cannot relate two parameters).
    let (status, _, json) = app
        .get(
            "/api/v2/analytics/sales-summary?from=2011-05-01&to=2011-04-01",
            &auth,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["rows"][0]["orders"], 0, "{json}");
    for body in [
        "{not json",
        r#"{"username": "admin"}"#,
        r#"{"username": "admin", "password": "x", "extra": 1}"#,
        r#"{"username": 5, "password": "x"}"#,
    ] {
        let (status, _, json) = app
            .call(Method::POST, "/api/v1/auth/login", &[], Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {json}");
        assert_error(&json, "invalid_input");
    }
    let big = format!(r#"{{"username": "{}", "password": "x"}}"#, "a".repeat(4096));
    let (status, _, json) = app
        .call(Method::POST, "/api/v1/auth/login", &[], Some(&big))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
    assert_error(&json, "payload_too_large");
    let (status, _, json) = app.get("/api/v1/customers/no-such-customer", &auth).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&json, "not_found");
    let (status, _, json) = app.get("/no/such/route", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&json, "not_found");
}

#[tokio::test]
async fn sales_pages_with_a_cursor_invoices_and_streamed_exports() {
    let app = TestApp::generated(5_000, ApiConfig::default()).await;
    let analyst = format!("Bearer {}", app.token("data_analyst").await);
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let get = |path: String, token: String| {
        let app = &app;
        async move { app.get(&path, &[("authorization", &token)]).await }
    };
    let (status, _, whole) = get("/api/v1/sales?limit=10".into(), analyst.clone()).await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    let (_, _, first) = get("/api/v1/sales?limit=5".into(), analyst.clone()).await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, _, second) = get(
        format!("/api/v1/sales?limit=5&cursor={cursor}"),
        analyst.clone(),
    )
    .await;
    let mut paged = first["rows"].as_array().unwrap().clone();
    paged.extend(second["rows"].as_array().unwrap().clone());
    assert_eq!(&paged, whole["rows"].as_array().unwrap());
    let (status, _, json) = get("/api/v1/sales?cursor=garbage".into(), analyst.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");

    // The dataset's first invoice, with every line of it.
    let reference = EmbeddedWarehouse::new(app.lake().clone());
    let lines = reference
        .sql("SELECT count(*) FROM fact_sales WHERE invoice = '536365'")
        .await
        .unwrap();
    let (status, _, json) = get("/api/v1/invoices/536365".into(), engineer.clone()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json["lines"].as_array().unwrap().len().to_string(),
        lines.rows[0][0].to_string()
    );
    let (status, _, _) = get("/api/v1/invoices/536365".into(), analyst.clone()).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "analysts read reports, not single invoices"
    );
    let (status, _, _) = get("/api/v1/invoices/000000".into(), engineer.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An export streams every line of the selection, in as many pages as it takes.
    let expected = reference
        .sql(
            "SELECT count(*) FROM fact_sales f JOIN dim_country c ON c.country_key = f.country_key \
             WHERE c.country_name = 'United Kingdom'",
        )
        .await
        .unwrap();
    let expected = match expected.rows[0][0] {
        retail_warehouse::Cell::Int(n) => n as usize,
        ref other => panic!("{other:?}"),
    };
    assert!(expected > 1000, "more than one page: {expected}");
    let request =
        axum::http::Request::get("/api/v1/sales/export?format=csv&country=United%20Kingdom")
            .header("authorization", &analyst)
            .body(axum::body::Body::empty())
            .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(&bytes[..]);
    assert_eq!(reader.headers().unwrap().get(0), Some("invoice_date"));
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), expected);
    let ids: std::collections::HashSet<&str> = rows.iter().map(|r| r.get(1).unwrap()).collect();
    assert_eq!(ids.len(), expected, "no line twice across pages");
    let csv_total: rust_decimal::Decimal = rows
        .iter()
        .map(|r| r.get(7).unwrap().parse::<rust_decimal::Decimal>().unwrap())
        .sum();

    // The same selection as Parquet: the same lines, exact money, one row group per page.
    let request =
        axum::http::Request::get("/api/v1/sales/export?format=parquet&country=United%20Kingdom")
            .header("authorization", &analyst)
            .body(axum::body::Body::empty())
            .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.apache.parquet"
    );
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .unwrap();
    let reader =
        retail_lake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .expect("a Parquet file");
    assert_eq!(
        reader.metadata().num_row_groups(),
        expected.div_ceil(1000),
        "one row group per page"
    );
    let mut parquet_rows = 0;
    let mut parquet_total = rust_decimal::Decimal::ZERO;
    for batch in reader.build().unwrap() {
        let batch = batch.unwrap();
        parquet_rows += batch.num_rows();
        let totals = batch
            .column_by_name("total_amount")
            .unwrap()
            .as_primitive::<retail_lake::arrow::datatypes::Decimal128Type>();
        for i in 0..totals.len() {
            parquet_total += rust_decimal::Decimal::from_i128_with_scale(totals.value(i), 3);
        }
    }
    assert_eq!(parquet_rows, expected);
    assert_eq!(parquet_total, csv_total);

    let (status, _, json) = get("/api/v1/sales/export?format=xml".into(), analyst.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_error(&json, "invalid_input");
}

#[tokio::test]
async fn exports_are_bounded_in_size_and_in_number_at_once() {
    let config = ApiConfig {
        export_max_rows: 1_500,
        exports_per_user: 1,
        ..ApiConfig::default()
    };
    let app = TestApp::generated(3_000, config).await;
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let export = |path: &'static str| {
        let request = axum::http::Request::get(path)
            .header("authorization", &engineer)
            .body(axum::body::Body::empty())
            .unwrap();
        tower::ServiceExt::oneshot(app.router.clone(), request)
    };
    // Too many lines: refused before anything is sent, saying how to narrow it.
    let response = export("/api/v1/sales/export?format=csv").await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("api.export_max_rows"),
        "{json}"
    );
    // One export at a time per caller: a second one while the first streams is refused.
    let first = export("/api/v1/sales/export?format=jsonl&from=2010-12-01&to=2010-12-05")
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = export("/api/v1/sales/export?format=jsonl&from=2010-12-01&to=2010-12-05")
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(second.headers().contains_key("retry-after"));
    // Reading the first to its end frees the place.
    let lines = axum::body::to_bytes(first.into_body(), 64 << 20)
        .await
        .unwrap()
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .count();
    assert!(lines > 0);
    let third = export("/api/v1/sales/export?format=jsonl&from=2010-12-01&to=2010-12-05")
        .await
        .unwrap();
    assert_eq!(third.status(), StatusCode::OK);
    // An abandoned export (the client went away) frees its place too.
    drop(third);
    let fourth = export("/api/v1/sales/export?format=csv&from=2010-12-01&to=2010-12-05")
        .await
        .unwrap();
    assert_eq!(fourth.status(), StatusCode::OK);
}
