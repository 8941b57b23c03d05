//! The audit trail through the API: what is recorded (logins and their failures, writes,
//! refusals, customer-level reads, exports), who may read it, and its verification finding an
//! entry altered behind the platform's back.

use axum::http::{Method, StatusCode};
use retail_services::ApiConfig;

use crate::api::support::{TestApp, assert_error};

/// The entries of the trail as the admin reads them through the API, page after page.
async fn trail(app: &TestApp, bearer: &str, query: &str) -> Vec<serde_json::Value> {
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let path = format!("/api/v1/audit?limit=7&after={after}{query}");
        let (status, _, page) = app.get(&path, &[("authorization", bearer)]).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        entries.extend(page["entries"].as_array().expect("entries").iter().cloned());
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => return entries,
        }
    }
}

fn summary(entry: &serde_json::Value) -> (String, String, String) {
    let text = |field: &str| entry[field].as_str().unwrap_or_default().to_owned();
    (text("actor"), text("action"), text("outcome"))
}

#[tokio::test]
async fn logins_writes_refusals_and_customer_reads_are_chained_in_the_trail() {
    let app = TestApp::generated(2_000, ApiConfig::default()).await;
    let bad = serde_json::json!({"username": "data_analyst", "password": "wrong password!"});
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            &[],
            Some(&bad.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let analyst = format!("Bearer {}", app.token("data_analyst").await);
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let admin = format!("Bearer {}", app.token("admin").await);
    // Not audited: an aggregate read.
    let (status, _, _) = app
        .get(
            "/api/v2/analytics/sales-summary",
            &[("authorization", &analyst)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A refusal, an anonymous call, a write and a customer-level read.
    let (status, _, _) = app
        .call(
            Method::POST,
            "/admin/pipeline/run",
            &[("authorization", &analyst)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app.get("/admin/pipeline/runs", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.run_pipeline(&engineer).await;
    let (_, _, page) = app
        .get("/api/v1/sales?limit=50", &[("authorization", &engineer)])
        .await;
    let id = page["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|row| row["customer_id"].as_str())
        .find(|id| !id.is_empty())
        .expect("a line with a customer")
        .to_owned();
    let (status, _, _) = app
        .get(
            &format!("/api/v1/customers/{id}"),
            &[("authorization", &engineer)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Only the admin reads the trail.
    for bearer in [&analyst, &engineer] {
        let (status, _, json) = app.get("/api/v1/audit", &[("authorization", bearer)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
        assert_error(&json, "forbidden");
    }
    let entries = trail(&app, &admin, "").await;
    let seen: Vec<_> = entries.iter().map(summary).collect();
    let expect = |actor: &str, action: &str, outcome: &str| {
        assert!(
            seen.iter()
                .any(|(a, b, c)| a == actor && b == action && c == outcome),
            "no {actor} {action} {outcome} in {seen:#?}"
        );
    };
    expect("user:data_analyst", "auth.login", "denied");
    expect("user:data_analyst", "auth.login", "success");
    expect("user:admin", "auth.login", "success");
    expect("user:data_analyst", "http.denied", "denied");
    expect("anonymous", "http.denied", "denied");
    expect("user:data_engineer", "http.write", "success");
    expect("user:data_engineer", "data.read_customer", "success");
    // The second engineer request (/api/v1/sales) is customer-level for a reader of customers;
    // the analyst's aggregate read is nowhere.
    assert!(
        !entries.iter().any(|e| e["target"]
            .as_str()
            .unwrap_or_default()
            .contains("sales-summary")),
        "aggregate reads are not audited"
    );
    let write = entries
        .iter()
        .find(|e| e["action"] == "http.write")
        .expect("the pipeline run");
    assert_eq!(write["target"], "POST /admin/pipeline/run");
    assert_eq!(write["source"], "local");
    let detail: serde_json::Value =
        serde_json::from_str(write["detail"].as_str().expect("detail")).expect("JSON");
    assert_eq!(detail["status"], 202);
    assert_eq!(detail["role"], "data_engineer");
    // Filters: by actor, by area, by text of the target.
    let own = trail(&app, &admin, "&actor=user:data_analyst").await;
    assert!(own.iter().all(|e| e["actor"] == "user:data_analyst"));
    // Two logins, the refused pipeline run, the refused read of the trail.
    assert_eq!(own.len(), 4, "{own:#?}");
    let auth = trail(&app, &admin, "&action=auth.").await;
    assert!(
        auth.iter()
            .all(|e| e["action"].as_str().unwrap().starts_with("auth."))
    );
    let about = trail(&app, &admin, &format!("&target={id}")).await;
    assert!(about.iter().any(|e| e["action"] == "data.read_customer"));
    // Bad filters are named.
    for bad in [
        "limit=0",
        "limit=1001",
        "after=-1",
        "outcome=maybe",
        "since=yesterday",
        "colour=red",
    ] {
        let (status, _, json) = app
            .get(
                &format!("/api/v1/audit?{bad}"),
                &[("authorization", &admin)],
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {json}");
    }

    // The chain verifies, and reading the trail was itself recorded.
    let (status, _, verdict) = app
        .get("/api/v1/audit/verify", &[("authorization", &admin)])
        .await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!(verdict["intact"], true, "{verdict}");
    let head = verdict["head"].as_str().expect("head").to_owned();
    assert!(trail(&app, &admin, "&action=audit.read").await.len() >= 2);

    // Someone with the file changes an outcome behind the platform's back.
    let altered: i64 = entries
        .iter()
        .find(|e| e["action"] == "http.denied")
        .and_then(|e| e["seq"].as_i64())
        .expect("a refusal");
    let connection = rusqlite::Connection::open(app.dir().join("retail.db")).expect("file");
    connection
        .execute_batch(&format!(
            "DROP TRIGGER audit_log_no_update;
             UPDATE audit_log SET outcome = 'success' WHERE seq = {altered}"
        ))
        .expect("tamper");
    let (_, _, verdict) = app
        .get(
            &format!("/api/v1/audit/verify?expect_head={head}"),
            &[("authorization", &admin)],
        )
        .await;
    assert_eq!(verdict["intact"], false, "{verdict}");
    assert_eq!(verdict["problem_seq"], altered, "{verdict}");
    assert_eq!(verdict["verified"], altered - 1);
    assert!(
        verdict["problem"]
            .as_str()
            .unwrap()
            .contains(&format!("entry {altered} was altered")),
        "{verdict}"
    );
    let (status, _, json) = app
        .get(
            "/api/v1/audit/verify?expect_head=12",
            &[("authorization", &admin)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
}
