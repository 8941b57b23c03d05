//! Freshness SLAs: an asset's lag behind the data upstream of it, in the status, the metrics
//! and the alert manager, measured against a controllable clock.

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use retail_pipeline::FreshnessPolicy;
use retail_services::ApiConfig;
use retail_services::alerts::AlertsConfig;
use retail_services::clock::ManualClock;
use retail_test_support::Generated;

use crate::api::support::TestApp;

fn policy(minutes: u64, severity: &str) -> FreshnessPolicy {
    FreshnessPolicy {
        max_lag_minutes: minutes,
        severity: severity.to_owned(),
    }
}

#[tokio::test]
async fn an_asset_lags_from_the_first_upstream_commit_it_has_not_caught_up_with_and_a_breach_alerts()
 {
    let data = Generated::new(2_000, 10);
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = TestApp::over_clocked(
        &data.files[..5],
        ApiConfig::default(),
        |config| {
            config.pipeline.freshness = [
                ("silver".to_owned(), policy(30, "warning")),
                ("gold".to_owned(), policy(60, "critical")),
            ]
            .into();
            config.alerts = AlertsConfig::default();
            config.models.enabled = false;
            config.search.enabled = false;
            config.recommendations.enabled = false;
        },
        Arc::clone(&clock) as _,
    )
    .await;
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let auth = [("authorization", engineer.as_str())];
    let pipeline = &app.app.services.pipeline;

    // Everything is current: no lag, whatever the hour.
    let (status, _, json) = app.get("/admin/pipeline/status", &auth).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["freshness"][0]["asset"], "gold", "{json}");
    assert_eq!(json["freshness"][0]["lag_seconds"], 0);
    assert_eq!(json["freshness"][0]["breached"], false);
    let later = Utc::now() + Duration::days(3);
    assert!(
        pipeline
            .freshness(later)
            .await
            .unwrap()
            .iter()
            .all(|f| f.lag_seconds == 0 && !f.breached && f.behind_since.is_none())
    );

    // New days land in bronze: silver has not read them, so silver and gold (current with a
    // silver that is behind) lag from bronze's commit.
    let before = Utc::now();
    app.ingest(&data.files[5..]).await;
    let after = Utc::now();
    let at = |minutes: i64| after + Duration::minutes(minutes);
    let soon = pipeline.freshness(at(10)).await.unwrap();
    let (gold, silver) = (&soon[0], &soon[1]);
    assert_eq!(
        (gold.asset.as_str(), silver.asset.as_str()),
        ("gold", "silver")
    );
    let landed = silver.behind_since.expect("behind bronze's commit");
    assert!(
        landed >= before - Duration::seconds(1) && landed <= after + Duration::seconds(1),
        "{landed} is the commit of the new files"
    );
    assert_eq!(gold.behind_since, Some(landed), "gold is as late as silver");
    assert!((600..=600 + (after - before).num_seconds() as u64 + 1).contains(&silver.lag_seconds));
    assert!(
        !silver.breached && !gold.breached,
        "10 minutes: within both limits"
    );
    let hour = pipeline.freshness(at(45)).await.unwrap();
    assert!(hour[1].breached, "silver: 45 minutes over 30");
    assert!(!hour[0].breached, "gold: 45 minutes within 60");

    // Two hours on, both breach: the alert manager raises each with its policy's severity.
    clock.set(at(120));
    app.app.services.alerts.evaluate().await.unwrap();
    let mut fired: Vec<(String, String, String)> = app
        .app
        .services
        .alerts
        .alerts()
        .await
        .unwrap()
        .iter()
        .filter(|a| a.status == "firing" && a.labels["alertname"] == "AssetFreshnessBreached")
        .map(|a| {
            (
                a.labels["asset"].clone(),
                a.labels["severity"].clone(),
                a.annotations["summary"].clone(),
            )
        })
        .collect();
    fired.sort();
    assert_eq!(fired.len(), 2, "{fired:?}");
    assert_eq!(
        (fired[0].0.as_str(), fired[0].1.as_str()),
        ("gold", "critical")
    );
    assert_eq!(
        (fired[1].0.as_str(), fired[1].1.as_str()),
        ("silver", "warning")
    );
    assert!(
        fired[0]
            .2
            .starts_with("gold lags 120 minutes behind the data upstream of it (limit 60)")
            || fired[0].2.starts_with("gold lags 119 minutes"),
        "{fired:?}"
    );
    let (_, metrics) = app.get_text("/metrics", &[]).await;
    assert!(
        metrics.contains("retail_asset_freshness_breached{asset=\"gold\"} 1"),
        "{metrics}"
    );

    // The pipeline catches up: no lag, and the alerts resolve.
    app.run_pipeline(&engineer).await;
    assert!(
        pipeline
            .freshness(at(240))
            .await
            .unwrap()
            .iter()
            .all(|f| f.lag_seconds == 0 && !f.breached)
    );
    clock.set(at(121));
    app.app.services.alerts.evaluate().await.unwrap();
    let still: Vec<String> = app
        .app
        .services
        .alerts
        .alerts()
        .await
        .unwrap()
        .iter()
        .filter(|a| a.status == "firing" && a.labels["alertname"] == "AssetFreshnessBreached")
        .map(|a| a.labels["asset"].clone())
        .collect();
    assert!(still.is_empty(), "{still:?}");
}

#[tokio::test]
async fn a_freshness_policy_on_an_unknown_asset_or_of_zero_minutes_is_refused() {
    let data = Generated::new(500, 2);
    let app = TestApp::over(&data.files, ApiConfig::default(), |_| {}).await;
    let mut config = crate::api::support::test_config(app.dir(), ApiConfig::default());
    config.pipeline.freshness = [("golden".to_owned(), policy(60, "warning"))].into();
    let error = retail_app::App::build(config.clone(), retail_app::Role::Cli)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("\"golden\"] are not assets"), "{error}");
    config.pipeline.freshness = [("gold".to_owned(), policy(0, "page"))].into();
    let problems = config.validate().unwrap_err().to_string();
    assert!(
        problems.contains("pipeline.freshness.\"gold\".max_lag_minutes must be at least 1"),
        "{problems}"
    );
    assert!(
        problems.contains("severity must be warning or critical, not \"page\""),
        "{problems}"
    );
}
