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
