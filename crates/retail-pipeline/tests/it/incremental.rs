//! Incremental and idempotent behaviour: late data, reruns, resumption.

use std::collections::HashMap;

use retail_lake::schema::{self as tables, SILVER_TRANSACTIONS};
use retail_metadata::{RunKind, RunStatus};
use retail_pipeline::{IngestOptions, RunRequest};

use retail_test_support::Generated;

use crate::support::{TestLake, formatted, strings};

/// Gold tables compared row by row (ids and timestamps of runs are not in gold), surrogate
/// keys replaced by the natural key they stand for: the order in which members arrived decides
/// key numbers, not what they mean.
async fn gold_rows(lake: &TestLake) -> Vec<Vec<String>> {
    let keys = surrogate_keys(lake).await;
    let mut all = Vec::new();
    for table in tables::GOLD_TABLES {
        all.push(
            lake.sorted_rows_with(&table, &[], |column, cell| {
                keys.get(&(column.to_owned(), cell.clone()))
                    .cloned()
                    .unwrap_or(cell)
            })
            .await,
        );
    }
    all
}

/// (key column, key) → the natural key it stands for, from the gold dimensions.
async fn surrogate_keys(lake: &TestLake) -> HashMap<(String, String), String> {
    let mut keys = HashMap::new();
    for (table, key, natural) in [
        (
            tables::GOLD_DIM_COUNTRY,
            "country_key",
            &["country_name"][..],
        ),
        (tables::GOLD_DIM_PRODUCT, "product_key", &["stock_code"][..]),
        (
            tables::GOLD_DIM_CUSTOMER,
            "customer_key",
            &["customer_id", "version", "country_name"][..],
        ),
    ] {
        let schema = table.arrow_schema();
        let position = |name: &str| schema.index_of(name).expect("column");
        for row in lake.sorted_rows(&table, &[]).await {
            let cells: Vec<&str> = row.split('|').collect();
            let meaning: Vec<&str> = natural.iter().map(|n| cells[position(n)]).collect();
            keys.insert(
                (key.to_owned(), cells[position(key)].to_owned()),
                format!("{key}={}", meaning.join("/")),
            );
        }
    }
    keys
}

/// Parquet files under `dir`, in any partition directory.
fn walk_parquet(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|path| {
            if path.is_dir() {
                walk_parquet(&path)
            } else {
                usize::from(path.extension().is_some_and(|x| x == "parquet"))
            }
        })
        .sum()
}

#[tokio::test]
async fn late_data_updates_silver_and_every_gold_table_like_a_full_rebuild() {
    let data = Generated::new(8_000, 12);
    let files = data.files.clone();
    let (late, on_time): (Vec<_>, Vec<_>) = files
        .iter()
        .cloned()
        .enumerate()
        .partition(|(index, _)| *index == 3);
    let on_time: Vec<_> = on_time.into_iter().map(|(_, f)| f).collect();
    let late: Vec<_> = late.into_iter().map(|(_, f)| f).collect();

    // Every run ends with a vacuum keeping no removed file: progress needs only the log.
    let incremental = TestLake::new().vacuuming();
    incremental.ingest(&on_time).await;
    let first = incremental.run().await;
    let silver_after_first = incremental
        .lake
        .count_rows(&SILVER_TRANSACTIONS)
        .await
        .unwrap();
    let keys_before = surrogate_keys(&incremental).await;
    // A file with older dates arrives after newer ones were processed.
    incremental.ingest(&late).await;
    let second = incremental.run().await;
    // Surrogate keys are stable: every member keeps its key, and new members get new numbers.
    let keys_after = surrogate_keys(&incremental).await;
    let meanings_after: HashMap<&String, &(String, String)> = keys_after
        .iter()
        .map(|(key, meaning)| (meaning, key))
        .collect();
    for (key, meaning) in &keys_before {
        if let Some(after) = meanings_after.get(meaning) {
            assert_eq!(*after, key, "{meaning} changed key");
        }
    }
    assert!(
        keys_after.len() > keys_before.len(),
        "the late day brings new members"
    );
    assert_eq!(second.status, RunStatus::Succeeded);
    assert!(
        second.rows_in > 0 && second.rows_in < first.rows_in,
        "only the new day is read"
    );
    assert_eq!(
        incremental
            .lake
            .count_rows(&SILVER_TRANSACTIONS)
            .await
            .unwrap(),
        silver_after_first + second.rows_out
    );

    // The vacuum ran: a rewritten table holds only the files its latest version references.
    let table = &retail_lake::schema::GOLD_DIM_CUSTOMER;
    let delta = incremental.lake.open(table).await.unwrap().unwrap();
    let referenced = incremental.lake.data_files(&delta, table).unwrap().len();
    let on_disk = walk_parquet(&incremental.lake.table_url(table).to_file_path().unwrap());
    assert_eq!(on_disk, referenced);

    let full = TestLake::new();
    full.ingest(&files).await;
    full.run().await;
    assert_eq!(gold_rows(&incremental).await, gold_rows(&full).await);
    assert_eq!(
        incremental.reconciliation().await,
        full.reconciliation().await
    );
}

