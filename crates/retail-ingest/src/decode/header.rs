//! Mapping a source's columns onto the contract's eight columns.

use std::collections::BTreeMap;

use retail_domain::column::Column;
use retail_domain::record::RawFields;

use crate::error::{Error, Result};

/// Fewest recognised contract columns a header must have to be taken as retail transactions.
pub(crate) const MIN_KNOWN_COLUMNS: usize = 4;

/// How the columns of a source map onto the contract's columns.
#[derive(Debug)]
pub(crate) struct HeaderMap {
    /// For each source column, the contract column it holds, if any.
    known: Vec<Option<Column>>,
    /// Names of the source columns, for the extra columns kept as JSON.
    pub(crate) names: Vec<String>,
}

impl HeaderMap {
    /// Maps a header row; refuses one that does not look like retail transactions (fewer than
    /// [`MIN_KNOWN_COLUMNS`] contract columns) or names a contract column twice.
    pub(crate) fn new(source: &str, headers: &[&str]) -> Result<Self> {
        let map = Self::lenient(headers).map_err(|column| Error::Header {
            source_name: source.to_owned(),
            reason: format!("column {} appears twice", column.name()),
        })?;
        let recognised = map.known.iter().flatten().count();
        if recognised < MIN_KNOWN_COLUMNS {
            return Err(Error::Header {
                source_name: source.to_owned(),
                reason: format!(
                    "only {recognised} of the 8 contract columns recognised in [{}]",
                    headers.join(", ")
                ),
            });
        }
        Ok(map)
    }

    /// Maps the keys of one record, whatever their number; `Err` names a contract column that
    /// two keys give.
    pub(crate) fn lenient(headers: &[&str]) -> std::result::Result<Self, Column> {
        let mut known = Vec::with_capacity(headers.len());
        let mut seen: Vec<Column> = Vec::new();
        for header in headers {
            let column = Column::from_header(header);
            if let Some(column) = column {
                if seen.contains(&column) {
                    return Err(column);
                }
                seen.push(column);
            }
            known.push(column);
        }
        let names = headers
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_owned())
            .collect();
        Ok(Self { known, names })
    }

    pub(crate) fn width(&self) -> usize {
        self.known.len()
    }

    /// Whether the column at `index` is one of the contract's.
    pub(crate) fn is_known(&self, index: usize) -> bool {
        self.known.get(index).is_some_and(Option::is_some)
    }

    /// Splits a record's values into the eight fields and a JSON object of the other columns.
    pub(crate) fn split<'v>(&self, values: &[Option<&'v str>]) -> (RawFields<'v>, Option<String>) {
        let mut raw = RawFields::default();
        let mut extra: Option<BTreeMap<&str, &str>> = None;
        for ((column, name), value) in self.known.iter().zip(&self.names).zip(values) {
            match column {
                Some(column) => {
                    let slot = match column {
                        Column::Invoice => &mut raw.invoice,
                        Column::StockCode => &mut raw.stock_code,
                        Column::Description => &mut raw.description,
                        Column::Quantity => &mut raw.quantity,
                        Column::InvoiceDate => &mut raw.invoice_date,
                        Column::UnitPrice => &mut raw.unit_price,
                        Column::CustomerId => &mut raw.customer_id,
                        Column::Country => &mut raw.country,
                    };
                    *slot = *value;
                }
                None => {
                    if let Some(value) = value {
                        extra.get_or_insert_with(BTreeMap::new).insert(name, value);
                    }
                }
            }
        }
        let extra = extra
            .map(|map| serde_json::to_string(&map).expect("a map of strings always serialises"));
        (raw, extra)
    }
}
