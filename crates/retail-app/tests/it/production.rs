//! The platform with its metadata in PostgreSQL, as the production profile runs it: replicas
//! over one lake and one store share users, runs and the pipeline's lock.

use axum::http::{Method, StatusCode};
use retail_app::{App, Config, Role};
use retail_metadata::{PostgresStore, RunKind};
use retail_services::ApiConfig;
use retail_test_support::{Generated, postgres_url, unique_name};

use crate::api::support::{PASSWORD, TestApp, assert_error, send, test_config};

#[tokio::test]
async fn replicas_on_a_postgres_metadata_store_share_users_runs_and_the_pipeline_lock() {
    let Some(url) = postgres_url() else { return };
    let schema = unique_name("app_metadata");
    let on_postgres = |config: &mut Config| {
        config.metadata.url.clone_from(&url);
        config.metadata.schema.clone_from(&schema);
        config.metadata.pool_size = 2;
    };
    let data = Generated::new(2_000, 20);
    let app = TestApp::over(&data.files[..10], ApiConfig::default(), on_postgres).await;
    assert_eq!(
        app.app.store.location(),
        format!("PostgreSQL schema {schema}")
    );
    assert!(
        !app.dir().join("retail.db").exists(),
        "no SQLite file beside the lake"
    );

    // A second replica, built as `retail serve` builds it, over the same lake and store.
    let mut config = test_config(app.dir(), ApiConfig::default());
    on_postgres(&mut config);
    let replica = App::build(config, Role::Server).await.unwrap();
    let router = replica.router();

    // A user created through the first replica logs in at the second.
    let body = serde_json::json!({"username": "data_engineer", "password": PASSWORD}).to_string();
    let (status, _, login) = send(
        &router,
        Method::POST,
        "/api/v1/auth/login",
        &[],
        Some(("application/json", &body)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let bearer = format!("Bearer {}", login["access_token"].as_str().unwrap());
    let auth = [("authorization", bearer.as_str())];

    // While the first replica's process holds the pipeline, the second refuses to start one.
    let held = app.app.store.claim("pipeline run").await.unwrap();
    let (status, _, json) = send(&router, Method::POST, "/admin/pipeline/run", &auth, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert_error(&json, "conflict");
    drop(held);

    // New days ingested through the first replica are processed by a run the second starts;
    // the first follows the run by its id.
    app.ingest(&data.files[10..]).await;
    let (status, _, started) =
        send(&router, Method::POST, "/admin/pipeline/run", &auth, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run = app
        .finished_run(started["run_id"].as_str().unwrap(), &bearer)
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["detail"]["requested_by"], "api:data_engineer");

    // Both replicas list the same history: two ingestions and two pipeline runs.
    for store in [&app.app.store, &replica.store] {
        assert_eq!(
            store.runs(Some(RunKind::Ingest), 10).await.unwrap().len(),
            2
        );
        assert_eq!(
            store.runs(Some(RunKind::Pipeline), 10).await.unwrap().len(),
            2
        );
    }

    drop(replica);
    drop(app);
    PostgresStore::connect(&url, &schema, 1)
        .await
        .unwrap()
        .drop_schema()
        .await
        .unwrap();
}
