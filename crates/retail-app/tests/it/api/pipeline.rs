//! Pipeline runs through the API: background jobs followed by their id, one at a time, the
//! asset graph and its staleness, and runs a dead process left behind.

use axum::http::{Method, StatusCode};
use retail_metadata::{RunKind, RunRecord};
use retail_services::ApiConfig;
use retail_test_support::Generated;

use crate::api::support::{TestApp, assert_error, test_config};

#[tokio::test]
async fn an_api_run_is_a_background_job_that_brings_every_asset_and_follower_up_to_date() {
    let data = Generated::new(3_000, 20);
    let app = TestApp::over(&data.files[..15], ApiConfig::default(), |_| {}).await;
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let auth = [("authorization", engineer.as_str())];

    let (status, _, assets) = app.get("/admin/pipeline/assets", &auth).await;
    assert_eq!(status, StatusCode::OK, "{assets}");
    let keys: Vec<&str> = assets
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "silver",
            "gold",
            "models",
            "recommendations",
            "warehouse/embedded",
            "search"
        ]
    );

    // The analytics answer before the new days, which loads the embedded snapshot.
    let summary = || async {
        let (status, _, json) = app.get("/api/v2/analytics/sales-summary", &auth).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        json
    };
    let before = summary().await;

    // New days arrive; the status tells what is behind.
    app.ingest(&data.files[15..]).await;
    let (_, _, status) = app.get("/admin/pipeline/status", &auth).await;
    assert_eq!(status["silver_up_to_date"], false, "{status}");
    assert_eq!(status["assets"][0]["asset"], "silver");
    assert_eq!(
        status["assets"][0]["staleness"]["state"], "stale",
        "{status}"
    );

    let run = app.run_pipeline(&engineer).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["detail"]["requested_by"], "api:data_engineer");
    let assets: Vec<(&str, &str)> = run["detail"]["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["asset"].as_str().unwrap(), a["status"].as_str().unwrap()))
        .collect();
    assert!(
        assets.contains(&("silver/retail_transactions", "materialized")),
        "{assets:?}"
    );
    assert!(
        assets.contains(&("gold/fact_sales", "materialized")),
        "{assets:?}"
    );
    for follower in ["warehouse/embedded", "search", "recommendations"] {
        assert!(
            assets.contains(&(follower, "materialized")),
            "{follower}: {assets:?}"
        );
    }
    assert!(run["detail"]["reconciliation"].is_object(), "{run}");
    let (_, _, status) = app.get("/admin/pipeline/status", &auth).await;
    for asset in status["assets"].as_array().unwrap() {
        assert_eq!(asset["staleness"]["state"], "up_to_date", "{asset}");
    }

    // The embedded warehouse followed gold in the same run: the API serves the new days at
    // once, under a new data version.
    let after = summary().await;
    assert_ne!(after["data_version"], before["data_version"]);
    assert!(
        after["rows"][0]["lines"].as_u64() > before["rows"][0]["lines"].as_u64(),
        "{before} then {after}"
    );

    // The run is listed, and found by id; bad ids and unknown assets are clear 4xx.
    let (_, _, runs) = app
        .get("/admin/pipeline/runs?kind=pipeline&limit=1", &auth)
        .await;
    assert_eq!(runs[0]["run_id"], run["run_id"]);
    let (status, _, json) = app.get("/admin/pipeline/runs/not-a-run", &auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    let (status, _, json) = app
        .get(
            "/admin/pipeline/runs/0190a6a4-0000-7000-8000-000000000000",
            &auth,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    assert_error(&json, "not_found");
    let (status, _, json) = app
        .call(
            Method::POST,
            "/admin/pipeline/run",
            &auth,
            Some(r#"{"assets": ["search/index"]}"#),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown asset"),
        "{json}"
    );
}

#[tokio::test]
async fn a_run_while_another_holds_the_pipeline_is_refused_with_409_and_starts_nothing() {
    let app = TestApp::generated(500, ApiConfig::default()).await;
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let runs_before = app
        .app
        .store
        .runs(Some(RunKind::Pipeline), 100)
        .await
        .unwrap()
        .len();
    // Another process (a CLI run) holds the pipeline.
    let held = app.app.store.claim("pipeline run").await.unwrap();
    let (status, _, json) = app
        .call(
            Method::POST,
            "/admin/pipeline/run",
            &[("authorization", engineer.as_str())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert_error(&json, "conflict");
    assert_eq!(
        app.app
            .store
            .runs(Some(RunKind::Pipeline), 100)
            .await
            .unwrap()
            .len(),
        runs_before,
        "nothing was started or recorded"
    );
    drop(held);
    let run = app.run_pipeline(&engineer).await;
    assert_eq!(run["status"], "up_to_date", "{run}");
}

#[tokio::test]
async fn runs_a_dead_process_left_running_are_closed_as_failed_at_start_up() {
    let app = TestApp::generated(500, ApiConfig::default()).await;
    // A run recorded as started by a process that then died.
    let orphan = RunRecord::start(RunKind::Pipeline);
    app.app.store.save_run(&orphan).await.unwrap();
    // A new server over the same lake and store closes it.
    let restarted = retail_app::App::build(
        test_config(app.dir(), ApiConfig::default()),
        retail_app::Role::Server,
    )
    .await
    .unwrap();
    let closed = restarted.store.run(&orphan.run_id).await.unwrap().unwrap();
    assert_eq!(closed.status, retail_metadata::RunStatus::Failed);
    assert!(
        closed
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("interrupted")),
        "{closed:?}"
    );
}
