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
    /// How long a data file no table version references any more is kept before a vacuum
    /// removes it, in hours (at least 1): readers of older versions (time travel, a
    /// warehouse load or a query pinned to a snapshot) need their files that long. Progress
    /// marks need only the log, never removed files.
    pub vacuum_retention_hours: u64,
    /// Whether each pipeline run that changed something ends with a vacuum of every table.
    pub vacuum_after_runs: bool,
    /// On a local lake, flush each commit's data files to disk before the commit and its log
    /// entry after it, so that what a command or a `202` reports as written survives a power
    /// loss. Object stores acknowledge only durable writes and need nothing.
    pub fsync: bool,
    /// Encryption at rest (ADR 0016); off unless a master key is set.
    pub encryption: EncryptionConfig,
}

/// The keys of the lake's encryption at rest (`[lake.encryption]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionConfig {
    /// The master key that wraps the lake's data keys: 32 bytes as 64 hex digits (`openssl
    /// rand -hex 32` or `retail lake keys generate`), or a secret reference. Empty: the lake
    /// is not encrypted. Never stored in the lake.
    pub master_key: String,
    /// Master keys that may still wrap some data keys during a rotation (`retail lake keys
    /// rewrap` wraps them all under `master_key`; then remove them here).
    pub previous_master_keys: Vec<String>,
}

impl EncryptionConfig {
    /// Whether the lake is encrypted.
    pub fn is_enabled(&self) -> bool {
        !self.master_key.is_empty()
    }

    /// Every master key with the setting that holds it, the current one first.
    pub fn master_keys(&self) -> impl Iterator<Item = (String, &str)> {
        std::iter::once((
            "lake.encryption.master_key".to_owned(),
            self.master_key.as_str(),
        ))
        .chain(
            self.previous_master_keys
                .iter()
                .enumerate()
                .map(|(index, key)| {
                    (
                        format!("lake.encryption.previous_master_keys[{index}]"),
                        key.as_str(),
                    )
                }),
        )
    }
}

impl LakeConfig {
    /// How long unreferenced files are kept (`vacuum_retention_hours`).
    pub fn vacuum_retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.vacuum_retention_hours.saturating_mul(3600))
    }
}

impl Default for LakeConfig {
    fn default() -> Self {
        Self {
            root: "./data/lake".to_owned(),
            storage_options: BTreeMap::new(),
            batch_rows: 65_536,
            vacuum_retention_hours: 168,
            vacuum_after_runs: true,
            fsync: true,
            encryption: EncryptionConfig::default(),
        }
    }
}
