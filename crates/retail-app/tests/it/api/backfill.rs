//! Backfills through the API: gold's months rebuilt exactly, each month's state read page by
//! page, runs found by partition, bad requests refused, and a failed backfill resumed.

use axum::http::{Method, StatusCode};
use retail_domain::progress::NoProgress;
use retail_metadata::{PartitionStatus, RunStatus};
use retail_services::{ApiConfig, BackfillRequest, PartitionFilter, PartitionScope};
use retail_test_support::Generated;
use serde_json::Value;

use crate::api::support::{TestApp, assert_error, test_config};

/// Every month of gold as its partitions page says: (month, fact rows), following the pages.
async fn gold_months(app: &TestApp, auth: &[(&str, &str)]) -> Vec<(String, u64)> {
    let mut months = Vec::new();
    let mut path = "/admin/pipeline/assets/gold/partitions?limit=2".to_owned();
    loop {
        let (status, headers, page) = app.get(&path, auth).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for partition in page.as_array().unwrap() {
            assert_eq!(partition["status"], "succeeded", "{partition}");
            months.push((
                partition["partition"].as_str().unwrap().to_owned(),
                partition["rows"].as_u64().unwrap(),
            ));
        }
        let Some(link) = headers.get("link") else {
            break;
        };
        let link = link.to_str().unwrap();
        path = link[1..link.find('>').unwrap()].to_owned();
    }
    months
}

