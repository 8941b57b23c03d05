//! Health, readiness, metrics, OpenAPI, docs, request ids, and a real server on a port.

use axum::http::{Method, StatusCode};
use retail_services::ApiConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::api::support::{PASSWORD, TestApp, retry_after, send, test_config};

#[tokio::test]
async fn operations_endpoints_describe_the_service() {
    let app = TestApp::generated(500, ApiConfig::default()).await;
    let (status, headers, json) = app.get("/health", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["status"], "ok");
    assert!(
        !headers["x-request-id"].is_empty(),
        "every response has a request id"
    );
    let (_, headers, _) = app.get("/health", &[("x-request-id", "abc-123")]).await;
    assert_eq!(headers["x-request-id"], "abc-123", "a caller's id is kept");

    let (status, _, json) = app.get("/ready", &[]).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    for check in ["lake", "warehouse", "metadata"] {
        assert_eq!(json["checks"][check], "ok", "{json}");
    }

    let (status, _, openapi) = app.get("/openapi.json", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        openapi["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        openapi["openapi"]
    );
    let params = &openapi["paths"]["/api/v2/analytics/top-products"]["get"]["parameters"];
    let names: Vec<&str> = params
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["from", "to", "country", "by", "limit"]);
    assert!(openapi["components"]["securitySchemes"]["bearer"].is_object());
    // Every route is documented, the transaction changes included.
    for (path, method) in [
        ("/api/v1/ingest/transactions", "post"),
        ("/api/v1/transactions", "post"),
        ("/api/v1/transactions/{transaction_id}", "put"),
        ("/api/v1/transactions/{transaction_id}", "delete"),
        ("/api/v1/sales/export", "get"),
        ("/admin/pipeline/run", "post"),
        ("/admin/pipeline/runs/{run_id}", "get"),
        ("/admin/pipeline/status", "get"),
        ("/admin/pipeline/assets", "get"),
    ] {
        assert!(
            openapi["paths"][path][method].is_object(),
            "{method} {path} is in the document"
        );
    }

    // The document is the contract: every answer the guard and the server can give is
    // documented, and parameters and bodies are as strict as the server's checks.
    let paths = openapi["paths"].as_object().unwrap();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let responses = &operation["responses"];
            for status in ["408", "500"] {
                assert!(responses[status].is_object(), "{method} {path} {status}");
            }
            if operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
            {
                for status in ["401", "403", "429", "503"] {
                    assert!(responses[status].is_object(), "{method} {path} {status}");
                }
            }
        }
    }
    let bearer = format!("Bearer {}", app.token("admin").await);
    let assets: Vec<String> = app
        .get(
            "/admin/pipeline/assets",
            &[("authorization", bearer.as_str())],
        )
        .await
        .2
        .as_array()
        .unwrap()
        .iter()
        .map(|asset| asset["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        openapi["components"]["schemas"]["StartRun"]["properties"]["assets"]["items"]["enum"],
        serde_json::json!(assets)
    );
    let transaction = &openapi["components"]["schemas"]["Transaction"];
    assert_eq!(
        transaction["required"],
        serde_json::json!([
            "InvoiceNo",
            "StockCode",
            "Quantity",
            "InvoiceDate",
            "UnitPrice",
            "Country"
        ])
    );
    let body = &openapi["paths"]["/api/v1/transactions"]["post"]["requestBody"];
    assert_eq!(body["required"], true);
    assert_eq!(
        body["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Transaction"
    );
    let runs = &openapi["paths"]["/admin/pipeline/runs"]["get"]["parameters"];
    assert!(
        runs.as_array().unwrap().iter().all(|p| p["in"] == "query"),
        "{runs}"
    );

    let request = axum::http::Request::get("/docs/")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the docs page is served by the binary"
    );

    let (status, _, _) = app.get("/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let text = metrics_text(&app).await;
    assert!(text.contains("retail_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/health\""), "{text}");
    assert!(
        text.contains("retail_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("retail_lake_table_rows{table=\"bronze/retail_transactions\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn a_real_server_on_a_random_port_answers_over_tcp() {
    let app = TestApp::generated(500, ApiConfig::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = app.router.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"status\":\"ok\""), "{response}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_unreachable_warehouse_opens_the_circuit_and_ready_says_so() {
    let app = TestApp::generated(500, ApiConfig::default()).await;
    // A PostgreSQL warehouse on a port where nothing listens (a command's build: `retail
    // serve` itself refuses to start without its warehouse).
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), ApiConfig::default());
    config.lake.root = app.lake().root().to_string();
    config.warehouse = retail_warehouse::WarehouseConfig {
        backend: retail_warehouse::Backend::Postgres,
        postgres_url: "postgres://u@127.0.0.1:1/db".to_owned(),
        connect_timeout_ms: 200,
        max_attempts: 1,
        ..Default::default()
    };
    let broken = retail_app::App::build(config, retail_app::Role::Cli)
        .await
        .unwrap();
    broken
        .services
        .access
        .create_user("admin", "admin", PASSWORD)
        .await
        .unwrap();
    let router = broken.router();
    let call = |path: &'static str, token: Option<String>| {
        let router = router.clone();
        async move {
            let bearer = token.map(|t| format!("Bearer {t}"));
            let headers: Vec<(&str, &str)> = bearer
                .iter()
                .map(|b| ("authorization", b.as_str()))
                .collect();
            send(&router, Method::GET, path, &headers, None).await
        }
    };
    let login = {
        let body = serde_json::json!({"username": "admin", "password": PASSWORD}).to_string();
        let (_, _, json) = send(
            &router,
            Method::POST,
            "/api/v1/auth/login",
            &[],
            Some(("application/json", &body)),
        )
        .await;
        json["access_token"].as_str().unwrap().to_owned()
    };
    for _ in 0..5 {
        let (status, _, json) = call("/api/v2/analytics/geography", Some(login.clone())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    }
    let started = std::time::Instant::now();
    let (status, headers, json) = call("/api/v2/analytics/geography", Some(login.clone())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("circuit is open"),
        "{json}"
    );
    assert!(retry_after(&headers) >= 1);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(150),
        "fails fast"
    );
    let (status, _, json) = call("/ready", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["status"], "not_ready");
    assert_eq!(json["checks"]["warehouse"], "circuit_open", "{json}");
    assert_eq!(json["checks"]["lake"], "ok", "{json}");
}

/// `/metrics` as text.
async fn metrics_text(app: &TestApp) -> String {
    let request = axum::http::Request::get("/metrics")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request)
        .await
        .unwrap();
    String::from_utf8(
        axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap()
}

/// What `promtool check metrics` says of `text` (empty: nothing to say).
fn promtool_check(promtool: &std::path::Path, text: &str) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool refused the metrics: {said}\n{text}"
    );
    said
}

