//! The reconciliation of the lake's counts, checked after every run.

use retail_lake::Lake;
use retail_lake::schema::{
    BRONZE_TRANSACTIONS, SILVER_CHANGES, SILVER_DUPLICATES, SILVER_QUARANTINE, SILVER_TRANSACTIONS,
};
use retail_metadata::Reconciliation;

use crate::error::Result;

/// Counts the rows of bronze, silver, quarantine, duplicates and applied changes, from the
/// Delta logs' statistics (no data file is read).
///
/// # Errors
///
/// When a table's log cannot be read.
pub async fn reconcile(lake: &Lake) -> Result<Reconciliation> {
    Ok(Reconciliation {
        bronze: lake.count_rows(&BRONZE_TRANSACTIONS).await?,
        silver: lake.count_rows(&SILVER_TRANSACTIONS).await?,
        quarantine: lake.count_rows(&SILVER_QUARANTINE).await?,
        duplicates: lake.count_rows(&SILVER_DUPLICATES).await?,
        updates: lake
            .count_partition_rows(&SILVER_CHANGES, "change", "update")
            .await?,
        deletes: lake
            .count_partition_rows(&SILVER_CHANGES, "change", "delete")
            .await?,
    })
}
