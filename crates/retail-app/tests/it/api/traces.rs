//! Spans exported over OTLP to a real OpenTelemetry collector (rotel, started by
//! `scripts/services.sh start rotel`), asserted from what the collector received: a request that
//! continues its caller's trace with its cache and warehouse spans, a pipeline run's asset
//! spans, and sampling decided when a request opens.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use retail_services::ApiConfig;
use retail_telemetry::tracing_setup::{self, LogFormat, Options, Otlp, OtlpProtocol};

use super::support::{HEART, TestApp};

/// One span as the collector logged it.
#[derive(Debug, Clone, Default)]
struct Span {
    trace: String,
    parent: String,
    id: String,
    name: String,
}

/// The spans in the collector's debug log: blocks of `Trace ID`, `Parent ID`, `ID` and
/// `Name` lines.
fn spans(log: &str) -> Vec<Span> {
    let mut out = Vec::new();
    let mut current: Option<Span> = None;
    for line in log.lines() {
        let line = strip_colours(line);
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim().to_owned());
        match key {
            "Trace ID" => {
                out.extend(current.take());
                current = Some(Span {
                    trace: value,
                    ..Span::default()
                });
            }
            "Parent ID" => {
                if let Some(span) = current.as_mut() {
                    span.parent = value;
                }
            }
            "ID" => {
                if let Some(span) = current.as_mut() {
                    span.id = value;
                }
            }
            "Name" => {
                if let Some(span) = current.as_mut() {
                    span.name = value;
                }
            }
            _ => {}
        }
    }
    out.extend(current);
    out
}

