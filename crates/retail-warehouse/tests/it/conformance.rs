//! Every catalogue query gives the same answer on both backends over the whole real dataset,
//! and the answers agree with the contract's figures and with the gold tables.

use retail_warehouse::{Catalogue, EmbeddedWarehouse, Params, QueryResult, Warehouse};
use rust_decimal::Decimal;

use crate::support::{TestLake, daily_files, postgres};

/// Parameter sets tried for each query; every query of the catalogue must appear.
const CASES: &[(&str, &[(&str, &str)])] = &[
    ("sales_summary", &[]),
    (
        "sales_summary",
        &[("from", "2011-01-01"), ("to", "2011-03-31")],
    ),
    ("sales_summary", &[("country", "France")]),
    (
        "sales_summary",
        &[
            ("from", "2011-06-01"),
            ("to", "2011-06-30"),
            ("country", "Germany"),
        ],
    ),
    ("sales_summary", &[("country", "Atlantis")]),
    ("revenue_trend", &[("grain", "day")]),
    ("revenue_trend", &[("grain", "week")]),
    ("revenue_trend", &[("grain", "month")]),
    (
        "revenue_trend",
        &[
            ("grain", "week"),
            ("country", "United Kingdom"),
            ("from", "2011-09-01"),
            ("to", "2011-11-30"),
        ],
    ),
    ("top_products", &[]),
    ("top_products", &[("by", "units"), ("limit", "20")]),
    (
        "top_products",
        &[
            ("country", "Germany"),
            ("from", "2011-01-01"),
            ("to", "2011-06-30"),
            ("by", "orders"),
        ],
    ),
    (
        "top_products",
        &[
            ("from", "2011-01-15"),
            ("to", "2011-04-10"),
            ("limit", "50"),
        ],
    ),
    (
        "top_products",
        &[
            ("from", "2011-02-03"),
            ("to", "2011-02-20"),
            ("by", "units"),
        ],
    ),
    ("returns", &[]),
    (
        "returns",
        &[("country", "United Kingdom"), ("from", "2011-05-01")],
    ),
    ("rfm_segments", &[]),
    ("rfm_segments", &[("segment", "Champions")]),
    ("marketing_audience", &[]),
    (
        "marketing_audience",
        &[("segment", "Champions"), ("country", "France")],
    ),
    ("cohort_retention", &[]),
    (
        "cohort_retention",
        &[("from_cohort", "2011-01"), ("to_cohort", "2011-03")],
    ),
    ("geography", &[]),
    ("geography", &[("from", "2011-11-01"), ("to", "2011-11-30")]),
    ("customer_profile", &[("customer_id", "17850")]),
    ("customer_profile", &[("customer_id", "12346")]),
    ("customer_profile", &[("customer_id", "no-such-customer")]),
    ("customer_history", &[("customer_id", "17850")]),
    (
        "customer_history",
        &[("customer_id", "12347"), ("limit", "5")],
    ),
    (
        "customer_history",
        &[
            ("customer_id", "14911"),
            ("from", "2011-10-01"),
            ("to", "2011-10-31"),
        ],
    ),
    ("sales_lines", &[]),
    (
        "sales_lines",
        &[
            ("country", "France"),
            ("from", "2011-03-01"),
            ("to", "2011-03-31"),
            ("limit", "50"),
        ],
    ),
    ("sales_lines", &[("customer_id", "12347"), ("order", "asc")]),
    ("sales_lines", &[("invoice", "536365")]),
    (
        "sales_lines",
        &[
            ("stock_code", "85123A"),
            (
                "cursor",
                "2011-06-01T12:00:00~ffffffffffffffffffffffffffffffff",
            ),
        ],
    ),
    ("sales_export", &[("invoice", "536365")]),
    (
        "sales_export",
        &[
            ("country", "France"),
            ("from", "2011-03-01"),
            ("to", "2011-03-31"),
        ],
    ),
    ("sales_count", &[]),
    (
        "sales_count",
        &[("country", "France"), ("stock_code", "POST")],
    ),
    ("product_profile", &[("stock_code", "85123A")]),
    ("product_profile", &[("stock_code", "POST")]),
    ("product_history", &[("stock_code", "85123A")]),
    ("product_history", &[("stock_code", "22423")]),
];

