//! The lake's part of a GDPR erasure (ADR 0013): a customer's rows leave bronze (raw text of
//! malformed rows included), silver, quarantine, duplicates, the changes table and the
//! models' per-customer tables. Gold, its history and the followers are rebuilt from silver
//! afterwards by the pipeline, and [`Lake::purge_history`] then removes the files and log
//! entries that still hold the old rows.
//!
//! Bronze is append-only for silver: silver reads the files added after the bronze version it
//! has consumed. The erasure rewrites bronze's files, so every silver table's delete carries
//! silver's mark moved to the rewritten bronze version, and silver's own delete (the last)
//! also carries the count of erasures, [`ERASURES_APP_ID`], which bronze's delete raised first.
//! A silver run that finds bronze's count ahead of silver's refuses to start
//! ([`Error::ErasureInterrupted`]) until the erasure is run again and finishes.

use std::collections::HashSet;

use deltalake::arrow::array::{Array as _, AsArray as _, BooleanArray, RecordBatch};
use deltalake::arrow::error::ArrowError;
use futures::TryStreamExt as _;
use retail_domain::privacy::{mentions, names_customer};
use retail_lake::Lake;
use retail_lake::schema::{
    BRONZE_TRANSACTIONS, GOLD_CUSTOMER_CLV, GOLD_CUSTOMER_RECOMMENDATIONS, SILVER_CHANGES,
    SILVER_DUPLICATES, SILVER_QUARANTINE, SILVER_TRANSACTIONS, TableSpec,
};
use serde::{Deserialize, Serialize};
use tracing::info;

use retail_domain::progress::NoProgress;
use retail_metadata::RunRecord;

use crate::asset::SilverAsset;
use crate::asset::silver::mark_version;
use crate::error::{Error, Result};
use crate::{CHANGES_APP_ID, SILVER_APP_ID};

/// The application id of the erasure count bronze and silver carry (see the module).
pub const ERASURES_APP_ID: &str = "retail.gdpr.erasures";

/// What an erasure did to one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TableErasure {
    /// The table (`layer/name`).
    pub table: String,
    /// Rows removed.
    pub rows: u64,
    /// Its version before (`None`: the table does not exist).
    pub version_before: Option<u64>,
    /// Its version after.
    pub version_after: Option<u64>,
}

