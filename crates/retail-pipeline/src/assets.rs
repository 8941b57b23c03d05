//! The pipeline as an asset graph: every table is a named asset with its upstream assets.

use retail_lake::schema::{self as tables, TableSpec};

/// A named asset: a table and the assets it is computed from.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The table it materialises.
    pub table: TableSpec,
    /// Names of the assets it reads.
    pub upstream: &'static [&'static str],
    /// The stage that materialises it.
    pub stage: Stage,
}

/// A stage of the pipeline: a group of assets materialised together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Written by ingestion.
    Bronze,
    /// Bronze to silver, quarantine and duplicates.
    Silver,
    /// Silver to the star schema and aggregates.
    Gold,
}

impl Stage {
    /// Returns the stage's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bronze => "bronze",
            Self::Silver => "silver",
            Self::Gold => "gold",
        }
    }
}

const BRONZE: &str = "bronze/retail_transactions";
const SILVER: &str = "silver/retail_transactions";
const DIMENSIONS: &[&str] = &[
    SILVER,
    "gold/dim_date",
    "gold/dim_customer",
    "gold/dim_product",
    "gold/dim_country",
];

/// Every asset, in an order where each comes after its upstream assets.
pub const ASSETS: [Asset; 14] = [
    Asset {
        table: tables::BRONZE_TRANSACTIONS,
        upstream: &[],
        stage: Stage::Bronze,
    },
    Asset {
        table: tables::SILVER_QUARANTINE,
        upstream: &[BRONZE],
        stage: Stage::Silver,
    },
    Asset {
        table: tables::SILVER_DUPLICATES,
        upstream: &[BRONZE, SILVER],
        stage: Stage::Silver,
    },
    Asset {
        table: tables::SILVER_CHANGES,
        upstream: &[BRONZE, SILVER],
        stage: Stage::Silver,
    },
    Asset {
        table: tables::SILVER_TRANSACTIONS,
        upstream: &[BRONZE],
        stage: Stage::Silver,
    },
    Asset {
        table: tables::GOLD_DIM_DATE,
        upstream: &[SILVER],
        stage: Stage::Gold,
    },
    Asset {
        table: tables::GOLD_DIM_COUNTRY,
        upstream: &[SILVER],
        stage: Stage::Gold,
    },
    Asset {
        table: tables::GOLD_DIM_PRODUCT,
        upstream: &[SILVER],
        stage: Stage::Gold,
    },
    Asset {
        table: tables::GOLD_DIM_CUSTOMER,
        upstream: &[SILVER, "gold/dim_country"],
        stage: Stage::Gold,
    },
    Asset {
        table: tables::GOLD_FACT_SALES,
        upstream: DIMENSIONS,
        stage: Stage::Gold,
    },
    Asset {
        table: tables::GOLD_DAILY_SALES,
        upstream: &[SILVER],
        stage: Stage::Gold,
    },
    Asset {
        table: tables::GOLD_PRODUCT_MONTHLY,
        upstream: &[SILVER],
        stage: Stage::Gold,
    },
    Asset {
        table: tables::GOLD_CUSTOMER_RFM,
        upstream: &[SILVER],
        stage: Stage::Gold,
    },
    Asset {
        table: tables::GOLD_COHORT_RETENTION,
        upstream: &[SILVER],
        stage: Stage::Gold,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_comes_after_its_upstream_assets_and_every_table_is_an_asset() {
        for (position, asset) in ASSETS.iter().enumerate() {
            for upstream in asset.upstream {
                let found = ASSETS.iter().position(|a| a.table.name == *upstream);
                // Duplicates and changes are judged against silver as it was before the run,
                // so they may name silver, which is committed after them.
                if [
                    "silver/retail_transactions_duplicates",
                    "silver/retail_transaction_changes",
                ]
                .contains(&asset.table.name)
                    && *upstream == SILVER
                {
                    continue;
                }
                assert!(
                    found.is_some_and(|f| f < position),
                    "{} before {}",
                    upstream,
                    asset.table
                );
            }
        }
        assert_eq!(ASSETS.len(), tables::ALL_TABLES.len());
        for table in tables::ALL_TABLES {
            assert!(ASSETS.iter().any(|a| a.table.name == table.name), "{table}");
        }
    }
}