#[tokio::test]
async fn ingestion_in_several_commits_is_recorded_file_by_file_and_resumes_after_a_crash() {
    // Some days have no sales (the shop is closed on Saturdays).
    let data = Generated::new(3_000, 8);
    let files: Vec<_> = data.files.iter().take(6).cloned().collect();
    assert_eq!(files.len(), 6);
    // A commit every row: each file is its own commit, with its checksum mark.
    let lake = TestLake::with_options(IngestOptions { commit_rows: 1 });
    lake.ingest(&files[..2]).await;
    assert_eq!(
        lake.lake
            .latest_version(&tables::BRONZE_TRANSACTIONS)
            .await
            .unwrap(),
        Some(2)
    );
    // As if a crash had stopped an ingestion of all six after the first two were committed:
    // the rerun skips what landed and adds the rest.
    let rerun = lake.ingest(&files).await;
    let skipped = rerun.detail.files.iter().filter(|f| f.skipped).count();
    assert_eq!(skipped, 2);
    let run = lake.run().await;
    assert!(run.detail.reconciliation.expect("recorded").balances());

    let once = TestLake::new();
    once.ingest(&files).await;
    once.run().await;
    assert_eq!(gold_rows(&lake).await, gold_rows(&once).await);
}

#[tokio::test]
async fn each_stage_can_run_alone_and_status_tells_what_is_behind() {
    let lake = TestLake::new();
    lake.ingest(&[crate::support::testdata("quarantine.csv")])
        .await;
    let status = lake.status().await;
    assert!(!status.silver_up_to_date);
    assert_eq!(
        status
            .assets
            .iter()
            .map(|a| (a.asset, a.staleness.is_up_to_date()))
            .collect::<Vec<_>>(),
        [("silver", false), ("gold", true)],
        "silver is behind bronze; gold has no silver to follow yet"
    );
    lake.run_request(RunRequest {
        assets: vec!["silver".to_owned()],
        ..RunRequest::default()
    })
    .await
    .unwrap();
    let status = lake.status().await;
    assert!(status.silver_up_to_date && !status.gold_up_to_date);
    let run = lake.run().await;
    assert_eq!(run.status, RunStatus::Succeeded);
    let status = lake.status().await;
    assert!(status.silver_up_to_date && status.gold_up_to_date);
    assert!(status.assets.iter().all(|a| a.staleness.is_up_to_date()));
    assert_eq!(status.latest_run.map(|r| r.run_id), Some(run.run_id));
    let runs = lake.store.runs(None, 10).await.unwrap();
    assert_eq!(
        runs.len(),
        3,
        "one ingestion and two pipeline runs recorded"
    );
}

