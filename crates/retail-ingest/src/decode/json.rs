//! JSON documents (one object or an array of objects) and JSON lines.
//!
//! Each object is a record; its keys are column headers in any of the contract's variants, and
//! the first object must name at least four contract columns (the source's "header"). A value
//! of a contract column must be text, a number or null; an element that is not an object, a
//! line that is not a JSON object, a contract column given twice (`InvoiceNo` and `invoice`)
//! or a contract column holding an object, an array or a boolean makes the record malformed.
//! Other keys are kept as the record's extra columns.

use std::collections::BTreeMap;

use retail_domain::column::Column;
use retail_domain::record::RawFields;
use serde_json::{Map, Value};

use super::header::HeaderMap;
use super::{decode_error, strip_bom};
use crate::error::{Error, Result};
use crate::raw::{RawRows, RawRowsBuilder};

type Object = Map<String, Value>;

pub(super) fn decode_document(
    source_name: &str,
    bytes: &[u8],
    batch_rows: usize,
) -> Result<RawRows> {
    let elements = document(source_name, bytes)?;
    sniff(source_name, elements.iter().find_map(Value::as_object))?;
    let mut builder = RawRowsBuilder::new(batch_rows);
    for (index, element) in elements.iter().enumerate() {
        let source_row = index as i64 + 1;
        match element {
            Value::Object(object) => {
                push_object(&mut builder, source_row, object, || element.to_string())?
            }
            other => builder.push_malformed(
                source_row,
                &other.to_string(),
                "a record must be a JSON object",
            )?,
        }
    }
    builder.finish()
}

pub(super) fn check_document(source_name: &str, bytes: &[u8]) -> Result<()> {
    let elements = document(source_name, bytes)?;
    sniff(source_name, elements.iter().find_map(Value::as_object))
}

pub(super) fn decode_lines(source_name: &str, bytes: &[u8], batch_rows: usize) -> Result<RawRows> {
    let body = strip_bom(bytes);
    let mut builder = RawRowsBuilder::new(batch_rows);
    let mut sniffed = false;
    let mut source_row: i64 = 0;
    for line in lines(body) {
        source_row += 1;
        match parse_line(line) {
            Ok(object) => {
                if !sniffed {
                    sniff(source_name, Some(&object))?;
                    sniffed = true;
                }
                push_object(&mut builder, source_row, &object, || {
                    String::from_utf8_lossy(line).into_owned()
                })?;
            }
            Err(error) => {
                builder.push_malformed(source_row, &String::from_utf8_lossy(line), &error)?;
            }
        }
    }
    if !sniffed {
        sniff(source_name, None)?;
    }
    builder.finish()
}

pub(super) fn check_lines(source_name: &str, bytes: &[u8]) -> Result<()> {
    let first = lines(strip_bom(bytes)).find_map(|line| parse_line(line).ok());
    sniff(source_name, first.as_ref())
}

/// The records of messages that each hold one JSON object (a stream's events); each record's
/// source row is its message's position (a partition offset). A message that is not one JSON
/// object, or whose contract field holds an object, an array or a boolean, is a malformed
/// record keeping its raw text: nothing is dropped. Unlike a file, a message needs no header:
/// fields it leaves out are missing, and silver quarantines the record.
pub(super) fn decode_messages(messages: &[(i64, &[u8])], batch_rows: usize) -> Result<RawRows> {
    let mut builder = RawRowsBuilder::new(batch_rows);
    for (position, payload) in messages {
        match parse_line(strip_bom(payload)) {
            Ok(object) => push_object(&mut builder, *position, &object, || {
                String::from_utf8_lossy(payload).into_owned()
            })?,
            Err(error) => {
                builder.push_malformed(*position, &String::from_utf8_lossy(payload), &error)?;
            }
        }
    }
    builder.finish()
}

pub(super) fn decode_csv_messages(
    messages: &[(i64, &[u8])],
    header: &[String],
    batch_rows: usize,
) -> Result<RawRows> {
    let mut builder = RawRowsBuilder::new(batch_rows);
    for (position, payload) in messages {
        let fields = csv_fields(strip_bom(payload)).and_then(|fields| {
            if fields.len() == header.len() {
                Ok(fields)
            } else {
                Err(format!(
                    "a CSV line of {} fields where the stream's header has {}",
                    fields.len(),
                    header.len()
                ))
            }
        });
        match fields {
            Ok(fields) => {
                let object: Object = header
                    .iter()
                    .cloned()
                    .zip(fields.into_iter().map(Value::String))
                    .collect();
                push_object(&mut builder, *position, &object, || {
                    String::from_utf8_lossy(payload).into_owned()
                })?;
            }
            Err(error) => {
                builder.push_malformed(*position, &String::from_utf8_lossy(payload), &error)?;
            }
        }
    }
    builder.finish()
}