fn strip_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits until the collector has logged spans of `trace` named `names`; the spans of it.
async fn received(log: &std::path::Path, trace: &str, names: &[&str]) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let found: Vec<Span> = spans(&text)
            .into_iter()
            .filter(|span| span.trace == trace)
            .collect();
        if names
            .iter()
            .all(|name| found.iter().any(|span| span.name == *name))
        {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "the collector did not receive {names:?} of trace {trace} within 20 s; it has {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn unique_hex(digits: usize) -> String {
    let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut out = String::new();
    while out.len() < digits {
        for byte in seed.bytes().chain(out.clone().into_bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{hash:016x}"));
    }
    out.truncate(digits);
    out
}

/// Spans exported to the test run's collector with `sample_ratio`, an app over generated
/// data, and an analyst's bearer token; `None` without a collector (outside CI).
async fn exporting(
    sample_ratio: f64,
) -> Option<(tracing_setup::Guard, std::path::PathBuf, TestApp, String)> {
    let (grpc, _, log) = retail_test_support::otlp_collector()?;
    let guard = tracing_setup::init(&Options {
        filter: "warn,retail=info".to_owned(),
        format: LogFormat::Json,
        service: "retail-test".to_owned(),
        otlp: Some(Otlp {
            endpoint: grpc,
            protocol: OtlpProtocol::Grpc,
            sample_ratio,
        }),
    })
    .expect("tracing");
    let app = TestApp::generated(3_000, ApiConfig::default()).await;
    let bearer = format!("Bearer {}", app.token("data_analyst").await);
    Some((guard, log, app, bearer))
}

/// The returns analytics asked for by an analyst within the caller's trace `traceparent`.
async fn returns_in(
    app: &TestApp,
    bearer: &str,
    traceparent: &str,
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    app.get(
        "/api/v2/analytics/returns",
        &[("authorization", bearer), ("traceparent", traceparent)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_continues_the_callers_trace_and_the_collector_receives_its_spans() {
    let Some((guard, log, app, bearer)) = Box::pin(exporting(1.0)).await else {
        return;
    };
    let trace = unique_hex(32);
    let caller = unique_hex(16);
    let traceparent = format!("00-{trace}-{caller}-01");
    let (status, headers, body) = returns_in(&app, &bearer, &traceparent).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-cache"], "miss");
    assert_eq!(
        headers["x-trace-id"].to_str().unwrap(),
        trace,
        "the answer names the caller's trace"
    );
    guard.flush();
    let found = received(
        &log,
        &trace,
        &["request", "cache_lookup", "warehouse_query"],
    )
    .await;
    let by_name: HashMap<&str, &Span> = found.iter().map(|s| (s.name.as_str(), s)).collect();
    assert_eq!(
        by_name["request"].parent, caller,
        "the request span is the caller's child"
    );
    assert_eq!(by_name["cache_lookup"].parent, by_name["request"].id);
    assert_eq!(
        by_name["warehouse_query"].parent, by_name["cache_lookup"].id,
        "a miss asks the warehouse inside the cache lookup"
    );

    // A request without a traceparent starts a trace of its own.
    let (_, headers, _) = app
        .get("/api/v2/analytics/returns", &[("authorization", &bearer)])
        .await;
    let own = headers["x-trace-id"].to_str().unwrap().to_owned();
    assert_eq!(own.len(), 32);
    assert_ne!(own, trace);

    // A pipeline run started by a request runs in its trace: the run's span under the
    // request's, each asset's under the run's, and the stages of the assets that had new
    // rows (a transaction sent first) under theirs.
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let (status, _, created) = app
        .call(
            axum::http::Method::POST,
            "/api/v1/transactions",
            &[("authorization", &engineer)],
            Some(HEART),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let trace = unique_hex(32);
    let traceparent = format!("00-{trace}-{}-01", unique_hex(16));
    let (status, headers, json) = app
        .call(
            axum::http::Method::POST,
            "/admin/pipeline/run",
            &[("authorization", &engineer), ("traceparent", &traceparent)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{json}");
    assert_eq!(headers["x-trace-id"].to_str().unwrap(), trace);
    let run = app
        .finished_run(json["run_id"].as_str().expect("run id"), &engineer)
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    guard.flush();
    let found = received(
        &log,
        &trace,
        &["request", "pipeline_run", "asset", "silver", "gold"],
    )
    .await;
    let request = found.iter().find(|s| s.name == "request").unwrap();
    let pipeline = found.iter().find(|s| s.name == "pipeline_run").unwrap();
    assert_eq!(pipeline.parent, request.id);
    let assets: Vec<&Span> = found.iter().filter(|s| s.name == "asset").collect();
    assert!(
        assets.len() >= 2 && assets.iter().all(|a| a.parent == pipeline.id),
        "every asset under the run: {found:?}"
    );
    for stage in ["silver", "gold"] {
        let span = found.iter().find(|s| s.name == stage).unwrap();
        assert!(
            assets.iter().any(|a| a.id == span.parent),
            "the {stage} stage under its asset: {found:?}"
        );
    }
    drop(guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_is_decided_when_a_request_opens_and_a_callers_decision_wins() {
    // No new trace is sampled: only callers' sampled traces are recorded.
    let Some((guard, log, app, bearer)) = Box::pin(exporting(0.0)).await else {
        return;
    };

    let (status, headers, _) = app
        .get("/api/v2/analytics/returns", &[("authorization", &bearer)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers.get("x-trace-id").is_none(),
        "an unsampled trace of its own is not named"
    );

    let unsampled = unique_hex(32);
    let traceparent = format!("00-{unsampled}-{}-00", unique_hex(16));
    let (status, headers, _) = returns_in(&app, &bearer, &traceparent).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["x-trace-id"].to_str().unwrap(),
        unsampled,
        "the caller's trace is named even when it is not sampled"
    );

    let sampled = unique_hex(32);
    let traceparent = format!("00-{sampled}-{}-01", unique_hex(16));
    let (status, headers, body) = returns_in(&app, &bearer, &traceparent).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-trace-id"].to_str().unwrap(), sampled);
    guard.flush();
    // Spans leave in the order they closed: once the sampled trace has arrived, anything of
    // the earlier requests would have too.
    let found = received(&log, &sampled, &["request", "cache_lookup"]).await;
    let request = found.iter().find(|s| s.name == "request").unwrap();
    assert_eq!(
        found
            .iter()
            .find(|s| s.name == "cache_lookup")
            .unwrap()
            .parent,
        request.id
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !spans(&text).iter().any(|s| s.trace == unsampled),
        "the caller's unsampled trace was exported"
    );
    drop(guard);
}
