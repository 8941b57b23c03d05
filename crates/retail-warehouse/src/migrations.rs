//! Versioned schema migrations of the PostgreSQL warehouse.
//!
//! Each migration is an SQL file under `crates/retail-warehouse/migrations/`, applied once, in
//! order, inside a transaction, and recorded with a SHA-256 of its text in `schema_migrations`.
//! An applied migration is never edited: a changed checksum stops start-up with a clear error.
//! The summary views are not migrations: they follow the code (see `sql.rs`) and are rebuilt
//! when their definition changes.

use sha2::{Digest as _, Sha256};

/// One migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its number, from 1, without gaps.
    pub version: i32,
    /// A short name.
    pub name: &'static str,
    /// Its SQL.
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of the SQL text, hex.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "star_schema",
        sql: include_str!("../migrations/0001_star_schema.sql"),
    },
    Migration {
        version: 2,
        name: "sales_listing",
        sql: include_str!("../migrations/0002_sales_listing.sql"),
    },
    Migration {
        version: 3,
        name: "view_state",
        sql: include_str!("../migrations/0003_view_state.sql"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i32 + 1, "{}", migration.name);
            assert_eq!(migration.checksum().len(), 64);
        }
    }
}