#[tokio::test]
async fn a_failed_stage_keeps_every_table_at_its_last_good_version_and_a_rerun_completes() {
    let lake = TestLake::new();
    lake.ingest(&[crate::support::testdata("quarantine.csv")])
        .await;
    // Make one gold table unwritable: its location is a plain file.
    let root = lake.lake.root().to_file_path().expect("local lake");
    let blocked = root.join(tables::GOLD_DAILY_SALES.name);
    std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
    std::fs::write(&blocked, "not a table").unwrap();

    let error = lake
        .run_request(RunRequest::default())
        .await
        .expect_err("gold cannot write daily_sales");
    let recorded = lake.store.runs(Some(RunKind::Pipeline), 1).await.unwrap();
    assert_eq!(recorded[0].status, RunStatus::Failed);
    assert!(
        recorded[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("gold/daily_sales")),
        "{error}"
    );
    // Silver committed before the failure and stays; the failed table does not exist.
    let silver_version = lake
        .lake
        .latest_version(&SILVER_TRANSACTIONS)
        .await
        .unwrap();
    assert!(silver_version.is_some());

    std::fs::remove_file(&blocked).unwrap();
    let rerun = lake.run().await;
    assert_eq!(rerun.status, RunStatus::Succeeded);
    assert_eq!(
        rerun.rows_in, 0,
        "silver was already current: only gold is completed"
    );
    assert_eq!(
        lake.lake
            .latest_version(&SILVER_TRANSACTIONS)
            .await
            .unwrap(),
        silver_version
    );
    let status = lake.status().await;
    assert!(status.silver_up_to_date && status.gold_up_to_date);
}

#[tokio::test]
async fn gold_remakes_only_the_months_new_data_falls_in_and_equals_a_full_build() {
    // Eleven weeks: December 2010 to the middle of February 2011.
    let data = Generated::new(20_000, 75);
    let files = data.files.clone();
    let (late, newest) = (files[5].clone(), files[files.len() - 1].clone());
    assert!(month_of_file(&newest).as_str() > "2011-01");
    let first: Vec<_> = files
        .iter()
        .filter(|f| **f != late && **f != newest)
        .cloned()
        .collect();

    let lake = TestLake::new();
    lake.ingest(&first).await;
    let run = lake.run().await;
    assert_eq!(run.detail.gold_build.as_deref(), Some("full"));

    // A new day: only its month is remade.
    lake.ingest(std::slice::from_ref(&newest)).await;
    let run = lake.run().await;
    assert_eq!(run.detail.gold_build.as_deref(), Some("incremental"));
    assert_eq!(run.detail.gold_months, [month_of_file(&newest)]);

    // A late day in the first month: that month is remade (or, when a customer's country
    // history changes before later months, all of gold is).
    lake.ingest(std::slice::from_ref(&late)).await;
    let run = lake.run().await;
    match run.detail.gold_build.as_deref() {
        Some("incremental") => assert_eq!(run.detail.gold_months, [month_of_file(&late)]),
        other => assert_eq!(other, Some("full")),
    }

    let full = TestLake::new();
    full.ingest(&files).await;
    full.run().await;
    assert_eq!(gold_rows(&lake).await, gold_rows(&full).await);

    // A late sale in December of a customer who bought in January, from another country:
    // their type 2 versions change before January, whose facts are not remade, so gold is
    // built from all of silver, and still equals a full build.
    let customer = customer_of_january(&lake).await;
    let moved = [
        Some("599999".to_owned()),
        Some("85123A".to_owned()),
        Some("WHITE HANGING HEART T-LIGHT HOLDER".to_owned()),
        Some("1".to_owned()),
        Some("2010-12-02 09:00:00".to_owned()),
        Some("2.55".to_owned()),
        Some(customer),
        Some("Iceland".to_owned()),
    ];
    lake.ingest_records(std::slice::from_ref(&moved), None)
        .await;
    let run = lake.run().await;
    assert_eq!(run.detail.gold_build.as_deref(), Some("full"));
    assert_eq!(run.status, RunStatus::Succeeded);
    let rebuilt = TestLake::new();
    rebuilt.ingest(&files).await;
    rebuilt
        .ingest_records(std::slice::from_ref(&moved), None)
        .await;
    rebuilt.run().await;
    assert_eq!(gold_rows(&lake).await, gold_rows(&rebuilt).await);
}

