//! Changes to transactions already in silver: a bronze record may update or delete one.
//!
//! A change is an ordinary bronze record with two more fields: the operation and the
//! transaction it targets. Bronze stays append-only; the silver stage applies the change (see
//! `ARCHITECTURE.md`, "Changes to transactions").

use std::str::FromStr;

use crate::error::Error;

/// What a bronze record does to silver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// A new transaction (every record from files and streams).
    Insert,
    /// Replaces the target transaction with the record's fields.
    Update,
    /// Removes the target transaction; the record's business fields are empty.
    Delete,
}

impl Operation {
    /// Returns the code stored in bronze (`insert` is stored as null).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }

    /// Returns the operation whose code is `s` (exact match), if any.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Insert, Self::Update, Self::Delete]
            .into_iter()
            .find(|operation| operation.as_str() == s)
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Operation {
    type Err = Error;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Self::parse(code).ok_or_else(|| Error::UnknownCode {
            what: "operation",
            code: code.to_owned(),
        })
    }
}

/// Parses a transaction id as silver writes it: exactly 32 lower-case hexadecimal digits.
pub fn parse_transaction_id(text: &str) -> Option<u128> {
    (text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then(|| u128::from_str_radix(text, 16).ok())
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_round_trip_through_their_codes() {
        for operation in [Operation::Insert, Operation::Update, Operation::Delete] {
            assert_eq!(
                operation.as_str().parse::<Operation>().ok(),
                Some(operation)
            );
        }
        assert!("UPDATE".parse::<Operation>().is_err());
        assert!("".parse::<Operation>().is_err());
    }

    #[test]
    fn transaction_ids_are_exactly_32_lower_case_hex_digits() {
        assert_eq!(
            parse_transaction_id("0000000000000000000000000000002a"),
            Some(42)
        );
        assert_eq!(parse_transaction_id("2a"), None);
        assert_eq!(
            parse_transaction_id("0000000000000000000000000000002A"),
            None
        );
        assert_eq!(
            parse_transaction_id("000000000000000000000000000000zz"),
            None
        );
        assert_eq!(
            parse_transaction_id("0000000000000000000000000000002a0"),
            None
        );
    }
}
