//! The eight business columns of a retail transaction and their accepted source headers.

/// One of the eight business columns every source carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// The invoice number (`InvoiceNo`, `Invoice`).
    Invoice,
    /// The product's stock code.
    StockCode,
    /// The product description.
    Description,
    /// The number of units; negative for returns.
    Quantity,
    /// When the invoice was issued, shop-local time.
    InvoiceDate,
    /// The price of one unit.
    UnitPrice,
    /// The customer; empty for a guest sale.
    CustomerId,
    /// The customer's country as the source spells it.
    Country,
}

impl Column {
    /// Every column, in the canonical order used by bronze, silver and the record hashes.
    pub const ALL: [Column; 8] = [
        Column::Invoice,
        Column::StockCode,
        Column::Description,
        Column::Quantity,
        Column::InvoiceDate,
        Column::UnitPrice,
        Column::CustomerId,
        Column::Country,
    ];

    /// Returns the canonical `snake_case` column name used in every lake table.
    pub fn name(self) -> &'static str {
        match self {
            Column::Invoice => "invoice",
            Column::StockCode => "stock_code",
            Column::Description => "description",
            Column::Quantity => "quantity",
            Column::InvoiceDate => "invoice_date",
            Column::UnitPrice => "unit_price",
            Column::CustomerId => "customer_id",
            Column::Country => "country",
        }
    }

    /// Returns the header of the UCI sources (`InvoiceNo`, `CustomerID`, ...), the first the
    /// contract lists.
    pub fn source_header(self) -> &'static str {
        self.accepted_headers()[0]
    }

    /// Returns the headers a source may use for this column, as the contract lists them.
    ///
    /// Matching against them is case-insensitive (see [`Column::from_header`]).
    pub fn accepted_headers(self) -> &'static [&'static str] {
        match self {
            Column::Invoice => &["InvoiceNo", "Invoice", "invoice_no"],
            Column::StockCode => &["StockCode", "stock_code"],
            Column::Description => &["Description"],
            Column::Quantity => &["Quantity"],
            Column::InvoiceDate => &["InvoiceDate", "invoice_date"],
            Column::UnitPrice => &["UnitPrice", "Price", "unit_price"],
            Column::CustomerId => &["CustomerID", "Customer ID", "customer_id"],
            Column::Country => &["Country"],
        }
    }

    /// Returns the column a source header names, or `None` for any other (extra) column.
    ///
    /// Matching is ASCII case-insensitive; a leading UTF-8 byte-order mark and surrounding
    /// white space are ignored, so `"\u{feff}Invoice"` and `" Customer ID "` are recognised.
    /// Internal spacing must match the contract (`Customer ID` has exactly one space).
    pub fn from_header(header: &str) -> Option<Column> {
        let header = header.trim().trim_start_matches('\u{feff}').trim();
        Column::ALL.into_iter().find(|column| {
            column
                .accepted_headers()
                .iter()
                .any(|accepted| accepted.eq_ignore_ascii_case(header))
        })
    }
}

impl std::fmt::Display for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_follow_the_contract_order() {
        let names: Vec<&str> = Column::ALL.iter().map(|column| column.name()).collect();
        assert_eq!(
            names,
            [
                "invoice",
                "stock_code",
                "description",
                "quantity",
                "invoice_date",
                "unit_price",
                "customer_id",
                "country"
            ]
        );
    }

    #[test]
    fn recognises_every_header_variant_of_the_contract() {
        let cases = [
            ("InvoiceNo", Column::Invoice),
            ("Invoice", Column::Invoice),
            ("invoice_no", Column::Invoice),
            ("invoice", Column::Invoice),
            ("StockCode", Column::StockCode),
            ("stock_code", Column::StockCode),
            ("Description", Column::Description),
            ("description", Column::Description),
            ("Quantity", Column::Quantity),
            ("quantity", Column::Quantity),
            ("InvoiceDate", Column::InvoiceDate),
            ("invoice_date", Column::InvoiceDate),
            ("UnitPrice", Column::UnitPrice),
            ("Price", Column::UnitPrice),
            ("unit_price", Column::UnitPrice),
            ("CustomerID", Column::CustomerId),
            ("Customer ID", Column::CustomerId),
            ("customer_id", Column::CustomerId),
            ("Country", Column::Country),
            ("country", Column::Country),
        ];
        for (header, column) in cases {
            assert_eq!(Column::from_header(header), Some(column), "{header}");
        }
    }

    #[test]
    fn canonical_names_are_accepted_headers() {
        for column in Column::ALL {
            assert_eq!(Column::from_header(column.name()), Some(column));
        }
    }

    #[test]
    fn header_matching_ignores_case() {
        assert_eq!(Column::from_header("INVOICENO"), Some(Column::Invoice));
        assert_eq!(Column::from_header("customer id"), Some(Column::CustomerId));
        assert_eq!(Column::from_header("UNITPRICE"), Some(Column::UnitPrice));
    }

    #[test]
    fn header_matching_ignores_bom_and_surrounding_spaces() {
        assert_eq!(
            Column::from_header("\u{feff}Invoice"),
            Some(Column::Invoice)
        );
        assert_eq!(
            Column::from_header("\u{feff}InvoiceNo"),
            Some(Column::Invoice)
        );
        assert_eq!(
            Column::from_header("  Customer ID \t"),
            Some(Column::CustomerId)
        );
        assert_eq!(
            Column::from_header("\u{feff} Country "),
            Some(Column::Country)
        );
        assert_eq!(
            Column::from_header(" \u{feff}StockCode"),
            Some(Column::StockCode)
        );
    }

    #[test]
    fn extra_columns_are_not_business_columns() {
        for header in [
            "email",
            "Customer  ID",
            "CustomerNo",
            "",
            "\u{feff}",
            "Invoice No",
        ] {
            assert_eq!(Column::from_header(header), None, "{header:?}");
        }
    }
}
