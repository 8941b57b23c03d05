//! `retail models report`: what the models asset trained on gold, read back as the API serves
//! it: the registry, every series' backtest beside the seasonal naive baseline, the top
//! anomalies and the customer models' parameters and holdout check.

use retail_app::App;
use retail_services::models::{AnomalyQuery, ModelVersion, SeriesBacktest};
use serde_json::{Value, json};

/// Prints the report (JSON with `json`).
pub(crate) async fn report(app: &App, json: bool, top: usize) -> anyhow::Result<()> {
    let models = app.services.models.models().await?;
    let Some(newest) = models.first().map(|m| m.version) else {
        anyhow::bail!(
            "no models yet: run the pipeline (`retail pipeline run`) or `retail pipeline run \
             --asset models`"
        );
    };
    let current: Vec<&ModelVersion> = models.iter().filter(|m| m.version == newest).collect();
    let backtests = app.services.models.backtests().await?;
    let mut anomalies = match app
        .services
        .models
        .anomalies(&AnomalyQuery::default())
        .await
    {
        Ok(answer) => answer.days,
        Err(_) => Vec::new(),
    };
    anomalies.sort_by(|a, b| b.score.total_cmp(&a.score));
    anomalies.truncate(top);
    if json {
        let report = json!({
            "models": current,
            "backtests": backtests,
            "top_anomalies": anomalies,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("models version {newest}");
    for model in &current {
        println!(
            "  {:<10} {:<8} trained on gold version {} at {}, {:.3} s, {} rows",
            model.model,
            model.status,
            model.gold_version,
            model.trained_at.format("%Y-%m-%d %H:%M:%S UTC"),
            model.training_ms as f64 / 1000.0,
            model.rows
        );
        if let Some(reason) = model.metrics["reason"].as_str() {
            println!("    skipped: {reason}");
        }
    }
    print_backtests(&backtests);
    if !anomalies.is_empty() {
        println!("\ntop anomalies (isolation forest score; the metrics that made the day unusual)");
        for day in &anomalies {
            let reasons: Vec<String> = day.reasons.as_array().map_or(Vec::new(), |reasons| {
                reasons.iter().map(describe_reason).collect()
            });
            println!("  {}  {:.3}  {}", day.date, day.score, reasons.join("; "));
        }
    }
    if let Some(clv) = current
        .iter()
        .find(|m| m.model == "clv" && m.status == "trained")
    {
        print_clv(clv);
    }
    Ok(())
}

fn describe_reason(reason: &Value) -> String {
    let number = |key: &str| reason[key].as_f64().unwrap_or(f64::NAN);
    format!(
        "{} {:.4} (expected {:.4}, z {:+.1})",
        reason["metric"].as_str().unwrap_or("?"),
        number("value"),
        number("expected"),
        number("z")
    )
}

fn print_backtests(backtests: &[SeriesBacktest]) {
    if backtests.is_empty() {
        return;
    }
    println!(
        "\nforecast backtest (MASE, sMAPE %, held-out days inside the calibrated 80 % / 95 % \
         intervals; the model chosen beside the seasonal naive baseline)"
    );
    println!(
        "  {:<8} {:<16} {:<15} {:>6} {:>7} {:>6} {:>6} | {:>6} {:>7} {:>6}",
        "metric", "country", "chosen", "MASE", "sMAPE", "cov80", "cov95", "naive", "sMAPE", "cov95"
    );
    for chosen in backtests.iter().filter(|b| b.chosen) {
        let baseline = backtests.iter().find(|b| {
            b.metric == chosen.metric
                && b.country_name == chosen.country_name
                && b.score.model == "seasonal_naive"
        });
        let (naive, naive_smape, naive_cov) = baseline
            .map_or((f64::NAN, f64::NAN, f64::NAN), |b| {
                (b.score.mase, b.score.smape, b.score.coverage_95)
            });
        println!(
            "  {:<8} {:<16} {:<15} {:>6.3} {:>7.1} {:>6.3} {:>6.3} | {:>6.3} {:>7.1} {:>6.3}",
            chosen.metric,
            chosen.country_name.as_deref().unwrap_or("(all)"),
            chosen.score.model,
            chosen.score.mase,
            chosen.score.smape,
            chosen.score.coverage_80,
            chosen.score.coverage_95,
            naive,
            naive_smape,
            naive_cov
        );
    }
}

fn print_clv(clv: &ModelVersion) {
    let p = &clv.parameters;
    let number = |value: &Value| value.as_f64().unwrap_or(f64::NAN);
    println!(
        "\ncustomer models on {} customers ({} repeat), observed until {}",
        p["customers"],
        p["repeat_customers"],
        p["observation_end"].as_str().unwrap_or("?")
    );
    println!(
        "  BG/NBD       r {:.4}  alpha {:.4}  a {:.6}  b {:.4}",
        number(&p["bg_nbd"]["r"]),
        number(&p["bg_nbd"]["alpha"]),
        number(&p["bg_nbd"]["a"]),
        number(&p["bg_nbd"]["b"])
    );
    println!(
        "  Gamma-Gamma  p {:.4}  q {:.4}  v {:.4}",
        number(&p["gamma_gamma"]["p"]),
        number(&p["gamma_gamma"]["q"]),
        number(&p["gamma_gamma"]["v"])
    );
    let h = &clv.metrics["holdout"];
    if h.is_null() {
        return;
    }
    println!(
        "  holdout: calibrated until {}, {} days held out, {} customers: predicted {:.0} repeat \
         purchase days, actual {:.0}, baseline {:.0}; mean absolute error per customer {:.3} \
         (baseline {:.3})",
        h["calibration_end"].as_str().unwrap_or("?"),
        h["holdout_days"],
        h["customers"],
        number(&h["predicted_purchases"]),
        number(&h["actual_purchases"]),
        number(&h["baseline_purchases"]),
        number(&h["mae_per_customer"]),
        number(&h["baseline_mae_per_customer"])
    );
    println!("    frequency  customers  predicted  actual  baseline (means per customer)");
    for group in h["by_calibration_frequency"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!(
            "    {:>9}  {:>9}  {:>9.3}  {:>6.3}  {:>8.3}",
            group["frequency"].as_str().unwrap_or("?"),
            group["customers"].as_u64().unwrap_or_default(),
            number(&group["mean_predicted"]),
            number(&group["mean_actual"]),
            number(&group["mean_baseline"])
        );
    }
}