#[tokio::test]
async fn metrics_pass_promtool_fresh_and_under_load_and_name_the_whole_catalogue() {
    let Some(promtool) = retail_test_support::promtool() else {
        return;
    };
    // The recorder first, as `retail serve` installs it before any run.
    let _ = retail_telemetry::prometheus::handle();
    let app = TestApp::generated(3_000, ApiConfig::default()).await;
    assert_eq!(promtool_check(&promtool, &metrics_text(&app).await), "");
    let bearer = format!("Bearer {}", app.token("data_analyst").await);
    for _ in 0..3 {
        for path in [
            "/api/v2/analytics/returns",
            "/api/v2/analytics/geography",
            "/health",
            "/api/v2/analytics/nope",
        ] {
            app.get(path, &[("authorization", &bearer)]).await;
        }
    }
    let text = metrics_text(&app).await;
    assert_eq!(promtool_check(&promtool, &text), "", "{text}");
    for name in [
        "retail_http_requests_total",
        "retail_http_request_duration_seconds_bucket",
        "retail_api_cache_total",
        "retail_warehouse_query_duration_seconds_bucket{query=\"returns\",backend=\"embedded\",outcome=\"ok\"",
        "retail_warehouse_breaker_state 0",
        "retail_lake_table_rows{table=\"gold/fact_sales\"}",
        "retail_api_cache_total{tier=\"process\",result=\"hit\"}",
        "retail_gold_net_revenue",
        "retail_gold_orders",
        "retail_gold_customers",
        "retail_pipeline_runs_total",
        "retail_pipeline_asset_runs_total{asset=\"gold/fact_sales\",status=\"materialized\"}",
        "retail_pipeline_asset_rows_total",
        "retail_pipeline_reconciliation_balanced 1",
        "retail_pipeline_quarantined_rows_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    // The business figures are gold's, as the catalogue answers them.
    let (_, _, summary) = app
        .get(
            "/api/v2/analytics/sales-summary",
            &[("authorization", &bearer)],
        )
        .await;
    let gauge = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    let row = &summary["rows"][0];
    assert_eq!(
        gauge("retail_gold_orders"),
        row["orders"].as_f64().unwrap(),
        "{summary}"
    );
    assert_eq!(
        gauge("retail_gold_customers"),
        row["customers"].as_f64().unwrap()
    );
    let net = row["net_revenue"].as_f64().unwrap();
    assert!(
        (gauge("retail_gold_net_revenue") - net).abs() < 0.01,
        "{net}"
    );
}
