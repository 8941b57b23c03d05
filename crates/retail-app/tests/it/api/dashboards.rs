//! The Grafana dashboards of `deploy/grafana/`, checked without Grafana (it cannot be installed
//! here): a real Prometheus scrapes a running `retail serve` (with a Kafka stream when a broker
//! is at hand) under a workload, and every panel's query goes through Prometheus's HTTP API. Each
//! must parse and evaluate; each whose metrics the workload produced must return data.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use retail_app::StreamConfig;
use retail_services::ApiConfig;
use serde_json::Value;

use super::support::TestApp;

/// Metrics a workload of this test cannot produce: a panel reading only these may be empty.
const NOT_PRODUCED: &[&str] = &[
    // No handler panics, and no Redis in the embedded profile.
    "retail_http_handler_panics_total",
    "retail_api_redis_errors_total",
    // The default routing logs notifications; the counter appears with the first one.
    "retail_alert_notifications_total",
];

/// Metrics only a stream produces.
const STREAM_METRICS: &[&str] = &[
    "retail_stream_events_per_second",
    "retail_stream_records_total",
    "retail_stream_lag",
    "retail_stream_connected",
];

fn dashboards() -> Vec<(String, Value)> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/dashboards");
    let mut found: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("deploy/grafana/dashboards")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let json =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                json,
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// The metric names a query reads (label values in quotes aside).
fn metrics_of(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let unquoted: String = expr
        .split('"')
        .enumerate()
        .filter(|(index, _)| index % 2 == 0)
        .map(|(_, part)| part)
        .collect::<Vec<_>>()
        .join(" ");
    let mut rest = unquoted.as_str();
    while let Some(at) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_') {
        let word: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        if word.starts_with("retail_") || word.starts_with("process_") {
            names.insert(word.clone());
        }
        rest = &rest[at + word.len().max(1)..];
    }
    names
}

async fn query(client: &reqwest::Client, prometheus: &str, expr: &str) -> Value {
    client
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[test]
fn every_dashboard_is_provisionable_and_names_its_panels() {
    let found = dashboards();
    let names: Vec<&str> = found.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "retail-api.json",
            "retail-business.json",
            "retail-pipeline.json",
            "retail-streams.json",
            "retail-warehouse.json"
        ]
    );
    let mut uids = BTreeSet::new();
    for (name, dashboard) in &found {
        assert!(
            uids.insert(dashboard["uid"].as_str().expect("uid").to_owned()),
            "{name}"
        );
        assert!(
            dashboard["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{name}"
        );
        let mut ids = BTreeSet::new();
        for panel in dashboard["panels"].as_array().expect("panels") {
            let title = panel["title"].as_str().expect("a title");
            assert!(
                ids.insert(panel["id"].as_u64().expect("an id")),
                "{name}: {title}"
            );
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{name}: {title}"
            );
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name}: {title}");
            for target in targets {
                let expr = target["expr"].as_str().expect("expr");
                assert!(
                    !expr.contains("$__"),
                    "{name}: {title}: Grafana-only variables"
                );
                assert!(!metrics_of(expr).is_empty(), "{name}: {title}: {expr}");
            }
        }
    }
}

