//! The platform with its metadata in PostgreSQL, as the production profile runs it: replicas
//! over one lake and one store share users, runs and the pipeline's lock.

use axum::http::{Method, StatusCode};
use retail_app::{App, Config, Role};
use retail_metadata::{PostgresStore, RunKind};
use retail_services::ApiConfig;
use retail_test_support::{Generated, postgres_url, unique_name};

use crate::api::support::{PASSWORD, TestApp, assert_error, send, test_config};

#[tokio::test]
async fn replicas_on_a_postgres_metadata_store_share_users_runs_and_the_pipeline_lock() {
    let Some(url) = postgres_url() else { return };
    let schema = unique_name("app_metadata");
    let on_postgres = |config: &mut Config| {
        config.metadata.url.clone_from(&url);
        config.metadata.schema.clone_from(&schema);
        config.metadata.pool_size = 2;
    };
    let data = Generated::new(2_000, 20);
    let app = TestApp::over(&data.files[..10], ApiConfig::default(), on_postgres).await;
    assert_eq!(
        app.app.store.location(),
        format!("PostgreSQL schema {schema}")
    );
    assert!(
        !app.dir().join("retail.db").exists(),
        "no SQLite file beside the lake"
    );

    // A second replica, built as `retail serve` builds it, over the same lake and store.
    let mut config = test_config(app.dir(), ApiConfig::default());
    on_postgres(&mut config);
    let replica = App::build(config, Role::Server).await.unwrap();
    let router = replica.router();

    // A user created through the first replica logs in at the second.
    let body = serde_json::json!({"username": "data_engineer", "password": PASSWORD}).to_string();
    let (status, _, login) = send(
        &router,
        Method::POST,
        "/api/v1/auth/login",
        &[],
        Some(("application/json", &body)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let bearer = format!("Bearer {}", login["access_token"].as_str().unwrap());
    let auth = [("authorization", bearer.as_str())];

    // While the first replica's process holds the pipeline, the second refuses to start one.
    let held = app.app.store.claim("pipeline run").await.unwrap();
    let (status, _, json) = send(&router, Method::POST, "/admin/pipeline/run", &auth, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert_error(&json, "conflict");
    drop(held);

    // New days ingested through the first replica are processed by a run the second starts;
    // the first follows the run by its id.
    app.ingest(&data.files[10..]).await;
    let (status, _, started) =
        send(&router, Method::POST, "/admin/pipeline/run", &auth, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run = app
        .finished_run(started["run_id"].as_str().unwrap(), &bearer)
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["detail"]["requested_by"], "api:data_engineer");

    // Both replicas list the same history: two ingestions and two pipeline runs.
    for store in [&app.app.store, &replica.store] {
        assert_eq!(
            store.runs(Some(RunKind::Ingest), 10).await.unwrap().len(),
            2
        );
        assert_eq!(
            store.runs(Some(RunKind::Pipeline), 10).await.unwrap().len(),
            2
        );
    }

    drop(replica);
    drop(app);
    PostgresStore::connect(&url, &schema, 1)
        .await
        .unwrap()
        .drop_schema()
        .await
        .unwrap();
}

#[tokio::test]
async fn postgres_and_redis_connections_are_encrypted_and_their_certificates_checked() {
    let (Some(url), Some(rediss), Some(ca)) = (
        postgres_url(),
        retail_test_support::rediss_url(),
        retail_test_support::tls_ca(),
    ) else {
        return;
    };
    let secure = format!("{url}?sslmode=require");
    let tls = retail_tls::TlsConfig {
        ca_file: ca,
        allow_plaintext: false,
        ..retail_tls::TlsConfig::default()
    };
    let settings = retail_warehouse::WarehouseConfig {
        backend: retail_warehouse::Backend::Postgres,
        postgres_url: secure.clone(),
        postgres_schema: unique_name("tls_warehouse"),
        pool_size: 2,
        ..retail_warehouse::WarehouseConfig::default()
    };
    let warehouse = retail_app::warehouses::postgres(&settings, &tls, true)
        .await
        .unwrap();
    let ssl = warehouse
        .sql("SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .await
        .unwrap();
    assert_eq!(
        ssl.rows[0][0].to_string(),
        "true",
        "the warehouse's connection"
    );
    let metadata_schema = unique_name("tls_metadata");
    let store = PostgresStore::connect_with(&secure, &metadata_schema, 1, &tls)
        .await
        .unwrap();
    let encrypted = warehouse
        .sql(
            "SELECT count(*)::text FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
              WHERE a.application_name = 'retail-metadata' AND s.ssl",
        )
        .await
        .unwrap();
    assert_ne!(
        encrypted.rows[0][0].to_string(),
        "0",
        "the store's connection"
    );

    // Without sslmode=require the connection is plaintext (allowed: loopback), whatever the
    // server offers.
    let plain_settings = retail_warehouse::WarehouseConfig {
        postgres_url: url.clone(),
        ..settings.clone()
    };
    let plain = retail_app::warehouses::postgres(&plain_settings, &tls, false)
        .await
        .unwrap();
    let ssl = plain
        .sql("SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .await
        .unwrap();
    assert_eq!(
        ssl.rows[0][0].to_string(),
        "false",
        "prefer means plaintext"
    );
    // The system's authorities do not know the test authority: the server is refused.
    let unknown =
        retail_app::warehouses::postgres(&settings, &retail_tls::TlsConfig::default(), true)
            .await
            .unwrap_err();
    assert!(
        format!("{unknown:#}").contains("certificate"),
        "{unknown:#}"
    );
    // Plaintext to another machine is refused before any connection, naming the setting.
    let remote = retail_warehouse::WarehouseConfig {
        postgres_url: "postgres://retail@192.0.2.1:5432/retail".to_owned(),
        ..settings.clone()
    };
    let plaintext = retail_app::warehouses::postgres(&remote, &tls, false)
        .await
        .unwrap_err();
    assert!(
        format!("{plaintext:#}").contains("tls.allow_plaintext"),
        "{plaintext:#}"
    );

    // Redis over TLS carries the shared cache; an unknown authority is refused.
    let redis = retail_redis::RedisShared::connect_with(&rediss, &tls)
        .await
        .unwrap();
    let key = unique_name("tls_key");
    retail_domain::ports::SharedCache::put(&redis, &key, "over tls".to_owned(), 60).await;
    assert_eq!(
        retail_domain::ports::SharedCache::get(&redis, &key)
            .await
            .as_deref(),
        Some("over tls")
    );
    assert!(
        retail_redis::RedisShared::connect_with(&rediss, &retail_tls::TlsConfig::default())
            .await
            .is_err()
    );

    warehouse.drop_schema().await.unwrap();
    store.drop_schema().await.unwrap();
}
