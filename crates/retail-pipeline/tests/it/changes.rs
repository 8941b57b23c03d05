//! Updates and deletes of transactions already in silver, carried by bronze records.

use retail_domain::{DateWindow, Operation, RawFields, cleanse};
use retail_ingest::RecordChange;
use retail_lake::schema::{
    GOLD_DAILY_SALES, GOLD_FACT_SALES, GOLD_TABLES, SILVER_CHANGES, SILVER_DUPLICATES,
    SILVER_QUARANTINE, SILVER_TRANSACTIONS,
};
use retail_metadata::RunStatus;

use crate::support::{TestLake, rows, strings, sum_int};

fn record(invoice: &str, stock_code: &str, quantity: &str) -> [Option<String>; 8] {
    [
        Some(invoice.to_owned()),
        Some(stock_code.to_owned()),
        Some("WHITE HANGING HEART T-LIGHT HOLDER".to_owned()),
        Some(quantity.to_owned()),
        Some("2010-12-01 08:26:00".to_owned()),
        Some("2.55".to_owned()),
        Some("17850".to_owned()),
        Some("United Kingdom".to_owned()),
    ]
}

fn id_of(fields: &[Option<String>; 8]) -> String {
    cleanse(
        &RawFields::from_array(fields),
        None,
        &DateWindow::ingested_now(),
    )
    .expect("a clean record")
    .transaction_id
}

fn change(operation: Operation, target: &str) -> Option<RecordChange> {
    Some(RecordChange {
        operation,
        target_transaction_id: target.to_owned(),
    })
}

const NO_FIELDS: [Option<String>; 8] = [None, None, None, None, None, None, None, None];

