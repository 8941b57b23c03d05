//! Loads: incremental by slice, idempotent, atomic; the schema objects they leave.

use retail_warehouse::{Cell, LoadReport, TableLoad};

use crate::support::{TestLake, daily_files, postgres, raw_client};

fn table<'a>(report: &'a LoadReport, name: &str) -> &'a TableLoad {
    report
        .tables
        .iter()
        .find(|t| t.table == name)
        .unwrap_or_else(|| panic!("{name} in {report:?}"))
}

async fn count(warehouse: &retail_warehouse::PostgresWarehouse, sql: &str) -> i64 {
    match warehouse.sql(sql).await.unwrap().rows[0][0] {
        Cell::Int(value) => value,
        ref other => panic!("{other:?}"),
    }
}

/// The facts in PostgreSQL equal gold's, row for row (through a content checksum).
async fn assert_facts_match_gold(warehouse: &retail_warehouse::PostgresWarehouse, lake: &TestLake) {
    let gold_rows = lake
        .lake
        .count_rows(&retail_lake::schema::GOLD_FACT_SALES)
        .await
        .unwrap();
    let rows = count(warehouse, "SELECT count(*) FROM fact_sales").await;
    assert_eq!(rows as u64, gold_rows);
    let distinct = count(
        warehouse,
        "SELECT count(DISTINCT transaction_id) FROM fact_sales",
    )
    .await;
    assert_eq!(distinct, rows, "no fact is loaded twice");
    let orphans = count(
        warehouse,
        "SELECT count(*) FROM fact_sales f
          WHERE NOT EXISTS (SELECT 1 FROM dim_customer d WHERE d.customer_key = f.customer_key)
             OR NOT EXISTS (SELECT 1 FROM dim_product p WHERE p.product_key = f.product_key)
             OR NOT EXISTS (SELECT 1 FROM dim_country c WHERE c.country_key = f.country_key)
             OR NOT EXISTS (SELECT 1 FROM dim_date d WHERE d.date_key = f.date_key)",
    )
    .await;
    assert_eq!(orphans, 0, "every fact finds its dimensions");
}

#[tokio::test]
async fn loads_are_incremental_by_day_idempotent_and_show_partitions_indexes_and_views() {
    let Some(files) = daily_files() else { return };
    let Some(warehouse) = postgres("incremental").await else {
        return;
    };
    let lake = TestLake::new();
    // December 2010 and the first days of January 2011, except one day that arrives late.
    let first: Vec<_> = files[..24]
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5)
        .map(|(_, f)| f.clone())
        .collect();
    lake.add(&first).await;
    let report = warehouse.load(&lake.lake).await.expect("first load");
    assert_eq!(table(&report, "fact_sales").action, "slices");
    assert_eq!(
        table(&report, "fact_sales").slices,
        table(&report, "fact_sales").slices_rewritten
    );
    assert!(report.views_refreshed);
    assert!(
        report
            .partitions_created
            .contains(&"fact_sales_2010_12".to_owned())
            && report
                .partitions_created
                .contains(&"fact_sales_2011_01".to_owned()),
        "{:?}",
        report.partitions_created
    );
    assert_facts_match_gold(&warehouse, &lake).await;

    // Loading again with nothing new changes nothing.
    let again = warehouse.load(&lake.lake).await.expect("second load");
    assert!(!again.changed(), "{again:?}");
    assert_eq!(again.rows_copied(), 0);

    // One new day: only that day's facts are copied.
    lake.add(&files[24..25]).await;
    let new_day_rows = count(&warehouse, "SELECT count(*) FROM fact_sales").await;
    let next = warehouse.load(&lake.lake).await.expect("incremental load");
    let facts = table(&next, "fact_sales");
    assert_eq!(facts.slices_rewritten, 1, "{facts:?}");
    assert_eq!(facts.rows_deleted, 0);
    let added = count(&warehouse, "SELECT count(*) FROM fact_sales").await - new_day_rows;
    assert_eq!(facts.rows_copied as i64, added);
    // Only the month gold remade is read (January 2011), not December 2010 as well.
    let january = count(
        &warehouse,
        "SELECT count(*) FROM fact_sales WHERE date_key >= 20110101",
    )
    .await;
    assert_eq!(facts.rows_read as i64, january, "{facts:?}");
    assert!(facts.rows_read < facts.rows, "{facts:?}");
    assert_eq!(facts.slices, table(&report, "fact_sales").slices + 1);
    assert_facts_match_gold(&warehouse, &lake).await;

    // A late day: its slice, and the days of customers whose history it changes, are rewritten;
    // not the whole table.
    lake.add(&files[5..6]).await;
    let late = warehouse.load(&lake.lake).await.expect("late load");
    let facts = table(&late, "fact_sales");
    assert!(
        facts.slices_rewritten >= 1 && facts.slices_rewritten < facts.slices / 2,
        "{facts:?}"
    );
    assert_facts_match_gold(&warehouse, &lake).await;

    // What psql shows.
    let objects = warehouse.objects().await.unwrap();
    let partitions: Vec<&str> = objects.partitions.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        partitions,
        [
            "fact_sales_2010_12",
            "fact_sales_2011_01",
            "fact_sales_default"
        ]
    );
    for index in [
        "fact_sales_customer_date",
        "fact_sales_product_country",
        "fact_sales_returns",
        "fact_sales_listing",
    ] {
        assert!(
            objects.indexes.iter().any(|(_, def)| def.contains(index)),
            "{index} missing: {:?}",
            objects.indexes
        );
    }
    assert!(
        objects
            .indexes
            .iter()
            .any(|(_, def)| def.contains("fact_sales_returns") && def.contains("WHERE is_return"))
    );
    let views: Vec<&str> = objects.views.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        views,
        [
            "customer_rfm_live",
            "sales_daily_country",
            "sales_monthly_country"
        ]
    );
    // The summary tables kept by slice equal their definition over all facts.
    for (table, order) in [
        ("customer_days", "date_key, country_name, customer_id"),
        ("product_monthly_country", "month, country_name, stock_code"),
        ("customer_activity", "customer_id"),
    ] {
        let kept = warehouse
            .sql(&format!("SELECT * FROM {table} ORDER BY {order}"))
            .await
            .unwrap();
        let embedded = retail_warehouse::EmbeddedWarehouse::new(lake.lake.clone());
        let fresh = embedded
            .sql(&format!("SELECT * FROM {table} ORDER BY {order}"))
            .await
            .unwrap();
        assert!(!kept.rows.is_empty());
        if let Some(difference) = kept.difference(&fresh) {
            panic!("{table} kept by slice differs from a fresh computation: {difference}");
        }
    }
    assert!(objects.views.iter().all(|(_, populated)| *populated));
    warehouse.drop_schema().await.unwrap();
}