/// The fields of one CSV line (a trailing line break allowed).
pub(super) fn csv_fields(line: &[u8]) -> std::result::Result<Vec<String>, String> {
    let text = std::str::from_utf8(line).map_err(|error| format!("invalid UTF-8: {error}"))?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let record = match records.next() {
        Some(Ok(record)) => record,
        Some(Err(error)) => return Err(format!("not a CSV line: {error}")),
        None => return Err("an empty message".to_owned()),
    };
    if records.next().is_some() {
        return Err("more than one CSV line in one message".to_owned());
    }
    Ok(record.iter().map(str::to_owned).collect())
}

/// For each object of a JSON document (`lines`: of JSON lines) that does not name every
/// contract column, its index among the records and the columns it lacks. A body that does not
/// parse has none (decoding reports it).
pub(super) fn unnamed_columns(bytes: &[u8], lines: bool) -> Vec<(usize, Vec<Column>)> {
    let objects: Vec<Option<Object>> = if lines {
        self::lines(strip_bom(bytes))
            .map(|line| parse_line(line).ok())
            .collect()
    } else {
        document("", bytes)
            .unwrap_or_default()
            .into_iter()
            .map(|element| match element {
                Value::Object(object) => Some(object),
                _ => None,
            })
            .collect()
    };
    objects
        .iter()
        .enumerate()
        .filter_map(|(index, object)| {
            let object = object.as_ref()?;
            let named: Vec<Column> = object
                .keys()
                .filter_map(|k| Column::from_header(k))
                .collect();
            let missing: Vec<Column> = Column::ALL
                .into_iter()
                .filter(|column| !named.contains(column))
                .collect();
            (!missing.is_empty()).then_some((index, missing))
        })
        .collect()
}

/// The records of a JSON document: the elements of an array, or the one object.
fn document(source_name: &str, bytes: &[u8]) -> Result<Vec<Value>> {
    match serde_json::from_slice::<Value>(strip_bom(bytes)) {
        Ok(Value::Array(elements)) => Ok(elements),
        Ok(object @ Value::Object(_)) => Ok(vec![object]),
        Ok(_) => Err(Error::Header {
            source_name: source_name.to_owned(),
            reason: "it is neither a JSON object nor an array of objects".to_owned(),
        }),
        Err(error) => Err(decode_error(
            source_name,
            format!("it is not valid JSON: {error}"),
        )),
    }
}

/// Non-blank lines, without their line ends.
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.split(|byte| *byte == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
}

fn parse_line(line: &[u8]) -> std::result::Result<Object, String> {
    std::str::from_utf8(line)
        .map_err(|error| format!("invalid UTF-8: {error}"))
        .and_then(|text| {
            serde_json::from_str::<Object>(text)
                .map_err(|error| format!("not a JSON object: {error}"))
        })
}

/// Takes the first object as the source's header: it must name enough contract columns.
fn sniff(source_name: &str, first: Option<&Object>) -> Result<()> {
    let Some(first) = first else {
        return Err(Error::Header {
            source_name: source_name.to_owned(),
            reason: "no record is a JSON object".to_owned(),
        });
    };
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    HeaderMap::new(source_name, &keys).map(|_| ())
}

fn push_object(
    builder: &mut RawRowsBuilder,
    source_row: i64,
    object: &Object,
    raw_text: impl FnOnce() -> String,
) -> Result<()> {
    match split_object(object) {
        Ok((fields, extra)) => {
            let raw = RawFields::from_array(&fields);
            builder.push(source_row, &raw, extra.as_deref())
        }
        Err(error) => builder.push_malformed(source_row, &raw_text(), &error),
    }
}

/// The eight fields and the extra columns of one object, or why it is malformed.
fn split_object(
    object: &Object,
) -> std::result::Result<([Option<String>; 8], Option<String>), String> {
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    let map = HeaderMap::lenient(&keys)
        .map_err(|column| format!("field {} given twice", column.name()))?;
    let mut texts: Vec<Option<String>> = Vec::with_capacity(keys.len());
    let mut extra: Option<BTreeMap<&str, String>> = None;
    for (index, (key, value)) in object.iter().enumerate() {
        if map.is_known(index) {
            texts.push(match value {
                Value::Null => None,
                Value::String(text) if text.is_empty() => None,
                Value::String(text) => Some(text.clone()),
                Value::Number(number) => Some(number.to_string()),
                _ => return Err(format!("field {key:?} must be text or a number")),
            });
        } else {
            texts.push(None);
            let text = match value {
                Value::Null => continue,
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            extra.get_or_insert_with(BTreeMap::new).insert(key, text);
        }
    }
    let values: Vec<Option<&str>> = texts.iter().map(Option::as_deref).collect();
    let (raw, _) = map.split(&values);
    let fields = raw.to_array().map(|value| value.map(str::to_owned));
    let extra =
        extra.map(|map| serde_json::to_string(&map).expect("a map of strings always serialises"));
    Ok((fields, extra))
}
