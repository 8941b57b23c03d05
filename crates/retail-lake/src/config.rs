use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where the lake lives and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LakeConfig {
    /// A local directory (relative paths are taken from the working directory) or an
    /// object-store URL (`s3://bucket/prefix`, `file:///abs/path`).
    pub root: String,
    /// `object_store` options passed to every table, for example `AWS_ENDPOINT_URL`,
    /// `AWS_REGION` or `AWS_ALLOW_HTTP` for S3. Values are never logged.
    pub storage_options: BTreeMap<String, String>,
    /// Rows per Parquet row group and per in-memory batch when the platform streams a table.
    pub batch_rows: usize,
}

impl Default for LakeConfig {
    fn default() -> Self {
        Self {
            root: "./data/lake".to_owned(),
            storage_options: BTreeMap::new(),
            batch_rows: 65_536,
        }
    }
}
