//! Who may do what: the role matrix, bad tokens, refresh rotation, logout, rate limits.

use axum::http::{Method, StatusCode};
use jsonwebtoken::{EncodingKey, Header};
use retail_services::ApiConfig;
use serde_json::Value;

use crate::api::support::{SECRET, TestApp, assert_error, retry_after, send, test_config};

#[tokio::test]
async fn every_role_reaches_exactly_what_its_permissions_and_paths_allow() {
    let app = TestApp::generated(3_000, ApiConfig::default()).await;
    // A customer and a product the generated data holds.
    let customer = first_cell(
        &app,
        "SELECT customer_id FROM customer_rfm ORDER BY customer_id LIMIT 1",
    )
    .await;
    let product = first_cell(
        &app,
        "SELECT stock_code FROM dim_product ORDER BY stock_code LIMIT 1",
    )
    .await;
    let customer_path = format!("/api/v1/customers/{customer}");
    let product_path = format!("/api/v1/products/{product}");
    // Who may not read a customer's profile may not select their lines either.
    let customer_lines = format!("/api/v1/sales?customer_id={customer}");
    let customer_export = format!("/api/v1/sales/export?format=csv&customer_id={customer}");
    let customer_consent = format!("/api/v1/customers/{customer}/consent");
    let endpoints = [
        ("/api/v2/analytics/sales-summary", ["200", "200", "200"]),
        ("/api/v2/analytics/customers/rfm", ["200", "200", "200"]),
        (customer_path.as_str(), ["403", "200", "200"]),
        (product_path.as_str(), ["403", "200", "200"]),
        ("/api/v1/sales?limit=5", ["200", "200", "200"]),
        (customer_lines.as_str(), ["403", "200", "200"]),
        (customer_export.as_str(), ["403", "200", "200"]),
        ("/admin/pipeline/runs", ["403", "200", "200"]),
        ("/admin/pipeline/status", ["403", "200", "200"]),
        ("/api/v1/audit", ["403", "403", "200"]),
        ("/api/v1/audit/verify", ["403", "403", "200"]),
        ("/api/v1/gdpr/erasures", ["403", "403", "200"]),
        (customer_consent.as_str(), ["403", "403", "200"]),
        ("/api/v1/marketing/audience", ["403", "403", "200"]),
    ];
    let roles = ["data_analyst", "data_engineer", "admin"];
    for (index, role) in roles.iter().enumerate() {
        let token = app.token(role).await;
        let bearer = format!("Bearer {token}");
        for (path, expected) in &endpoints {
            let (status, _, json) = app.get(path, &[("authorization", &bearer)]).await;
            assert_eq!(
                status.as_str(),
                expected[index],
                "{role} GET {path}: {json}"
            );
            if status == StatusCode::FORBIDDEN {
                assert_error(&json, "forbidden");
            }
        }
    }
    // Nor see whose lines they are: the customer column is empty for them.
    let customers_seen = |role: &'static str| {
        let app = &app;
        async move {
            let bearer = format!("Bearer {}", app.token(role).await);
            let (_, _, page) = app
                .get("/api/v1/sales?limit=50", &[("authorization", &bearer)])
                .await;
            page["rows"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|row| !row["customer_id"].is_null())
                .count()
        }
    };
    assert_eq!(customers_seen("data_analyst").await, 0);
    assert!(customers_seen("data_engineer").await > 0);
    // Running the pipeline: engineers and admins only.
    let analyst = format!("Bearer {}", app.token("data_analyst").await);
    let (status, _, json) = app
        .call(
            Method::POST,
            "/admin/pipeline/run",
            &[("authorization", &analyst)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let (status, _, json) = app
        .call(
            Method::POST,
            "/admin/pipeline/run",
            &[("authorization", &engineer)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{json}");
    // Nothing new arrived since the lake was built: the run says so, with its reconciliation.
    let run = app
        .finished_run(json["run_id"].as_str().unwrap(), &engineer)
        .await;
    assert_eq!(run["status"], "up_to_date", "{run}");
    assert_eq!(run["detail"]["requested_by"], "api:data_engineer");
    assert_eq!(
        run["detail"]["reconciliation"]["bronze"]
            .as_u64()
            .map(|b| b > 0),
        Some(true)
    );

    // No credentials at all.
    let (status, headers, json) = app.get("/api/v2/analytics/sales-summary", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_error(&json, "unauthenticated");
}

#[tokio::test]
async fn expired_tampered_foreign_and_malformed_tokens_are_refused() {
    let app = TestApp::generated(500, ApiConfig::default()).await;
    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64| {
        serde_json::json!({"iss": "retail-platform", "aud": "retail-api", "sub": "admin",
                           "role": "admin", "iat": now - 3600, "exp": exp, "jti": "x",
                           "typ": "access"})
    };
    let sign = |claims: &serde_json::Value, secret: &str| {
        jsonwebtoken::encode(
            &Header::default(),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let valid = sign(&claims(now + 600), SECRET);
    let expired = sign(&claims(now - 1), SECRET);
    let foreign = sign(
        &claims(now + 600),
        "another secret of at least thirty-two bytes!",
    );
    let mut other_issuer = claims(now + 600);
    other_issuer["iss"] = serde_json::json!("another-platform");
    let other_issuer = sign(&other_issuer, SECRET);
    let mut other_audience = claims(now + 600);
    other_audience["aud"] = serde_json::json!("another-api");
    let other_audience = sign(&other_audience, SECRET);
    let mut no_audience = claims(now + 600);
    no_audience.as_object_mut().unwrap().remove("aud");
    let no_audience = sign(&no_audience, SECRET);
    let mut tampered_claims = claims(now + 600);
    tampered_claims["role"] = serde_json::json!("admin");
    let parts: Vec<&str> = valid.split('.').collect();
    let analyst_token = app.token("data_analyst").await;
    let analyst_parts: Vec<&str> = analyst_token.split('.').collect();
    // An analyst's signature on an admin's claims.
    let tampered = format!("{}.{}.{}", analyst_parts[0], parts[1], analyst_parts[2]);
    let path = "/api/v2/analytics/sales-summary";
    let (status, _, _) = app
        .get(path, &[("authorization", &format!("Bearer {valid}"))])
        .await;
    assert_eq!(status, StatusCode::OK, "the hand-made valid token works");
    for (label, token) in [
        ("expired", expired.as_str()),
        ("foreign", foreign.as_str()),
        ("tampered", tampered.as_str()),
        ("other issuer", other_issuer.as_str()),
        ("other audience", other_audience.as_str()),
        ("no audience", no_audience.as_str()),
        ("malformed", "not.a.jwt"),
    ] {
        let (status, _, json) = app
            .get(path, &[("authorization", &format!("Bearer {token}"))])
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}: {json}");
        assert_error(&json, "unauthenticated");
    }
    let (status, _, json) = app.get(path, &[("x-api-key", "rk_nope_nope")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");

    // Two credentials, one of them bad, in either order: refused, never the good one used.
    let (_, key) = app
        .app
        .services
        .access
        .create_key("two credentials", "admin")
        .await
        .unwrap();
    let good_bearer = format!("Bearer {valid}");
    let bad_bearer = format!("Bearer {expired}");
    for (label, headers) in [
        (
            "good token, bad key",
            vec![
                ("authorization", good_bearer.as_str()),
                ("x-api-key", "rk_nope_nope"),
            ],
        ),
        (
            "bad token, good key",
            vec![
                ("authorization", bad_bearer.as_str()),
                ("x-api-key", key.as_str()),
            ],
        ),
        (
            "two tokens",
            vec![
                ("authorization", good_bearer.as_str()),
                ("authorization", bad_bearer.as_str()),
            ],
        ),
    ] {
        let (status, _, json) = app.get(path, &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}: {json}");
        assert_error(&json, "unauthenticated");
    }
    let (status, _, _) = app.get(path, &[("x-api-key", &key)]).await;
    assert_eq!(status, StatusCode::OK, "the key alone works");
}

#[tokio::test]
async fn revocations_reach_every_replica_within_seconds_and_a_lost_refresh_may_be_retried() {
    let app = TestApp::generated(500, ApiConfig::default()).await;
    // A second replica over the same lake and metadata store, built as `retail serve` builds it.
    let other = retail_app::App::build(
        test_config(app.dir(), ApiConfig::default()),
        retail_app::Role::Server,
    )
    .await
    .unwrap();
    let other = other.router();
    let path = "/api/v2/analytics/sales-summary";
    let on_other = |bearer: String| {
        let other = other.clone();
        async move {
            send(
                &other,
                Method::GET,
                path,
                &[("authorization", &bearer)],
                None,
            )
            .await
            .0
        }
    };
    // Waits until the other replica refuses `bearer`; how long it took.
    let refused_within = |bearer: String| async move {
        let started = std::time::Instant::now();
        while on_other(bearer.clone()).await != StatusCode::UNAUTHORIZED {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(15),
                "still accepted after 15 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        started.elapsed()
    };

    // A user disabled on this replica: their access token stops working on the other one.
    let user = "revoked-user";
    let access = &app.app.services.access;
    access
        .create_user(user, "data_analyst", crate::api::support::PASSWORD)
        .await
        .unwrap();
    let bearer = format!("Bearer {}", app.token(user).await);
    assert_eq!(on_other(bearer.clone()).await, StatusCode::OK);
    access.disable_user(user).await.unwrap();
    let (status, _, _) = app.get(path, &[("authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "at once on this replica");
    let waited = refused_within(bearer).await;
    assert!(waited < std::time::Duration::from_secs(7), "{waited:?}");

    // A logout here ends the access token there.
    let session = app.login("data_engineer").await;
    let bearer = format!("Bearer {}", session["access_token"].as_str().unwrap());
    assert_eq!(on_other(bearer.clone()).await, StatusCode::OK);
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            &[("authorization", &bearer)],
            Some(&serde_json::json!({"refresh_token": session["refresh_token"]}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let waited = refused_within(bearer).await;
    assert!(waited < std::time::Duration::from_secs(7), "{waited:?}");

    // A key revoked here is refused there at once (keys are checked in the store each time).
    let (id, key) = access.create_key("replicated", "admin").await.unwrap();
    let with_key = |key: String| {
        let other = other.clone();
        async move {
            send(&other, Method::GET, path, &[("x-api-key", &key)], None)
                .await
                .0
        }
    };
    assert_eq!(with_key(key.clone()).await, StatusCode::OK);
    access.revoke_key(&id).await.unwrap();
    assert_eq!(with_key(key).await, StatusCode::UNAUTHORIZED);

    // A refresh whose answer was lost may be retried at once (on any replica) without ending
    // the session; both answers work.
    let session = app.login("data_engineer").await;
    let body = serde_json::json!({"refresh_token": session["refresh_token"]}).to_string();
    let (first, _, one) = app
        .call(Method::POST, "/api/v1/auth/refresh", &[], Some(&body))
        .await;
    let (second, _, two) = send(
        &other,
        Method::POST,
        "/api/v1/auth/refresh",
        &[],
        Some(("application/json", &body)),
    )
    .await;
    assert_eq!(
        (first, second),
        (StatusCode::OK, StatusCode::OK),
        "{one} {two}"
    );
    assert_ne!(one["refresh_token"], two["refresh_token"]);
    for pair in [&one, &two] {
        let bearer = format!("Bearer {}", pair["access_token"].as_str().unwrap());
        assert_eq!(on_other(bearer).await, StatusCode::OK);
    }
}

#[tokio::test]
async fn refresh_tokens_rotate_logout_ends_the_session_and_api_keys_work() {
    // No grace period: any second use of a refresh token is a reuse.
    let config = ApiConfig {
        refresh_grace_seconds: 0,
        ..ApiConfig::default()
    };
    let app = TestApp::generated(500, config).await;
    let first = app.login("data_engineer").await;
    let body = |token: &serde_json::Value| {
        serde_json::json!({"refresh_token": token["refresh_token"]}).to_string()
    };
    let (status, _, second) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            &[],
            Some(&body(&first)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    // The first refresh token is spent: using it again is refused and ends the session.
    let (status, _, json) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            &[],
            Some(&body(&first)),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&json, "unauthenticated");
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            &[],
            Some(&body(&second)),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the whole family is revoked"
    );

    // Logout: the access token stops working at once.
    let session = app.login("data_engineer").await;
    let bearer = format!("Bearer {}", session["access_token"].as_str().unwrap());
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            &[("authorization", &bearer)],
            Some(&body(&session)),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app
        .get("/admin/pipeline/runs", &[("authorization", &bearer)])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Wrong password and unknown user look the same.
    let wrong =
        serde_json::json!({"username": "admin", "password": "wrong password!!"}).to_string();
    let unknown =
        serde_json::json!({"username": "ghost", "password": "wrong password!!"}).to_string();
    let (s1, _, j1) = app
        .call(Method::POST, "/api/v1/auth/login", &[], Some(&wrong))
        .await;
    let (s2, _, j2) = app
        .call(Method::POST, "/api/v1/auth/login", &[], Some(&unknown))
        .await;
    assert_eq!(
        (s1, s2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(j1, j2);

    // API keys act with their role until revoked.
    let (id, key) = app
        .app
        .services
        .access
        .create_key("loader", "data_engineer")
        .await
        .unwrap();
    let (status, _, _) = app
        .get("/admin/pipeline/runs", &[("x-api-key", &key)])
        .await;
    assert_eq!(status, StatusCode::OK);
    app.app.services.access.revoke_key(&id).await.unwrap();
    let (status, _, _) = app
        .get("/admin/pipeline/runs", &[("x-api-key", &key)])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn requests_over_the_rate_get_429_with_retry_after_per_user_and_endpoint() {
    let config = ApiConfig {
        rate_limit_per_minute: 60,
        rate_limit_burst: 2,
        ..ApiConfig::default()
    };
    let app = TestApp::generated(500, config).await;
    let analyst = format!("Bearer {}", app.token("data_analyst").await);
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let path = "/api/v2/analytics/cohorts";
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..4 {
        let (status, headers, json) = app.get(path, &[("authorization", &analyst)]).await;
        statuses.push(status.as_u16());
        last = Some((headers, json));
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let (headers, json) = last.unwrap();
    assert_error(&json, "rate_limited");
    assert!(retry_after(&headers) >= 1);
    assert_eq!(headers["x-ratelimit-limit"], "60");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    // Another user, and another endpoint of the same user, have their own allowance.
    let (status, _, _) = app.get(path, &[("authorization", &engineer)]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = app
        .get(
            "/api/v2/analytics/geography",
            &[("authorization", &analyst)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn replicas_sharing_redis_share_rate_limits_and_cached_answers() {
    let Some(url) = retail_test_support::redis_url() else {
        return;
    };
    // One request a minute: no allowance comes back while the test runs, however slowly
    // (a cache miss over the real data can take seconds on a loaded machine).
    let config = ApiConfig {
        rate_limit_per_minute: 1,
        rate_limit_burst: 2,
        ..ApiConfig::default()
    };
    let app = TestApp::generated(500, config.clone()).await;
    // A user unique to this run, so limits left in Redis by earlier runs do not matter.
    let user = retail_test_support::unique_name("replica-user");
    app.app
        .services
        .access
        .create_user(&user, "data_analyst", crate::api::support::PASSWORD)
        .await
        .unwrap();
    let token = app.token(&user).await;
    // Two replicas over the same lake, metadata store and Redis, built as `retail serve`
    // builds them.
    let mut replicas = Vec::new();
    let mut apps = Vec::new();
    for _ in 0..2 {
        let mut replica = test_config(app.dir(), config.clone());
        replica.api.redis_url.clone_from(&url);
        let built = retail_app::App::build(replica, retail_app::Role::Server)
            .await
            .unwrap();
        replicas.push(built.router());
        apps.push(built);
    }
    let mut statuses = Vec::new();
    let mut caches = Vec::new();
    let bearer = format!("Bearer {token}");
    for round in 0..4 {
        let (status, headers, _) = send(
            &replicas[round % 2],
            Method::GET,
            "/api/v2/analytics/cohorts",
            &[("authorization", &bearer)],
            None,
        )
        .await;
        statuses.push(status.as_u16());
        caches.push(
            headers
                .get("x-cache")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
        );
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "the limit holds across replicas"
    );
    assert_eq!(caches[0], "miss", "{caches:?}");
    assert_eq!(
        caches[1], "hit-shared",
        "the second replica reuses the first one's answer"
    );
}

/// The first cell of a query on the embedded warehouse over the app's gold.
async fn first_cell(app: &TestApp, sql: &str) -> String {
    retail_warehouse::EmbeddedWarehouse::new(app.lake().clone())
        .sql(sql)
        .await
        .unwrap()
        .rows[0][0]
        .to_string()
}

#[tokio::test]
async fn logins_are_throttled_per_account_before_any_password_is_hashed() {
    let app = TestApp::generated(300, ApiConfig::default()).await;
    let login = |username: &'static str, password: &'static str| {
        let body = serde_json::json!({"username": username, "password": password}).to_string();
        let app = &app;
        async move {
            app.call(Method::POST, "/api/v1/auth/login", &[], Some(&body))
                .await
        }
    };
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let (status, headers, json) = login("data_engineer", "a wrong password!").await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_error(&json, "rate_limited");
            assert!(retry_after(&headers) >= 1);
        }
        statuses.push(status.as_u16());
    }
    // Five failures are free, the sixth starts the waits: every later attempt within the wait
    // is refused before its password is checked.
    assert_eq!(statuses[..6], [401; 6], "{statuses:?}");
    assert!(statuses[6..].iter().all(|s| *s == 429), "{statuses:?}");
    // Even the right password waits now.
    let (status, _, _) = login("data_engineer", crate::api::support::PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Other accounts are not affected.
    let (status, _, json) = login("data_analyst", crate::api::support::PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{json}");

    // Auth bodies are small whatever api.body_limit_bytes says.
    let big = format!(
        r#"{{"username": "{}", "password": "x"}}"#,
        "a".repeat(5_000)
    );
    let (status, _, json) = app
        .call(Method::POST, "/api/v1/auth/login", &[], Some(&big))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
}

/// Whether `text` is a pseudonym: `p` and 16 lower-case hex digits.
fn is_pseudonym(text: &str) -> bool {
    text.len() == 17
        && text.starts_with('p')
        && text[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// Masking by role: the analyst sees every customer id as its keyed pseudonym — the same one
/// in every answer and export — and may not name a customer; the engineer sees the ids; a
/// role from a roles file masks the columns it lists.
#[tokio::test]
async fn analysts_see_stable_pseudonyms_where_engineers_see_ids() {
    const KEY: &str = "a privacy key of at least thirty-two bytes";
    let data = retail_test_support::Generated::new(4_000, 20);
    let roles = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        roles.path(),
        "[roles.auditor]\npermissions = [\"read:*\"]\npaths = [\"/api/*\"]\n\
         pseudonymise = [\"customer_id\", \"invoice\"]\n",
    )
    .unwrap();
    let api = ApiConfig {
        roles_file: roles.path().display().to_string(),
        ..ApiConfig::default()
    };
    let app = TestApp::over(&data.files, api, |config| {
        config.privacy.key = KEY.to_owned();
    })
    .await;
    app.app
        .services
        .access
        .create_user("auditor", "auditor", super::support::PASSWORD)
        .await
        .unwrap();
    let analyst = format!("Bearer {}", app.token("data_analyst").await);
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let auditor = format!("Bearer {}", app.token("auditor").await);
    let pseudonym = |id: &str| retail_domain::privacy::pseudonym(KEY.as_bytes(), "customer_id", id);

    // The same page of lines: ids for the engineer, their pseudonyms for the analyst.
    let page = "/api/v1/sales?limit=100&order=asc";
    let (_, _, seen) = app.get(page, &[("authorization", &engineer)]).await;
    let (_, _, masked) = app.get(page, &[("authorization", &analyst)]).await;
    let ids: Vec<&Value> = seen["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["customer_id"])
        .collect();
    let pseudonyms: Vec<&Value> = masked["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["customer_id"])
        .collect();
    assert_eq!(ids.len(), pseudonyms.len());
    assert!(
        ids.iter().filter(|id| id.is_string()).count() > 10,
        "{seen}"
    );
    for (id, masked) in ids.iter().zip(&pseudonyms) {
        match id.as_str() {
            Some(id) => assert_eq!(masked.as_str(), Some(pseudonym(id).as_str())),
            None => assert!(masked.is_null()),
        }
    }
    assert_eq!(
        seen["rows"][0]["invoice"], masked["rows"][0]["invoice"],
        "only the listed columns are masked"
    );

    // The same pseudonym in another answer (lifetime values) and in an export.
    let (status, _, clv) = app
        .get(
            "/api/v2/analytics/clv?limit=1000",
            &[("authorization", &analyst)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{clv}");
    let scored: Vec<&str> = clv["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer_id"].as_str().unwrap())
        .collect();
    assert!(scored.iter().all(|p| is_pseudonym(p)), "{clv}");
    let first_id = ids.iter().find_map(|id| id.as_str()).unwrap();
    assert!(scored.contains(&pseudonym(first_id).as_str()));
    let (status, csv) = app
        .get_text(
            "/api/v1/sales/export?format=csv",
            &[("authorization", &analyst)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let column = reader
        .headers()
        .unwrap()
        .iter()
        .position(|c| c == "customer_id")
        .unwrap();
    let exported: std::collections::HashSet<String> = reader
        .records()
        .map(|record| record.unwrap()[column].to_owned())
        .filter(|cell| !cell.is_empty())
        .collect();
    assert!(!exported.is_empty());
    assert!(exported.iter().all(|p| is_pseudonym(p)), "{csv:.300}");
    assert!(exported.contains(&pseudonym(first_id)));
    assert!(
        ids.iter()
            .filter_map(|id| id.as_str())
            .all(|id| !exported.contains(id)),
        "no id in the export's customer column"
    );

    // Naming a customer, or searching more than products, is refused; products are fine.
    for path in [
        format!("/api/v1/sales?customer_id={first_id}"),
        format!("/api/v2/recommendations/customers/{first_id}"),
        format!("/api/v1/search?q={first_id}"),
        format!("/api/v1/search?q={first_id}&type=customer"),
        format!("/api/v1/search/suggest?q={first_id}"),
    ] {
        let (status, _, json) = app.get(&path, &[("authorization", &analyst)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {json}");
        assert_error(&json, "forbidden");
    }
    let (status, _, json) = app
        .get(
            "/api/v1/search?q=mug&type=product",
            &[("authorization", &analyst)],
        )
        .await;
    assert_ne!(status, StatusCode::FORBIDDEN, "{json}");

    // A role of the roles file masks what it lists, ids and invoices alike.
    let (status, _, audited) = app.get(page, &[("authorization", &auditor)]).await;
    assert_eq!(status, StatusCode::OK, "{audited}");
    let row = &audited["rows"][0];
    assert!(is_pseudonym(row["invoice"].as_str().unwrap()), "{row}");
    assert_ne!(row["invoice"], seen["rows"][0]["invoice"]);
    assert_eq!(row["stock_code"], seen["rows"][0]["stock_code"]);
    let (status, _, json) = app
        .get(
            &format!("/api/v1/customers/{first_id}"),
            &[("authorization", &auditor)],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
}
