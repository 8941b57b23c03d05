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

#[tokio::test]
async fn the_scheduler_shows_its_schedules_sensors_and_lease() {
    use retail_services::scheduler::{ScheduleConfig, SensorConfig, SensorKind};
    let data = Generated::new(1_000, 5);
    let landing = tempfile::tempdir().unwrap();
    let app = TestApp::over(&data.files, ApiConfig::default(), |config| {
        config.scheduler.schedules = vec![ScheduleConfig {
            name: "nightly".to_owned(),
            cron: "0 2 * * *".to_owned(),
            timezone: "Europe/London".to_owned(),
            assets: Vec::new(),
            force: false,
            catch_up: retail_domain::schedule::CatchUp::Once,
        }];
        config.scheduler.sensors = vec![SensorConfig {
            name: "landing".to_owned(),
            kind: SensorKind::Landing,
            path: Some(landing.path().to_path_buf()),
            asset: None,
            assets: Vec::new(),
        }];
    })
    .await;
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let auth = [("authorization", engineer.as_str())];
    let (status, _, _) = app.get("/admin/scheduler", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let scheduler = &app.app.services.scheduler;
    assert!(scheduler.hold_lease("replica-a").await.unwrap());
    assert!(
        !scheduler.hold_lease("replica-b").await.unwrap(),
        "one holder"
    );
    scheduler.tick().await.unwrap();
    std::fs::copy(&data.files[0], landing.path().join("day.csv")).unwrap();
    scheduler.tick().await.unwrap();

    let (status, _, shown) = app.get("/admin/scheduler", &auth).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["lease"]["holder"], "replica-a");
    assert_eq!(shown["lease_held"], true);
    let nightly = &shown["schedules"][0];
    assert_eq!(
        (nightly["name"].as_str(), nightly["catch_up"].as_str()),
        (Some("nightly"), Some("once"))
    );
    let next =
        chrono::DateTime::parse_from_rfc3339(nightly["next_tick"].as_str().unwrap()).unwrap();
    let last =
        chrono::DateTime::parse_from_rfc3339(nightly["last_tick"].as_str().unwrap()).unwrap();
    assert!(
        next > last && next - last <= chrono::Duration::hours(24),
        "{nightly}"
    );
    // 02:00 in London: 02:00 UTC in winter, 01:00 UTC in summer.
    assert!(
        ["02:00:00", "01:00:00"]
            .iter()
            .any(|t| nightly["next_tick"].as_str().unwrap().contains(t)),
        "{nightly}"
    );
    let sensor = &shown["sensors"][0];
    assert_eq!(sensor["kind"], "landing");
    assert_eq!(
        sensor["files"]["pending"], 1,
        "seen once, taken on the next look: {sensor}"
    );

    scheduler.release_lease("replica-a").await.unwrap();
    let (_, _, shown) = app.get("/admin/scheduler", &auth).await;
    assert_eq!(shown["lease"], serde_json::Value::Null);
}

#[tokio::test]
async fn runs_are_filtered_and_paged_by_their_link_headers() {
    use retail_domain::progress::NoProgress;
    use retail_services::RunRequest;
    let data = Generated::new(1_000, 5);
    let app = TestApp::over(&data.files, ApiConfig::default(), |_| {}).await;
    let pipeline = &app.app.services.pipeline;
    for requested_by in ["schedule:nightly", "schedule:hourly", "cli"] {
        let run = RunRequest {
            assets: vec!["silver".to_owned()],
            force: false,
            requested_by: requested_by.to_owned(),
        };
        pipeline.run(run, &NoProgress).await.unwrap();
    }
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let auth = [("authorization", engineer.as_str())];
    let ids = |json: &serde_json::Value| -> Vec<String> {
        json.as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_owned())
            .collect()
    };

    let (status, _, all) = app
        .get("/admin/pipeline/runs?kind=pipeline&limit=100", &auth)
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let all = ids(&all);
    assert_eq!(all.len(), 4, "the set-up's run and three silver runs");

    // Pages of one, each found by following the Link of the one before.
    let mut path = "/admin/pipeline/runs?kind=pipeline&limit=1".to_owned();
    let mut paged = Vec::new();
    loop {
        let (status, headers, page) = app.get(&path, &auth).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        paged.extend(ids(&page));
        let Some(link) = headers.get("link") else {
            break;
        };
        let link = link.to_str().unwrap();
        assert!(link.ends_with("; rel=\"next\""), "{link}");
        path = link[1..link.find('>').unwrap()].to_owned();
        assert!(
            path.contains("kind=pipeline"),
            "the conditions carry over: {path}"
        );
    }
    assert_eq!(paged, all);

    let (_, _, scheduled) = app
        .get("/admin/pipeline/runs?requested_by=schedule:", &auth)
        .await;
    assert_eq!(ids(&scheduled), all[1..3], "a prefix ending with ':'");
    let (_, _, gold) = app.get("/admin/pipeline/runs?asset=gold", &auth).await;
    assert_eq!(
        ids(&gold),
        all[3..],
        "only the set-up's run went through gold"
    );
    let (_, _, failed) = app.get("/admin/pipeline/runs?status=failed", &auth).await;
    assert_eq!(ids(&failed), Vec::<String>::new());

    let (_, _, none) = app
        .get(
            "/admin/pipeline/runs?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z",
            &auth,
        )
        .await;
    assert_eq!(ids(&none), Vec::<String>::new(), "an empty window");
    for (query, status, code) in [
        ("since=yesterday", StatusCode::BAD_REQUEST, "invalid_input"),
        ("before=NOT-A-RUN", StatusCode::BAD_REQUEST, "invalid_input"),
        ("status=sleeping", StatusCode::BAD_REQUEST, "invalid_input"),
        ("limit=0", StatusCode::BAD_REQUEST, "invalid_input"),
        (
            "before=0190b5a0-0000-7000-8000-000000000000",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        let (answered, _, json) = app
            .get(&format!("/admin/pipeline/runs?{query}"), &auth)
            .await;
        assert_eq!(answered, status, "{query}: {json}");
        assert_error(&json, code);
    }
}
