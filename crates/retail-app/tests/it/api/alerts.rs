//! The alert manager through the API, with a real HTTP receiver on loopback: grouping,
//! inhibition, silences, escalation on a controllable clock, a restart in the middle of an
//! escalation, retries of a failing receiver, the platform's own rules, and a real Prometheus
//! sending its alerts through the Alertmanager-compatible endpoint.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::post;
use chrono::{DateTime, Duration, Utc};
use retail_app::{App, Role};
use retail_metadata::{RunKind, RunRecord, RunStatus};
use retail_services::ApiConfig;
use retail_services::alerts::{
    AlertsConfig, Clock, InhibitionConfig, ManualClock, ReceiverConfig, ReceiverKind, RouteConfig,
    RulesConfig, SystemClock, config::Function, config::MetricRuleConfig,
};
use serde_json::{Value, json};

use super::support::{TestApp, assert_error, send, test_config};

/// What a receiver got: (receiver path, body, when).
type Got = Arc<Mutex<Vec<(String, Value, DateTime<Utc>)>>>;

/// A webhook receiver on loopback; `/flaky` answers 503 to its first request.
struct Receiver {
    url: String,
    got: Got,
    _server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Self {
        let got: Got = Arc::default();
        let flaky = Arc::new(AtomicUsize::new(0));
        let router = axum::Router::new()
            .route(
                "/{name}",
                post(
                    |State((got, flaky)): State<(Got, Arc<AtomicUsize>)>,
                     Path(name): Path<String>,
                     body: axum::Json<Value>| async move {
                        if name == "flaky" && flaky.fetch_add(1, Ordering::SeqCst) == 0 {
                            return StatusCode::SERVICE_UNAVAILABLE;
                        }
                        got.lock().unwrap().push((name, body.0, Utc::now()));
                        StatusCode::OK
                    },
                ),
            )
            .with_state((Arc::clone(&got), flaky));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            url,
            got,
            _server: server,
        }
    }

    fn take(&self) -> Vec<(String, Value)> {
        std::mem::take(&mut *self.got.lock().unwrap())
            .into_iter()
            .map(|(name, body, _)| (name, body))
            .collect()
    }

    fn receiver(&self, name: &str, kind: ReceiverKind) -> ReceiverConfig {
        ReceiverConfig {
            name: name.to_owned(),
            kind,
            url: format!("{}/{name}", self.url),
        }
    }
}

/// Alert names of a webhook payload's alerts with their status.
fn alerts_of(body: &Value) -> Vec<String> {
    body["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| {
            format!(
                "{} {} {}",
                a["labels"]["alertname"].as_str().unwrap(),
                a["labels"]["instance"].as_str().unwrap_or("-"),
                a["status"].as_str().unwrap()
            )
        })
        .collect()
}

fn routing(receiver: &Receiver) -> AlertsConfig {
    AlertsConfig {
        receivers: vec![
            receiver.receiver("team", ReceiverKind::Webhook),
            receiver.receiver("oncall", ReceiverKind::Webhook),
            receiver.receiver("manager", ReceiverKind::Slack),
            receiver.receiver("flaky", ReceiverKind::Webhook),
        ],
        routes: vec![
            RouteConfig {
                matchers: vec!["severity=\"critical\"".into()],
                receiver: "oncall".into(),
                group_by: vec!["alertname".into()],
                escalate_after_seconds: 15 * 60,
                escalate_to: "manager".into(),
                ..RouteConfig::default()
            },
            RouteConfig {
                matchers: vec!["team=\"stores\"".into()],
                receiver: "flaky".into(),
                ..RouteConfig::default()
            },
            RouteConfig {
                receiver: "team".into(),
                group_by: vec!["alertname".into()],
                ..RouteConfig::default()
            },
        ],
        inhibitions: vec![InhibitionConfig {
            equal: vec!["instance".into()],
            ..InhibitionConfig::default()
        }],
        retry_seconds: 10,
        ..AlertsConfig::default()
    }
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a time")
}

fn alert(name: &str, severity: &str, instance: &str) -> Value {
    json!({
        "labels": {"alertname": name, "severity": severity, "instance": instance},
        "annotations": {"summary": format!("{name} on {instance}")},
        "startsAt": at(0),
    })
}