async fn sorted_ids(lake: &TestLake, table: &retail_lake::TableSpec) -> Vec<String> {
    let mut ids: Vec<String> = strings(&lake.read(table).await, "transaction_id")
        .into_iter()
        .flatten()
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn updates_and_deletes_replace_and_remove_silver_rows_and_flow_to_gold() {
    let lake = TestLake::new();
    let (a, b, c) = (
        record("536365", "85123A", "6"),
        record("536365", "71053", "6"),
        record("536365", "84406B", "8"),
    );
    lake.ingest_records(&[a.clone(), b.clone(), c.clone()], None)
        .await;
    assert_eq!(lake.run().await.status, RunStatus::Succeeded);
    assert_eq!(rows(&lake.read(&SILVER_TRANSACTIONS).await), 3);

    // A's quantity corrected, B deleted, C "updated" to itself, and a delete of an id that
    // silver never held.
    let a_fixed = record("536365", "85123A", "12");
    lake.ingest_records(
        std::slice::from_ref(&a_fixed),
        change(Operation::Update, &id_of(&a)),
    )
    .await;
    lake.ingest_records(&[NO_FIELDS], change(Operation::Delete, &id_of(&b)))
        .await;
    lake.ingest_records(
        std::slice::from_ref(&c),
        change(Operation::Update, &id_of(&c)),
    )
    .await;
    lake.ingest_records(
        &[NO_FIELDS],
        change(Operation::Delete, "0123456789abcdef0123456789abcdef"),
    )
    .await;
    let run = lake.run().await;
    assert_eq!(run.status, RunStatus::Succeeded);
    // The changed month is remade from silver as it now is; a full rebuild agrees.
    assert_eq!(run.detail.gold_build.as_deref(), Some("incremental"));
    assert_eq!(run.detail.gold_months, ["2010-12"]);
    let mut month_by_month = Vec::new();
    for table in GOLD_TABLES {
        month_by_month.push(lake.sorted_rows(&table, &[]).await);
    }
    let rebuilt = lake.run_forced().await;
    assert_eq!(rebuilt.detail.gold_build.as_deref(), Some("full"));
    for (table, rows) in GOLD_TABLES.iter().zip(&month_by_month) {
        assert_eq!(&lake.sorted_rows(table, &[]).await, rows, "{table}");
    }

    let mut expected = vec![id_of(&a_fixed), id_of(&c)];
    expected.sort();
    assert_eq!(sorted_ids(&lake, &SILVER_TRANSACTIONS).await, expected);
    assert_eq!(sorted_ids(&lake, &GOLD_FACT_SALES).await, expected);
    assert_eq!(
        sum_int(&lake.read(&GOLD_DAILY_SALES).await, "units"),
        12 + 8
    );

    let changes = lake.read(&SILVER_CHANGES).await;
    let mut applied: Vec<(String, String, Option<String>)> = strings(&changes, "change")
        .into_iter()
        .zip(strings(&changes, "target_transaction_id"))
        .zip(strings(&changes, "replacement_transaction_id"))
        .map(|((change, target), replacement)| (change.unwrap(), target.unwrap(), replacement))
        .collect();
    applied.sort();
    assert_eq!(
        applied,
        [
            ("delete".to_owned(), id_of(&b), None),
            ("update".to_owned(), id_of(&a), Some(id_of(&a_fixed))),
        ]
    );
    let quarantine = lake.read(&SILVER_QUARANTINE).await;
    assert_eq!(rows(&quarantine), 1);
    assert_eq!(
        strings(&quarantine, "target_transaction_id"),
        [Some("0123456789abcdef0123456789abcdef".to_owned())]
    );
    assert_eq!(
        strings(&quarantine, "operation"),
        [Some("delete".to_owned())]
    );
    // The no-op update is a duplicate of its own target.
    assert_eq!(sorted_ids(&lake, &SILVER_DUPLICATES).await, [id_of(&c)]);

    let reconciliation = run.detail.reconciliation.expect("recorded");
    assert_eq!(
        (
            reconciliation.bronze,
            reconciliation.silver,
            reconciliation.quarantine,
            reconciliation.duplicates,
            reconciliation.updates,
            reconciliation.deletes
        ),
        (7, 2, 1, 1, 1, 1)
    );
    assert!(reconciliation.balances(), "{reconciliation}");

    // Nothing new: nothing changes.
    assert_eq!(lake.run().await.status, RunStatus::UpToDate);
}

#[tokio::test]
async fn changes_within_one_run_see_the_rows_inserted_before_them() {
    let lake = TestLake::new();
    let (a, b) = (
        record("536366", "22633", "6"),
        record("536366", "22632", "6"),
    );
    lake.ingest_records(&[a.clone(), b.clone()], None).await;
    // In the same run: delete A (inserted just before), re-create A (conflicts with the
    // delete), update B twice (the second names B, which the first replaced).
    lake.ingest_records(&[NO_FIELDS], change(Operation::Delete, &id_of(&a)))
        .await;
    lake.ingest_records(std::slice::from_ref(&a), None).await;
    let b2 = record("536366", "22632", "7");
    let b3 = record("536366", "22632", "8");
    lake.ingest_records(
        std::slice::from_ref(&b2),
        change(Operation::Update, &id_of(&b)),
    )
    .await;
    lake.ingest_records(
        std::slice::from_ref(&b3),
        change(Operation::Update, &id_of(&b)),
    )
    .await;
    let run = lake.run().await;
    assert_eq!(run.status, RunStatus::Succeeded);

    assert_eq!(sorted_ids(&lake, &SILVER_TRANSACTIONS).await, [id_of(&b2)]);
    let quarantine = lake.read(&SILVER_QUARANTINE).await;
    let reasons: Vec<String> = quarantine
        .iter()
        .flat_map(|batch| {
            use retail_lake::arrow::array::{Array as _, AsArray as _};
            let lists = batch.column_by_name("reasons").unwrap().as_list::<i32>();
            (0..lists.len())
                .map(|i| lists.value(i).as_string::<i32>().value(0).to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut reasons = reasons;
    reasons.sort();
    assert_eq!(reasons, ["conflicting_change", "unknown_transaction"]);
    let reconciliation = run.detail.reconciliation.expect("recorded");
    assert!(reconciliation.balances(), "{reconciliation}");
    assert_eq!((reconciliation.updates, reconciliation.deletes), (1, 1));
}

#[tokio::test]
async fn a_first_load_whose_changes_delete_rows_builds_gold_from_silver_as_committed() {
    // Rows and their changes in one first run: silver's append holds rows its next commit
    // deletes, so gold must not take the append's rows from the silver stage.
    let lake = TestLake::new();
    let (a, b) = (
        record("536365", "85123A", "6"),
        record("536365", "71053", "6"),
    );
    lake.ingest_records(&[a.clone(), b.clone()], None).await;
    let a_fixed = record("536365", "85123A", "12");
    lake.ingest_records(
        std::slice::from_ref(&a_fixed),
        change(Operation::Update, &id_of(&a)),
    )
    .await;
    lake.ingest_records(&[NO_FIELDS], change(Operation::Delete, &id_of(&b)))
        .await;
    let run = lake.run().await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.detail.gold_build.as_deref(), Some("full"));
    assert_eq!(run.detail.gold_silver_from.as_deref(), Some("lake"));
    assert_eq!(
        sorted_ids(&lake, &SILVER_TRANSACTIONS).await,
        [id_of(&a_fixed)]
    );
    let facts = lake.read(&GOLD_FACT_SALES).await;
    assert_eq!(rows(&facts), 1, "only the corrected line is a fact");
    assert_eq!(sum_int(&facts, "quantity"), 12);
}
