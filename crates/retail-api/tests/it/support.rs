//! A lake with a few real days through gold, an embedded warehouse, users of every role.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use retail_api::{ApiConfig, AppState, AuthService, Policy};
use retail_lake::{Lake, LakeConfig};
use retail_pipeline::{
    IngestOptions, IngestService, MetadataStore, NoProgress, PipelineService, RunOptions,
};
use retail_warehouse::{AnyWarehouse, Backend, WarehouseConfig};
use tower::ServiceExt as _;

pub(crate) const SECRET: &str = "a test secret of at least thirty-two bytes";
pub(crate) const PASSWORD: &str = "a long test password";

/// The app over a small real lake, and its temporary directory.
pub(crate) struct TestApp {
    _dir: tempfile::TempDir,
    pub(crate) state: AppState,
    pub(crate) router: Router,
    pub(crate) lake: Lake,
}

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("RETAIL_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/online-retail")
        })
        .join("spark-guide-by-day");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("RETAIL_REQUIRE_TEST_DATA").is_none(),
        "real test data not found at {}",
        dir.display()
    );
    eprintln!("skipped: real test data not found at {}", dir.display());
    None
}

impl TestApp {
    /// The app over the first `days` daily files (`usize::MAX`: all of them), with `config` for
    /// the API.
    pub(crate) async fn new(days: usize, config: ApiConfig) -> Option<Self> {
        let data = data_dir()?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&data)
            .expect("data dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .collect();
        files.sort();
        let inputs: Vec<String> = files[..days.min(files.len())]
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let dir = tempfile::tempdir().expect("temp dir");
        let lake = Lake::new(&LakeConfig {
            root: dir.path().join("lake").display().to_string(),
            ..LakeConfig::default()
        })
        .expect("lake");
        let store = Arc::new(MetadataStore::open_in_memory().expect("store"));
        IngestService::new(lake.clone(), Arc::clone(&store), IngestOptions::default())
            .ingest_paths(&inputs, &NoProgress)
            .await
            .expect("ingest");
        PipelineService::new(lake.clone(), Arc::clone(&store))
            .run(RunOptions::default(), &NoProgress)
            .await
            .expect("pipeline");
        let warehouse = AnyWarehouse::open(
            &WarehouseConfig {
                backend: Backend::Embedded,
                ..WarehouseConfig::default()
            },
            lake.clone(),
        )
        .await
        .expect("warehouse");
        let auth = AuthService::open(None, SECRET, 30, 7).expect("auth");
        for role in ["data_analyst", "data_engineer", "admin"] {
            auth.create_user(role, role, PASSWORD).expect("user");
        }
        let state = AppState::new(
            config,
            lake.clone(),
            store,
            warehouse,
            auth,
            Policy::default(),
        );
        let router = retail_api::router(state.clone());
        Some(Self {
            _dir: dir,
            state,
            router,
            lake,
        })
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
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, headers, json)
    }

    /// POSTs a body of the given content type.
    pub(crate) async fn call_with_type(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        content_type: &str,
        body: &str,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("content-type", content_type);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::from(body.to_owned())).expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, headers, json)
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
}

/// Asserts the JSON error shape with this code.
pub(crate) fn assert_error(json: &serde_json::Value, code: &str) {
    assert_eq!(json["error"]["code"], code, "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{json}"
    );
}