#[tokio::test]
async fn every_panel_query_evaluates_on_a_real_prometheus_scraping_a_server_under_load() {
    let Some(prometheus_bin) = retail_test_support::prometheus() else {
        return;
    };
    let brokers = retail_test_support::kafka_brokers();
    let topic = retail_test_support::unique_name("dashboards");
    if let Some(brokers) = &brokers {
        crate::streams::produce_kafka(brokers, &topic, 0..40, true).await;
    }
    let data = retail_test_support::Generated::new(3_000, 10);
    let api = ApiConfig {
        rate_limit_per_minute: 60,
        rate_limit_burst: 20,
        ..ApiConfig::default()
    };
    let test = TestApp::over(&data.files, api, |config| {
        config.pipeline.follow_interval_ms = 200;
        if let Some(brokers) = &brokers {
            config.streams = vec![StreamConfig {
                name: "pos".to_owned(),
                brokers: vec![brokers.clone()],
                topic: topic.clone(),
                max_wait_ms: 100,
                ..StreamConfig::default()
            }];
        }
    })
    .await;
    let analyst = format!("Bearer {}", test.token("data_analyst").await);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();

    let dir = test.dir().to_path_buf();
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/prometheus/retail-rules.yml")
        .canonicalize()
        .unwrap();
    let server = retail_test_support::PrometheusServer::start(
        &prometheus_bin,
        &dir,
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [{}]\n\
             scrape_configs:\n  - job_name: retail\n    static_configs:\n      - targets: ['{}']\n",
            rules.display(),
            api.trim_start_matches("http://")
        ),
        &[],
    );
    let prometheus = server.url.clone();

    let checks = async {
        let client = reqwest::Client::new();
        // The workload: answers and cache hits, bad input, a burst past the rate limit, an
        // ingestion over HTTP and a pipeline run, for about ten seconds of scrapes.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            for path in [
                "/api/v2/analytics/sales-summary",
                "/api/v2/analytics/top-products?limit=5",
                "/api/v2/analytics/revenue-trend?grain=month",
                "/api/v2/analytics/geography",
                "/api/v2/analytics/top-products?limit=0",
                "/health",
            ] {
                client
                    .get(format!("{api}{path}"))
                    .header("authorization", &analyst)
                    .send()
                    .await
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut limited = false;
        for _ in 0..40 {
            let answer = client
                .get(format!("{api}/api/v2/analytics/returns"))
                .header("authorization", &analyst)
                .send()
                .await
                .unwrap();
            limited |= answer.status() == 429;
        }
        assert!(limited, "the burst met the rate limit");
        if brokers.is_some() {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !test
                .app
                .services
                .operations
                .metrics()
                .await
                .contains("retail_stream_records_total{stream=\"pos\"} 40")
            {
                assert!(
                    Instant::now() < deadline,
                    "the stream consumed its 40 sales"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        // Enough scrapes after the workload for every rate window to hold two samples.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let up = query(&client, &prometheus, "up{job=\"retail\"}").await;
        assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");

        let mut absent = BTreeSet::new();
        let mut failures = Vec::new();
        let mut with_data = 0;
        for (name, dashboard) in dashboards() {
            for panel in dashboard["panels"].as_array().unwrap() {
                let title = panel["title"].as_str().unwrap();
                for target in panel["targets"].as_array().unwrap() {
                    let expr = target["expr"].as_str().unwrap();
                    let answer = query(&client, &prometheus, expr).await;
                    if answer["status"] != "success" {
                        failures.push(format!("{name} / {title}: {expr}: {answer}"));
                        continue;
                    }
                    let mut produced = true;
                    for metric in metrics_of(expr) {
                        let count = query(&client, &prometheus, &format!("count({metric})")).await;
                        if count["data"]["result"].as_array().is_none_or(Vec::is_empty) {
                            absent.insert(metric);
                            produced = false;
                        }
                    }
                    let empty = answer["data"]["result"]
                        .as_array()
                        .is_none_or(Vec::is_empty);
                    if produced && empty {
                        failures.push(format!("{name} / {title}: no data from {expr}"));
                    } else if !empty {
                        with_data += 1;
                    }
                }
            }
        }
        let mut allowed: BTreeSet<&str> = NOT_PRODUCED.iter().copied().collect();
        if brokers.is_none() {
            eprintln!("no Kafka broker: the streams dashboard's panels are only parsed");
            allowed.extend(STREAM_METRICS);
        }
        let unexpected: Vec<&String> = absent
            .iter()
            .filter(|m| !allowed.contains(m.as_str()))
            .collect();
        assert!(
            failures.is_empty() && unexpected.is_empty(),
            "panels without data or failing: {failures:#?}\nmetrics never produced: {unexpected:?}"
        );
        eprintln!("{with_data} panel queries returned data; never produced: {absent:?}");
        // Prometheus evaluates the platform's recording and alert rules on the same series.
        let rules: Value = client
            .get(format!("{prometheus}/api/v1/rules"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for group in rules["data"]["groups"].as_array().unwrap() {
            for rule in group["rules"].as_array().unwrap() {
                assert_eq!(rule["health"], "ok", "{rule}");
            }
        }
        stop.send(()).unwrap();
    };
    let (served, ()) = tokio::join!(
        test.app.serve_until(listener, async {
            let _ = stopped.await;
        }),
        checks
    );
    drop(server);
    served.unwrap();
}
