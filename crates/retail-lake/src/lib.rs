//! The lake adapter: every table of the platform is a Delta Lake table under one root.
//!
//! This crate owns where tables live (`<root>/<layer>/<name>`), their Arrow schemas
//! ([`schema`]), and the few Delta operations the platform needs: streaming appends that carry
//! application-transaction markers (so progress is committed atomically with the data), atomic
//! overwrites, whole-table and file-level reads. It knows nothing of the data contract's rules.
//!
//! The root is a local directory (the embedded profile, `./data/lake` by default) or an
//! object-store URL such as `s3://bucket/lake`, configured through [`LakeConfig`].
//!
//! ```no_run
//! # async fn example() -> retail_lake::Result<()> {
//! use retail_lake::{Lake, LakeConfig, schema::BRONZE_TRANSACTIONS};
//!
//! let lake = Lake::new(&LakeConfig::default())?;
//! let version = lake.latest_version(&BRONZE_TRANSACTIONS).await?;
//! println!("bronze is at version {version:?}");
//! # Ok(())
//! # }
//! ```

pub mod cells;
mod config;
pub mod encryption;
mod error;
mod prefix;
pub mod schema;
mod store;

pub use config::{EncryptionConfig, LakeConfig};
pub use deltalake::{DeltaTable, arrow, parquet};
pub use error::{Error, Result};
pub use prefix::{ObjectPrefix, ObjectStamp};
pub use schema::TableSpec;
pub use store::{AddedFiles, FileRange, KeptTables, Lake, Purged, TableAppender, Vacuumed};
