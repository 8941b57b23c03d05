//! Consent per customer and purpose: recorded with its history, and respected by profiling
//! (lifetime values, "for you" lists: in every answer at once, in the tables at the next
//! run) and by the marketing audience (opt-in by default).

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use retail_domain::progress::NoProgress;
use retail_lake::arrow::array::AsArray as _;
use retail_lake::schema::{GOLD_CUSTOMER_CLV, GOLD_CUSTOMER_RECOMMENDATIONS};
use retail_services::{ApiConfig, RunRequest};
use serde_json::{Value, json};

use super::support::TestApp;

/// The customer ids in a lake table's `customer_id` column.
async fn customers_in(app: &TestApp, table: &retail_lake::TableSpec) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for batch in app.lake().read_all(table).await.expect("read") {
        let column = batch.column_by_name("customer_id").expect("customer_id");
        ids.extend(
            column
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_owned),
        );
    }
    ids
}

/// Runs the models and the recommendations again on the same gold.
async fn retrain(app: &TestApp) -> Value {
    let run = app
        .app
        .services
        .pipeline
        .run(
            RunRequest {
                assets: vec!["models".to_owned(), "recommendations".to_owned()],
                force: true,
                requested_by: "test".to_owned(),
                ..RunRequest::default()
            },
            &NoProgress,
        )
        .await
        .expect("run");
    serde_json::to_value(&run.detail).expect("detail")
}

/// A number in an asset's detail of a run.
fn asset_detail(detail: &Value, asset: &str, field: &str) -> Option<u64> {
    detail["assets"]
        .as_array()?
        .iter()
        .find(|a| a["asset"] == asset)?["detail"][field]
        .as_u64()
}

