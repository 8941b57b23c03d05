//! What the platform counts, defined once: the Rust functions the gold builder calls and the SQL
//! both warehouse backends run say the same thing, so the numbers agree by construction.
//!
//! - a **purchase line** has a positive quantity (a return has a negative one);
//! - an invoice is an **order** when it is not a cancellation and has a purchase line;
//! - **units sold** add the quantities of purchase lines; **units returned** the (positive)
//!   quantities of return lines.

/// Whether a line is a purchase: a positive quantity.
pub fn is_purchase(quantity: i64) -> bool {
    quantity > 0
}

/// Whether a line makes its invoice an order: a purchase on an invoice that is not a
/// cancellation.
pub fn counts_as_order(quantity: i64, is_cancellation: bool) -> bool {
    is_purchase(quantity) && !is_cancellation
}

/// The same definitions in SQL (PostgreSQL and DataFusion both run it), over a relation alias
/// holding `quantity`, `is_cancellation` and `invoice` (the facts: `f`).
pub mod sql {
    /// The condition of a purchase line.
    pub fn is_purchase(alias: &str) -> String {
        format!("{alias}.quantity > 0")
    }

    /// Distinct orders: non-cancellation invoices with a purchase line.
    pub fn orders(alias: &str) -> String {
        format!(
            "COUNT(DISTINCT CASE WHEN {} AND NOT {alias}.is_cancellation THEN {alias}.invoice END)",
            is_purchase(alias)
        )
    }

    /// Units sold: the quantities of purchase lines.
    pub fn units_sold(alias: &str) -> String {
        format!(
            "SUM(CASE WHEN {} THEN {alias}.quantity ELSE 0 END)",
            is_purchase(alias)
        )
    }

    /// Units returned (positive): the quantities of return lines.
    pub fn units_returned(alias: &str) -> String {
        format!("-SUM(CASE WHEN {alias}.quantity < 0 THEN {alias}.quantity ELSE 0 END)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_purchase_is_no_order_and_a_return_no_purchase() {
        assert!(is_purchase(3));
        assert!(!is_purchase(-3));
        assert!(counts_as_order(3, false));
        assert!(!counts_as_order(3, true));
        assert!(!counts_as_order(-3, false));
        assert_eq!(sql::is_purchase("f"), "f.quantity > 0");
        assert_eq!(
            sql::orders("f"),
            "COUNT(DISTINCT CASE WHEN f.quantity > 0 AND NOT f.is_cancellation THEN f.invoice END)"
        );
    }
}
