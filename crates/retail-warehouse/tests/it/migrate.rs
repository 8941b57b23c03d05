//! Migrations: applied once, checked afterwards, refused when the database is ahead.

use retail_warehouse::Error;
use retail_warehouse::migrations::MIGRATIONS;

use crate::support::{postgres, raw_client};

#[tokio::test]
async fn migrations_apply_once_and_an_edited_or_unknown_migration_stops_start_up() {
    let Some(warehouse) = postgres("migrate").await else {
        return;
    };
    // `postgres()` applied them already: a second run applies nothing.
    assert_eq!(warehouse.migrate().await.unwrap(), Vec::<i32>::new());
    let objects = warehouse.objects().await.unwrap();
    assert_eq!(objects.migrations.len(), MIGRATIONS.len());

    let client = raw_client(&warehouse).await;
    client
        .batch_execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        .await
        .unwrap();
    let error = warehouse.migrate().await.unwrap_err();
    assert!(
        matches!(error, Error::MigrationChanged { version: 1, .. }),
        "{error}"
    );
    let checksum = MIGRATIONS[0].checksum();
    client
        .execute(
            "UPDATE schema_migrations SET checksum = $1 WHERE version = 1",
            &[&checksum],
        )
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (999, 'future', 'x')",
        )
        .await
        .unwrap();
    let error = warehouse.migrate().await.unwrap_err();
    assert!(
        matches!(error, Error::SchemaTooNew { database: 999, .. }),
        "{error}"
    );
    warehouse.drop_schema().await.unwrap();
}

#[tokio::test]
async fn a_wrong_url_or_schema_is_refused_without_echoing_secrets() {
    let config = retail_warehouse::WarehouseConfig {
        backend: retail_warehouse::Backend::Postgres,
        postgres_url: "postgres://user:hunter2@127.0.0.1:1/db".to_owned(),
        connect_timeout_ms: 500,
        max_attempts: 1,
        ..Default::default()
    };
    let warehouse = retail_warehouse::PostgresWarehouse::connect(&config)
        .await
        .unwrap();
    let error = warehouse.ping().await.unwrap_err();
    let text = error.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        retail_domain::error::Classify::is_retryable(&error),
        "an unreachable server is a transient failure: {text}"
    );
    let bad_schema = retail_warehouse::WarehouseConfig {
        postgres_schema: "x; DROP TABLE y".to_owned(),
        ..config.clone()
    };
    assert!(
        retail_warehouse::PostgresWarehouse::connect(&bad_schema)
            .await
            .is_err()
    );
    let bad_url = retail_warehouse::WarehouseConfig {
        postgres_url: "not a url at all ://".to_owned(),
        ..config
    };
    let error = retail_warehouse::PostgresWarehouse::connect(&bad_url)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("not a valid PostgreSQL URL"), "{error}");
}
