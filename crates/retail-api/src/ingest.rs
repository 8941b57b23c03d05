//! `POST /api/v1/ingest/transactions`: one transaction, a JSON array, NDJSON or CSV.
//!
//! Every record is checked for shape first (known fields only, text or number values); if any
//! record is malformed the whole request is refused with every problem listed and nothing is
//! written. Well-formed records all land in bronze in one Delta commit before the response,
//! including those the contract will quarantine (they are listed, with their reasons, so the
//! sender knows at once). An `Idempotency-Key` makes a retry safe.

use retail_domain::column::Column;
use retail_domain::record::{RawFields, cleanse};
use serde::Serialize;
use utoipa::ToSchema;

/// Most records one request may carry.
pub(crate) const MAX_RECORDS: usize = 100_000;

/// The eight business fields of one record, in [`Column::ALL`] order.
pub(crate) type Fields = [Option<String>; 8];

/// A problem with one record.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RecordProblem {
    /// Position in the request, from 0 (for CSV: the data row, from 0).
    pub(crate) index: usize,
    /// What is wrong.
    pub(crate) problems: Vec<String>,
}

/// The body formats accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFormat {
    /// One JSON object or an array of them.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// CSV with a header row (either Online Retail variant, or the snake_case names).
    Csv,
}

impl BodyFormat {
    /// The format a `Content-Type` names.
    pub(crate) fn of(content_type: &str) -> Option<Self> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(Self::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Some(Self::Ndjson),
            "text/csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

fn object_fields(
    object: &serde_json::Map<String, serde_json::Value>,
) -> Result<Fields, Vec<String>> {
    let mut fields: Fields = Default::default();
    let mut problems = Vec::new();
    for (key, value) in object {
        let Some(column) = Column::from_header(key) else {
            problems.push(format!("unknown field {key:?}"));
            continue;
        };
        let slot = Column::ALL
            .iter()
            .position(|c| *c == column)
            .expect("every column is in ALL");
        if fields[slot].is_some() {
            problems.push(format!("field {key:?} given twice"));
            continue;
        }
        fields[slot] = match value {
            serde_json::Value::Null => None,
            serde_json::Value::String(text) if text.trim().is_empty() => None,
            serde_json::Value::String(text) => Some(text.clone()),
            serde_json::Value::Number(number) => Some(number.to_string()),
            _ => {
                problems.push(format!("field {key:?} must be text or a number"));
                continue;
            }
        };
    }
    if problems.is_empty() {
        Ok(fields)
    } else {
        Err(problems)
    }
}

/// Parses a body into records, or every problem found (then nothing may be written).
pub(crate) fn parse(format: BodyFormat, body: &[u8]) -> Result<Vec<Fields>, Vec<RecordProblem>> {
    let whole = |message: String| {
        vec![RecordProblem {
            index: 0,
            problems: vec![message],
        }]
    };
    let body = body.strip_prefix("\u{feff}".as_bytes()).unwrap_or(body);
    let values: Vec<Result<serde_json::Value, String>> = match format {
        BodyFormat::Json => match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Array(items)) => items.into_iter().map(Ok).collect(),
            Ok(other) => vec![Ok(other)],
            Err(error) => return Err(whole(format!("the body is not valid JSON: {error}"))),
        },
        BodyFormat::Ndjson => body
            .split(|b| *b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .map(|line| {
                serde_json::from_slice(line).map_err(|error| format!("not valid JSON: {error}"))
            })
            .collect(),
        BodyFormat::Csv => return parse_csv(body),
    };
    if values.is_empty() {
        return Err(whole("the body holds no records".to_owned()));
    }
    if values.len() > MAX_RECORDS {
        return Err(whole(format!(
            "{} records in one request; send at most {MAX_RECORDS}",
            values.len()
        )));
    }
    let mut records = Vec::with_capacity(values.len());
    let mut problems = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        match value {
            Ok(serde_json::Value::Object(object)) => match object_fields(&object) {
                Ok(fields) => records.push(fields),
                Err(found) => problems.push(RecordProblem {
                    index,
                    problems: found,
                }),
            },
            Ok(_) => problems.push(RecordProblem {
                index,
                problems: vec!["a record must be a JSON object".to_owned()],
            }),
            Err(error) => problems.push(RecordProblem {
                index,
                problems: vec![error],
            }),
        }
    }
    if problems.is_empty() {
        Ok(records)
    } else {
        Err(problems)
    }
}

