//! Names the platform writes into SQL text itself (schemas of the PostgreSQL adapters), which
//! therefore must be safe without quoting.

/// `[a-z_][a-z0-9_]{0,62}`: a PostgreSQL identifier that needs no quoting and is not cut short.
pub fn is_sql_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_lower_case_names_of_at_most_63_bytes_are_identifiers() {
        assert!(is_sql_identifier("retail_test_01"));
        assert!(is_sql_identifier("_x"));
        assert!(!is_sql_identifier("Retail"));
        assert!(!is_sql_identifier("1retail"));
        assert!(!is_sql_identifier("a-b"));
        assert!(!is_sql_identifier("a; DROP TABLE x"));
        assert!(!is_sql_identifier(""));
        assert!(is_sql_identifier(&"a".repeat(63)));
        assert!(!is_sql_identifier(&"a".repeat(64)));
    }
}