/// The app over an empty lake in `dir`, with `alerts`, its clock at `now` (seconds after
/// [`at`]'s origin); the same `dir` again is a restart.
async fn app_in(
    dir: &std::path::Path,
    alerts: &AlertsConfig,
    clock: Arc<dyn Clock>,
) -> (App, axum::Router) {
    let mut config = test_config(dir, ApiConfig::default());
    config.alerts = alerts.clone();
    let app = App::build_with_clock(config, Role::Server, clock)
        .await
        .expect("app");
    let router = app.router();
    (app, router)
}

async fn call(
    router: &axum::Router,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let bearer = format!("Bearer {key}");
    let body = body.map(|b| b.to_string());
    let (status, _, json) = send(
        router,
        method,
        path,
        &[("authorization", &bearer)],
        body.as_deref().map(|b| ("application/json", b)),
    )
    .await;
    (status, json)
}

/// Posts alerts as a Prometheus does; the answer's status and body.
async fn post_alerts(router: &axum::Router, key: &str, alerts: Value) -> (StatusCode, Value) {
    call(router, Method::POST, "/api/v2/alerts", key, Some(alerts)).await
}

#[tokio::test]
async fn alerts_are_grouped_inhibited_silenced_and_escalated_and_a_restart_resumes_the_escalation()
{
    let receiver = Receiver::start().await;
    let config = routing(&receiver);
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at(0)));
    let (app, router) = app_in(dir.path(), &config, Arc::clone(&clock) as _).await;
    let access = &app.services.access;
    let (_, sender) = access
        .create_key("prometheus", "alert_sender")
        .await
        .unwrap();
    let (_, engineer) = access.create_key("ops", "data_engineer").await.unwrap();
    let (_, analyst) = access.create_key("ana", "data_analyst").await.unwrap();
    let alerts = &app.services.alerts;

    // The sender may post alerts and nothing else; an analyst may not read them.
    let (status, _) = call(&router, Method::GET, "/api/v1/alerts", &sender, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&router, Method::GET, "/api/v1/alerts", &analyst, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A bad alert refuses the whole request, naming it; nothing is taken.
    let bad = json!([alert("Down", "critical", "a"), {"labels": {"severity": "warning"}}]);
    let (status, body) = post_alerts(&router, &sender, bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_input");
    assert!(
        body.to_string().contains("alert 1: labels.alertname"),
        "{body}"
    );
    assert!(alerts.alerts().await.unwrap().is_empty());

    // Three warnings on three instances and a critical alert on one of them.
    let posted = json!([
        alert("ApiSlow", "warning", "a"),
        alert("ApiSlow", "warning", "b"),
        alert("ApiSlow", "warning", "d"),
        alert("Down", "critical", "a"),
        alert("Down", "critical", "a"),
    ]);
    let (status, body) = post_alerts(&router, &sender, posted).await;
    assert_eq!(
        (status, &body["received"]),
        (StatusCode::OK, &json!(5)),
        "{body}"
    );
    let listed = alerts.alerts().await.unwrap();
    assert_eq!(listed.len(), 4, "the duplicate is one alert");
    assert!(
        alerts.tick().await.unwrap().delivered == 0,
        "groups wait 30 s"
    );
    assert!(receiver.take().is_empty());

    clock.advance(Duration::seconds(31));
    let report = alerts.tick().await.unwrap();
    assert_eq!((report.delivered, report.pending), (2, 0), "{report:?}");
    let got: BTreeMap<String, Value> = receiver.take().into_iter().collect();
    let mut grouped = alerts_of(&got["team"]);
    grouped.sort();
    assert_eq!(
        grouped,
        ["ApiSlow b firing", "ApiSlow d firing"],
        "the related warnings in one notification; a's is explained by a's critical alert"
    );
    assert_eq!(got["team"]["version"], "4");
    assert_eq!(got["team"]["groupLabels"], json!({"alertname": "ApiSlow"}));
    assert_eq!(alerts_of(&got["oncall"]), ["Down a firing"]);
    let (_, listed) = call(&router, Method::GET, "/api/v1/alerts", &engineer, None).await;
    let muted: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["muted"] == "inhibited")
        .collect();
    assert_eq!(muted.len(), 1, "{listed}");
    assert_eq!(muted[0]["labels"]["instance"], "a");

    // A silence (its own permission) mutes a new warning of the same name.
    let silence =
        json!({"matchers": ["alertname=\"ApiSlow\""], "minutes": 60, "comment": "deploying"});
    let (status, _) = call(
        &router,
        Method::POST,
        "/api/v1/alerts/silences",
        &analyst,
        Some(silence.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let no_comment = json!({"matchers": ["alertname=\"ApiSlow\""], "minutes": 60, "comment": " "});
    let (status, body) = call(
        &router,
        Method::POST,
        "/api/v1/alerts/silences",
        &engineer,
        Some(no_comment),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, made) = call(
        &router,
        Method::POST,
        "/api/v1/alerts/silences",
        &engineer,
        Some(silence),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let posted = json!([alert("ApiSlow", "warning", "c")]);
    post_alerts(&router, &sender, posted).await;
    clock.advance(Duration::minutes(6));
    alerts.tick().await.unwrap();
    assert!(receiver.take().is_empty(), "silenced");

    // An acknowledged critical alert does not escalate; the other one will.
    let posted = json!([alert("DiskFull", "critical", "a")]);
    post_alerts(&router, &sender, posted).await;
    clock.advance(Duration::seconds(31));
    alerts.tick().await.unwrap();
    let got = receiver.take();
    assert_eq!(got.len(), 1);
    assert_eq!(alerts_of(&got[0].1), ["DiskFull a firing"]);
    let disk = got[0].1["alerts"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/alerts/{disk}/ack");
    let (status, body) = call(&router, Method::POST, &path, &engineer, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["acknowledged_by"]
            .as_str()
            .unwrap()
            .starts_with("key:"),
        "{body}"
    );
    let (status, _) = call(
        &router,
        Method::POST,
        "/api/v1/alerts/0123456789abcdef/ack",
        &engineer,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A restart at minute 10: the state is the store's.
    drop((app, router));
    let clock = Arc::new(ManualClock::new(at(10 * 60)));
    let (app, router) = app_in(dir.path(), &config, Arc::clone(&clock) as _).await;
    let alerts = &app.services.alerts;
    alerts.tick().await.unwrap();
    assert!(receiver.take().is_empty(), "nothing due at minute 10");
    clock.advance(Duration::minutes(6));
    alerts.tick().await.unwrap();
    let got = receiver.take();
    assert_eq!(got.len(), 1, "{got:?}");
    let (name, message) = &got[0];
    assert_eq!(name, "manager", "Down went unacknowledged for 15 minutes");
    let text = message["text"].as_str().unwrap();
    assert!(text.starts_with("ESCALATED [FIRING:1]"), "{text}");
    assert!(
        message["attachments"][0]["title"]
            .as_str()
            .unwrap()
            .contains("Down")
    );
    assert_eq!(message["attachments"][0]["color"], "danger");
    clock.advance(Duration::minutes(30));
    alerts.tick().await.unwrap();
    assert!(
        receiver.take().iter().all(|(name, _)| name != "manager"),
        "escalated once"
    );

    // Down resolves: the resolution goes to oncall once, then it is forgotten; the warning it
    // inhibited is now notified.
    let mut resolved = alert("Down", "critical", "a");
    resolved["endsAt"] = json!(clock.now());
    post_alerts(&router, &sender, json!([resolved])).await;
    clock.advance(Duration::minutes(6));
    alerts.tick().await.unwrap();
    let got: BTreeMap<String, Value> = receiver.take().into_iter().collect();
    assert_eq!(alerts_of(&got["oncall"]), ["Down a resolved"]);
    assert_eq!(got["oncall"]["status"], "resolved");
    let (_, listed) = call(&router, Method::GET, "/api/v1/alerts", &engineer, None).await;
    assert!(
        !listed.to_string().contains("\"Down\""),
        "forgotten: {listed}"
    );

    // A failing receiver: kept in the outbox and retried, delivered once.
    let stores = json!([{"labels": {"alertname": "TillOffline", "team": "stores"}}]);
    post_alerts(&router, &sender, stores).await;
    clock.advance(Duration::seconds(31));
    let report = alerts.tick().await.unwrap();
    assert_eq!((report.failed, report.pending), (1, 1), "{report:?}");
    clock.advance(Duration::seconds(5));
    assert_eq!(
        alerts.tick().await.unwrap().pending,
        1,
        "waits 10 s to retry"
    );
    clock.advance(Duration::seconds(6));
    let report = alerts.tick().await.unwrap();
    assert_eq!((report.delivered, report.pending), (1, 0), "{report:?}");
    let got = receiver.take();
    assert_eq!(got.iter().filter(|(name, _)| name == "flaky").count(), 1);

    // The silence is listed, expires on request, and is gone.
    let (_, silences) = call(
        &router,
        Method::GET,
        "/api/v1/alerts/silences",
        &engineer,
        None,
    )
    .await;
    let id = silences[0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/alerts/silences/{id}");
    let (status, _) = call(&router, Method::DELETE, &path, &engineer, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&router, Method::DELETE, &path, &engineer, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_platforms_rules_fire_on_stale_bronze_a_failed_run_and_a_metric_and_resolve() {
    let receiver = Receiver::start().await;
    let alerts_config = AlertsConfig {
        receivers: vec![receiver.receiver("team", ReceiverKind::Webhook)],
        routes: vec![RouteConfig {
            receiver: "team".into(),
            group_wait_seconds: 0,
            ..RouteConfig::default()
        }],
        rules: RulesConfig {
            freshness_minutes: 60,
            trading_hours: "00:00-23:59".into(),
            // Generated data has its share of bad rows; this test is not about them.
            quarantine_share: 0.0,
            score_drop: 0.0,
            metrics: vec![MetricRuleConfig {
                name: "PipelineRunsSeen".into(),
                metric: "retail_pipeline_runs_total".into(),
                matchers: vec!["status=\"succeeded\"".into()],
                function: Function::Value,
                window_seconds: 300,
                sum: true,
                above: 0.0,
                severity: "info".into(),
                component: "pipeline".into(),
                summary: "a pipeline run succeeded".into(),
            }],
            ..RulesConfig::default()
        },
        ..AlertsConfig::default()
    };
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let data = retail_test_support::Generated::new(2_000, 3);
    let app = TestApp::over_clocked(
        &data.files,
        ApiConfig::default(),
        |config| {
            config.alerts = alerts_config;
            config.models.enabled = false;
            config.search.enabled = false;
            config.recommendations.enabled = false;
        },
        Arc::clone(&clock) as _,
    )
    .await;
    let alerts = &app.app.services.alerts;
    let names = |views: &[retail_services::alerts::AlertView]| -> Vec<String> {
        views
            .iter()
            .filter(|v| v.status == "firing")
            .map(|v| v.labels["alertname"].clone())
            .collect()
    };
    assert_eq!(
        alerts.evaluate().await.unwrap(),
        1,
        "fresh bronze, the run succeeded"
    );
    assert_eq!(names(&alerts.alerts().await.unwrap()), ["PipelineRunsSeen"]);

    // Two hours later, a run fails.
    clock.advance(Duration::hours(2));
    let mut failed = RunRecord::start(RunKind::Pipeline);
    failed.started_at = clock.now();
    failed.error = Some("gold: disk full".into());
    failed.finish(RunStatus::Failed);
    app.app.store.save_run(&failed).await.unwrap();
    alerts.evaluate().await.unwrap();
    let views = alerts.alerts().await.unwrap();
    assert_eq!(
        names(&views),
        ["BronzeStale", "PipelineFailed", "PipelineRunsSeen"],
        "{views:?}"
    );
    let stale = views
        .iter()
        .find(|v| v.labels["alertname"] == "BronzeStale")
        .unwrap();
    assert!(
        stale.annotations["summary"].contains("no new bronze rows for 1"),
        "{stale:?}"
    );
    let failed_view = views
        .iter()
        .find(|v| v.labels["alertname"] == "PipelineFailed")
        .unwrap();
    assert_eq!(failed_view.labels["severity"], "critical");
    assert!(failed_view.annotations["summary"].contains("disk full"));
    alerts.tick().await.unwrap();
    let got = receiver.take();
    assert_eq!(
        got.len(),
        3,
        "one group per alert name and component: {got:?}"
    );

    // A later run succeeds: PipelineFailed resolves and its resolution is sent.
    clock.advance(Duration::minutes(10));
    let mut fixed = RunRecord::start(RunKind::Pipeline);
    fixed.finish(RunStatus::Succeeded);
    fixed.started_at = clock.now();
    app.app.store.save_run(&fixed).await.unwrap();
    alerts.evaluate().await.unwrap();
    clock.advance(Duration::minutes(6));
    alerts.tick().await.unwrap();
    let got = receiver.take();
    let resolved: Vec<String> = got.iter().flat_map(|(_, body)| alerts_of(body)).collect();
    assert!(
        resolved.contains(&"PipelineFailed - resolved".to_owned()),
        "{resolved:?}"
    );
}

#[tokio::test]
async fn a_real_prometheus_sends_its_alerts_through_the_platforms_routing() {
    let Some(prometheus) = retail_test_support::prometheus() else {
        return;
    };
    let receiver = Receiver::start().await;
    let config = AlertsConfig {
        receivers: vec![receiver.receiver("team", ReceiverKind::Webhook)],
        routes: vec![RouteConfig {
            receiver: "team".into(),
            group_wait_seconds: 1,
            ..RouteConfig::default()
        }],
        tick_seconds: 1,
        ..AlertsConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app_in(dir.path(), &config, Arc::new(SystemClock)).await;
    let (_, key) = app
        .services
        .access
        .create_key("prometheus", "alert_sender")
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let app = Arc::new(app);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            app.serve_until(listener, async {
                let _ = stopped.await;
            })
            .await
        })
    };

    // The condition becomes true 15 s after start (once Prometheus has found its alert
    // manager), so the time to the notification is that of a running setup.
    let true_at = Utc::now() + Duration::seconds(15);
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        format!(
            "groups:\n- name: test\n  interval: 1s\n  rules:\n  - alert: TestClockPassed\n    \
             expr: vector(time()) > {}\n    labels:\n      severity: warning\n      \
             component: test\n    annotations:\n      summary: the clock passed a mark\n",
            true_at.timestamp()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let prometheus_server = retail_test_support::PrometheusServer::start(
        &prometheus,
        dir.path(),
        &format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [{rules}]\nalerting:\n  \
             alertmanagers:\n  - api_version: v2\n    authorization:\n      credentials: {key}\n    \
             static_configs:\n    - targets: ['{api}']\n",
            rules = rules.display()
        ),
        &["--rules.alert.resend-delay=1s"],
    );
    let deadline = Instant::now() + StdDuration::from_secs(90);
    let (body, received_at) = loop {
        let got = receiver.got.lock().unwrap().first().cloned();
        if let Some((name, body, at)) = got {
            assert_eq!(name, "team");
            break (body, at);
        }
        assert!(
            Instant::now() < deadline,
            "no notification in 90 s; prometheus said: {}",
            prometheus_server.problems()
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    };
    assert_eq!(alerts_of(&body), ["TestClockPassed - firing"]);
    assert_eq!(body["commonLabels"]["component"], "test");
    assert!(
        body["alerts"][0]["generatorURL"]
            .as_str()
            .unwrap()
            .contains("time"),
        "{body}"
    );
    let starts_at: DateTime<Utc> = body["alerts"][0]["startsAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // `time() > T` holds from T on.
    let true_at = DateTime::from_timestamp(true_at.timestamp(), 0).expect("a time");
    assert!(starts_at >= true_at, "{starts_at} {true_at}");
    eprintln!(
        "condition true at {true_at}, active in Prometheus at {starts_at}, notified at \
         {received_at}: {} ms after the condition (prometheus started {} ms before)",
        (received_at - true_at).num_milliseconds(),
        started.elapsed().as_millis()
    );
    let listed = app.services.alerts.alerts().await.unwrap();
    assert_eq!(listed[0].labels["alertname"], "TestClockPassed");
    assert!(listed[0].notified_at.is_some());
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}
