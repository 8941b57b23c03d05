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
            url: None,
            stream: None,
            max_lag: None,
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
            ..RunRequest::default()
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

pub(crate) fn check(
    name: &str,
    table: &str,
    kind: retail_pipeline::CheckKind,
) -> retail_pipeline::CheckConfig {
    retail_pipeline::CheckConfig {
        name: name.to_owned(),
        asset: "gold".to_owned(),
        table: table.to_owned(),
        kind,
        severity: retail_pipeline::Severity::Error,
        min: None,
        max: None,
        columns: Vec::new(),
        column: None,
        values: Vec::new(),
        to_table: None,
        to_column: None,
        max_age_hours: None,
        max_change_percent: None,
        runs: None,
    }
}

#[tokio::test]
async fn an_error_check_holds_back_the_assets_downstream_and_a_warning_is_only_recorded() {
    use retail_domain::progress::NoProgress;
    use retail_pipeline::{CheckKind, Severity};
    use retail_services::RunRequest;
    let data = Generated::new(2_000, 10);
    let passing = vec![
        retail_pipeline::CheckConfig {
            column: Some("customer_key".to_owned()),
            to_table: Some("gold/dim_customer".to_owned()),
            to_column: Some("customer_key".to_owned()),
            ..check(
                "facts_have_customers",
                "gold/fact_sales",
                CheckKind::Relationship,
            )
        },
        retail_pipeline::CheckConfig {
            columns: vec!["transaction_id".to_owned()],
            ..check(
                "one_row_per_transaction",
                "gold/fact_sales",
                CheckKind::Unique,
            )
        },
        retail_pipeline::CheckConfig {
            columns: vec!["customer_key".to_owned(), "product_key".to_owned()],
            ..check("keys_present", "gold/fact_sales", CheckKind::NotNull)
        },
        retail_pipeline::CheckConfig {
            min: Some(1),
            ..check("facts_not_empty", "gold/fact_sales", CheckKind::RowCount)
        },
        retail_pipeline::CheckConfig {
            column: Some("country_name".to_owned()),
            values: vec!["United Kingdom".to_owned()],
            severity: Severity::Warn,
            ..check("uk_only", "gold/dim_country", CheckKind::AcceptedValues)
        },
    ];
    let checks = passing.clone();
    let app = TestApp::over(&data.files[..5], ApiConfig::default(), move |config| {
        config.checks = checks;
    })
    .await;
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let auth = [("authorization", engineer.as_str())];
    let (_, _, runs) = app
        .get("/admin/pipeline/runs?kind=pipeline&limit=1", &auth)
        .await;
    let first = &runs[0];
    assert_eq!(
        first["status"], "succeeded",
        "a failing warning holds nothing back: {first}"
    );
    let verdicts: Vec<(&str, bool)> = first["detail"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["passed"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("facts_have_customers", true),
            ("one_row_per_transaction", true),
            ("keys_present", true),
            ("facts_not_empty", true),
            ("uk_only", false)
        ]
    );
    let uk_only = &first["detail"]["checks"][4];
    assert!(uk_only["observed"].as_u64().unwrap() > 0, "{uk_only}");
    assert!(
        uk_only["detail"]
            .as_str()
            .unwrap()
            .contains("rows with other values"),
        "{uk_only}"
    );

    // The same platform with one more check that fails: gold is written, what follows it waits.
    let mut config = test_config(app.dir(), ApiConfig::default());
    config.checks = passing.clone();
    config.checks.push(retail_pipeline::CheckConfig {
        max: Some(10),
        ..check("at_most_ten_facts", "gold/fact_sales", CheckKind::RowCount)
    });
    let strict = retail_app::App::build(config.clone(), retail_app::Role::Server)
        .await
        .unwrap();
    strict
        .services
        .ingest
        .ingest_files(
            &data.files[5..]
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>(),
            "test",
            &NoProgress,
        )
        .await
        .unwrap();
    let error = strict
        .services
        .pipeline
        .run(RunRequest::default(), &NoProgress)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("check \"at_most_ten_facts\" failed on gold/fact_sales"),
        "{error}"
    );
    assert!(
        error.contains("held back: models, recommendations, warehouse/embedded, search"),
        "{error}"
    );
    let failed = strict
        .store
        .runs(Some(RunKind::Pipeline), 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(failed.status, retail_metadata::RunStatus::Failed);
    let status = |asset: &str| {
        failed
            .detail
            .assets
            .iter()
            .find(|a| a.asset == asset)
            .map(|a| (a.status.clone(), a.detail.clone()))
    };
    assert_eq!(
        status("gold/fact_sales").unwrap().0,
        "materialized",
        "gold is written first"
    );
    let (held, why) = status("models").unwrap();
    assert_eq!(held, "blocked");
    assert_eq!(
        why.unwrap()["held_back_by"],
        serde_json::json!(["at_most_ten_facts"])
    );
    drop(strict);

    // A check that names what is not there is refused at start, with every problem.
    config.checks = vec![
        retail_pipeline::CheckConfig {
            columns: vec!["no_such_column".to_owned()],
            ..check("bad_column", "gold/fact_sales", CheckKind::Unique)
        },
        check("bad_table", "gold/nope", CheckKind::RowCount),
    ];
    let refused = retail_app::App::build(config, retail_app::Role::Cli)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("gold/fact_sales has no column \"no_such_column\""),
        "{refused}"
    );
    assert!(
        refused.contains("table \"gold/nope\" is not a table of the lake"),
        "{refused}"
    );
    assert!(
        refused.contains("row_count needs min, max or both"),
        "{refused}"
    );
}

