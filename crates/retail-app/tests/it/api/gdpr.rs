//! The GDPR erasure on the real data: a customer erased through the API is gone from every
//! lake table (and every file and log entry on disk), the search index, the PostgreSQL
//! warehouse and the API; the incremental pipeline goes on correctly afterwards.

use std::collections::HashSet;
use std::path::Path;

use axum::http::{Method, StatusCode};
use retail_domain::privacy::mentions;
use retail_lake::arrow::array::{AsArray as _, RecordBatch};
use retail_lake::arrow::datatypes::DataType;
use retail_lake::schema::ALL_TABLES;
use retail_services::ApiConfig;

use super::support::TestApp;

/// A customer with many lines in the first days of the real data.
const CUSTOMER: &str = "17850";

/// Every text cell of a batch (lists of text included) that holds `id` as a token.
fn cells_naming(batch: &RecordBatch, id: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let texts: Vec<String> = match field.data_type() {
            DataType::Utf8 => {
                let column = column.as_string::<i32>();
                column.iter().flatten().map(str::to_owned).collect()
            }
            DataType::List(item) if item.data_type() == &DataType::Utf8 => {
                let list = column.as_list::<i32>();
                let values = list.values().as_string::<i32>();
                values.iter().flatten().map(str::to_owned).collect()
            }
            _ => Vec::new(),
        };
        found.extend(
            texts
                .into_iter()
                .filter(|text| mentions(text, id))
                .map(|text| format!("{}: {text}", field.name())),
        );
    }
    found
}