#[tokio::test]
async fn a_backfill_rebuilds_its_months_exactly_and_records_each_one() {
    // 100 days from 2010-12-01: December to March.
    let data = Generated::new(4_000, 100);
    let app = TestApp::over(&data.files, ApiConfig::default(), |_| {}).await;
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let auth = [("authorization", engineer.as_str())];

    // The first (full) build recorded every month of gold with its fact rows.
    let before = gold_months(&app, &auth).await;
    let months: Vec<&str> = before.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(months, ["2010-12", "2011-01", "2011-02", "2011-03"]);
    let facts = app
        .lake()
        .count_rows(&retail_lake::schema::GOLD_FACT_SALES)
        .await
        .unwrap();
    assert_eq!(before.iter().map(|(_, rows)| rows).sum::<u64>(), facts);
    let (_, _, summary_before) = app.get("/api/v2/analytics/sales-summary", &auth).await;
    assert!(
        summary_before["rows"]
            .as_array()
            .is_some_and(|rows| !rows.is_empty()),
        "{summary_before}"
    );

    let (status, headers, started) = app
        .call(
            Method::POST,
            "/admin/pipeline/backfills",
            &auth,
            Some(r#"{"from": "2010-12", "to": "2011-02", "partitions_per_run": 2}"#),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["kind"], "backfill");
    let id = started["run_id"].as_str().unwrap().to_owned();
    assert_eq!(
        headers["location"],
        format!("/admin/pipeline/backfills/{id}").as_str()
    );
    let done = app.finished_run(&id, &engineer).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["detail"]["partitions"],
        serde_json::json!(["2010-12", "2011-01", "2011-02"])
    );
    let runs: Vec<String> = done["detail"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        runs.len(),
        3,
        "two runs of gold, then the downstream assets: {done}"
    );

    // Each gold run rebuilt its months alone, incrementally; the last ran what follows gold.
    let mut rebuilt = Vec::new();
    for run_id in &runs[..2] {
        let (_, _, run) = app
            .get(&format!("/admin/pipeline/runs/{run_id}"), &auth)
            .await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["detail"]["backfill"], id.as_str());
        assert_eq!(run["detail"]["gold_build"], "incremental", "{run}");
        assert_eq!(run["detail"]["gold_months"], run["detail"]["partitions"]);
        rebuilt.extend(
            run["detail"]["gold_months"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(rebuilt, ["2010-12", "2011-01", "2011-02"]);
    let (_, _, downstream) = app
        .get(&format!("/admin/pipeline/runs/{}", runs[2]), &auth)
        .await;
    assert_eq!(
        downstream["detail"]["selection"],
        serde_json::json!(["models", "recommendations", "warehouse/embedded", "search"])
    );

    // The summary counts the months by state; the months are read by page, in order.
    let (status, _, summary) = app
        .get(&format!("/admin/pipeline/backfills/{id}"), &auth)
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["partitions"], serde_json::json!({"succeeded": 3}));
    let (_, headers, first) = app
        .get(
            &format!("/admin/pipeline/backfills/{id}/partitions?limit=2"),
            &auth,
        )
        .await;
    let link = headers["link"].to_str().unwrap();
    assert_eq!(
        link,
        format!("</admin/pipeline/backfills/{id}/partitions?limit=2&after=2011-01>; rel=\"next\"")
    );
    let (_, headers, second) = app.get(&link[1..link.find('>').unwrap()], &auth).await;
    assert!(headers.get("link").is_none(), "the last page has no next");
    let pages: Vec<&Value> = first
        .as_array()
        .unwrap()
        .iter()
        .chain(second.as_array().unwrap())
        .collect();
    for (partition, (month, rows)) in pages.iter().zip(&before) {
        assert_eq!(partition["partition"], month.as_str());
        assert_eq!(partition["status"], "succeeded");
        assert_eq!(partition["attempts"], 1);
        assert_eq!(
            partition["rows"].as_u64(),
            Some(*rows),
            "rebuilt to the same facts: {partition}"
        );
    }
    assert_eq!(pages[0]["run_id"], runs[0].as_str());
    assert_eq!(pages[2]["run_id"], runs[1].as_str());

    // Gold is what it was: the same months, rows and answers; the months rebuilt now name
    // the backfill's runs.
    assert_eq!(gold_months(&app, &auth).await, before);
    let (_, _, summary_after) = app.get("/api/v2/analytics/sales-summary", &auth).await;
    assert_eq!(summary_after["rows"], summary_before["rows"]);
    let (_, _, march) = app
        .get(
            "/admin/pipeline/assets/gold/partitions?after=2011-02",
            &auth,
        )
        .await;
    assert_ne!(
        march[0]["run_id"],
        runs[1].as_str(),
        "March was not rebuilt"
    );

    // History finds the backfill and its runs by month and kind.
    let (_, _, january) = app
        .get("/admin/pipeline/runs?partition=2011-01&limit=100", &auth)
        .await;
    let found: Vec<&str> = january
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert!(
        found.contains(&id.as_str()) && found.contains(&runs[0].as_str()),
        "{found:?}"
    );
    assert!(
        !found.contains(&runs[1].as_str()),
        "the run of February only: {found:?}"
    );
    let (_, _, backfills) = app.get("/admin/pipeline/runs?kind=backfill", &auth).await;
    assert_eq!(backfills.as_array().unwrap().len(), 1);

    // Bad requests change nothing and say why: malformed is a 400, well formed but unusable
    // a 422.
    for (body, status, message) in [
        (
            r#"{"from": "2011-02", "to": "2010-12"}"#,
            422,
            "before its first",
        ),
        (
            r#"{"from": "2011-13", "to": "2011-14"}"#,
            400,
            "is not an invoice month",
        ),
        (r#"{"from": "2011-01"}"#, 422, "either from and to"),
        (
            r#"{"from": "2011-01", "to": "2011-01", "partitions": ["2011-02"]}"#,
            422,
            "not both",
        ),
        (
            r#"{"partitions": ["2012-05", "2011-01"]}"#,
            422,
            "silver has no rows in 2012-05; its months are 2010-12 to 2011-03",
        ),
        (
            r#"{"partitions": ["2011-1"]}"#,
            400,
            "is not an invoice month",
        ),
        (r#"{"partitions": []}"#, 422, "either from and to"),
        (
            r#"{"from": "2011-01", "to": "2011-01", "partitions_per_run": 0}"#,
            400,
            "from 1 to 120",
        ),
    ] {
        let (got, _, json) = app
            .call(Method::POST, "/admin/pipeline/backfills", &auth, Some(body))
            .await;
        assert_eq!(got.as_u16(), status, "{body}: {json}");
        assert_error(
            &json,
            if status == 400 {
                "invalid_input"
            } else {
                "unprocessable"
            },
        );
        assert!(
            json["error"]["message"].as_str().unwrap().contains(message),
            "{body}: {json}"
        );
    }
    let (_, _, still) = app.get("/admin/pipeline/runs?kind=backfill", &auth).await;
    assert_eq!(still.as_array().unwrap().len(), 1, "nothing recorded");
    let unknown = "00000000-0000-0000-0000-000000000000";
    for (method, path, status, code) in [
        (
            Method::GET,
            format!("/admin/pipeline/backfills/{unknown}"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            format!("/admin/pipeline/backfills/{unknown}/partitions"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            format!("/admin/pipeline/backfills/{unknown}/resume"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/admin/pipeline/backfills/nope".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::POST,
            format!("/admin/pipeline/backfills/{id}/resume"),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            Method::GET,
            "/admin/pipeline/assets/silver/partitions".to_owned(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/admin/pipeline/assets/gold/partitions?after=March".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::GET,
            "/admin/pipeline/runs?partition=2011-1".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
    ] {
        let (got, _, json) = app.call(method, &path, &auth, None).await;
        assert_eq!(got, status, "{path}: {json}");
        assert_error(&json, code);
    }
    // An analyst reads pipelines but does not start backfills.
    let analyst = format!("Bearer {}", app.token("data_analyst").await);
    let (status, _, _) = app
        .call(
            Method::POST,
            "/admin/pipeline/backfills",
            &[("authorization", analyst.as_str())],
            Some(r#"{"from": "2011-01", "to": "2011-01"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_failed_backfill_stops_at_its_failed_run_and_resumes_with_the_months_not_done() {
    let data = Generated::new(3_000, 100);
    let app = TestApp::over(&data.files, ApiConfig::default(), |_| {}).await;

    // An error check no month can pass: the first run of the backfill fails on it.
    let mut config = test_config(app.dir(), ApiConfig::default());
    config.checks = vec![retail_pipeline::CheckConfig {
        max: Some(10),
        ..crate::api::pipeline::check(
            "at_most_ten_facts",
            "gold/fact_sales",
            retail_pipeline::CheckKind::RowCount,
        )
    }];
    let strict = retail_app::App::build(config.clone(), retail_app::Role::Cli)
        .await
        .unwrap();
    let request = BackfillRequest {
        partitions: retail_services::months_between("2010-12", "2011-03").unwrap(),
        partitions_per_run: 1,
        requested_by: "test".to_owned(),
    };
    let failed = strict
        .services
        .pipeline
        .backfill(request, &NoProgress)
        .await
        .unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    let error = failed.error.clone().unwrap();
    assert!(
        error.contains("(months 2010-12) failed") && error.contains("at_most_ten_facts"),
        "{error}"
    );
    assert_eq!(failed.detail.runs.len(), 1, "it stopped at the failed run");
    async fn months(
        pipeline: &dyn retail_services::PipelineService,
        id: &str,
    ) -> Vec<retail_services::PartitionState> {
        pipeline
            .partitions(
                PartitionScope::Backfill(id.to_owned()),
                PartitionFilter::default(),
            )
            .await
            .unwrap()
    }
    let states = months(strict.services.pipeline.as_ref(), &failed.run_id).await;
    let statuses: Vec<PartitionStatus> = states.iter().map(|p| p.status).collect();
    assert_eq!(
        statuses,
        [
            PartitionStatus::Failed,
            PartitionStatus::Pending,
            PartitionStatus::Pending,
            PartitionStatus::Pending
        ]
    );
    assert!(
        states[0]
            .error
            .as_deref()
            .unwrap()
            .contains("at_most_ten_facts"),
        "{states:?}"
    );
    // Resuming a failed backfill under the same failing check fails the same way.
    let again = strict
        .services
        .pipeline
        .resume_backfill(&failed.run_id, "test", &NoProgress)
        .await
        .unwrap();
    assert_eq!(again.status, RunStatus::Failed);
    drop(strict);

    // The check fixed, resume takes every month not done; the failed one is in its 3rd run.
    config.checks.clear();
    let fixed = retail_app::App::build(config, retail_app::Role::Cli)
        .await
        .unwrap();
    let resumed = fixed
        .services
        .pipeline
        .resume_backfill(&failed.run_id, "test", &NoProgress)
        .await
        .unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(resumed.run_id, failed.run_id, "the same backfill");
    assert!(resumed.error.is_none());
    assert_eq!(
        resumed.detail.runs.len(),
        2 + 4 + 1,
        "{:?}",
        resumed.detail.runs
    );
    let states = months(fixed.services.pipeline.as_ref(), &failed.run_id).await;
    assert!(
        states
            .iter()
            .all(|p| p.status == PartitionStatus::Succeeded),
        "{states:?}"
    );
    let attempts: Vec<u32> = states.iter().map(|p| p.attempts).collect();
    assert_eq!(attempts, [3, 1, 1, 1]);
    assert!(
        states
            .iter()
            .all(|p| p.error.is_none() && p.rows.unwrap() > 0)
    );
    let error = fixed
        .services
        .pipeline
        .resume_backfill(&failed.run_id, "test", &NoProgress)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("is succeeded: only a failed backfill can be resumed"),
        "{error}"
    );
}