#[tokio::test]
async fn a_failed_load_leaves_the_previous_state_and_a_rerun_completes() {
    let Some(files) = daily_files() else { return };
    let Some(warehouse) = postgres("atomic").await else {
        return;
    };
    let lake = TestLake::new();
    lake.add(&files[..3]).await;
    warehouse.load(&lake.lake).await.expect("first load");
    let before = warehouse
        .sql("SELECT table_name, gold_version, rows FROM load_state ORDER BY 1")
        .await
        .unwrap();
    let facts_before = count(&warehouse, "SELECT count(*) FROM fact_sales").await;

    // A stray row for January in the default partition makes creating the January partition
    // fail halfway through the next load.
    let client = raw_client(&warehouse).await;
    client
        .batch_execute(
            "INSERT INTO fact_sales SELECT 'stray', 20110105, customer_key, product_key,
                    country_key, invoice, '2011-01-05 10:00', quantity, unit_price, total_amount,
                    is_return, is_cancellation, line_type, data_quality_score
               FROM fact_sales LIMIT 1",
        )
        .await
        .unwrap();
    let january = files
        .iter()
        .position(|f| f.to_string_lossy().contains("2011-01-04"))
        .expect("a January file");
    lake.add(&files[january..january + 1]).await;
    let error = warehouse
        .load(&lake.lake)
        .await
        .expect_err("the partition cannot be created");
    assert!(
        error.to_string().contains("partition"),
        "the error names the problem: {error}"
    );
    let after = warehouse
        .sql("SELECT table_name, gold_version, rows FROM load_state ORDER BY 1")
        .await
        .unwrap();
    assert_eq!(before, after, "load state unchanged");
    assert_eq!(
        count(&warehouse, "SELECT count(*) FROM fact_sales").await,
        facts_before + 1,
        "facts unchanged (plus the stray row)"
    );

    client
        .batch_execute("DELETE FROM fact_sales WHERE transaction_id = 'stray'")
        .await
        .unwrap();
    let report = warehouse.load(&lake.lake).await.expect("rerun");
    assert!(
        report
            .partitions_created
            .contains(&"fact_sales_2011_01".to_owned())
    );
    assert_facts_match_gold(&warehouse, &lake).await;
    warehouse.drop_schema().await.unwrap();
}

#[tokio::test]
async fn concurrent_loaders_wait_for_each_other_and_views_never_stay_behind_the_tables() {
    let Some(files) = daily_files() else { return };
    let Some(first) = postgres("concurrent").await else {
        return;
    };
    // A second process's warehouse on the same schema.
    let second = retail_warehouse::PostgresWarehouse::connect(&retail_warehouse::WarehouseConfig {
        backend: retail_warehouse::Backend::Postgres,
        postgres_url: std::env::var("RETAIL_TEST_POSTGRES_URL").unwrap(),
        postgres_schema: first.schema().to_owned(),
        pool_size: 2,
        ..retail_warehouse::WarehouseConfig::default()
    })
    .await
    .unwrap();
    let lake = TestLake::new();
    lake.add(&files[..3]).await;
    let (a, b) = tokio::join!(first.load(&lake.lake), second.load(&lake.lake));
    let (a, b) = (a.expect("first loader"), b.expect("second loader"));
    assert!(
        a.changed() != b.changed(),
        "one loader loads, the other waits and finds nothing left: {a:?} {b:?}"
    );
    assert_facts_match_gold(&first, &lake).await;
    let (tables, views) = first.view_lag().await.unwrap();
    assert!(tables.contains("fact_sales:"), "{tables}");
    assert_eq!(views, tables, "the views reflect the loaded tables");
    assert_eq!(first.data_version().await.unwrap(), tables);

    // A refresh that failed after a load leaves the views behind: the data version stays
    // the one they reflect, and the next load refreshes them although no table changed.
    let client = raw_client(&first).await;
    client
        .batch_execute("UPDATE view_state SET data_version = 'behind'")
        .await
        .unwrap();
    assert_eq!(first.data_version().await.unwrap(), "behind");
    assert!(!first.objects().await.unwrap().views_current);
    let report = second.load(&lake.lake).await.unwrap();
    assert!(!report.changed());
    assert!(report.views_refreshed, "{report:?}");
    assert_eq!(first.data_version().await.unwrap(), tables);
    let report = second.load(&lake.lake).await.unwrap();
    assert!(!report.views_refreshed, "nothing to refresh: {report:?}");
    first.drop_schema().await.unwrap();
}