/// Every file below `dir`, recursively.
fn files_below(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_below(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn a_customer_is_erased_from_every_table_file_index_and_warehouse() {
    let Some(data) = retail_test_support::real_data() else {
        return;
    };
    let postgres = retail_test_support::postgres_url();
    let schema = retail_test_support::unique_name("gdpr");
    let days = retail_test_support::daily_files(&data);
    // The customer in rows of their own too: one quarantined, one malformed (raw text only).
    let extra = tempfile::tempdir().expect("temp dir");
    let extra_file = extra.path().join("2010-12-01-extra.csv");
    std::fs::write(
        &extra_file,
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n\
         536999,22222,ODD THING,lots,2010-12-01 09:00:00,1.00,17850.0,United Kingdom\n\
         537000,22223,SHORT LINE,17850\n\
         537001,22224,OTHER THING,2,2010-12-01 09:00:00,1.00,12347.0,Iceland\n",
    )
    .expect("extra file");
    let mut files = days[..20].to_vec();
    files.push(extra_file);
    let app = TestApp::over(&files, ApiConfig::default(), |config| {
        config.models.enabled = false;
        config.privacy.key = "a privacy key of at least thirty-two bytes".to_owned();
        if let Some(url) = &postgres {
            config.warehouse.backend = retail_warehouse::Backend::Postgres;
            config.warehouse.postgres_url.clone_from(url);
            config.warehouse.postgres_schema.clone_from(&schema);
        }
    })
    .await;
    let admin = format!("Bearer {}", app.token("admin").await);
    let engineer = format!("Bearer {}", app.token("data_engineer").await);
    let (status, _, _) = app
        .get(
            &format!("/api/v1/customers/{CUSTOMER}"),
            &[("authorization", &engineer)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the customer is there before");
    let lake = app.lake();
    let mut held_before = 0;
    for table in &ALL_TABLES {
        if lake.latest_version(table).await.unwrap().is_some() {
            for batch in lake.read_all(table).await.unwrap() {
                held_before += cells_naming(&batch, CUSTOMER).len();
            }
        }
    }
    assert!(held_before > 100, "{held_before} cells name the customer");

    // A consent choice, which the export carries and the erasure removes.
    let consent_path = format!("/api/v1/customers/{CUSTOMER}/consent");
    let choice = serde_json::json!({"purpose": "marketing", "granted": true}).to_string();
    let (status, _, consent) = app
        .call(
            Method::POST,
            &consent_path,
            &[("authorization", &admin)],
            Some(&choice),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{consent}");

    // Access and portability: everything held about the customer, as JSON and as CSV.
    let export_path = format!("/api/v1/customers/{CUSTOMER}/export");
    let (status, _, export) = app.get(&export_path, &[("authorization", &admin)]).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    let rows_of = |export: &serde_json::Value, table: &str| {
        export["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == table)
            .and_then(|t| t["rows"].as_array())
            .map_or(0, Vec::len)
    };
    let exported_lines = rows_of(&export, "silver/retail_transactions");
    assert!(exported_lines > 100, "{export}");
    assert_eq!(rows_of(&export, "silver/retail_transactions_quarantine"), 2);
    assert!(rows_of(&export, "gold/dim_customer") >= 1);
    assert_eq!(rows_of(&export, "gold/customer_rfm"), 1);
    assert_eq!(
        export["consent"]["history"][0]["purpose"], "marketing",
        "{export}"
    );
    for table in export["tables"].as_array().unwrap() {
        for row in table["rows"].as_array().unwrap() {
            assert!(mentions(&row.to_string(), CUSTOMER), "{row}");
        }
    }
    let (status, headers, _) = app
        .get(
            &format!("{export_path}?format=csv"),
            &[("authorization", &admin)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let (status, _, _) = app.get(&export_path, &[("authorization", &engineer)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an export is the admin's");

    // Only the admin may erase; a bad id changes nothing.
    let body = serde_json::json!({"customer_id": "17850.0"}).to_string();
    let (status, _, json) = app
        .call(
            Method::POST,
            "/api/v1/gdpr/erasures",
            &[("authorization", &engineer)],
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
    let blank = serde_json::json!({"customer_id": "  "}).to_string();
    let (status, _, json) = app
        .call(
            Method::POST,
            "/api/v1/gdpr/erasures",
            &[("authorization", &admin)],
            Some(&blank),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");

    let (status, _, report) = app
        .call(
            Method::POST,
            "/api/v1/gdpr/erasures",
            &[("authorization", &admin)],
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["status"], "succeeded", "{report}");
    let rows_in = |table: &str| {
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == table)
            .and_then(|t| t["rows"].as_u64())
            .unwrap_or_default()
    };
    let bronze_rows = rows_in("bronze/retail_transactions");
    let silver_rows = rows_in("silver/retail_transactions");
    assert!(bronze_rows >= silver_rows + 2, "{report}");
    assert!(silver_rows > 100, "{report}");
    assert_eq!(rows_in("silver/retail_transactions_quarantine"), 2);
    assert!(report["files_removed"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["consent_records"], 1, "{report}");
    let (status, _, consent) = app.get(&consent_path, &[("authorization", &admin)]).await;
    assert_eq!(status, StatusCode::OK, "{consent}");
    assert_eq!(consent["history"], serde_json::json!([]), "{consent}");
    assert!(
        report["log_files_removed"].as_u64().unwrap() > 0,
        "{report}"
    );
    let subject = report["subject"].as_str().expect("a keyed subject");
    assert_eq!(subject.len(), 64);
    println!(
        "erased {bronze_rows} bronze rows in {} s",
        report["seconds"].as_f64().unwrap()
    );

    // No table holds a cell naming the customer; the other customer's rows are all there.
    for table in &ALL_TABLES {
        if lake.latest_version(table).await.unwrap().is_none() {
            continue;
        }
        for batch in lake.read_all(table).await.unwrap() {
            let found = cells_naming(&batch, CUSTOMER);
            assert!(found.is_empty(), "{table}: {found:?}");
        }
    }
    // On disk: every data file is one the latest version references, and the logs left
    // (the latest commit and its checkpoint) name no such customer.
    let root = app.dir().join("lake");
    for table in &ALL_TABLES {
        let Some(delta) = lake.open(table).await.unwrap() else {
            continue;
        };
        let referenced: HashSet<String> = lake
            .data_files(&delta, table)
            .unwrap()
            .into_iter()
            .collect();
        let dir = root.join(table.name);
        for file in files_below(&dir) {
            let relative = file
                .strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if relative.starts_with("_delta_log") {
                if relative.ends_with(".json") {
                    let text = std::fs::read_to_string(&file).unwrap();
                    assert!(!mentions(&text, CUSTOMER), "{}", file.display());
                }
                continue;
            }
            assert!(
                referenced.iter().any(|path| path.ends_with(&relative)),
                "{} is not referenced by {table}'s latest version",
                file.display()
            );
        }
        let commits = files_below(&dir.join("_delta_log"))
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "json"))
            .count();
        assert_eq!(commits, 1, "{table}: only the latest commit's log is left");
    }

    // The export finds nothing any more; silver lost exactly the lines it listed.
    assert_eq!(silver_rows as usize, exported_lines);
    let (status, _, export) = app.get(&export_path, &[("authorization", &admin)]).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    for table in export["tables"].as_array().unwrap() {
        assert_eq!(table["rows"].as_array().map(Vec::len), Some(0), "{table}");
    }

    // The API and the search index know nothing of the customer.
    let (status, _, _) = app
        .get(
            &format!("/api/v1/customers/{CUSTOMER}"),
            &[("authorization", &engineer)],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, page) = app
        .get(
            &format!("/api/v1/search?q={CUSTOMER}&limit=50"),
            &[("authorization", &engineer)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        !page.to_string().contains(CUSTOMER),
        "the index still finds the customer: {page}"
    );

    // The PostgreSQL warehouse: no row of any table or view names the customer.
    if let Some(warehouse) = &app.app.postgres {
        let relations = warehouse
            .sql(&format!(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = '{schema}' AND c.relkind IN ('r', 'm', 'v') ORDER BY 1"
            ))
            .await
            .unwrap();
        assert!(relations.rows.len() > 5, "{relations:?}");
        for row in &relations.rows {
            let relation = row[0].to_string();
            let count = warehouse
                .sql(&format!(
                    "SELECT count(*) FROM \"{schema}\".\"{relation}\" t \
                     WHERE t::text ~ '(^|[^0-9A-Za-z]){CUSTOMER}([^0-9A-Za-z]|$)'"
                ))
                .await
                .unwrap();
            assert_eq!(count.rows[0][0].to_string(), "0", "{relation}");
        }
    }

    // The report is kept: the API and the trail give it back.
    let request = report["request_id"].as_str().unwrap();
    let (status, _, kept) = app
        .get(
            &format!("/api/v1/gdpr/erasures/{request}"),
            &[("authorization", &admin)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(kept, report);
    let (_, _, trail) = app
        .get(
            "/api/v1/audit?action=gdpr.forget",
            &[("authorization", &admin)],
        )
        .await;
    let entries = trail["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{trail}");
    assert!(!mentions(&entries[0].to_string(), CUSTOMER), "{trail}");

    // The customer arrives again: those records are erased again on arrival, the rest lands.
    let again = extra.path().join("2010-12-02-again.csv");
    std::fs::write(
        &again,
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n\
         538000,22222,ODD THING,2,2010-12-02 09:00:00,1.00,17850.0,United Kingdom\n\
         538001,22223,OTHER THING,3,2010-12-02 09:00:00,1.00,17850,United Kingdom\n\
         538002,22224,SHORT LINE,17850\n\
         538003,22225,THIRD THING,1,2010-12-02 09:00:00,1.00,12347.0,Iceland\n",
    )
    .expect("file");
    let run = app
        .app
        .services
        .ingest
        .ingest_files(
            &[again.display().to_string()],
            "test",
            &retail_domain::progress::NoProgress,
        )
        .await
        .expect("ingested");
    assert_eq!(run.detail.files[0].erased, 3, "{run:?}");
    assert_eq!(run.detail.files[0].rows, 1, "{run:?}");
    for batch in lake
        .read_all(&retail_lake::schema::BRONZE_TRANSACTIONS)
        .await
        .unwrap()
    {
        let found = cells_naming(&batch, CUSTOMER);
        assert!(found.is_empty(), "bronze after a new arrival: {found:?}");
    }

    // The pipeline goes on: a new day is processed incrementally, and gold equals a full
    // rebuild from silver.
    app.ingest(&days[20..21]).await;
    let run = app.run_pipeline(&engineer).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let totals = |batches: Vec<RecordBatch>| -> Vec<String> {
        let mut rows: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                (0..b.num_rows()).map(|i| {
                    b.columns()
                        .iter()
                        .map(|c| {
                            retail_lake::arrow::util::display::array_value_to_string(c, i)
                                .unwrap_or_default()
                        })
                        .collect::<Vec<_>>()
                        .join("|")
                })
            })
            .collect();
        rows.sort();
        rows
    };
    let incremental = totals(
        lake.read_all(&retail_lake::schema::GOLD_DAILY_SALES)
            .await
            .unwrap(),
    );
    app.app
        .services
        .pipeline
        .run(
            retail_services::RunRequest {
                assets: vec!["gold".to_owned()],
                force: true,
                requested_by: "test".to_owned(),
                ..retail_services::RunRequest::default()
            },
            &retail_domain::progress::NoProgress,
        )
        .await
        .expect("a full gold build");
    let full = totals(
        lake.read_all(&retail_lake::schema::GOLD_DAILY_SALES)
            .await
            .unwrap(),
    );
    assert!(!incremental.is_empty());
    assert_eq!(incremental, full);
}

/// A `retail serve` learns of an erasure another process made (here a command's build of the
/// platform on the same lake and store) within seconds, and keeps the customer out of what it
/// ingests from then on.
#[tokio::test]
async fn a_server_learns_of_erasures_made_by_other_processes() {
    let data = retail_test_support::Generated::new(500, 5);
    let test = TestApp::over(&data.files, ApiConfig::default(), |config| {
        config.privacy.key = "a privacy key of at least thirty-two bytes".to_owned();
    })
    .await;
    let known = |app: &retail_app::App| {
        app.ingestion
            .erased()
            .read()
            .unwrap()
            .as_ref()
            .map_or(0, |subjects| subjects.len())
    };
    assert_eq!(known(&test.app), 0);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = test.app.serve_until(listener, async {
        let _ = stopped.await;
    });
    let elsewhere = async {
        let command = retail_app::App::build(test.app.config.clone(), retail_app::Role::Cli)
            .await
            .unwrap();
        let report = command
            .services
            .gdpr
            .forget("12346", "cli:test", "cli@test")
            .await
            .unwrap();
        assert_eq!(report.status, "succeeded");
        assert_eq!(known(&command), 1);
        let server = &test.app;
        let learnt = |count: usize| async move {
            let deadline = std::time::Instant::now()
                + retail_app::ERASURES_EVERY * 3
                + std::time::Duration::from_secs(5);
            while known(server) < count {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the server never learnt of erasure {count}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        };
        learnt(1).await;
        // A later one is found by reading on from the last erasure seen.
        let report = command
            .services
            .gdpr
            .forget("12347", "cli:test", "cli@test")
            .await
            .unwrap();
        assert_eq!(report.status, "succeeded");
        learnt(2).await;
        stop.send(()).unwrap();
    };
    let (served, ()) = tokio::join!(serving, elsewhere);
    served.unwrap();
}
