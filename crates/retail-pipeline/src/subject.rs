//! What the lake holds about one customer, for a data subject's access and portability request
//! (GDPR Art. 15 and 20): their transactions (silver), rows quarantined that name them (as they
//! arrived), their profile (`dim_customer`, every type 2 version), their RFM segment, and the
//! models' outputs about them (lifetime value, personal recommendations). A row is theirs by
//! the rule of the erasure ([`crate::erasure`]).

use deltalake::arrow::array::RecordBatch;
use futures::TryStreamExt as _;
use retail_lake::Lake;
use retail_lake::schema::{
    GOLD_CUSTOMER_CLV, GOLD_CUSTOMER_RECOMMENDATIONS, GOLD_CUSTOMER_RFM, GOLD_DIM_CUSTOMER,
    SILVER_QUARANTINE, SILVER_TRANSACTIONS, TableSpec,
};

use crate::erasure::{CustomerField, rows_naming};
use crate::error::{Error, Result};

/// The tables a customer's data is read from, in the order an export lists them.
pub const SUBJECT_TABLES: [TableSpec; 6] = [
    GOLD_DIM_CUSTOMER,
    GOLD_CUSTOMER_RFM,
    SILVER_TRANSACTIONS,
    SILVER_QUARANTINE,
    GOLD_CUSTOMER_CLV,
    GOLD_CUSTOMER_RECOMMENDATIONS,
];

/// One table's rows about the customer, each a JSON object of its columns.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct SubjectTable {
    /// The table (`layer/name`).
    pub table: String,
    /// Its rows naming the customer.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Every row of [`SUBJECT_TABLES`] naming `customer` (normalised), table by table; a table not
/// written yet has no rows.
///
/// # Errors
///
/// When a table cannot be read.
pub async fn customer_data(lake: &Lake, customer: &str) -> Result<Vec<SubjectTable>> {
    let mut tables = Vec::with_capacity(SUBJECT_TABLES.len());
    for table in SUBJECT_TABLES {
        let mut rows = Vec::new();
        if lake.latest_version(&table).await?.is_some() {
            let mut stream = lake.scan(&table, None).await?;
            while let Some(batch) = stream.try_next().await.map_err(|source| Error::Read {
                table: table.name,
                source: Box::new(source),
            })? {
                let field = if table.name == SILVER_QUARANTINE.name {
                    CustomerField::Arrived
                } else {
                    CustomerField::Normalised
                };
                let mask = rows_naming(&batch, customer, field);
                if mask.true_count() == 0 {
                    continue;
                }
                let theirs = deltalake::arrow::compute::filter_record_batch(&batch, &mask)
                    .map_err(Error::transform("export"))?;
                rows.extend(json_rows(&theirs)?);
            }
        }
        tables.push(SubjectTable {
            table: table.name.to_owned(),
            rows,
        });
    }
    Ok(tables)
}

fn json_rows(batch: &RecordBatch) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let mut writer = deltalake::arrow::json::ArrayWriter::new(Vec::new());
    writer
        .write_batches(&[batch])
        .and_then(|()| writer.finish())
        .map_err(Error::transform("export"))?;
    let bytes = writer.into_inner();
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(&bytes)
        .map_err(|error| Error::Reconciliation {
            detail: format!("the export's JSON did not parse back: {error}"),
        })?;
    Ok(rows)
}
