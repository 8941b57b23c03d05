//! The contract's rules, seen through the tables they produce.

use retail_lake::arrow::array::{Array as _, AsArray as _};
use retail_lake::schema::{
    GOLD_COHORT_RETENTION, GOLD_DIM_DATE, SILVER_DUPLICATES, SILVER_QUARANTINE, SILVER_TRANSACTIONS,
};
use retail_metadata::RunStatus;

use crate::support::{TestLake, real_data, rows, strings, testdata};

#[tokio::test]
async fn quarantine_records_every_rule_a_row_breaks_and_counts_reconcile() {
    let lake = TestLake::new();
    let ingestion = lake.ingest(&[testdata("quarantine.csv")]).await;
    assert_eq!(ingestion.rows_out, 17);
    let run = lake.run().await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(
        (run.rows_in, run.rows_out, run.quarantined, run.duplicates),
        (17, 3, 13, 1)
    );

    let quarantine = lake.read(&SILVER_QUARANTINE).await;
    let descriptions = strings(&quarantine, "description");
    let reasons_of = |description: &str| -> Vec<String> {
        let row = descriptions
            .iter()
            .position(|d| d.as_deref() == Some(description))
            .expect(description);
        let mut offset = row;
        for batch in &quarantine {
            if offset < batch.num_rows() {
                let list = batch
                    .column_by_name("reasons")
                    .unwrap()
                    .as_list::<i32>()
                    .value(offset);
                let list = list.as_string::<i32>();
                return (0..list.len()).map(|i| list.value(i).to_owned()).collect();
            }
            offset -= batch.num_rows();
        }
        unreachable!("row is in some batch")
    };
    assert_eq!(reasons_of("NO INVOICE"), ["missing_invoice"]);
    assert_eq!(reasons_of("NO STOCK CODE"), ["missing_stock_code"]);
    assert_eq!(reasons_of("NO QUANTITY"), ["missing_quantity"]);
    assert_eq!(reasons_of("TEXT QUANTITY"), ["invalid_quantity"]);
    assert_eq!(reasons_of("ZERO QUANTITY"), ["zero_quantity"]);
    assert_eq!(reasons_of("NO DATE"), ["missing_invoice_date"]);
    assert_eq!(reasons_of("IMPOSSIBLE DATE"), ["invalid_invoice_date"]);
    assert_eq!(reasons_of("NO PRICE"), ["missing_unit_price"]);
    assert_eq!(reasons_of("TEXT PRICE"), ["invalid_unit_price"]);
    assert_eq!(reasons_of("Adjust bad debt"), ["negative_unit_price"]);
    assert_eq!(reasons_of("NO COUNTRY"), ["missing_country"]);
    assert_eq!(
        reasons_of("EVERYTHING WRONG"),
        [
            "missing_invoice",
            "missing_stock_code",
            "zero_quantity",
            "invalid_invoice_date",
            "negative_unit_price",
            "missing_country"
        ]
    );
    let raw_text = strings(&quarantine, "raw_text");
    let malformed = raw_text.iter().flatten().collect::<Vec<_>>();
    assert_eq!(malformed, ["536365,71053,MALFORMED"]);
    // Quarantined rows keep their raw values and bronze lineage.
    assert_eq!(
        strings(&quarantine, "unit_price")
            .iter()
            .flatten()
            .filter(|p| *p == "-11062.06")
            .count(),
        1
    );
    assert!(
        strings(&quarantine, "source_location")
            .iter()
            .all(|l| l.as_deref().is_some_and(|l| l.ends_with("quarantine.csv")))
    );

    let silver = lake.read(&SILVER_TRANSACTIONS).await;
    assert_eq!(rows(&silver), 3);
    let scores: Vec<String> = silver
        .iter()
        .flat_map(|b| {
            let column = b
                .column_by_name("data_quality_score")
                .unwrap()
                .as_primitive::<retail_lake::arrow::datatypes::Decimal128Type>();
            (0..column.len())
                .map(|i| column.value_as_string(i))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut by_description: Vec<(String, String)> = strings(&silver, "description")
        .into_iter()
        .map(Option::unwrap_or_default)
        .zip(scores)
        .collect();
    by_description.sort();
    // Contract examples: complete 1.00; guest 0.95; price 0 from Unspecified: 0.90 * 0.85.
    assert_eq!(
        by_description,
        [
            ("CLEAN ROW".to_owned(), "1.00".to_owned()),
            ("FREE".to_owned(), "0.77".to_owned()),
            ("GUEST".to_owned(), "0.95".to_owned()),
        ]
    );
    assert_eq!(rows(&lake.read(&SILVER_DUPLICATES).await), 1);
    let reconciliation = run.detail.reconciliation.expect("recorded");
    assert!(reconciliation.balances(), "{reconciliation}");
    let quality = run.detail.quality.expect("quality recorded");
    assert_eq!(quality.quarantine_by_reason["missing_invoice"], 2);
    assert_eq!(quality.quarantine_by_reason["malformed_record"], 1);
}

#[tokio::test]
async fn the_same_rows_from_another_file_format_and_header_variant_are_duplicates() {
    let Some(data) = real_data() else { return };
    let lake = TestLake::new();
    // 99 rows of 2010-12-01 under an Online Retail II header, with BOM, US dates and
    // integer customer ids: after normalisation they are the same transactions.
    lake.ingest(&[data.join("spark-guide-by-day/2010-12-01.csv")])
        .await;
    let first = lake.run().await;
    lake.ingest(&[data.join("header-variant-fixture/online_retail_II_header_with_OR1_rows.csv")])
        .await;
    let second = lake.run().await;
    assert_eq!(second.rows_in, 99);
    assert_eq!(
        (second.rows_out, second.quarantined, second.duplicates),
        (0, 0, 99)
    );
    assert_eq!(
        lake.lake.count_rows(&SILVER_TRANSACTIONS).await.unwrap(),
        first.rows_out
    );
}

#[tokio::test]
async fn online_retail_ii_rows_are_cleansed_like_online_retail_i_rows() {
    let Some(data) = real_data() else { return };
    let lake = TestLake::new();
    lake.ingest(&[data.join("online-retail-ii-head-sample/online_retail_II_head_6000.csv")])
        .await;
    let run = lake.run().await;
    assert_eq!(run.rows_in, 6000);
    assert!(run.detail.reconciliation.expect("recorded").balances());
    let silver = lake.read(&SILVER_TRANSACTIONS).await;
    let customers = strings(&silver, "customer_id");
    assert!(
        customers.iter().flatten().all(|c| !c.ends_with(".0")),
        "trailing .0 removed"
    );
    assert!(customers.iter().any(Option::is_none), "guest sales kept");
}

#[tokio::test]
async fn a_file_already_ingested_is_skipped_and_a_bad_input_changes_nothing() {
    let lake = TestLake::new();
    let first = lake.ingest(&[testdata("quarantine.csv")]).await;
    let again = lake.ingest(&[testdata("quarantine.csv")]).await;
    assert_eq!(again.status, RunStatus::UpToDate);
    assert_eq!(again.rows_out, 0);
    assert!(again.detail.files[0].skipped);
    assert_eq!(
        lake.lake
            .count_rows(&retail_lake::schema::BRONZE_TRANSACTIONS)
            .await
            .unwrap(),
        first.rows_out
    );

    let version = lake
        .lake
        .latest_version(&retail_lake::schema::BRONZE_TRANSACTIONS)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let not_retail = dir.path().join("other.csv");
    std::fs::write(&not_retail, "a,b,c\n1,2,3\n").unwrap();
    let good = dir.path().join("good.csv");
    std::fs::copy(testdata("quarantine.csv"), &good).unwrap();
    std::fs::write(
        &good,
        std::fs::read_to_string(&good).unwrap() + "536999,1,NEW,1,2010-12-01 08:26:00,1,,EIRE\n",
    )
    .unwrap();
    let inputs = [good.display().to_string(), not_retail.display().to_string()];
    let error = lake.try_ingest(&inputs).await.unwrap_err();
    assert!(error.to_string().contains("other.csv"), "{error}");
    let missing = lake
        .try_ingest(&["/nonexistent/*.csv".to_owned()])
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("matches no file"), "{missing}");
    assert_eq!(
        lake.lake
            .latest_version(&retail_lake::schema::BRONZE_TRANSACTIONS)
            .await
            .unwrap(),
        version
    );
}

#[tokio::test]
async fn implausible_dates_and_control_characters_are_quarantined_and_gold_keeps_its_size() {
    let data = retail_test_support::Generated::new(500, 5);
    let lake = TestLake::new();
    lake.ingest(&data.files).await;
    lake.run().await;
    let days = lake.lake.count_rows(&GOLD_DIM_DATE).await.unwrap();
    let cohorts = lake.lake.count_rows(&GOLD_COHORT_RETENTION).await.unwrap();

    let record = |invoice: &str, description: &str, date: &str, country: &str| {
        [
            Some(invoice.to_owned()),
            Some("85123A".to_owned()),
            Some(description.to_owned()),
            Some("1".to_owned()),
            Some(date.to_owned()),
            Some("2.55".to_owned()),
            Some("17850".to_owned()),
            Some(country.to_owned()),
        ]
    };
    let records = [
        record(
            "990001",
            "FAR FUTURE",
            "9999-12-31 00:00:00",
            "United Kingdom",
        ),
        record(
            "990002",
            "FAR PAST",
            "0001-01-01 00:00:00",
            "United Kingdom",
        ),
        record(
            "990003",
            "BEFORE 2000",
            "1999-12-31 23:59:59",
            "United Kingdom",
        ),
        record(
            "990004",
            "CONTROL COUNTRY",
            "2010-12-02 10:00:00",
            "United\u{0}Kingdom",
        ),
        record(
            "990005",
            "BELL\u{7}IN\u{1b}DESCRIPTION",
            "2010-12-02 10:00:00",
            "France",
        ),
    ];
    lake.ingest_records(&records, None).await;
    let run = lake.run().await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!((run.rows_out, run.quarantined), (1, 4));

    let quarantine = lake.read(&SILVER_QUARANTINE).await;
    let invoices = strings(&quarantine, "invoice");
    let mut reasons: Vec<(String, String)> = Vec::new();
    let mut offset = 0;
    for batch in &quarantine {
        let lists = batch.column_by_name("reasons").unwrap().as_list::<i32>();
        for row in 0..batch.num_rows() {
            let list = lists.value(row);
            let list = list.as_string::<i32>();
            let codes: Vec<&str> = (0..list.len()).map(|i| list.value(i)).collect();
            if let Some(invoice) = invoices[offset + row]
                .as_deref()
                .filter(|i| i.starts_with("99"))
            {
                reasons.push((invoice.to_owned(), codes.join(",")));
            }
        }
        offset += batch.num_rows();
    }
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("990001".to_owned(), "implausible_invoice_date".to_owned()),
            ("990002".to_owned(), "implausible_invoice_date".to_owned()),
            ("990003".to_owned(), "implausible_invoice_date".to_owned()),
            ("990004".to_owned(), "invalid_text".to_owned()),
        ]
    );
    // The description's control characters became spaces.
    let silver = lake.read(&SILVER_TRANSACTIONS).await;
    assert!(
        strings(&silver, "description")
            .iter()
            .any(|d| d.as_deref() == Some("BELL IN DESCRIPTION"))
    );
    // No record stretched gold's calendar.
    assert_eq!(lake.lake.count_rows(&GOLD_DIM_DATE).await.unwrap(), days);
    assert_eq!(
        lake.lake.count_rows(&GOLD_COHORT_RETENTION).await.unwrap(),
        cohorts
    );
    assert!(run.detail.reconciliation.expect("recorded").balances());
}
