//! The platform built by the composition root over a lake of its own: generated data (every
//! checkout has it) or the first days of the real data; users of every role.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use retail_app::{App, Config, Role};
use retail_domain::progress::NoProgress;
use retail_services::alerts::{Clock, SystemClock};
use retail_services::{ApiConfig, RunRequest};
use retail_test_support::Generated;
use tower::ServiceExt as _;

pub(crate) const SECRET: &str = "a test secret of at least thirty-two bytes";
pub(crate) const PASSWORD: &str = "a long test password";
/// One raw transaction as `POST /api/v1/transactions` takes it, dated inside the generated
/// data's range: a pipeline run after it has a new row to refine.
pub(crate) const HEART: &str = r#"{"InvoiceNo": "990001", "StockCode": "85123A",
  "Description": "WHITE HANGING HEART T-LIGHT HOLDER", "Quantity": 6,
  "InvoiceDate": "2011-12-10 09:00:00", "UnitPrice": 2.55, "CustomerID": "17850",
  "Country": "United Kingdom"}"#;

/// The platform and its temporary directory.
pub(crate) struct TestApp {
    dir: tempfile::TempDir,
    pub(crate) app: App,
    pub(crate) router: Router,
    /// The generated data, kept alive while the app runs.
    _data: Option<Generated>,
}

/// The configuration of a test platform in `dir`: embedded everything, `api` for the API.
pub(crate) fn test_config(dir: &std::path::Path, api: ApiConfig) -> Config {
    let mut config = Config::default();
    config.lake.root = dir.join("lake").display().to_string();
    config.metadata.path = dir.join("retail.db").display().to_string();
    config.pipeline.retry_backoff_ms = 10;
    config.api = ApiConfig {
        jwt_secret: SECRET.to_owned(),
        ..api
    };
    config
}

impl TestApp {
    /// Over generated data: `rows` rows over 20 days from 2010-12-01.
    pub(crate) async fn generated(rows: u64, api: ApiConfig) -> Self {
        let data = Generated::new(rows, 20);
        let files = data.files.clone();
        let mut app = Self::over(&files, api, |_| {}).await;
        app._data = Some(data);
        app
    }

    /// Over the first `days` daily files of the real data (`usize::MAX`: all of them).
    pub(crate) async fn real(days: usize, api: ApiConfig) -> Option<Self> {
        let data = retail_test_support::real_data()?;
        let files = retail_test_support::daily_files(&data);
        Some(Self::over(&files[..days.min(files.len())], api, |_| {}).await)
    }

    /// Over `files`, with `tweak` applied to the configuration.
    pub(crate) async fn over(
        files: &[PathBuf],
        api: ApiConfig,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        Self::over_clocked(files, api, tweak, Arc::new(SystemClock)).await
    }

    /// As [`TestApp::over`], the alert manager telling the time by `clock`.
    pub(crate) async fn over_clocked(
        files: &[PathBuf],
        api: ApiConfig,
        tweak: impl FnOnce(&mut Config),
        clock: Arc<dyn Clock>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path(), api);
        tweak(&mut config);
        let app = App::build_with_clock(config, Role::Server, clock)
            .await
            .expect("app");
        let inputs: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        app.services
            .ingest
            .ingest_files(&inputs, "test", &NoProgress)
            .await
            .expect("ingest");
        app.services
            .pipeline
            .run(RunRequest::default(), &NoProgress)
            .await
            .expect("pipeline");
        for role in ["data_analyst", "data_engineer", "admin"] {
            app.services
                .access
                .create_user(role, role, PASSWORD)
                .await
                .expect("user");
        }
        let router = app.router();
        Self {
            dir,
            app,
            router,
            _data: None,
        }
    }

    /// Ingests `files` as the CLI does.
    pub(crate) async fn ingest(&self, files: &[PathBuf]) {
        let inputs: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        self.app
            .services
            .ingest
            .ingest_files(&inputs, "test", &NoProgress)
            .await
            .expect("ingest");
    }

    /// The directory of the lake and the metadata store.
    pub(crate) fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The lake.
    pub(crate) fn lake(&self) -> &retail_lake::Lake {
        &self.app.lake
    }

    /// Sends one request; returns the status, the headers and the body as JSON (`Null` when
    /// the body is not JSON).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        send(
            &self.router,
            method,
            path,
            headers,
            body.map(|b| ("application/json", b)),
        )
        .await
    }

    /// Sends a GET.
    pub(crate) async fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        self.call(Method::GET, path, headers, None).await
    }

    /// Sends a GET; returns the status and the body as text (CSV, JSON lines).
    pub(crate) async fn get_text(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let mut request = Request::builder().method(Method::GET).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// POSTs a body of the given content type.
    pub(crate) async fn call_with_type(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        content_type: &str,
        body: &str,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        send(
            &self.router,
            Method::POST,
            path,
            headers,
            Some((content_type, body)),
        )
        .await
    }

    /// Logs in as `username` and returns the token pair as JSON.
    pub(crate) async fn login(&self, username: &str) -> serde_json::Value {
        let body = serde_json::json!({"username": username, "password": PASSWORD}).to_string();
        let (status, _, json) = self
            .call(Method::POST, "/api/v1/auth/login", &[], Some(&body))
            .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        json
    }

    /// An access token for `username`.
    pub(crate) async fn token(&self, username: &str) -> String {
        self.login(username).await["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// Starts a pipeline run through the API, waits for it to end and returns its record.
    pub(crate) async fn run_pipeline(&self, bearer: &str) -> serde_json::Value {
        let (status, headers, json) = self
            .call(
                Method::POST,
                "/admin/pipeline/run",
                &[("authorization", bearer)],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{json}");
        assert_eq!(json["status"], "running", "{json}");
        let run_id = json["run_id"].as_str().expect("a run id");
        assert_eq!(
            headers["location"],
            format!("/admin/pipeline/runs/{run_id}").as_str()
        );
        self.finished_run(run_id, bearer).await
    }

    /// Waits (up to a minute) for a background run to end and returns its record.
    pub(crate) async fn finished_run(&self, run_id: &str, bearer: &str) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (status, headers, json) = self
                .call(
                    Method::GET,
                    &format!("/admin/pipeline/runs/{run_id}"),
                    &[("authorization", bearer)],
                    None,
                )
                .await;
            if status == StatusCode::TOO_MANY_REQUESTS {
                // A long run outlasts the endpoint's burst: wait as told, as a client would.
                tokio::time::sleep(std::time::Duration::from_secs(retry_after(&headers))).await;
                continue;
            }
            assert_eq!(status, StatusCode::OK, "{json}");
            if json["status"] != "running" {
                return json;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "run {run_id} still running"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Sends one request to `router`.
pub(crate) async fn send(
    router: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> (StatusCode, HeaderMap, serde_json::Value) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some((content_type, _)) = body {
        request = request.header("content-type", content_type);
    }
    let request = request
        .body(body.map_or_else(Body::empty, |(_, b)| Body::from(b.to_owned())))
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, headers, json)
}

/// Asserts the JSON error shape with this code.
/// The `Retry-After` seconds of an answer.
pub(crate) fn retry_after(headers: &HeaderMap) -> u64 {
    headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds")
}

pub(crate) fn assert_error(json: &serde_json::Value, code: &str) {
    assert_eq!(json["error"]["code"], code, "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{json}"
    );
}
