//! `/api/v2/analytics/{forecast,anomalies,clv}`, `/api/v2/models` and the customer profile's
//! value: the models asset trained by the pipeline run, on the real data and on generated data
//! with planted anomalies.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use chrono::{Datelike as _, NaiveDate, Weekday};
use retail_ingest::generate::{GenerateOptions, PlantedKind, planted_anomalies};
use retail_services::ApiConfig;
use retail_test_support::Generated;
use serde_json::Value;

use super::support::TestApp;

fn date(value: &Value) -> NaiveDate {
    value.as_str().expect("a date").parse().expect("YYYY-MM-DD")
}

#[tokio::test]
async fn forecasts_anomalies_and_customer_values_are_trained_on_the_real_data() {
    let Some(app) = TestApp::real(usize::MAX, ApiConfig::default()).await else {
        return;
    };
    let token = format!("Bearer {}", app.token("data_engineer").await);
    let auth = [("authorization", token.as_str())];

    // The registry: three models of one version, trained on the current gold, the customer
    // models with their parameters named as in the literature.
    let (status, _, models) = app.get("/api/v2/models", &auth).await;
    assert_eq!(status, StatusCode::OK, "{models}");
    let models = models.as_array().expect("versions");
    let names: BTreeSet<&str> = models
        .iter()
        .map(|m| m["model"].as_str().expect("model"))
        .collect();
    assert_eq!(names, BTreeSet::from(["anomalies", "clv", "forecast"]));
    assert!(
        models
            .iter()
            .all(|m| m["status"] == "trained" && m["version"] == 1),
        "{models:?}"
    );
    let clv = models.iter().find(|m| m["model"] == "clv").expect("clv");
    for (model, parameter) in [
        ("bg_nbd", "r"),
        ("bg_nbd", "alpha"),
        ("bg_nbd", "a"),
        ("bg_nbd", "b"),
        ("gamma_gamma", "p"),
        ("gamma_gamma", "q"),
        ("gamma_gamma", "v"),
    ] {
        let value = clv["parameters"][model][parameter]
            .as_f64()
            .expect("a parameter");
        assert!(
            value > 0.0 && value.is_finite(),
            "{model}.{parameter} = {value}"
        );
    }
    // Every customer with a purchase line (identified, not a cancellation, quantity and price
    // above 0): as many as gold's RFM table holds.
    assert_eq!(clv["parameters"]["customers"], 4_339);
    assert_eq!(clv["parameters"]["observation_end"], "2011-12-09");
    let holdout = &clv["metrics"]["holdout"];
    assert_eq!(holdout["calibration_end"], "2011-09-09");
    let predicted = holdout["predicted_purchases"].as_f64().expect("predicted");
    let actual = holdout["actual_purchases"].as_f64().expect("actual");
    assert!((predicted - actual).abs() / actual < 0.25, "{holdout}");

    // The total revenue forecast: open days only (no Saturday), intervals nested around the
    // point, the model chosen by its backtest beside the baseline's.
    let (status, _, forecast) = app
        .get(
            "/api/v2/analytics/forecast?metric=revenue&horizon=30",
            &auth,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{forecast}");
    assert_eq!(forecast["history_end"], "2011-12-09");
    assert_eq!(forecast["model_version"], 1);
    let points = forecast["points"].as_array().expect("points");
    let closed: Vec<NaiveDate> = forecast["closed_days"]
        .as_array()
        .expect("closed")
        .iter()
        .map(date)
        .collect();
    assert_eq!(points.len() + closed.len(), 30);
    assert!(
        closed.contains(&NaiveDate::from_ymd_opt(2011, 12, 10).expect("a date")),
        "a Saturday"
    );
    assert!(
        closed.contains(&NaiveDate::from_ymd_opt(2011, 12, 27).expect("a date")),
        "the Christmas break of 2010"
    );
    for point in points {
        assert_ne!(date(&point["date"]).weekday(), Weekday::Sat);
        let [l95, l80, v, u80, u95] = ["lower_95", "lower_80", "value", "upper_80", "upper_95"]
            .map(|k| point[k].as_f64().expect("a number"));
        assert!(l95 <= l80 && l80 <= v && v <= u80 && u80 <= u95, "{point}");
    }
    let mase = forecast["backtest"]["mase"].as_f64().expect("mase");
    let baseline = forecast["baseline"]["mase"]
        .as_f64()
        .expect("baseline mase");
    assert!(
        mase <= baseline,
        "the chosen model is the best of the candidates, baseline included"
    );
    // 4 origins × 30 open weekdays, less the bank holiday of 2011-08-29 (not scored).
    assert_eq!(forecast["backtest"]["days"], 119);

    let (status, _, uk) = app
        .get(
            "/api/v2/analytics/forecast?metric=orders&horizon=90&country=United%20Kingdom",
            &auth,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{uk}");
    assert_eq!(uk["country_name"], "United Kingdom");
    let (status, _, error) = app
        .get("/api/v2/analytics/forecast?country=Atlantis", &auth)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert!(
        error.to_string().contains("United Kingdom"),
        "the error lists the forecast countries: {error}"
    );
    for bad in ["metric=profit", "horizon=91", "horizon=0", "colour=red"] {
        let (status, _, error) = app
            .get(&format!("/api/v2/analytics/forecast?{bad}"), &auth)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {error}");
    }

    // Anomalies: each names the metrics that made it unusual.
    let (status, _, anomalies) = app.get("/api/v2/analytics/anomalies", &auth).await;
    assert_eq!(status, StatusCode::OK, "{anomalies}");
    let days = anomalies["days"].as_array().expect("days");
    assert!(
        !days.is_empty() && days.len() < 40,
        "{} anomalies",
        days.len()
    );
    for day in days {
        assert_eq!(day["is_anomaly"], true);
        assert!(
            !day["reasons"].as_array().expect("reasons").is_empty(),
            "{day}"
        );
    }
    let (_, _, all) = app
        .get(
            "/api/v2/analytics/anomalies?all=true&from=2011-01-01&to=2011-01-31",
            &auth,
        )
        .await;
    let january = all["days"].as_array().expect("days");
    assert_eq!(january.len(), 24, "the trading days of January 2011");
    // A reversed period selects nothing, as everywhere in the API; a bad date is a 400.
    let (status, _, reversed) = app
        .get(
            "/api/v2/analytics/anomalies?all=true&from=2011-02-01&to=2011-01-01",
            &auth,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reversed}");
    assert_eq!(reversed["days"], serde_json::json!([]));
    let (status, _, _) = app
        .get("/api/v2/analytics/anomalies?from=2011-02-30", &auth)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // CLV: ranked, filtered, and on the customer's profile. Customer 12346 bought once
    // (2011-01-18) and cancelled it: one purchase day, T = 325 days to 2011-12-09.
    let (status, _, page) = app
        .get("/api/v2/analytics/clv?country=Germany&limit=10", &auth)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let customers = page["customers"].as_array().expect("customers");
    assert_eq!(customers.len(), 10);
    assert!(page["total"].as_u64().expect("total") > 10);
    let values: Vec<f64> = customers
        .iter()
        .map(|c| c["clv_12m"]["value"].as_f64().expect("clv"))
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] >= w[1]),
        "ranked: {values:?}"
    );
    for customer in customers {
        assert_eq!(customer["country_name"], "Germany");
        let estimate = &customer["clv_12m"];
        assert!(
            estimate["lower"].as_f64() <= estimate["upper"].as_f64(),
            "{customer}"
        );
        assert!(customer["clv_12m"]["value"].as_f64() > customer["clv_6m"]["value"].as_f64());
    }
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let (status, _, profile) = app
        .get(
            "/api/v1/customers/12346",
            &[("authorization", engineer.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    let value = &profile["value"];
    assert_eq!(value["frequency"], 0.0);
    assert_eq!(value["recency"], 0.0);
    assert_eq!(value["T"], 325.0);
    assert_eq!(value["model_version"], 1);
    let (status, _, _) = app.get("/api/v2/analytics/clv?limit=0", &auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Gold unchanged: a second run leaves the models as they are.
    let admin = format!("Bearer {}", app.token("admin").await);
    let status = app.run_pipeline(&admin).await;
    let models_run = status["detail"]["assets"]
        .as_array()
        .expect("assets")
        .iter()
        .find(|a| a["asset"] == "models")
        .cloned()
        .expect("the models asset ran");
    assert_eq!(models_run["status"], "up_to_date", "{models_run}");
}

/// Generated data (500,000 rows, about the real data's size) with twelve planted days (four
/// surges, four drops, four bursts of bad rows): the detector's precision and recall on them.
/// The generator's own unusual days (a cancellation larger than the day's sales) count as
/// false positives.
#[tokio::test]
async fn planted_anomalies_are_found_with_high_precision_and_recall() {
    let options = GenerateOptions {
        rows: 500_000,
        seed: 11,
        start: NaiveDate::from_ymd_opt(2010, 12, 1).expect("a date"),
        days: 365,
        anomaly_days: 12,
    };
    let planted = planted_anomalies(&options);
    assert_eq!(planted.len(), 12);
    assert_eq!(
        planted
            .iter()
            .filter(|p| p.kind == PlantedKind::BadData)
            .count(),
        4
    );
    let data = Generated::with(&options);
    let app = TestApp::over(&data.files, ApiConfig::default(), |_| {}).await;
    let token = format!("Bearer {}", app.token("data_engineer").await);
    let (status, _, anomalies) = app
        .get(
            "/api/v2/analytics/anomalies",
            &[("authorization", token.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{anomalies}");
    let found: BTreeSet<NaiveDate> = anomalies["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| date(&d["date"]))
        .collect();
    let truth: BTreeSet<NaiveDate> = planted.iter().map(|p| p.date).collect();
    let hits = found.intersection(&truth).count() as f64;
    let precision = hits / found.len().max(1) as f64;
    let recall = hits / truth.len() as f64;
    eprintln!(
        "planted {}, found {}, precision {precision:.2}, recall {recall:.2}",
        truth.len(),
        found.len()
    );
    assert!(
        recall >= 0.9,
        "recall {recall}: found {found:?}, planted {planted:?}"
    );
    assert!(
        precision >= 0.8,
        "precision {precision}: found {found:?}, planted {planted:?}"
    );
    // A bad-data day is explained by its quarantine share.
    let days = anomalies["days"].as_array().expect("days");
    for p in planted.iter().filter(|p| p.kind == PlantedKind::BadData) {
        if let Some(day) = days.iter().find(|d| date(&d["date"]) == p.date) {
            let named: Vec<&str> = day["reasons"]
                .as_array()
                .expect("reasons")
                .iter()
                .map(|r| r["metric"].as_str().expect("metric"))
                .collect();
            assert!(named.contains(&"quarantine_share"), "{}: {named:?}", p.date);
        }
    }
}

/// Twenty days are too few for a forecast backtest: the forecast is skipped with its reason,
/// and the other models are trained.
#[tokio::test]
async fn a_history_too_short_to_forecast_says_so_and_the_other_models_are_trained() {
    let app = TestApp::generated(5_000, ApiConfig::default()).await;
    let token = format!("Bearer {}", app.token("data_engineer").await);
    let auth = [("authorization", token.as_str())];
    let (status, _, models) = app.get("/api/v2/models", &auth).await;
    assert_eq!(status, StatusCode::OK);
    let status_of = |name: &str| {
        models
            .as_array()
            .expect("versions")
            .iter()
            .find(|m| m["model"] == name)
            .map(|m| m["status"].clone())
    };
    assert_eq!(status_of("forecast"), Some(Value::from("skipped")));
    assert_eq!(status_of("clv"), Some(Value::from("trained")));
    let (status, _, error) = app.get("/api/v2/analytics/forecast", &auth).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert!(error.to_string().contains("too few"), "{error}");
}
