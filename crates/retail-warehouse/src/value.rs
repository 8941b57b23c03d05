//! Query results in one shape for both backends, so that they can be compared and served.

use chrono::{NaiveDate, NaiveDateTime};
use deltalake::arrow::array::{Array, AsArray as _, RecordBatch};
use deltalake::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive as _;
use serde::Serialize;
use serde::ser::SerializeMap as _;
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use crate::error::{Error, Result};

/// One value of a result.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A floating-point number (ratios).
    Float(f64),
    /// An exact decimal (money).
    Decimal(Decimal),
    /// Text.
    Text(String),
    /// A calendar date.
    Date(NaiveDate),
    /// A shop-local date and time.
    Timestamp(NaiveDateTime),
}

impl Cell {
    /// Whether two cells mean the same value: whole numbers equal decimals of the same value
    /// (PostgreSQL sums integers into `numeric`), floats agree to 1e-9 relative.
    pub fn same_as(&self, other: &Cell) -> bool {
        match (self, other) {
            (Cell::Int(a), Cell::Decimal(b)) | (Cell::Decimal(b), Cell::Int(a)) => {
                Decimal::from(*a) == *b
            }
            (Cell::Decimal(a), Cell::Decimal(b)) => a.normalize() == b.normalize(),
            (Cell::Float(a), Cell::Float(b)) => {
                a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
            }
            _ => self == other,
        }
    }
}

impl Serialize for Cell {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Null => serializer.serialize_none(),
            Cell::Bool(value) => serializer.serialize_bool(*value),
            Cell::Int(value) => serializer.serialize_i64(*value),
            Cell::Float(value) => serializer.serialize_f64(*value),
            // Exact in the platform; money leaves it rounded to cents, as the contract says.
            Cell::Decimal(value) => {
                let cents = value.round_dp_with_strategy(
                    2,
                    rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                );
                // The shortest decimal text of the nearest f64 is the cents themselves.
                serializer.serialize_f64(cents.to_f64().unwrap_or(f64::NAN))
            }
            Cell::Text(value) => serializer.serialize_str(value),
            Cell::Date(value) => serializer.serialize_str(&value.format("%Y-%m-%d").to_string()),
            Cell::Timestamp(value) => {
                serializer.serialize_str(&value.format("%Y-%m-%dT%H:%M:%S").to_string())
            }
        }
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Null => f.write_str(""),
            Cell::Bool(value) => write!(f, "{value}"),
            Cell::Int(value) => write!(f, "{value}"),
            Cell::Float(value) => write!(f, "{value:.4}"),
            Cell::Decimal(value) => write!(f, "{}", value.normalize()),
            Cell::Text(value) => f.write_str(value),
            Cell::Date(value) => write!(f, "{value}"),
            Cell::Timestamp(value) => write!(f, "{value}"),
        }
    }
}

/// The rows of a query, column names first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows, each with one cell per column.
    pub rows: Vec<Vec<Cell>>,
}

impl QueryResult {
    /// The first difference between two results, or `None` when they agree.
    pub fn difference(&self, other: &QueryResult) -> Option<String> {
        if self.columns != other.columns {
            return Some(format!("columns {:?} vs {:?}", self.columns, other.columns));
        }
        if self.rows.len() != other.rows.len() {
            return Some(format!("{} rows vs {}", self.rows.len(), other.rows.len()));
        }
        for (index, (left, right)) in self.rows.iter().zip(&other.rows).enumerate() {
            for (column, (a, b)) in left.iter().zip(right).enumerate() {
                if !a.same_as(b) {
                    return Some(format!(
                        "row {index}, column {}: {a:?} vs {b:?}",
                        self.columns[column]
                    ));
                }
            }
        }
        None
    }

    /// The cell of `column` in row `row`, if both exist.
    pub fn get(&self, row: usize, column: &str) -> Option<&Cell> {
        let position = self.columns.iter().position(|c| c == column)?;
        self.rows.get(row)?.get(position)
    }

    /// Encodes the result losslessly (each cell's type and exact decimals kept), for a cache
    /// shared by API replicas.
    pub fn to_cache_text(&self) -> String {
        let stored = Stored {
            columns: self.columns.clone(),
            rows: self
                .rows
                .iter()
                .map(|row| row.iter().map(StoredCell::from).collect())
                .collect(),
        };
        serde_json::to_string(&stored).expect("a result always encodes")
    }