fn parse_csv(body: &[u8]) -> Result<Vec<Fields>, Vec<RecordProblem>> {
    let whole = |message: String| {
        vec![RecordProblem {
            index: 0,
            problems: vec![message],
        }]
    };
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(body);
    let header = reader
        .headers()
        .map_err(|error| whole(format!("the CSV header cannot be read: {error}")))?
        .clone();
    let mut slots = Vec::with_capacity(header.len());
    let mut unknown = Vec::new();
    for name in &header {
        match Column::from_header(name) {
            Some(column) => slots.push(Column::ALL.iter().position(|c| *c == column)),
            None => {
                unknown.push(format!("{name:?}"));
                slots.push(None);
            }
        }
    }
    if !unknown.is_empty() {
        return Err(whole(format!(
            "unknown CSV columns: {}",
            unknown.join(", ")
        )));
    }
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for (index, row) in reader.records().enumerate() {
        if index >= MAX_RECORDS {
            return Err(whole(format!(
                "more than {MAX_RECORDS} records in one request"
            )));
        }
        match row {
            Ok(row) if row.len() == header.len() => {
                let mut fields: Fields = Default::default();
                for (slot, value) in slots.iter().zip(row.iter()) {
                    if let Some(slot) = slot {
                        fields[*slot] = (!value.trim().is_empty()).then(|| value.to_owned());
                    }
                }
                records.push(fields);
            }
            Ok(row) => problems.push(RecordProblem {
                index,
                problems: vec![format!(
                    "expected {} fields, found {}",
                    header.len(),
                    row.len()
                )],
            }),
            Err(error) => problems.push(RecordProblem {
                index,
                problems: vec![format!("cannot be read: {error}")],
            }),
        }
    }
    if records.is_empty() && problems.is_empty() {
        return Err(whole("the body holds no records".to_owned()));
    }
    if problems.is_empty() {
        Ok(records)
    } else {
        Err(problems)
    }
}

/// The quarantine reasons the contract will give each record, for those that have any.
pub(crate) fn will_be_quarantined(records: &[Fields]) -> Vec<RecordProblem> {
    records
        .iter()
        .enumerate()
        .filter_map(|(index, fields)| {
            let raw = RawFields {
                invoice: fields[0].as_deref(),
                stock_code: fields[1].as_deref(),
                description: fields[2].as_deref(),
                quantity: fields[3].as_deref(),
                invoice_date: fields[4].as_deref(),
                unit_price: fields[5].as_deref(),
                customer_id: fields[6].as_deref(),
                country: fields[7].as_deref(),
            };
            cleanse(&raw, None).err().map(|reasons| RecordProblem {
                index,
                problems: reasons.iter().map(|r| r.as_str().to_owned()).collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_ndjson_and_csv_bodies_become_the_same_records() {
        let json = br#"[{"InvoiceNo": "536365", "StockCode": "85123A", "Description": "HEART",
            "Quantity": 6, "InvoiceDate": "2010-12-01 08:26:00", "UnitPrice": 2.55,
            "CustomerID": "17850", "Country": "United Kingdom"}]"#;
        let ndjson = b"{\"invoice\": \"536365\", \"stock_code\": \"85123A\", \"description\": \"HEART\", \"quantity\": 6, \"invoice_date\": \"2010-12-01 08:26:00\", \"unit_price\": 2.55, \"customer_id\": \"17850\", \"country\": \"United Kingdom\"}\n";
        let csv = b"Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n";
        let a = parse(BodyFormat::Json, json).unwrap();
        let b = parse(BodyFormat::Ndjson, ndjson).unwrap();
        let c = parse(BodyFormat::Csv, csv).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a[0][3].as_deref(), Some("6"));
        assert!(will_be_quarantined(&a).is_empty());
    }

    #[test]
    fn malformed_records_are_all_listed() {
        let body =
            br#"[{"InvoiceNo": "1", "Colour": "red"}, 5, {"Quantity": [1]}, {"InvoiceNo": "2"}]"#;
        let problems = parse(BodyFormat::Json, body).unwrap_err();
        let indexes: Vec<usize> = problems.iter().map(|p| p.index).collect();
        assert_eq!(indexes, [0, 1, 2]);
        assert!(problems[0].problems[0].contains("unknown field \"Colour\""));
        assert!(parse(BodyFormat::Json, b"{not json").is_err());
        assert!(parse(BodyFormat::Json, b"[]").is_err());
        assert!(parse(BodyFormat::Csv, b"Invoice,Shoe\n1,2\n").is_err());
        // Well-formed but breaking the contract: accepted, and the reasons are told.
        let records = parse(BodyFormat::Json, br#"{"InvoiceNo": "2", "Quantity": 0}"#).unwrap();
        let reasons = &will_be_quarantined(&records)[0].problems;
        assert!(reasons.contains(&"zero_quantity".to_owned()), "{reasons:?}");
        assert_eq!(
            BodyFormat::of("text/csv; charset=utf-8"),
            Some(BodyFormat::Csv)
        );
        assert_eq!(BodyFormat::of("text/plain"), None);
    }
}
