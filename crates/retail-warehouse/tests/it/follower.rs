//! The warehouses as followers of gold: the asset runner catches them up after gold, their
//! staleness is known, and they forget customers.

use std::sync::Arc;

use retail_domain::ports::Follower as _;
use retail_metadata::RunKind;
use retail_pipeline::gold_version;
use retail_test_support::Generated;
use retail_warehouse::{
    Catalogue, EmbeddedFollower, EmbeddedWarehouse, Params, PostgresFollower, Warehouse as _,
};

use crate::support::{TestLake, postgres, raw_client};

fn asset<'a>(run: &'a retail_metadata::RunRecord, key: &str) -> &'a retail_metadata::AssetRun {
    run.detail
        .assets
        .iter()
        .find(|a| a.asset == key)
        .unwrap_or_else(|| panic!("{key} in {:?}", run.detail.assets))
}

#[tokio::test]
async fn the_postgres_warehouse_follows_every_gold_build_and_forgets_customers() {
    let Some(warehouse) = postgres("follower").await else {
        return;
    };
    let warehouse = Arc::new(warehouse);
    let data = Generated::new(8_000, 20);
    let lake = TestLake::following(|lake| {
        vec![Arc::new(PostgresFollower::new(
            Arc::clone(&warehouse),
            lake.clone(),
        ))]
    });
    let first = lake.add(&data.files[..15]).await;
    let load = asset(&first, "warehouse/postgres");
    assert_eq!(load.status, "materialized");
    assert!(load.rows > 0, "{load:?}");
    let detail = load.detail.as_ref().expect("the load's report");
    assert!(
        detail["tables"].as_array().is_some_and(|t| t.len() == 9),
        "{detail}"
    );
    let gold = gold_version(&lake.lake).await.unwrap().expect("gold built");
    assert_eq!(warehouse.gold_version().await.unwrap(), Some(gold));
    let follower_status = lake
        .status()
        .await
        .assets
        .into_iter()
        .find(|a| a.asset == "warehouse/postgres")
        .expect("the follower is an asset");
    assert_eq!(follower_status.upstream, ["gold"]);
    assert!(follower_status.staleness.is_up_to_date());

    // Nothing new: the follower is up to date and does nothing.
    let again = lake.rerun().await;
    assert_eq!(asset(&again, "warehouse/postgres").status, "up_to_date");

    // A new day: gold moves, the follower follows in the same run.
    let second = lake.add(&data.files[15..16]).await;
    assert_eq!(asset(&second, "warehouse/postgres").status, "materialized");
    let gold = gold_version(&lake.lake).await.unwrap();
    assert_eq!(warehouse.gold_version().await.unwrap(), gold);
    let recorded = lake
        .store()
        .runs(Some(RunKind::Pipeline), 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(recorded.run_id, second.run_id);
    assert!(
        recorded
            .detail
            .assets
            .iter()
            .any(|a| a.asset == "warehouse/postgres")
    );

    // Forgetting a customer removes every row of theirs from the warehouse.
    let client = raw_client(&warehouse).await;
    let customer: String = client
        .query_one(
            "SELECT d.customer_id FROM fact_sales f JOIN dim_customer d USING (customer_key)
             GROUP BY d.customer_id ORDER BY count(*) DESC, d.customer_id LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let follower = PostgresFollower::new(Arc::clone(&warehouse), lake.lake.clone());
    let removed = follower
        .forget(std::slice::from_ref(&customer))
        .await
        .unwrap();
    assert!(removed > 1, "{removed}");
    for table in [
        "dim_customer",
        "customer_rfm",
        "customer_days",
        "customer_activity",
    ] {
        let left: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE customer_id = $1"),
                &[&customer],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "{table} still holds {customer}");
    }
    let rfm = warehouse
        .sql(&format!(
            "SELECT count(*) FROM customer_rfm_live WHERE customer_id = '{customer}'"
        ))
        .await
        .unwrap();
    assert_eq!(rfm.rows[0][0].to_string(), "0", "the views were refreshed");
    warehouse.drop_schema().await.unwrap();
}

#[tokio::test]
async fn the_embedded_snapshot_follows_every_gold_build() {
    let data = Generated::new(4_000, 10);
    // A follower of a warehouse over the test lake itself.
    let mut follower_of_lake = None;
    let lake = TestLake::following(|lake| {
        let warehouse = Arc::new(EmbeddedWarehouse::new(lake.clone()));
        follower_of_lake = Some(Arc::clone(&warehouse));
        vec![Arc::new(EmbeddedFollower::new(warehouse))]
    });
    let warehouse = follower_of_lake.expect("built");
    assert_eq!(warehouse.gold_version().await, None, "nothing held yet");
    let first = lake.add(&data.files[..5]).await;
    assert_eq!(
        asset(&first, "warehouse/embedded").detail.as_ref().unwrap()["snapshot"],
        "loaded"
    );
    let again = lake.rerun().await;
    assert_eq!(asset(&again, "warehouse/embedded").status, "up_to_date");
    let query = Catalogue::get("sales_summary").unwrap();
    let before = warehouse
        .query(query, &Params::parse(query, []).unwrap())
        .await
        .unwrap();
    assert_eq!(
        warehouse.gold_version().await,
        gold_version(&lake.lake).await.unwrap()
    );
    let second = lake.add(&data.files[5..6]).await;
    assert_eq!(
        asset(&second, "warehouse/embedded")
            .detail
            .as_ref()
            .unwrap()["snapshot"],
        "reloaded"
    );
    assert_eq!(
        warehouse.gold_version().await,
        gold_version(&lake.lake).await.unwrap(),
        "the snapshot follows gold at once, without waiting for its periodic check"
    );
    let after = warehouse
        .query(query, &Params::parse(query, []).unwrap())
        .await
        .unwrap();
    assert_ne!(before, after, "the new day is served");
}

#[tokio::test]
async fn the_embedded_snapshot_never_mixes_tables_of_two_gold_builds() {
    let data = Generated::new(2_000, 6);
    let lake = TestLake::new();
    lake.add(&data.files).await;
    let warehouse = EmbeddedWarehouse::new(lake.lake.clone());
    warehouse.refresh().await.unwrap();
    let built = warehouse.versions().await.unwrap();
    let served: Vec<_> = retail_lake::schema::warehouse_tables()
        .map(|(table, _)| table)
        .collect();
    let mark = lake
        .lake
        .app_version(&served[0], retail_lake::schema::GOLD_MARK)
        .await
        .unwrap()
        .expect("gold carries its mark");
    // A build from a newer silver version commits its tables one by one: midway, the
    // snapshot keeps reading the previous build's versions of the tables already committed.
    let next = [(retail_lake::schema::GOLD_MARK.to_owned(), mark + 1)];
    for table in &served[..served.len() - 1] {
        let writer = lake.lake.appender(table).await.unwrap();
        writer.commit(&next).await.unwrap();
        warehouse.refresh().await.unwrap();
        assert_eq!(
            warehouse.versions().await.unwrap(),
            built,
            "midway after {}",
            table.name
        );
    }
    // Once the last table is committed, the new build is served.
    let last = served.last().unwrap();
    lake.lake
        .appender(last)
        .await
        .unwrap()
        .commit(&next)
        .await
        .unwrap();
    warehouse.refresh().await.unwrap();
    let mut latest = Vec::new();
    for table in &served {
        latest.push(lake.lake.latest_version(table).await.unwrap().unwrap());
    }
    assert_eq!(warehouse.versions().await.unwrap(), latest);
    assert_ne!(latest, built);
}