#[tokio::test]
async fn profiling_and_marketing_follow_each_customers_latest_consent() {
    let app = TestApp::generated(5_000, ApiConfig::default()).await;
    let access = &app.app.services.access;
    let (_, shop) = access.create_key("shop", "consent_recorder").await.unwrap();
    let (_, crm) = access.create_key("crm", "marketing").await.unwrap();
    let analyst = format!("Bearer {}", app.token("data_analyst").await);
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let admin = format!("Bearer {}", app.token("admin").await);
    let as_analyst = [("authorization", analyst.as_str())];
    // Engineers see customer ids; analysts see pseudonyms and may not name a customer.
    let as_engineer = [("authorization", engineer.as_str())];
    let as_shop = [("x-api-key", shop.as_str())];
    let as_crm = [("x-api-key", crm.as_str())];

    let (status, _, page) = app
        .get("/api/v2/analytics/clv?limit=1000", &as_engineer)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let total = page["total"].as_u64().unwrap();
    assert!(total > 10, "{page}");
    let ids: Vec<String> = page["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer_id"].as_str().unwrap().to_owned())
        .collect();
    // Two customers with a score and a "for you" list.
    let listed = customers_in(&app, &GOLD_CUSTOMER_RECOMMENDATIONS).await;
    let mut both = ids.iter().filter(|id| listed.contains(*id));
    let (first, second) = (both.next().unwrap().clone(), both.next().unwrap().clone());
    let for_you = format!("/api/v2/recommendations/customers/{first}?limit=5");
    let (status, _, picks) = app.get(&for_you, &as_engineer).await;
    assert_eq!(status, StatusCode::OK, "{picks}");
    assert!(!picks["products"].as_array().unwrap().is_empty(), "{picks}");
    assert!(picks["withheld"].is_null(), "{picks}");

    // A choice is recorded by whoever may record consent; nobody else.
    let consent_path = format!("/api/v1/customers/{first}/consent");
    let withdraw = json!({"purpose": "profiling", "granted": false, "source": "web-form"});
    let (status, _, refused) = app
        .call(
            Method::POST,
            &consent_path,
            &as_analyst,
            Some(&withdraw.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    for bad in [
        json!({"purpose": "spam", "granted": false}),
        json!({"purpose": "profiling"}),
        json!({"purpose": "profiling", "granted": false, "source": "x".repeat(101)}),
    ] {
        let (status, _, error) = app
            .call(
                Method::POST,
                &consent_path,
                &as_shop,
                Some(&bad.to_string()),
            )
            .await;
        assert!(status.is_client_error(), "{bad}: {status} {error}");
    }
    let (status, _, state) = app
        .call(
            Method::POST,
            &consent_path,
            &as_shop,
            Some(&withdraw.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["history"].as_array().unwrap().len(), 1, "{state}");
    assert_eq!(state["history"][0]["source"], "web-form");
    let recorder = state["history"][0]["recorded_by"].as_str().unwrap();
    assert!(recorder.starts_with("key:"), "{state}");
    let profiling = &state["purposes"][2];
    assert_eq!(profiling["purpose"], "profiling");
    assert_eq!(profiling["granted"], false);
    assert_eq!(profiling["basis"], "recorded");
    assert_eq!(
        state["purposes"][1]["granted"], false,
        "marketing is opt-in"
    );
    assert_eq!(state["purposes"][1]["basis"], "default");

    // At once: no score and no personal list in any answer.
    let (_, _, page) = app
        .get("/api/v2/analytics/clv?limit=1000", &as_engineer)
        .await;
    assert_eq!(page["total"].as_u64(), Some(total - 1), "{page}");
    assert!(
        !page["customers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["customer_id"] == first.as_str())
    );
    let (status, _, profile) = app
        .get(
            &format!("/api/v1/customers/{first}"),
            &[("authorization", &engineer)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    assert!(profile["value"].is_null(), "{profile}");
    let (status, _, picks) = app.get(&for_you, &as_engineer).await;
    assert_eq!(status, StatusCode::OK, "{picks}");
    assert_eq!(picks["products"], json!([]), "{picks}");
    assert_eq!(picks["withheld"], "no consent to profiling");

    // At the next run: the tables hold nothing about them either.
    assert!(
        customers_in(&app, &GOLD_CUSTOMER_CLV)
            .await
            .contains(&first)
    );
    let detail = retrain(&app).await;
    assert_eq!(
        asset_detail(&detail, "models", "clv_withheld_without_consent"),
        Some(1),
        "{detail}"
    );
    assert!(
        asset_detail(&detail, "recommendations", "withheld_rows_without_consent")
            .is_some_and(|rows| rows > 0),
        "{detail}"
    );
    let scored = customers_in(&app, &GOLD_CUSTOMER_CLV).await;
    assert!(!scored.contains(&first) && scored.contains(&second));
    assert_eq!(scored.len() as u64, total - 1);
    let listed = customers_in(&app, &GOLD_CUSTOMER_RECOMMENDATIONS).await;
    assert!(!listed.contains(&first) && listed.contains(&second));

    // Granted again: the latest choice counts, the next run scores them again.
    let grant = json!({"purpose": "profiling", "granted": true});
    let (status, _, state) = app
        .call(
            Method::POST,
            &consent_path,
            &as_shop,
            Some(&grant.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["history"].as_array().unwrap().len(), 2);
    assert_eq!(state["history"][1]["source"], "api");
    retrain(&app).await;
    assert!(
        customers_in(&app, &GOLD_CUSTOMER_CLV)
            .await
            .contains(&first)
    );
    let (_, _, page) = app.get("/api/v2/analytics/clv?limit=1", &as_analyst).await;
    assert_eq!(page["total"].as_u64(), Some(total));

    // Marketing is opt-in: nobody until they grant it.
    let (status, _, audience) = app.get("/api/v1/marketing/audience", &as_crm).await;
    assert_eq!(status, StatusCode::OK, "{audience}");
    assert_eq!(audience["rows"], json!([]), "{audience}");
    let everyone = audience["left_out_without_consent"].as_u64().unwrap();
    assert!(everyone > 2, "{audience}");
    for customer in [&first, &second] {
        let (status, _, _) = app
            .call(
                Method::POST,
                &format!("/api/v1/customers/{customer}/consent"),
                &as_shop,
                Some(&json!({"purpose": "marketing", "granted": true}).to_string()),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, _, audience) = app.get("/api/v1/marketing/audience", &as_crm).await;
    let addressed: BTreeSet<&str> = audience["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        addressed,
        BTreeSet::from([first.as_str(), second.as_str()]),
        "{audience}"
    );
    assert_eq!(
        audience["left_out_without_consent"].as_u64(),
        Some(everyone - 2)
    );
    let (status, headers, _) = app
        .get("/api/v1/marketing/audience?format=csv", &as_crm)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let audience = app
        .app
        .services
        .marketing
        .audience(Vec::new())
        .await
        .unwrap();
    let csv = String::from_utf8(retail_services::analytics::csv_page(
        &audience.answer.rows,
        true,
    ))
    .unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        csv.starts_with("customer_id,country_name,segment,"),
        "{csv}"
    );
    let (status, _, _) = app
        .get("/api/v1/marketing/audience?format=xml", &as_crm)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = app.get("/api/v1/marketing/audience", &as_analyst).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, none) = app
        .get("/api/v1/marketing/audience?segment=No%20such", &as_crm)
        .await;
    assert_eq!(status, StatusCode::OK, "{none}");
    assert_eq!(none["left_out_without_consent"], 0, "{none}");

    // The customer's export holds the whole history.
    let (status, _, export) = app
        .get(
            &format!("/api/v1/customers/{first}/export"),
            &[("authorization", &admin)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{export}");
    let history: Vec<(&str, bool)> = export["consent"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["purpose"].as_str().unwrap(),
                e["granted"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            ("profiling", false),
            ("profiling", true),
            ("marketing", true)
        ]
    );
}
