//! Health, readiness, metrics, OpenAPI, docs, request ids, and a real server on a port.

use axum::http::{Method, StatusCode};
use retail_api::ApiConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::TestApp;

#[tokio::test]
async fn operations_endpoints_describe_the_service() {
    let Some(app) = TestApp::new(1, ApiConfig::default()).await else {
        return;
    };
    let (status, headers, json) = app.call(Method::GET, "/health", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["status"], "ok");
    assert!(
        !headers["x-request-id"].is_empty(),
        "every response has a request id"
    );
    let (_, headers, _) = app
        .call(Method::GET, "/health", &[("x-request-id", "abc-123")], None)
        .await;
    assert_eq!(headers["x-request-id"], "abc-123", "a caller's id is kept");

    let (status, _, json) = app.call(Method::GET, "/ready", &[], None).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    for check in ["lake", "warehouse", "metadata"] {
        assert_eq!(json["checks"][check], "ok", "{json}");
    }

    let (status, _, openapi) = app.call(Method::GET, "/openapi.json", &[], None).await;
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
    ] {
        assert!(
            openapi["paths"][path][method].is_object(),
            "{method} {path} is in the document"
        );
    }

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

    let (status, _, _) = app.call(Method::GET, "/metrics", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let request = axum::http::Request::get("/metrics")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request)
        .await
        .unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("retail_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/health\""), "{text}");
    assert!(
        text.contains("retail_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("retail_layer_rows{layer=\"bronze\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn a_real_server_on_a_random_port_answers_over_tcp() {
    let Some(app) = TestApp::new(1, ApiConfig::default()).await else {
        return;
    };
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
    let Some(app) = TestApp::new(1, ApiConfig::default()).await else {
        return;
    };
    // A PostgreSQL warehouse on a port where nothing listens.
    let config = retail_warehouse::WarehouseConfig {
        backend: retail_warehouse::Backend::Postgres,
        postgres_url: "postgres://u@127.0.0.1:1/db".to_owned(),
        connect_timeout_ms: 200,
        max_attempts: 1,
        ..Default::default()
    };
    let warehouse = retail_warehouse::AnyWarehouse::Postgres(
        retail_warehouse::PostgresWarehouse::connect(&config)
            .await
            .unwrap(),
    );
    let auth = retail_api::AuthService::open(None, crate::support::SECRET, 30, 7).unwrap();
    auth.create_user("admin", "admin", crate::support::PASSWORD)
        .unwrap();
    let state = retail_api::AppState::new(
        ApiConfig::default(),
        app.lake.clone(),
        std::sync::Arc::new(retail_pipeline::MetadataStore::open_in_memory().unwrap()),
        warehouse,
        auth,
        retail_api::Policy::default(),
    );
    let router = retail_api::router(state);
    let call = |path: &'static str, token: Option<String>| {
        let router = router.clone();
        async move {
            let mut request = axum::http::Request::get(path);
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let response = tower::ServiceExt::oneshot(
                router,
                request.body(axum::body::Body::empty()).unwrap(),
            )
            .await
            .unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (
                status,
                headers,
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default(),
            )
        }
    };
    let login = {
        let request = axum::http::Request::post("/api/v1/auth/login")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                serde_json::json!({"username": "admin", "password": crate::support::PASSWORD})
                    .to_string(),
            ))
            .unwrap();
        let response = tower::ServiceExt::oneshot(router.clone(), request)
            .await
            .unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
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
    assert!(
        headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert!(
        started.elapsed() < std::time::Duration::from_millis(150),
        "fails fast"
    );
    let (status, _, json) = call("/ready", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["status"], "not_ready");
    assert!(
        json["checks"]["warehouse"]
            .as_str()
            .unwrap()
            .contains("circuit open"),
        "{json}"
    );
}
