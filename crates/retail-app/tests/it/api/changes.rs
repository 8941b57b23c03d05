//! Create, update and delete of raw transactions: each a bronze record, applied by the next
//! pipeline run.

use axum::http::{Method, StatusCode};
use retail_lake::schema::{BRONZE_TRANSACTIONS, SILVER_CHANGES, SILVER_TRANSACTIONS};
use retail_services::ApiConfig;

use crate::api::support::{HEART, TestApp, assert_error};

#[tokio::test]
async fn a_transaction_is_created_updated_and_deleted_through_bronze() {
    let app = TestApp::generated(500, ApiConfig::default()).await;
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let analyst = format!("Bearer {}", app.token("data_analyst").await);
    let auth = [("authorization", engineer.as_str())];
    let count = |table| {
        let lake = app.lake().clone();
        async move { lake.count_rows(&table).await.unwrap() }
    };
    let run = || async {
        let json = app.run_pipeline(&engineer).await;
        assert_eq!(json["status"], "succeeded", "{json}");
        json
    };
    let silver_has = |id: String| {
        let lake = app.lake().clone();
        async move {
            let batches = lake.read_all(&SILVER_TRANSACTIONS).await.unwrap();
            batches.iter().any(|b| {
                use retail_lake::arrow::array::AsArray as _;
                let ids = b
                    .column_by_name("transaction_id")
                    .unwrap()
                    .as_string::<i32>();
                ids.iter().any(|v| v == Some(id.as_str()))
            })
        }
    };

    // Create.
    let (status, _, created) = app
        .call(Method::POST, "/api/v1/transactions", &auth, Some(HEART))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    assert_eq!(created["operation"], "insert");
    let id = created["transaction_id"]
        .as_str()
        .expect("an id")
        .to_owned();
    run().await;
    assert!(silver_has(id.clone()).await);
    let silver = count(SILVER_TRANSACTIONS).await;

    // Update: the quantity corrected. An update whose fields break a rule is refused whole.
    let fixed = HEART.replace("\"Quantity\": 6", "\"Quantity\": 12");
    let bronze = count(BRONZE_TRANSACTIONS).await;
    let broken = HEART.replace("\"Quantity\": 6", "\"Quantity\": 0");
    let (status, _, json) = app
        .call(
            Method::PUT,
            &format!("/api/v1/transactions/{id}"),
            &auth,
            Some(&broken),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("zero_quantity")
    );
    assert_eq!(count(BRONZE_TRANSACTIONS).await, bronze, "nothing written");
    let keyed = [
        ("authorization", engineer.as_str()),
        ("idempotency-key", "fix-990001"),
    ];
    let (status, _, updated) = app
        .call(
            Method::PUT,
            &format!("/api/v1/transactions/{id}"),
            &keyed,
            Some(&fixed),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{updated}");
    assert_eq!(updated["target_transaction_id"], id.as_str());
    let new_id = updated["transaction_id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    // A retry writes nothing.
    let (status, _, replayed) = app
        .call(
            Method::PUT,
            &format!("/api/v1/transactions/{id}"),
            &keyed,
            Some(&fixed),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(replayed["status"], "replayed");
    assert_eq!(replayed["ingestion_id"], updated["ingestion_id"]);
    assert_eq!(count(BRONZE_TRANSACTIONS).await, bronze + 1);
    run().await;
    assert!(!silver_has(id.clone()).await, "the old row is replaced");
    assert!(silver_has(new_id.clone()).await);
    assert_eq!(count(SILVER_TRANSACTIONS).await, silver);

    // Delete.
    let (status, _, deleted) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/transactions/{new_id}"),
            &auth,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{deleted}");
    assert_eq!(deleted["operation"], "delete");
    let last = run().await;
    assert!(!silver_has(new_id.clone()).await);
    assert_eq!(count(SILVER_TRANSACTIONS).await, silver - 1);
    assert_eq!(count(SILVER_CHANGES).await, 2);
    // The pipeline still reconciles, changes counted.
    let reconciliation = &last["detail"]["reconciliation"];
    assert_eq!(reconciliation["deletes"], 1, "{last}");
    assert_eq!(reconciliation["updates"], 1, "{last}");

    // Bad ids, bodies and callers change nothing.
    let bronze = count(BRONZE_TRANSACTIONS).await;
    for (method, path, body) in [
        (
            Method::DELETE,
            "/api/v1/transactions/not-an-id".to_owned(),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/transactions/{}", new_id.to_uppercase()),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v1/transactions/{new_id}"),
            Some("[1, 2]"),
        ),
        (
            Method::POST,
            "/api/v1/transactions".to_owned(),
            Some(r#"{"Colour": "red"}"#),
        ),
        (
            Method::POST,
            "/api/v1/transactions".to_owned(),
            Some(&format!("[{HEART}]")[..]),
        ),
    ] {
        let (status, _, json) = app.call(method, &path, &auth, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {json}");
        assert_error(&json, "invalid_input");
    }
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/transactions/{new_id}"),
            &[("authorization", analyst.as_str())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "analysts cannot write");
    assert_eq!(count(BRONZE_TRANSACTIONS).await, bronze);
}