fn decimal(result: &QueryResult, row: usize, column: &str) -> Decimal {
    match result.get(row, column) {
        Some(retail_warehouse::Cell::Decimal(value)) => *value,
        Some(retail_warehouse::Cell::Int(value)) => Decimal::from(*value),
        other => panic!("{column}: {other:?}"),
    }
}

fn int(result: &QueryResult, row: usize, column: &str) -> i64 {
    match result.get(row, column) {
        Some(retail_warehouse::Cell::Int(value)) => *value,
        other => panic!("{column}: {other:?}"),
    }
}

/// Compares two relations that should hold the same rows, sorted by the given columns.
async fn same_rows(embedded: &EmbeddedWarehouse, left: &str, right: &str, label: &str) {
    let left = embedded.sql(left).await.expect(label);
    let right = embedded.sql(right).await.expect(label);
    assert!(!left.rows.is_empty(), "{label}: no rows");
    if let Some(difference) = left.difference(&right) {
        panic!("{label}: {difference}");
    }
}

#[tokio::test]
async fn every_catalogue_query_agrees_on_both_backends_and_with_the_contract() {
    let Some(files) = daily_files() else { return };
    let Some(postgres) = postgres("conformance").await else {
        return;
    };
    let lake = TestLake::new();
    lake.add(&files).await;
    let report = postgres.load(&lake.lake).await.expect("load");
    assert!(report.rows_copied() > 536_639, "{report:?}");
    let embedded = EmbeddedWarehouse::new(lake.lake.clone());

    for query in Catalogue::queries() {
        assert!(
            CASES.iter().any(|(name, _)| *name == query.name),
            "{} has no conformance case",
            query.name
        );
    }
    for (name, raw) in CASES {
        let query = Catalogue::get(name).unwrap();
        let params = Params::parse(query, raw.iter().copied()).unwrap();
        let on_embedded = embedded.query(query, &params).await.expect(name);
        let on_postgres = postgres.query(query, &params).await.expect(name);
        if let Some(difference) = on_embedded.difference(&on_postgres) {
            panic!("{name} {raw:?}: embedded and postgres differ: {difference}");
        }
        // Both answer with the columns the catalogue declares (what the OpenAPI document
        // tells clients), of their types.
        for (backend, result) in [("embedded", &on_embedded), ("postgres", &on_postgres)] {
            let declared: Vec<&str> = query.columns.iter().map(|c| c.name).collect();
            if !result.rows.is_empty() {
                assert_eq!(result.columns, declared, "{name} on {backend}");
            }
            for row in &result.rows {
                for (cell, column) in row.iter().zip(query.columns) {
                    assert!(
                        column.admits(cell),
                        "{name} on {backend}: column {} ({:?}) holds {cell:?}",
                        column.name,
                        column.kind
                    );
                }
            }
        }
        let expect_empty = raw
            .iter()
            .any(|(_, v)| *v == "Atlantis" || v.starts_with("no-"));
        if !expect_empty {
            assert!(
                !on_embedded.rows.is_empty(),
                "{name} {raw:?} returned nothing"
            );
        }
    }

    // The contract's figures for the whole dataset.
    let all = |name: &str| Params::parse(Catalogue::get(name).unwrap(), []).unwrap();
    let summary = embedded
        .query(
            Catalogue::get("sales_summary").unwrap(),
            &all("sales_summary"),
        )
        .await
        .unwrap();
    assert_eq!(
        decimal(&summary, 0, "net_revenue"),
        Decimal::new(9_748_131_074, 3)
    );
    assert_eq!(int(&summary, 0, "lines"), 536_639);
    assert_eq!(int(&summary, 0, "customers"), 4_372);
    assert_eq!(
        decimal(&summary, 0, "gross_revenue") - decimal(&summary, 0, "returns_amount"),
        decimal(&summary, 0, "net_revenue")
    );
    let geography = embedded
        .query(Catalogue::get("geography").unwrap(), &all("geography"))
        .await
        .unwrap();
    assert_eq!(geography.rows.len(), 38, "one row per country");
    assert_eq!(
        geography.get(0, "country_name").map(ToString::to_string),
        Some("United Kingdom".to_owned())
    );
    let segments = embedded
        .query(
            Catalogue::get("rfm_segments").unwrap(),
            &all("rfm_segments"),
        )
        .await
        .unwrap();
    let rfm_customers: i64 = (0..segments.rows.len())
        .map(|row| int(&segments, row, "customers"))
        .sum();
    // Customers with at least one purchase line (4,338 have one with a positive price too).
    assert!((4_338..=4_372).contains(&rfm_customers), "{rfm_customers}");

    // A streamed export gives, page by page, exactly what one query gives, and as many lines
    // as the count says, on both backends.
    let export = Catalogue::get("sales_export").unwrap();
    let france = Params::parse(export, [("country", "France")]).unwrap();
    let whole = embedded.query(export, &france).await.unwrap();
    let counted = embedded
        .query(
            Catalogue::get("sales_count").unwrap(),
            &Params::parse(
                Catalogue::get("sales_count").unwrap(),
                [("country", "France")],
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(int(&counted, 0, "lines") as usize, whole.rows.len());
    for (backend, warehouse) in [
        ("embedded", &embedded as &dyn Warehouse),
        ("postgres", &postgres as &dyn Warehouse),
    ] {
        let mut pages = warehouse.stream(export, &france).await.expect(backend);
        let mut streamed = QueryResult {
            columns: whole.columns.clone(),
            rows: Vec::new(),
        };
        let mut count = 0;
        while let Some(page) = futures::StreamExt::next(&mut pages).await {
            let page = page.expect(backend);
            count += 1;
            streamed.rows.extend(page.rows);
        }
        if backend == "postgres" {
            assert!(count > 1, "{backend}: pages of 1,000 lines");
        }
        assert_eq!(streamed.difference(&whole), None, "{backend}");
    }

    // Paging with the cursor gives the same rows as one larger page, on both backends.
    let lines = Catalogue::get("sales_lines").unwrap();
    let page = |raw: Vec<(&'static str, String)>| {
        let params = Params::parse(lines, raw.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        let embedded = &embedded;
        let postgres = &postgres;
        async move {
            let a = embedded.query(lines, &params).await.unwrap();
            let b = postgres.query(lines, &params).await.unwrap();
            assert_eq!(a.difference(&b), None);
            a
        }
    };
    let whole = page(vec![("country", "Germany".into()), ("limit", "60".into())]).await;
    let first = page(vec![("country", "Germany".into()), ("limit", "30".into())]).await;
    let cursor_of = |result: &QueryResult, row: usize| {
        let at = match result.get(row, "invoice_date") {
            Some(retail_warehouse::Cell::Timestamp(at)) => {
                at.format("%Y-%m-%dT%H:%M:%S").to_string()
            }
            other => panic!("{other:?}"),
        };
        format!("{at}~{}", result.get(row, "transaction_id").unwrap())
    };
    let second = page(vec![
        ("country", "Germany".into()),
        ("limit", "30".into()),
        ("cursor", cursor_of(&first, 29)),
    ])
    .await;
    assert_eq!(whole.rows[..30], first.rows[..]);
    assert_eq!(whole.rows[30..], second.rows[..]);

    // Top products over whole months (from the monthly view) plus partial months (from the
    // facts) equal a computation from the facts alone.
    let query = Catalogue::get("top_products").unwrap();
    let params = Params::parse(
        query,
        [
            ("from", "2011-01-15"),
            ("to", "2011-04-10"),
            ("limit", "50"),
        ],
    )
    .unwrap();
    let combined = embedded.query(query, &params).await.unwrap();
    let direct = embedded
        .sql(
            "SELECT p.stock_code, p.description, SUM(f.total_amount) AS net_revenue,
                    CAST(SUM(CASE WHEN f.quantity > 0 THEN f.quantity ELSE 0 END) AS BIGINT)
                        AS units_sold,
                    CAST(-SUM(CASE WHEN f.quantity < 0 THEN f.quantity ELSE 0 END) AS BIGINT)
                        AS units_returned,
                    COUNT(DISTINCT CASE WHEN f.quantity > 0 AND NOT f.is_cancellation
                                        THEN f.invoice END) AS orders
               FROM fact_sales f JOIN dim_product p ON p.product_key = f.product_key
              WHERE p.line_type = 'product'
                AND f.date_key BETWEEN 20110115 AND 20110410
              GROUP BY p.stock_code, p.description
              ORDER BY net_revenue DESC, units_sold DESC, p.stock_code
              LIMIT 50",
        )
        .await
        .unwrap();
    if let Some(difference) = combined.difference(&direct) {
        panic!("top_products from view and facts differs from facts alone: {difference}");
    }

    // Recomputations from the facts agree with gold and with the summary relations, on both
    // backends.
    let daily_from_facts = "SELECT f.date_key, c.country_name,
            SUM(CASE WHEN f.quantity > 0 THEN f.total_amount ELSE 0 END) AS gross_revenue,
            -SUM(CASE WHEN f.quantity < 0 THEN f.total_amount ELSE 0 END) AS returns_amount,
            SUM(f.total_amount) AS net_revenue,
            COUNT(DISTINCT CASE WHEN f.quantity > 0 AND NOT f.is_cancellation
                                THEN f.invoice END) AS orders,
            CAST(SUM(CASE WHEN f.quantity > 0 THEN f.quantity ELSE 0 END) AS BIGINT) AS units,
            COUNT(*) AS lines
       FROM fact_sales f JOIN dim_country c ON c.country_key = f.country_key
      GROUP BY f.date_key, c.country_name
      ORDER BY f.date_key, c.country_name";
    let daily_gold = "SELECT date_key, country_name, gross_revenue, returns_amount, net_revenue, \
                      orders, units, lines FROM daily_sales ORDER BY date_key, country_name";
    let monthly_from_facts = "SELECT m.month, m.country_name,
            SUM(m.total_amount) AS net_revenue,
            COUNT(DISTINCT CASE WHEN m.quantity > 0 AND NOT m.is_cancellation
                                THEN m.invoice END) AS orders,
            COUNT(DISTINCT m.customer_id) AS customers,
            COUNT(*) AS lines
       FROM (SELECT CAST(date_trunc('month', f.invoice_date) AS DATE) AS month, c.country_name,
                    f.quantity, f.total_amount, f.is_cancellation, f.invoice, d.customer_id
               FROM fact_sales f
               JOIN dim_country c ON c.country_key = f.country_key
               LEFT JOIN dim_customer d
                 ON d.customer_key = f.customer_key AND f.customer_key <> 0) m
      GROUP BY m.month, m.country_name
      ORDER BY m.month, m.country_name";
    let monthly_view = "SELECT month, country_name, net_revenue, orders, customers, lines \
                        FROM sales_monthly_country ORDER BY month, country_name";
    let rfm_columns = "customer_id, last_purchase_date, recency_days, frequency, monetary, \
                       r_score, f_score, m_score, segment";
    let rfm_live = format!("SELECT {rfm_columns} FROM customer_rfm_live ORDER BY customer_id");
    let rfm_gold = format!("SELECT {rfm_columns} FROM customer_rfm ORDER BY customer_id");
    for (left, right, label) in [
        (
            daily_from_facts,
            daily_gold,
            "daily sales from facts = gold daily_sales",
        ),
        (
            monthly_from_facts,
            monthly_view,
            "monthly sales from facts = sales_monthly_country",
        ),
        (
            rfm_live.as_str(),
            rfm_gold.as_str(),
            "customer_rfm_live = gold customer_rfm",
        ),
    ] {
        same_rows(&embedded, left, right, label).await;
        let left = postgres.sql(left).await.expect(label);
        let right = postgres.sql(right).await.expect(label);
        if let Some(difference) = left.difference(&right) {
            panic!("postgres: {label}: {difference}");
        }
    }
    for sql in [
        "SELECT * FROM sales_daily_country ORDER BY date_key, country_name",
        "SELECT * FROM customer_days ORDER BY date_key, country_name, customer_id",
        "SELECT * FROM product_monthly_country ORDER BY month, country_name, stock_code",
    ] {
        let left = embedded.sql(sql).await.unwrap();
        let right = postgres.sql(sql).await.unwrap();
        if let Some(difference) = left.difference(&right) {
            panic!("{sql}: {difference}");
        }
    }
    postgres.drop_schema().await.unwrap();
}