/// Removes every row naming `customer` (normalised, not blank) from bronze and the silver
/// tables. Run under the pipeline's claim, with silver up to date with bronze; `silver` is the
/// asset that brings silver to the version before the rewrite when an ingestion committed
/// in between. Also finishes an interrupted erasure (of any customer: run it again for the
/// customer it was for). Returns what it did to each table, in the order it did it.
///
/// # Errors
///
/// When silver is behind bronze ([`Error::SilverBehind`]) or a table fails; the erasure can
/// then be run again and finishes what is left.
pub async fn erase_customer(
    lake: &Lake,
    silver: &SilverAsset,
    run: &mut RunRecord,
    customer: &str,
) -> Result<Vec<TableErasure>> {
    let erasures_of = |table: TableSpec| async move {
        Ok::<_, Error>(
            lake.app_version(&table, ERASURES_APP_ID)
                .await?
                .unwrap_or(0),
        )
    };
    let bronze_erasures = erasures_of(BRONZE_TRANSACTIONS).await?;
    let silver_erasures = erasures_of(SILVER_TRANSACTIONS).await?;
    let silver_mark = lake
        .app_version(&SILVER_TRANSACTIONS, SILVER_APP_ID)
        .await?;
    let mut done = Vec::new();
    let erasures = if bronze_erasures > silver_erasures {
        // An erasure rewrote bronze and stopped before silver: finish it first.
        bronze_erasures
    } else {
        let Some(bronze) = lake.latest_version(&BRONZE_TRANSACTIONS).await? else {
            // Nothing was ever ingested: nothing anywhere.
            return Ok(done);
        };
        if silver_mark != i64::try_from(bronze).ok() {
            return Err(Error::SilverBehind {
                silver: silver_mark,
                bronze,
            });
        }
        let mut hashes = raw_rows_naming(lake, &BRONZE_TRANSACTIONS, customer).await?;
        hashes.extend(raw_rows_naming(lake, &SILVER_QUARANTINE, customer).await?);
        if hashes.is_empty() && silver_rows_naming(lake, customer).await?.is_empty() {
            done.push(untouched(lake, &BRONZE_TRANSACTIONS).await?);
            return Ok(done);
        }
        let hashes: Vec<String> = hashes.into_iter().collect();
        // Bronze first, raising the erasure count in the same commit.
        done.push(
            delete(
                lake,
                &BRONZE_TRANSACTIONS,
                &[("record_hash", &hashes)],
                &[(ERASURES_APP_ID.to_owned(), bronze_erasures + 1)],
            )
            .await?,
        );
        bronze_erasures + 1
    };

    // The bronze version of the rewrite: silver's mark moves to it, so silver never reads the
    // rewritten files as new rows. Rows an ingestion committed before it are processed first.
    let rewrite = rewrite_version(lake, mark_version(silver_mark), erasures).await?;
    let silver_mark = lake
        .app_version(&SILVER_TRANSACTIONS, SILVER_APP_ID)
        .await?;
    if silver_mark.is_none_or(|mark| mark + 1 < rewrite as i64) {
        info!(
            upto = rewrite - 1,
            "an ingestion committed during the erasure: silver processes it first"
        );
        silver.run_until(run, &NoProgress, rewrite - 1).await?;
    }

    // Found again after that: silver may hold more of the customer's rows now.
    let hashes: Vec<String> = raw_rows_naming(lake, &SILVER_QUARANTINE, customer)
        .await?
        .into_iter()
        .collect();
    let ids: Vec<String> = silver_rows_naming(lake, customer)
        .await?
        .into_iter()
        .collect();
    info!(
        quarantined = hashes.len(),
        silver = ids.len(),
        "silver rows naming the customer found"
    );
    let mark = i64::try_from(rewrite).expect("versions fit i64");
    let silver_marks = [(SILVER_APP_ID.to_owned(), mark)];
    for (table, conditions) in [
        (SILVER_QUARANTINE, vec![("record_hash", &hashes)]),
        (SILVER_DUPLICATES, vec![("transaction_id", &ids)]),
        (
            SILVER_CHANGES,
            vec![
                ("target_transaction_id", &ids),
                ("replacement_transaction_id", &ids),
            ],
        ),
    ] {
        let conditions: Vec<(&str, &[String])> = conditions
            .into_iter()
            .map(|(column, values)| (column, values.as_slice()))
            .collect();
        done.push(delete(lake, &table, &conditions, &silver_marks).await?);
    }
    // Silver last: its mark, the changes' mark and the erasure count move together.
    done.push(
        delete(
            lake,
            &SILVER_TRANSACTIONS,
            &[("transaction_id", &ids)],
            &[
                (SILVER_APP_ID.to_owned(), mark),
                (CHANGES_APP_ID.to_owned(), mark),
                (ERASURES_APP_ID.to_owned(), erasures),
            ],
        )
        .await?,
    );
    Ok(done)
}

/// The first bronze version after `after` whose erasure count is `erasures`: the commit of
/// that erasure's rewrite.
async fn rewrite_version(lake: &Lake, after: Option<u64>, erasures: i64) -> Result<u64> {
    let latest = lake
        .latest_version(&BRONZE_TRANSACTIONS)
        .await?
        .unwrap_or_default();
    let mut version = after.map_or(0, |v| v + 1);
    while version <= latest {
        let delta = lake.open_at(&BRONZE_TRANSACTIONS, version).await?;
        if lake
            .app_version_in(&delta, &BRONZE_TRANSACTIONS, ERASURES_APP_ID)
            .await?
            == Some(erasures)
        {
            return Ok(version);
        }
        version += 1;
    }
    Err(Error::Reconciliation {
        detail: format!("no bronze commit after silver's mark carries erasure {erasures}"),
    })
}

/// Removes the customer's rows from the models' per-customer tables (lifetime values,
/// personal recommendations), keeping their marks: the models stay as fitted, without the
/// customer, until they are next fitted on gold.
///
/// # Errors
///
/// When a table fails.
pub async fn erase_from_models(lake: &Lake, customer: &str) -> Result<Vec<TableErasure>> {
    let mut done = Vec::new();
    for table in [GOLD_CUSTOMER_CLV, GOLD_CUSTOMER_RECOMMENDATIONS] {
        let before = lake.latest_version(&table).await?;
        let (after, rows) = lake
            .rewrite_keeping(&table, |batch| keep_other_customers(batch, customer))
            .await?;
        done.push(TableErasure {
            table: table.name.to_owned(),
            rows,
            version_before: before,
            version_after: after.or(before),
        });
    }
    Ok(done)
}

fn keep_other_customers(batch: &RecordBatch, customer: &str) -> Result<BooleanArray, ArrowError> {
    let column = batch
        .column_by_name("customer_id")
        .ok_or_else(|| ArrowError::SchemaError("no customer_id column".into()))?
        .as_string::<i32>();
    Ok(column
        .iter()
        .map(|id| Some(id.is_none_or(|id| id != customer)))
        .collect())
}

