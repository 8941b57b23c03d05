//! The reconciliation of the lake's counts, checked after every run.

use retail_lake::Lake;
use retail_lake::schema::{
    BRONZE_TRANSACTIONS, SILVER_CHANGES, SILVER_DUPLICATES, SILVER_QUARANTINE, SILVER_TRANSACTIONS,
};
use retail_metadata::Reconciliation;

use crate::SILVER_APP_ID;
use crate::error::Result;

/// Counts the rows of bronze, silver, quarantine, duplicates and applied changes, from the
/// Delta logs' statistics (no data file is read). Bronze is counted at the version silver has
/// processed (silver's mark): records ingested meanwhile (a stream consuming while the
/// pipeline runs) are the next run's, not a gap in this one's balance.
///
/// # Errors
///
/// When a table's log cannot be read.
pub async fn reconcile(lake: &Lake) -> Result<Reconciliation> {
    let bronze = async {
        match lake
            .app_version(&SILVER_TRANSACTIONS, SILVER_APP_ID)
            .await?
        {
            Some(mark) => {
                let version = u64::try_from(mark).expect("a mark is a bronze version");
                lake.count_rows_at(&BRONZE_TRANSACTIONS, version).await
            }
            None => lake.count_rows(&BRONZE_TRANSACTIONS).await,
        }
    };
    // Each count reads one table's log; they are read at once.
    let (bronze, silver, quarantine, duplicates, updates, deletes) = tokio::try_join!(
        bronze,
        lake.count_rows(&SILVER_TRANSACTIONS),
        lake.count_rows(&SILVER_QUARANTINE),
        lake.count_rows(&SILVER_DUPLICATES),
        lake.count_partition_rows(&SILVER_CHANGES, "change", "update"),
        lake.count_partition_rows(&SILVER_CHANGES, "change", "delete"),
    )?;
    Ok(Reconciliation {
        bronze,
        silver,
        quarantine,
        duplicates,
        updates,
        deletes,
    })
}