/// The sum of a money or integer column of a table, as Arrow casts it to an exact decimal.
async fn exact_sum(lake: &retail_lake::Lake, table: &retail_lake::TableSpec, column: &str) -> i128 {
    use retail_lake::arrow::array::AsArray as _;
    use retail_lake::arrow::datatypes::{DataType, Decimal128Type};
    let mut total = 0i128;
    for batch in lake.read_all(table).await.unwrap() {
        let values = retail_lake::arrow::compute::cast(
            batch.column_by_name(column).unwrap(),
            &DataType::Decimal128(38, 3),
        )
        .unwrap();
        total += values
            .as_primitive::<Decimal128Type>()
            .iter()
            .flatten()
            .sum::<i128>();
    }
    total
}

#[tokio::test]
async fn freshness_reconciliation_and_drift_checks_measure_exactly_what_they_say() {
    use retail_domain::progress::NoProgress;
    use retail_lake::schema::{GOLD_DIM_CUSTOMER, GOLD_FACT_SALES, SILVER_TRANSACTIONS};
    use retail_pipeline::{CheckConfig, CheckKind, Severity};
    let data = Generated::new(3_000, 30);
    let warn = |config: CheckConfig| CheckConfig {
        severity: Severity::Warn,
        ..config
    };
    let checks = vec![
        CheckConfig {
            max_age_hours: Some(1),
            ..check("written_lately", "gold/fact_sales", CheckKind::Freshness)
        },
        warn(CheckConfig {
            column: Some("invoice_date".into()),
            max_age_hours: Some(24),
            ..check("sales_lately", "gold/fact_sales", CheckKind::Freshness)
        }),
        CheckConfig {
            column: Some("total_amount".into()),
            to_table: Some("silver/retail_transactions".into()),
            to_column: Some("total_amount".into()),
            ..check(
                "money_reconciles",
                "gold/fact_sales",
                CheckKind::Reconciliation,
            )
        },
        warn(CheckConfig {
            to_table: Some("gold/dim_customer".into()),
            ..check(
                "rows_per_customer",
                "gold/fact_sales",
                CheckKind::Reconciliation,
            )
        }),
        warn(CheckConfig {
            max_change_percent: Some(10),
            runs: Some(3),
            ..check("facts_steady", "gold/fact_sales", CheckKind::Drift)
        }),
        CheckConfig {
            column: Some("data_quality_score".into()),
            max_change_percent: Some(10),
            ..check("scores_steady", "gold/fact_sales", CheckKind::Drift)
        },
    ];
    let config_checks = checks.clone();
    let app = TestApp::over(&data.files[..10], ApiConfig::default(), move |config| {
        config.checks = config_checks;
    })
    .await;
    let latest = || async {
        app.app
            .store
            .runs(Some(RunKind::Pipeline), 1)
            .await
            .unwrap()
            .remove(0)
    };
    let verdict = |run: &RunRecord, name: &str| {
        run.detail
            .checks
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {:?}", run.detail.checks))
    };
    let first = latest().await;
    assert_eq!(
        first.status,
        retail_metadata::RunStatus::Succeeded,
        "{:?}",
        first.error
    );

    let written = verdict(&first, "written_lately");
    assert!(written.passed, "{written:?}");
    assert!(
        written.value.unwrap() < 0.1,
        "written seconds ago: {written:?}"
    );
    let sales = verdict(&first, "sales_lately");
    assert!(!sales.passed, "the newest sale is from 2010: {sales:?}");
    assert!(sales.value.unwrap() > 24.0 * 365.0 * 10.0, "{sales:?}");
    assert!(
        sales
            .detail
            .starts_with("the newest invoice_date is 2010-12-"),
        "{sales:?}"
    );

    // The money of gold's facts and of silver, summed here on their own.
    let lake = app.lake();
    let (gold_money, silver_money) = (
        exact_sum(lake, &GOLD_FACT_SALES, "total_amount").await,
        exact_sum(lake, &SILVER_TRANSACTIONS, "total_amount").await,
    );
    let money = verdict(&first, "money_reconciles");
    assert_eq!(money.passed, gold_money == silver_money, "{money:?}");
    assert!(money.passed, "every silver line is a fact: {money:?}");
    assert_eq!(money.value, Some(0.0));
    let rows = verdict(&first, "rows_per_customer");
    let (facts, customers) = (
        lake.count_rows(&GOLD_FACT_SALES).await.unwrap(),
        lake.count_rows(&GOLD_DIM_CUSTOMER).await.unwrap(),
    );
    assert!(!rows.passed);
    assert_eq!(
        rows.detail,
        format!(
            "the rows of gold/fact_sales and of gold/dim_customer differ: {facts} and {customers}"
        )
    );
    assert_eq!(rows.value, Some(facts as f64 - customers as f64));
    let steady = verdict(&first, "facts_steady");
    assert!(
        steady.passed && steady.detail.contains("the first value"),
        "{steady:?}"
    );
    assert_eq!(steady.value, Some(facts as f64));

    // Twenty more days: about three times the facts, which drifts beyond 10 %; the mean row
    // score stays within 10 %.
    app.ingest(&data.files[10..]).await;
    app.app
        .services
        .pipeline
        .run(retail_services::RunRequest::default(), &NoProgress)
        .await
        .unwrap();
    let second = latest().await;
    let more = lake.count_rows(&GOLD_FACT_SALES).await.unwrap();
    let steady = verdict(&second, "facts_steady");
    assert!(!steady.passed, "{steady:?}");
    assert!(
        steady.detail.starts_with(&format!(
            "rows {more} against a median of {facts} over the last 1 runs (+"
        )),
        "{steady:?}"
    );
    let prices = verdict(&second, "scores_steady");
    assert!(prices.passed, "{prices:?}");
    let mut sum = 0.0;
    let mut count = 0u64;
    for batch in lake.read_all(&GOLD_FACT_SALES).await.unwrap() {
        use retail_lake::arrow::array::AsArray as _;
        let values = retail_lake::arrow::compute::cast(
            batch.column_by_name("data_quality_score").unwrap(),
            &retail_lake::arrow::datatypes::DataType::Float64,
        )
        .unwrap();
        for value in values
            .as_primitive::<retail_lake::arrow::datatypes::Float64Type>()
            .iter()
            .flatten()
        {
            sum += value;
            count += 1;
        }
    }
    let mean = sum / count as f64;
    assert!(
        (prices.value.unwrap() - mean).abs() < 1e-6 * mean.abs(),
        "{prices:?} vs {mean}"
    );
    assert_eq!(
        second.status,
        retail_metadata::RunStatus::Succeeded,
        "warnings hold nothing back"
    );

    // Checks missing what they need, or on columns of the wrong type, are refused at start.
    let mut config = test_config(app.dir(), ApiConfig::default());
    config.checks = vec![
        check("no_age", "gold/fact_sales", CheckKind::Freshness),
        CheckConfig {
            column: Some("invoice".into()),
            max_age_hours: Some(1),
            ..check("text_age", "gold/fact_sales", CheckKind::Freshness)
        },
        CheckConfig {
            column: Some("total_amount".into()),
            to_table: Some("silver/retail_transactions".into()),
            ..check("half_pair", "gold/fact_sales", CheckKind::Reconciliation)
        },
        CheckConfig {
            column: Some("invoice".into()),
            max_change_percent: Some(5),
            ..check("text_drift", "gold/fact_sales", CheckKind::Drift)
        },
        check("no_percent", "gold/fact_sales", CheckKind::Drift),
    ];
    let refused = retail_app::App::build(config, retail_app::Role::Cli)
        .await
        .unwrap_err()
        .to_string();
    for problem in [
        "freshness needs max_age_hours of 1 or more",
        "gold/fact_sales.invoice is not a date or timestamp",
        "reconciliation needs to_table, and column with to_column or neither",
        "gold/fact_sales.invoice is not a number",
        "drift needs max_change_percent",
    ] {
        assert!(refused.contains(problem), "{problem}: {refused}");
    }
}
