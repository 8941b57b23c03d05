//! Column-level lineage through the API, and OpenLineage events of real pipeline runs (to a
//! file and to an HTTP endpoint on loopback) validated against the OpenLineage JSON schemas.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use retail_domain::progress::NoProgress;
use retail_pipeline::CheckKind;
use retail_services::{ApiConfig, RunRequest, RunStatus};
use retail_test_support::Generated;
use serde_json::Value;

use crate::api::pipeline::check;
use crate::api::support::{TestApp, assert_error};

#[tokio::test]
async fn the_lineage_api_walks_a_gold_column_back_to_the_sources_and_on_to_the_api() {
    let app = TestApp::generated(1_000, ApiConfig::default()).await;
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let auth = [("authorization", engineer.as_str())];

    let (status, _, json) = app
        .get("/api/v1/lineage?of=gold.fact_sales.total_amount", &auth)
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let column = &json["column"];
    assert_eq!(column["column"]["dataset"], "gold.fact_sales");
    let edges = |side: &str| -> Vec<(u64, String, String, String, String)> {
        column[side]
            .as_array()
            .unwrap()
            .iter()
            .map(|hop| {
                let name = |end: &str| {
                    format!(
                        "{}.{}",
                        hop[end]["dataset"].as_str().unwrap(),
                        hop[end]["column"].as_str().unwrap()
                    )
                };
                (
                    hop["hops"].as_u64().unwrap(),
                    name("from"),
                    name("to"),
                    hop["kind"].as_str().unwrap().to_owned(),
                    hop["subtype"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let upstream = edges("upstream");
    assert_eq!(
        upstream[0],
        (
            1,
            "silver.retail_transactions.total_amount".to_owned(),
            "gold.fact_sales.total_amount".to_owned(),
            "DIRECT".to_owned(),
            "IDENTITY".to_owned()
        ),
        "{upstream:?}"
    );
    for source in ["quantity", "unit_price"] {
        let from = format!("source.retail_transactions.{source}");
        assert!(
            upstream.iter().any(|e| e.1 == from && e.3 == "DIRECT"),
            "{from} is not a direct source: {upstream:?}"
        );
    }
    let downstream = edges("downstream");
    for reached in [
        "warehouse.fact_sales.total_amount",
        "query.sales_lines.total_amount",
        "api/v1/sales.rows.total_amount",
    ] {
        assert!(
            downstream.iter().any(|e| e.2 == reached),
            "{reached} not reached: {downstream:?}"
        );
    }
    // The sales page's rows are decided by its filters (period, country, customer, ...).
    assert!(
        downstream
            .iter()
            .any(|e| e.1 == "warehouse.fact_sales.total_amount"
                && e.2 == "query.sales_lines.total_amount"
                && e.3 == "DIRECT"),
        "{downstream:?}"
    );
    let (status, _, json) = app
        .get(
            "/api/v1/lineage?of=api/v2/analytics/sales-summary.rows.net_revenue&direction=upstream",
            &auth,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let froms: Vec<&str> = json["column"]["upstream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["from"]["dataset"].as_str().unwrap())
        .collect();
    for dataset in [
        "query.sales_summary",
        "warehouse.sales_daily_country",
        "gold.daily_sales",
        "silver.retail_transactions",
        "source.retail_transactions",
    ] {
        assert!(
            froms.contains(&dataset),
            "{dataset} not upstream: {froms:?}"
        );
    }
    assert!(json["column"]["downstream"].as_array().unwrap().is_empty());

    let (status, _, json) = app.get("/api/v1/lineage?of=gold.daily_sales", &auth).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["datasets"][0]["name"], "gold.daily_sales");
    assert!(
        json["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["to"]["column"] == "net_revenue"
                && e["from"]["column"] == "total_amount"
                && e["subtype"] == "AGGREGATION")
    );

    let (status, _, json) = app.get("/api/v1/lineage", &auth).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let layers: Vec<&str> = json["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["layer"].as_str().unwrap())
        .collect();
    for layer in [
        "source",
        "bronze",
        "silver",
        "gold",
        "warehouse",
        "query",
        "api",
    ] {
        assert!(layers.contains(&layer), "{layer} missing: {layers:?}");
    }

    let (status, _, json) = app
        .get("/api/v1/lineage?of=gold.fact_sales.nope", &auth)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    assert_error(&json, "not_found");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("total_amount"), "{json}");
    let (status, _, json) = app.get("/api/v1/lineage?of=nowhere.x", &auth).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("unknown dataset"), "{json}");
    // A dataset's edges one way: only those into it.
    let (status, _, json) = app
        .get(
            "/api/v1/lineage?of=gold.daily_sales&direction=upstream",
            &auth,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let edges = json["edges"].as_array().unwrap();
    assert!(!edges.is_empty());
    assert!(
        edges
            .iter()
            .all(|e| e["to"]["dataset"] == "gold.daily_sales"),
        "{json}"
    );
    let (status, _, json) = app
        .get(
            "/api/v1/lineage?of=gold.fact_sales.total_amount&direction=up",
            &auth,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    let (status, _, json) = app.get("/api/v1/lineage", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
    assert_error(&json, "unauthenticated");
}

/// Each event of a file of JSON lines, checked against the OpenLineage schemas when the test
/// run has them.
fn events_of(text: &str) -> Vec<Value> {
    let spec = retail_test_support::openlineage_spec();
    text.lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).expect("one JSON event a line");
            if let Some(spec) = &spec {
                let problems = spec.problems(&event);
                assert!(problems.is_empty(), "{problems:#?}\n{event:#}");
            }
            event
        })
        .collect()
}

fn job(event: &Value) -> (&str, &str) {
    (
        event["job"]["name"].as_str().unwrap(),
        event["eventType"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn pipeline_runs_emit_openlineage_events_that_follow_the_spec() {
    let data = Generated::new(2_000, 10);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events").join("openlineage.jsonl");
    let events_file = path.display().to_string();
    let app = TestApp::over(&data.files[..5], ApiConfig::default(), |config| {
        config.openlineage.transport = "file".to_owned();
        config.openlineage.path = events_file;
        config.openlineage.namespace = "shop".to_owned();
        config.models.enabled = false;
        config.search.enabled = false;
        config.recommendations.enabled = false;
    })
    .await;
    let events = events_of(&std::fs::read_to_string(&path).unwrap());
    // The ingestion of the files first: source to bronze, told when it was recorded.
    assert_eq!(job(&events[0]), ("ingest.file", "START"));
    assert_eq!(job(&events[1]), ("ingest.file", "COMPLETE"));
    assert_eq!(events[0]["run"]["runId"], events[1]["run"]["runId"]);
    assert!(events[0]["eventTime"].as_str() <= events[1]["eventTime"].as_str());
    let bronze = &events[1]["outputs"][0];
    assert_eq!(bronze["name"], "bronze/retail_transactions");
    let rows = app
        .lake()
        .count_rows(&retail_lake::schema::BRONZE_TRANSACTIONS)
        .await
        .unwrap();
    assert_eq!(bronze["outputFacets"]["outputStatistics"]["rowCount"], rows);
    let invoice = &bronze["facets"]["columnLineage"]["fields"]["invoice"]["inputFields"][0];
    assert_eq!(invoice["name"], "source.retail_transactions");
    assert_eq!(invoice["field"], "invoice");
    assert_eq!(events[1]["inputs"][0]["name"], "source.retail_transactions");
    let events = events[2..].to_vec();
    let sequence: Vec<(&str, &str)> = events.iter().map(job).collect();
    assert_eq!(
        sequence,
        vec![
            ("pipeline", "START"),
            ("pipeline.silver", "START"),
            ("pipeline.silver", "COMPLETE"),
            ("pipeline.gold", "START"),
            ("pipeline.gold", "COMPLETE"),
            ("pipeline.warehouse/embedded", "START"),
            ("pipeline.warehouse/embedded", "COMPLETE"),
            ("pipeline", "COMPLETE"),
        ]
    );
    if let Some(spec) = retail_test_support::openlineage_spec() {
        // The schemas do catch what breaks them: a run id that is no UUID, a facet without its
        // producer, a transformation of the wrong shape.
        let mut broken = events[4].clone();
        broken["run"]["runId"] = "run-1".into();
        broken["run"]["facets"]["parent"]
            .as_object_mut()
            .unwrap()
            .remove("_producer");
        let facts = broken["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .position(|o| o["name"] == "gold/fact_sales")
            .unwrap();
        broken["outputs"][facts]["facets"]["columnLineage"]["fields"]["transaction_id"]["inputFields"]
            [0]["transformations"] = "IDENTITY".into();
        let problems = spec.problems(&broken).join("\n");
        for expected in [
            "\"run-1\" is not a \"uuid\"",
            "(ParentRunFacet): \"_producer\" is a required property",
            "(ColumnLineageDatasetFacet): \"IDENTITY\" is not of type \"array\"",
        ] {
            assert!(problems.contains(expected), "{expected} not in {problems}");
        }
    }
    let run_id = events[0]["run"]["runId"].as_str().unwrap();
    assert_eq!(events[7]["run"]["runId"], run_id);
    let runs = app
        .app
        .services
        .pipeline
        .runs(retail_services::RunFilter::default())
        .await
        .unwrap();
    assert_eq!(runs[0].run_id, run_id, "the run id is the run record's");
    for pair in [(1, 2), (3, 4), (5, 6)] {
        assert_eq!(
            events[pair.0]["run"]["runId"],
            events[pair.1]["run"]["runId"]
        );
        assert_ne!(events[pair.0]["run"]["runId"], run_id);
        assert_eq!(
            events[pair.0]["run"]["facets"]["parent"]["run"]["runId"],
            run_id
        );
        assert_eq!(events[pair.0]["job"]["namespace"], "shop");
    }
    let silver = &events[2];
    assert_eq!(silver["inputs"][0]["name"], "bronze/retail_transactions");
    let lake = app.dir().join("lake");
    let namespace = format!("file://{}", lake.display());
    assert_eq!(silver["inputs"][0]["namespace"], namespace.as_str());

    let gold = &events[4];
    let facts = gold["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "gold/fact_sales")
        .expect("fact_sales is an output of gold");
    let rows = app
        .lake()
        .count_rows(&retail_lake::schema::GOLD_FACT_SALES)
        .await
        .unwrap();
    assert_eq!(facts["outputFacets"]["outputStatistics"]["rowCount"], rows);
    let total = &facts["facets"]["columnLineage"]["fields"]["total_amount"]["inputFields"][0];
    assert_eq!(total["namespace"], namespace.as_str());
    assert_eq!(total["name"], "silver/retail_transactions");
    assert_eq!(total["field"], "total_amount");
    assert_eq!(total["transformations"][0]["type"], "DIRECT");
    assert_eq!(total["transformations"][0]["subtype"], "IDENTITY");
    let daily = gold["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "gold/daily_sales")
        .unwrap();
    let grouped: Vec<&str> = daily["facets"]["columnLineage"]["dataset"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["transformations"][0]["subtype"] == "GROUP_BY")
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(grouped, vec!["country_name", "invoice_date"]);
    let columns: Vec<&str> = facts["facets"]["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns[0], "transaction_id");
    assert_eq!(columns.len(), 14);

    // A failing error check fails the run: its last event is a FAIL with the cause.
    std::fs::remove_file(&path).unwrap();
    let mut config = app.app.config.clone();
    config.checks = vec![retail_pipeline::CheckConfig {
        max: Some(1),
        ..check("tiny", "gold/fact_sales", CheckKind::RowCount)
    }];
    drop(app.app);
    let failing = retail_app::App::build(config, retail_app::Role::Cli)
        .await
        .unwrap();
    let run = failing
        .services
        .pipeline
        .run(
            RunRequest {
                assets: vec!["gold".to_owned()],
                force: true,
                ..RunRequest::default()
            },
            &NoProgress,
        )
        .await;
    assert!(run.is_err());
    let events = events_of(&std::fs::read_to_string(&path).unwrap());
    let last = events.last().unwrap();
    assert_eq!(job(last), ("pipeline", "FAIL"));
    let message = last["run"]["facets"]["errorMessage"]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("tiny"), "{message}");
    assert_eq!(
        last["run"]["facets"]["errorMessage"]["programmingLanguage"],
        "RUST"
    );
    let status = failing
        .services
        .pipeline
        .runs(retail_services::RunFilter::default())
        .await
        .unwrap()[0]
        .status;
    assert_eq!(status, RunStatus::Failed);
}

/// What the endpoint got: (authorization header, event).
type Got = Arc<Mutex<Vec<(String, Value)>>>;

#[tokio::test]
async fn events_go_to_an_http_endpoint_with_the_token_and_a_dead_endpoint_never_fails_a_run() {
    let got: Got = Arc::default();
    let router = axum::Router::new()
        .route(
            "/api/v1/lineage",
            post(
                |axum::extract::State(got): axum::extract::State<Got>,
                 headers: HeaderMap,
                 body: axum::Json<Value>| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    got.lock().unwrap().push((auth, body.0));
                    StatusCode::CREATED
                },
            ),
        )
        .with_state(Arc::clone(&got));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/lineage", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let data = Generated::new(1_000, 5);
    let app = TestApp::over(&data.files, ApiConfig::default(), |config| {
        config.openlineage.transport = "http".to_owned();
        config.openlineage.url = url;
        config.openlineage.api_key = "lineage-token".to_owned();
        config.models.enabled = false;
        config.search.enabled = false;
        config.recommendations.enabled = false;
    })
    .await;
    let received = std::mem::take(&mut *got.lock().unwrap());
    assert_eq!(received.len(), 10, "{received:#?}");
    assert!(
        received
            .iter()
            .all(|(auth, _)| auth == "Bearer lineage-token")
    );
    let spec = retail_test_support::openlineage_spec();
    for (_, event) in &received {
        if let Some(spec) = &spec {
            let problems = spec.problems(event);
            assert!(problems.is_empty(), "{problems:#?}");
        }
    }
    assert_eq!(job(&received[1].1), ("ingest.file", "COMPLETE"));
    assert_eq!(job(&received[9].1), ("pipeline", "COMPLETE"));

    // The endpoint goes away: the run still succeeds (events are logged and counted).
    server.abort();
    let _ = server.await;
    app.ingest(&data.files[..1]).await;
    let run = app
        .app
        .services
        .pipeline
        .run(
            RunRequest {
                force: true,
                ..RunRequest::default()
            },
            &NoProgress,
        )
        .await
        .expect("a run with an unreachable lineage endpoint");
    assert_ne!(run.status, RunStatus::Failed);
}