    /// Decodes what [`QueryResult::to_cache_text`] wrote; `None` for anything else.
    pub fn from_cache_text(text: &str) -> Option<Self> {
        let stored: Stored = serde_json::from_str(text).ok()?;
        let rows = stored
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(Cell::try_from).collect())
            .collect::<std::result::Result<_, ()>>()
            .ok()?;
        Some(Self {
            columns: stored.columns,
            rows,
        })
    }

    /// Converts Arrow batches (DataFusion's answer).
    pub(crate) fn from_batches(batches: &[RecordBatch]) -> Result<Self> {
        let Some(first) = batches.first() else {
            return Ok(Self::default());
        };
        let columns = first
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut rows = Vec::new();
        for batch in batches {
            let mut converted: Vec<Vec<Cell>> = vec![Vec::new(); batch.num_rows()];
            for (index, column) in batch.columns().iter().enumerate() {
                let cells = arrow_cells(column.as_ref(), batch.schema().field(index).name())?;
                for (row, cell) in converted.iter_mut().zip(cells) {
                    row.push(cell);
                }
            }
            rows.extend(converted);
        }
        Ok(Self { columns, rows })
    }

    /// Converts PostgreSQL rows.
    pub(crate) fn from_rows(rows: &[Row]) -> Result<Self> {
        let Some(first) = rows.first() else {
            return Ok(Self::default());
        };
        let columns = first
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        let mut converted = Vec::with_capacity(rows.len());
        for row in rows {
            let mut cells = Vec::with_capacity(row.len());
            for (index, column) in row.columns().iter().enumerate() {
                cells.push(pg_cell(row, index, column.type_(), column.name())?);
            }
            converted.push(cells);
        }
        Ok(Self {
            columns,
            rows: converted,
        })
    }
}

/// A result as a shared cache keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    columns: Vec<String>,
    rows: Vec<Vec<StoredCell>>,
}

/// A cell with its type; decimals as exact text.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "t", content = "v")]
enum StoredCell {
    N,
    B(bool),
    I(i64),
    F(f64),
    D(String),
    S(String),
    Dt(NaiveDate),
    Ts(NaiveDateTime),
}

impl From<&Cell> for StoredCell {
    fn from(cell: &Cell) -> Self {
        match cell {
            Cell::Null => Self::N,
            Cell::Bool(value) => Self::B(*value),
            Cell::Int(value) => Self::I(*value),
            Cell::Float(value) => Self::F(*value),
            Cell::Decimal(value) => Self::D(value.to_string()),
            Cell::Text(value) => Self::S(value.clone()),
            Cell::Date(value) => Self::Dt(*value),
            Cell::Timestamp(value) => Self::Ts(*value),
        }
    }
}

impl TryFrom<StoredCell> for Cell {
    type Error = ();

    fn try_from(stored: StoredCell) -> std::result::Result<Self, ()> {
        Ok(match stored {
            StoredCell::N => Self::Null,
            StoredCell::B(value) => Self::Bool(value),
            StoredCell::I(value) => Self::Int(value),
            StoredCell::F(value) => Self::Float(value),
            StoredCell::D(text) => Self::Decimal(text.parse().map_err(|_| ())?),
            StoredCell::S(value) => Self::Text(value),
            StoredCell::Dt(value) => Self::Date(value),
            StoredCell::Ts(value) => Self::Timestamp(value),
        })
    }
}

/// Serialises as a list of objects, one per row, keyed by column name.
impl Serialize for QueryResult {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        struct RowRef<'a>(&'a [String], &'a [Cell]);
        impl Serialize for RowRef<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (name, cell) in self.0.iter().zip(self.1) {
                    map.serialize_entry(name, cell)?;
                }
                map.end()
            }
        }
        let mut seq = serializer.serialize_seq(Some(self.rows.len()))?;
        for row in &self.rows {
            seq.serialize_element(&RowRef(&self.columns, row))?;
        }
        seq.end()
    }
}