/// `2011-01` for the file of a day in January 2011.
fn month_of_file(file: &std::path::Path) -> String {
    file.file_stem().unwrap().to_str().unwrap()[..7].to_owned()
}

/// A customer with a silver row in January 2011 and none in Iceland.
async fn customer_of_january(lake: &TestLake) -> String {
    let silver = lake.read(&SILVER_TRANSACTIONS).await;
    let customers = strings(&silver, "customer_id");
    let countries = strings(&silver, "country_name");
    let days = formatted(&silver, "invoice_date");
    customers
        .iter()
        .zip(&countries)
        .zip(&days)
        .find_map(|((customer, country), day)| {
            (day.starts_with("2011-01") && country.as_deref() != Some("Iceland"))
                .then(|| customer.clone())
                .flatten()
        })
        .expect("a customer bought in January")
}

#[tokio::test]
async fn the_reconciliation_counts_the_bronze_silver_has_processed_not_what_arrived_since() {
    // A stream consuming while the pipeline runs: bronze gains records between the silver
    // stage and the reconciliation. They are the next run's, not a gap in this one's balance.
    let data = Generated::new(2_000, 6);
    let lake = TestLake::new();
    lake.ingest(&data.files[..3]).await;
    assert_eq!(lake.run().await.status, RunStatus::Succeeded);
    let processed = lake
        .lake
        .count_rows(&tables::BRONZE_TRANSACTIONS)
        .await
        .unwrap();
    lake.ingest(&data.files[3..]).await;
    let arrived = lake
        .lake
        .count_rows(&tables::BRONZE_TRANSACTIONS)
        .await
        .unwrap();
    assert!(arrived > processed);
    let reconciliation = retail_pipeline::reconcile(&lake.lake).await.unwrap();
    assert_eq!(reconciliation.bronze, processed, "{reconciliation}");
    assert!(reconciliation.balances(), "{reconciliation}");
    // The next run takes the rest and balances over all of bronze.
    assert_eq!(lake.run().await.status, RunStatus::Succeeded);
    let reconciliation = retail_pipeline::reconcile(&lake.lake).await.unwrap();
    assert_eq!(reconciliation.bronze, arrived);
    assert!(reconciliation.balances(), "{reconciliation}");
}

#[tokio::test]
async fn a_first_gold_build_takes_silvers_rows_from_the_run_and_equals_one_read_from_the_lake() {
    let data = Generated::new(8_000, 12);
    let (earlier, later) = data.files.split_at(6);

    // A first load: silver holds only this run's rows, which gold takes from the silver stage.
    let lake = TestLake::new();
    lake.ingest(&data.files).await;
    let first = lake.run().await;
    assert_eq!(first.detail.gold_build.as_deref(), Some("full"));
    assert_eq!(
        first.detail.gold_silver_from.as_deref(),
        Some("silver_stage")
    );
    let from_the_run = gold_rows(&lake).await;
    // A forced rebuild processes no new bronze row, so reads silver back.
    let rebuilt = lake.run_forced().await;
    assert_eq!(rebuilt.detail.gold_silver_from.as_deref(), Some("lake"));
    assert_eq!(gold_rows(&lake).await, from_the_run);

    // Silver already holds rows: a full build after an append reads it back, and agrees.
    let in_two = TestLake::new();
    in_two.ingest(earlier).await;
    in_two.run().await;
    in_two.ingest(later).await;
    let second = in_two.run_forced().await;
    assert_eq!(second.detail.gold_build.as_deref(), Some("full"));
    assert_eq!(second.detail.gold_silver_from.as_deref(), Some("lake"));
    assert_eq!(gold_rows(&in_two).await, from_the_run);
}
