//! The analysts' schema: views where every customer id is its keyed pseudonym, readable by the
//! analysts' role, which cannot read the warehouse's own schema.

use retail_warehouse::AnalystViews;

use crate::support::{TestLake, daily_files, postgres, raw_client};

const KEY: &[u8] = b"a privacy key of at least thirty-two bytes";

#[tokio::test]
async fn analysts_read_pseudonyms_through_their_views_and_nothing_else() {
    let Some(files) = daily_files() else { return };
    let Some(warehouse) = postgres("analysts").await else {
        return;
    };
    let role = format!("analyst_{}", std::process::id());
    let login = format!("alice_{}", std::process::id());
    // The same warehouse as a process without the analysts' views sees it.
    let without_views = warehouse.clone();
    let warehouse = warehouse
        .with_analyst_views(AnalystViews {
            role: role.clone(),
            key: std::sync::Arc::from(KEY),
        })
        .unwrap();
    assert!(
        warehouse
            .clone()
            .with_analyst_views(AnalystViews {
                role: "x; drop".to_owned(),
                key: std::sync::Arc::from(KEY),
            })
            .is_err()
    );
    let lake = TestLake::new();
    lake.add(&files[..5]).await;
    warehouse.load(&lake.lake).await.expect("load");
    let admin = raw_client(&warehouse).await;
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {login}; CREATE ROLE {login} LOGIN IN ROLE {role}"
        ))
        .await
        .unwrap();

    // As the analyst.
    let url = std::env::var("RETAIL_TEST_POSTGRES_URL").expect("url");
    let mut config: tokio_postgres::Config = url.parse().unwrap();
    config.user(&login);
    let (analyst, connection) = config.connect(tokio_postgres::NoTls).await.expect("login");
    tokio::spawn(connection);
    let analyst_schema = warehouse.analyst_schema();
    let real: Vec<String> = admin
        .query(
            "SELECT customer_id FROM dim_customer WHERE is_current ORDER BY customer_key",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(real.len() > 100);
    let seen: Vec<String> = analyst
        .query(
            &format!(
                "SELECT customer_id FROM {analyst_schema}.dim_customer WHERE is_current \
                 ORDER BY customer_key"
            ),
            &[],
        )
        .await
        .expect("the analyst reads the view")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let expected: Vec<String> = real
        .iter()
        .map(|id| retail_domain::privacy::pseudonym(KEY, "customer_id", id))
        .collect();
    assert_eq!(seen, expected, "the API's pseudonyms");
    // Every view with customers masks them, a summary view too; other columns are as loaded.
    let rfm: i64 = analyst
        .query_one(
            &format!(
                "SELECT count(*) FROM {analyst_schema}.customer_rfm r \
                 JOIN {analyst_schema}.dim_customer d USING (customer_id)"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(rfm > 100, "{rfm}");
    let facts: i64 = analyst
        .query_one(
            &format!("SELECT count(*) FROM {analyst_schema}.fact_sales"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let loaded: i64 = admin
        .query_one("SELECT count(*) FROM fact_sales", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(facts, loaded);
    // No way round the views.
    let schema = warehouse.schema();
    for sql in [
        format!("SELECT customer_id FROM {schema}.dim_customer LIMIT 1"),
        format!("SELECT * FROM {schema}.customer_pseudonyms LIMIT 1"),
        format!("SELECT * FROM {analyst_schema}.customer_pseudonyms LIMIT 1"),
    ] {
        assert!(analyst.query(&sql, &[]).await.is_err(), "{sql}");
    }
    let leaked: i64 = analyst
        .query_one(
            &format!("SELECT count(*) FROM {analyst_schema}.dim_customer WHERE customer_id = $1"),
            &[&real[0]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leaked, 0);

    // A second load keeps them (tables replaced, views rebuilt).
    lake.add(&files[5..7]).await;
    warehouse.load(&lake.lake).await.expect("second load");
    let after: i64 = analyst
        .query_one(
            &format!("SELECT count(DISTINCT customer_id) FROM {analyst_schema}.dim_customer"),
            &[],
        )
        .await
        .expect("the views survive a load")
        .get(0);
    assert!(after as usize >= real.len());

    // An erasure removes the customer's pseudonym too, also where the views are switched off.
    let pseudonyms = |id: String| {
        let admin = &admin;
        async move {
            admin
                .query_one(
                    "SELECT count(*) FROM customer_pseudonyms WHERE customer_id = $1",
                    &[&id],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    assert_eq!(pseudonyms(real[1].clone()).await, 1);
    without_views
        .forget_customers(std::slice::from_ref(&real[1]))
        .await
        .unwrap();
    assert_eq!(pseudonyms(real[1].clone()).await, 0);
    drop(analyst);
    warehouse.drop_schema().await.unwrap();
    admin
        .batch_execute(&format!("DROP ROLE {login}; DROP ROLE {role}"))
        .await
        .unwrap();
}