fn arrow_cells(array: &dyn Array, name: &str) -> Result<Vec<Cell>> {
    macro_rules! each {
        ($kind:ty, $make:expr) => {{
            let typed = array.as_primitive::<$kind>();
            (0..array.len())
                .map(|i| {
                    if typed.is_null(i) {
                        Cell::Null
                    } else {
                        $make(typed.value(i))
                    }
                })
                .collect()
        }};
    }
    let unsupported = || Error::UnsupportedType {
        data_type: array.data_type().to_string(),
        context: format!("column {name}"),
    };
    Ok(match array.data_type() {
        DataType::Null => vec![Cell::Null; array.len()],
        DataType::Boolean => {
            let typed = array.as_boolean();
            (0..array.len())
                .map(|i| {
                    if typed.is_null(i) {
                        Cell::Null
                    } else {
                        Cell::Bool(typed.value(i))
                    }
                })
                .collect()
        }
        DataType::Int8 => each!(Int8Type, |v| Cell::Int(i64::from(v))),
        DataType::Int16 => each!(Int16Type, |v| Cell::Int(i64::from(v))),
        DataType::Int32 => each!(Int32Type, |v| Cell::Int(i64::from(v))),
        DataType::Int64 => each!(Int64Type, Cell::Int),
        DataType::UInt8 => each!(UInt8Type, |v| Cell::Int(i64::from(v))),
        DataType::UInt16 => each!(UInt16Type, |v| Cell::Int(i64::from(v))),
        DataType::UInt32 => each!(UInt32Type, |v| Cell::Int(i64::from(v))),
        DataType::UInt64 => each!(UInt64Type, |v: u64| Cell::Int(v as i64)),
        DataType::Float32 => each!(Float32Type, |v| Cell::Float(f64::from(v))),
        DataType::Float64 => each!(Float64Type, Cell::Float),
        DataType::Decimal128(_, scale) => {
            let scale = u32::try_from(*scale).map_err(|_| unsupported())?;
            each!(Decimal128Type, |v| Cell::Decimal(
                Decimal::from_i128_with_scale(v, scale)
            ))
        }
        DataType::Date32 => each!(Date32Type, |v| Date32Type::to_naive_date_opt(v)
            .map_or(Cell::Null, Cell::Date)),
        DataType::Timestamp(unit, None) => {
            let micros = |value: i64, unit: &TimeUnit| match unit {
                TimeUnit::Second => value * 1_000_000,
                TimeUnit::Millisecond => value * 1_000,
                TimeUnit::Microsecond => value,
                TimeUnit::Nanosecond => value / 1_000,
            };
            let to_cell = |value: i64| {
                chrono::DateTime::from_timestamp_micros(micros(value, unit))
                    .map_or(Cell::Null, |t| Cell::Timestamp(t.naive_utc()))
            };
            match unit {
                TimeUnit::Second => each!(TimestampSecondType, to_cell),
                TimeUnit::Millisecond => each!(TimestampMillisecondType, to_cell),
                TimeUnit::Microsecond => each!(TimestampMicrosecondType, to_cell),
                TimeUnit::Nanosecond => each!(TimestampNanosecondType, to_cell),
            }
        }
        DataType::Utf8 => strings(array.as_string::<i32>().iter()),
        DataType::LargeUtf8 => strings(array.as_string::<i64>().iter()),
        DataType::Utf8View => strings(array.as_string_view().iter()),
        _ => return Err(unsupported()),
    })
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Vec<Cell> {
    values
        .map(|v| v.map_or(Cell::Null, |v| Cell::Text(v.to_owned())))
        .collect()
}

fn pg_cell(row: &Row, index: usize, kind: &Type, name: &str) -> Result<Cell> {
    let read = |error: tokio_postgres::Error| Error::Postgres {
        operation: format!("reading column {name}"),
        source: error,
    };
    macro_rules! get {
        ($t:ty, $make:expr) => {
            row.try_get::<_, Option<$t>>(index)
                .map_err(read)?
                .map_or(Cell::Null, $make)
        };
    }
    Ok(match *kind {
        Type::BOOL => get!(bool, Cell::Bool),
        Type::INT2 => get!(i16, |v| Cell::Int(i64::from(v))),
        Type::INT4 => get!(i32, |v| Cell::Int(i64::from(v))),
        Type::INT8 => get!(i64, Cell::Int),
        Type::FLOAT4 => get!(f32, |v| Cell::Float(f64::from(v))),
        Type::FLOAT8 => get!(f64, Cell::Float),
        Type::NUMERIC => get!(Decimal, Cell::Decimal),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => get!(String, Cell::Text),
        Type::DATE => get!(NaiveDate, Cell::Date),
        Type::TIMESTAMP => get!(NaiveDateTime, Cell::Timestamp),
        _ => {
            return Err(Error::UnsupportedType {
                data_type: kind.name().to_owned(),
                context: format!("column {name}"),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_equal_decimals_of_the_same_value_and_floats_agree_closely() {
        assert!(Cell::Int(5).same_as(&Cell::Decimal(Decimal::new(5000, 3))));
        assert!(!Cell::Int(5).same_as(&Cell::Decimal(Decimal::new(5001, 3))));
        assert!(Cell::Decimal(Decimal::new(10, 1)).same_as(&Cell::Decimal(Decimal::new(1, 0))));
        assert!(Cell::Float(0.1 + 0.2).same_as(&Cell::Float(0.3)));
        assert!(!Cell::Float(0.3).same_as(&Cell::Float(0.31)));
        assert!(!Cell::Text("a".into()).same_as(&Cell::Null));
    }

    #[test]
    fn the_cache_encoding_keeps_every_type_and_exact_money() {
        let result = QueryResult {
            columns: vec!["a".into(), "b".into()],
            rows: vec![
                vec![Cell::Decimal("12.345".parse().unwrap()), Cell::Null],
                vec![
                    Cell::Date(NaiveDate::from_ymd_opt(2011, 12, 9).unwrap()),
                    Cell::Timestamp(
                        NaiveDate::from_ymd_opt(2011, 12, 9)
                            .unwrap()
                            .and_hms_opt(12, 50, 0)
                            .unwrap(),
                    ),
                ],
                vec![Cell::Float(0.25), Cell::Text("x".into())],
                vec![Cell::Int(-3), Cell::Bool(true)],
            ],
        };
        let text = result.to_cache_text();
        assert_eq!(QueryResult::from_cache_text(&text), Some(result));
        assert!(QueryResult::from_cache_text("{\"rows\": 1}").is_none());
    }

    #[test]
    fn money_leaves_as_text_rounded_to_cents() {
        let result = QueryResult {
            columns: vec!["net".into(), "day".into()],
            rows: vec![vec![
                Cell::Decimal(Decimal::new(12_345, 3)),
                Cell::Date(NaiveDate::from_ymd_opt(2011, 1, 2).unwrap()),
            ]],
        };
        assert_eq!(
            serde_json::to_string(&result).unwrap(),
            r#"[{"net":12.35,"day":"2011-01-02"}]"#
        );
    }
}