async fn delete(
    lake: &Lake,
    table: &TableSpec,
    conditions: &[(&str, &[String])],
    marks: &[(String, i64)],
) -> Result<TableErasure> {
    let before = lake.latest_version(table).await?;
    let (after, rows) = lake.delete_where_any(table, conditions, marks).await?;
    Ok(TableErasure {
        table: table.name.to_owned(),
        rows,
        version_before: before,
        version_after: after,
    })
}

async fn untouched(lake: &Lake, table: &TableSpec) -> Result<TableErasure> {
    let version = lake.latest_version(table).await?;
    Ok(TableErasure {
        table: table.name.to_owned(),
        rows: 0,
        version_before: version,
        version_after: version,
    })
}

/// How a table keeps its `customer_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CustomerField {
    /// As it arrived (bronze, quarantine): compared once normalised (`17850.0` is `17850`).
    Arrived,
    /// Normalised already (silver, gold, the models' tables): compared as it is.
    Normalised,
}

/// Which rows of a batch name `customer` (the module's rule): the `customer_id` column, read
/// as `field` says, or a whole token of the free text among `raw_text`, `extra_columns` and
/// `parse_error`. Columns the batch lacks (or that are not text) are left out.
pub(crate) fn rows_naming(
    batch: &RecordBatch,
    customer: &str,
    field: CustomerField,
) -> BooleanArray {
    let text = |name: &str| {
        batch
            .column_by_name(name)
            .filter(|column| column.data_type() == &deltalake::arrow::datatypes::DataType::Utf8)
            .map(|column| column.as_string::<i32>().clone())
    };
    let id = text("customer_id");
    let free: Vec<_> = ["raw_text", "extra_columns", "parse_error"]
        .into_iter()
        .filter_map(text)
        .collect();
    (0..batch.num_rows())
        .map(|row| {
            let by_field = id.as_ref().is_some_and(|id| {
                id.is_valid(row)
                    && match field {
                        CustomerField::Arrived => names_customer(id.value(row), customer),
                        CustomerField::Normalised => id.value(row) == customer,
                    }
            });
            let by_text = free
                .iter()
                .any(|text| text.is_valid(row) && mentions(text.value(row), customer));
            Some(by_field || by_text)
        })
        .collect()
}

/// The values of `key` (record hashes, transaction ids) of the rows of `table` that name
/// `customer` ([`rows_naming`]), reading only `key` and the columns the rule looks at.
async fn keys_naming(
    lake: &Lake,
    table: &TableSpec,
    key: &str,
    field: CustomerField,
    customer: &str,
) -> Result<HashSet<String>> {
    let mut found = HashSet::new();
    if lake.latest_version(table).await?.is_none() {
        return Ok(found);
    }
    let schema = table.arrow_schema();
    let columns: Vec<&str> = [
        key,
        "customer_id",
        "raw_text",
        "extra_columns",
        "parse_error",
    ]
    .into_iter()
    .filter(|name| schema.field_with_name(name).is_ok())
    .collect();
    let mut stream = lake.scan(table, Some(&columns)).await?;
    while let Some(batch) = stream.try_next().await.map_err(|source| Error::Read {
        table: table.name,
        source: Box::new(source),
    })? {
        let named = rows_naming(&batch, customer, field);
        let keys = batch.column(0).as_string::<i32>();
        found.extend(
            (0..batch.num_rows())
                .filter(|&row| named.value(row))
                .map(|row| keys.value(row).to_owned()),
        );
    }
    Ok(found)
}

/// The record hashes of the rows of bronze or quarantine that name `customer`.
async fn raw_rows_naming(
    lake: &Lake,
    table: &TableSpec,
    customer: &str,
) -> Result<HashSet<String>> {
    keys_naming(lake, table, "record_hash", CustomerField::Arrived, customer).await
}

/// The transaction ids of silver's rows that name `customer`.
async fn silver_rows_naming(lake: &Lake, customer: &str) -> Result<HashSet<String>> {
    keys_naming(
        lake,
        &SILVER_TRANSACTIONS,
        "transaction_id",
        CustomerField::Normalised,
        customer,
    )
    .await
}

/// Refuses a silver run while an erasure is unfinished (see the module).
///
/// # Errors
///
/// [`Error::ErasureInterrupted`], or when a log cannot be read.
pub async fn check_no_erasure_pending(lake: &Lake) -> Result<()> {
    let (bronze, silver) = tokio::try_join!(
        lake.app_version(&BRONZE_TRANSACTIONS, ERASURES_APP_ID),
        lake.app_version(&SILVER_TRANSACTIONS, ERASURES_APP_ID),
    )?;
    let (bronze, silver) = (bronze.unwrap_or(0), silver.unwrap_or(0));
    if bronze > silver {
        return Err(Error::ErasureInterrupted { bronze, silver });
    }
    Ok(())
}
