//! Ingestion over HTTP: every format, durable before the answer, idempotent, all-or-nothing on
//! malformed records.

use axum::http::{Method, StatusCode};
use retail_lake::schema::{BRONZE_TRANSACTIONS, SILVER_QUARANTINE, SILVER_TRANSACTIONS};
use retail_services::ApiConfig;

use crate::api::support::{TestApp, assert_error};

const RECORDS: &str = r#"[
  {"InvoiceNo": "900001", "StockCode": "85123A", "Description": "WHITE HANGING HEART T-LIGHT HOLDER",
   "Quantity": 6, "InvoiceDate": "2011-12-10 09:00:00", "UnitPrice": 2.55, "CustomerID": "17850",
   "Country": "United Kingdom"},
  {"invoice": "900001", "stock_code": "22423", "description": "REGENCY CAKESTAND 3 TIER",
   "quantity": "2", "invoice_date": "2011-12-10 09:00:00", "unit_price": "12.75",
   "customer_id": "17850", "country": "United Kingdom"},
  {"InvoiceNo": "900002", "StockCode": "22423", "Description": null, "Quantity": 0,
   "InvoiceDate": "2011-12-10 09:05:00", "UnitPrice": 12.75, "CustomerID": "", "Country": "France"}
]"#;

#[tokio::test]
async fn records_land_in_bronze_before_the_answer_and_a_retry_writes_nothing() {
    let app = TestApp::generated(500, ApiConfig::default()).await;
    let bronze = || async { app.lake().count_rows(&BRONZE_TRANSACTIONS).await.unwrap() };
    let before = bronze().await;
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let headers = [
        ("authorization", engineer.as_str()),
        ("idempotency-key", "batch-1"),
    ];
    let (status, _, json) = app
        .call(
            Method::POST,
            "/api/v1/ingest/transactions",
            &headers,
            Some(RECORDS),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{json}");
    assert_eq!(json["status"], "accepted");
    assert_eq!(json["written"], 3);
    let ingestion_id = json["ingestion_id"].as_str().expect("an id").to_owned();
    assert_eq!(json["will_be_quarantined"][0]["index"], 2, "{json}");
    assert_eq!(
        json["will_be_quarantined"][0]["problems"][0], "zero_quantity",
        "{json}"
    );
    assert_eq!(bronze().await, before + 3, "durable before the answer");

    // The same request again (a client retry): nothing more is written.
    let (status, response_headers, json) = app
        .call(
            Method::POST,
            "/api/v1/ingest/transactions",
            &headers,
            Some(RECORDS),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["status"], "replayed");
    assert_eq!(
        json["ingestion_id"], ingestion_id,
        "a replay names the ingestion that wrote the records"
    );
    assert_eq!(response_headers["idempotent-replayed"], "true");
    assert_eq!(bronze().await, before + 3);

    // NDJSON and CSV, without a key.
    let ndjson = "{\"InvoiceNo\": \"900003\", \"StockCode\": \"22423\", \"Description\": null, \"Quantity\": 1, \"InvoiceDate\": \"2011-12-10 10:00:00\", \"UnitPrice\": 12.75, \"CustomerID\": null, \"Country\": \"Germany\"}\n\n{\"InvoiceNo\": \"900003\", \"StockCode\": \"85123A\", \"Description\": null, \"Quantity\": 2, \"InvoiceDate\": \"2011-12-10 10:00:00\", \"UnitPrice\": 2.55, \"CustomerID\": null, \"Country\": \"Germany\"}\n";
    let csv = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n900004,85123A,HEART,3,12/10/2011 11:00,2.55,12347,Iceland\n";
    for (content_type, body, rows) in [("application/x-ndjson", ndjson, 2), ("text/csv", csv, 1)] {
        let (status, _, json) = app
            .call_with_type(
                "/api/v1/ingest/transactions",
                &[("authorization", engineer.as_str())],
                content_type,
                body,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{content_type}: {json}");
        assert_eq!(json["written"], rows);
    }
    assert_eq!(bronze().await, before + 6);

    // A large batch (about 3 MB, over axum's own 2 MB default) within the configured limit.
    let big: Vec<serde_json::Value> = (0..12_000)
        .map(|i| {
            serde_json::json!({"InvoiceNo": format!("{}", 910_000 + i / 10), "StockCode": "85123A",
                "Description": "WHITE HANGING HEART T-LIGHT HOLDER", "Quantity": 1 + i % 12,
                "InvoiceDate": "2011-12-10 12:00:00", "UnitPrice": 2.55,
                "CustomerID": format!("{}", 12_346 + i % 4_000), "Country": "United Kingdom"})
        })
        .collect();
    let big = serde_json::to_string(&big).unwrap();
    assert!(big.len() > 2 << 20, "{}", big.len());
    let (status, _, json) = app
        .call(
            Method::POST,
            "/api/v1/ingest/transactions",
            &[("authorization", engineer.as_str())],
            Some(&big),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{json}");
    assert_eq!(json["written"], 12_000);
    assert_eq!(bronze().await, before + 6 + 12_000);

    // The next pipeline run takes them to silver and quarantine.
    let silver = app.lake().count_rows(&SILVER_TRANSACTIONS).await.unwrap();
    let quarantine = app.lake().count_rows(&SILVER_QUARANTINE).await.unwrap();
    let run = app.run_pipeline(&engineer).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    // Every row of the big batch differs from the others (invoice, quantity and customer
    // never repeat together): all of them and the five well-formed small ones reach silver.
    assert_eq!(
        app.lake().count_rows(&SILVER_TRANSACTIONS).await.unwrap(),
        silver + 12_005
    );
    assert_eq!(
        app.lake().count_rows(&SILVER_QUARANTINE).await.unwrap(),
        quarantine + 1
    );
}

#[tokio::test]
async fn malformed_bodies_are_refused_whole_and_change_nothing() {
    let app = TestApp::generated(500, ApiConfig::default()).await;
    let before = app.lake().count_rows(&BRONZE_TRANSACTIONS).await.unwrap();
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let auth = [("authorization", engineer.as_str())];
    // Decoded by the file decoder: an unknown field is kept as an extra column (record 1), a
    // contract field holding an object (record 2), an element that is no object (record 3)
    // and, over HTTP, a record leaving a field out (record 4) are malformed, so the whole body
    // is refused, each listed.
    let named =
        r#""Description": null, "InvoiceDate": null, "UnitPrice": null, "CustomerID": null"#;
    let body = format!(
        r#"[{{"InvoiceNo": "1", "StockCode": "A", "Quantity": 1, "Country": "France", {named}}},
            {{"InvoiceNo": "2", "StockCode": "A", "Quantity": 1, "Country": "France",
              "Colour": "red", {named}}},
            {{"InvoiceNo": "3", "Quantity": {{"n": 1}}}}, "text",
            {{"InvoiceNo": "5", "StockCode": "A", "Quantity": 1, "Country": "France"}}]"#
    );
    let body = body.as_str();
    let (status, _, json) = app
        .call(
            Method::POST,
            "/api/v1/ingest/transactions",
            &auth,
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_error(&json, "invalid_input");
    let indexes: Vec<u64> = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [2, 3, 4], "{json}");
    assert_eq!(
        json["records"][2]["problems"][0],
        "field(s) description, invoice_date, unit_price, customer_id not named: name every \
         field, null for no value",
        "{json}"
    );
    assert!(
        json["records"][0]["problems"][0]
            .as_str()
            .unwrap()
            .contains("must be text or a number"),
        "{json}"
    );
    // A body whose first record names too few contract fields is not retail transactions,
    // as a file with such a header is not.
    let (status, _, json) = app
        .call(
            Method::POST,
            "/api/v1/ingest/transactions",
            &auth,
            Some(r#"{"InvoiceNo": "1", "Colour": "red"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert!(
        json["records"][0]["problems"][0]
            .as_str()
            .unwrap()
            .contains("no retail transaction header"),
        "{json}"
    );
    // CSV follows the file rules too: a short row is malformed, and refused.
    let csv = "InvoiceNo,StockCode,Quantity,Country\n1,A,2,France\n2,B\n";
    let (status, _, json) = app
        .call_with_type("/api/v1/ingest/transactions", &auth, "text/csv", csv)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["records"][0]["index"], 1, "{json}");
    assert_eq!(
        json["records"][0]["problems"][0], "expected 4 fields, found 2",
        "{json}"
    );
    for bad in ["{not json", "[]", "42"] {
        let (status, _, json) = app
            .call(
                Method::POST,
                "/api/v1/ingest/transactions",
                &auth,
                Some(bad),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {json}");
    }
    let (status, _, json) = app
        .call_with_type("/api/v1/ingest/transactions", &auth, "text/plain", "hello")
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{json}");
    assert_error(&json, "unsupported_media_type");
    let analyst = format!("Bearer {}", app.token("data_analyst").await);
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/ingest/transactions",
            &[("authorization", analyst.as_str())],
            Some(RECORDS),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.lake().count_rows(&BRONZE_TRANSACTIONS).await.unwrap(),
        before
    );
}

#[tokio::test]
async fn a_key_reused_for_other_records_is_refused_and_replicas_racing_on_a_key_write_once() {
    let app = TestApp::generated(300, ApiConfig::default()).await;
    let bronze = || async { app.lake().count_rows(&BRONZE_TRANSACTIONS).await.unwrap() };
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let post = |router: axum::Router, key: &'static str, body: String| {
        let engineer = engineer.clone();
        async move {
            crate::api::support::send(
                &router,
                Method::POST,
                "/api/v1/ingest/transactions",
                &[
                    ("authorization", engineer.as_str()),
                    ("idempotency-key", key),
                ],
                Some(("application/json", body.as_str())),
            )
            .await
        }
    };
    let (status, _, json) = post(app.router.clone(), "k-1", RECORDS.to_owned()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{json}");
    let before = bronze().await;

    // The same key with other records: refused, nothing written, the first records kept.
    let other = RECORDS.replace("900001", "900009");
    let (status, _, json) = post(app.router.clone(), "k-1", other.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    assert_error(&json, "unprocessable");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"),
        "{json}"
    );
    assert_eq!(bronze().await, before);
    // The first request again is still a replay.
    let (status, _, json) = post(app.router.clone(), "k-1", RECORDS.to_owned()).await;
    assert_eq!(status, StatusCode::OK, "{json}");

    // Two replicas over the same lake receive one key at the same moment: written once.
    let replica = retail_app::App::build(
        crate::api::support::test_config(app.dir(), ApiConfig::default()),
        retail_app::Role::Server,
    )
    .await
    .unwrap();
    let (a, b) = tokio::join!(
        post(app.router.clone(), "k-2", other.clone()),
        post(replica.router(), "k-2", other.clone()),
    );
    let mut statuses = [a.0.as_u16(), b.0.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 202], "{} / {}", a.2, b.2);
    assert_eq!(bronze().await, before + 3);
}
