//! CSV: a record with the wrong number of fields or invalid UTF-8 is kept as malformed with its
//! exact source text.

use super::header::HeaderMap;
use super::{decode_error, strip_bom};
use crate::error::{Error, Result};
use crate::raw::{RawRows, RawRowsBuilder};

pub(super) fn decode(source_name: &str, bytes: &[u8], batch_rows: usize) -> Result<RawRows> {
    let body = strip_bom(bytes);
    let (mut reader, header) = open(source_name, body)?;
    let mut record = ::csv::ByteRecord::new();
    let mut builder = RawRowsBuilder::new(batch_rows);
    let mut source_row: i64 = 0;
    loop {
        let start = reader.position().byte() as usize;
        // Byte records cannot fail on content; a failure is an IO problem of the slice.
        if !reader
            .read_byte_record(&mut record)
            .map_err(|error| decode_error(source_name, error))?
        {
            break;
        }
        source_row += 1;
        let end = reader.position().byte() as usize;
        let raw_text = || {
            let text = String::from_utf8_lossy(&body[start..end.min(body.len())]);
            text.trim_end_matches(['\r', '\n']).to_owned()
        };
        if record.len() != header.width() {
            if record.len() == 1 && record.get(0).is_some_and(<[u8]>::is_empty) {
                source_row -= 1; // a blank line is not a record
                continue;
            }
            let error = format!("expected {} fields, found {}", header.width(), record.len());
            builder.push_malformed(source_row, &raw_text(), &error)?;
            continue;
        }
        let mut values: Vec<Option<&str>> = Vec::with_capacity(header.width());
        let mut bad_field = None;
        for (index, field) in record.iter().enumerate() {
            match std::str::from_utf8(field) {
                Ok("") => values.push(None),
                Ok(text) => values.push(Some(text)),
                Err(_) => {
                    bad_field = Some(index);
                    break;
                }
            }
        }
        if let Some(index) = bad_field {
            let error = format!("invalid UTF-8 in column {}", header.names[index]);
            builder.push_malformed(source_row, &raw_text(), &error)?;
            continue;
        }
        let (raw, extra) = header.split(&values);
        builder.push(source_row, &raw, extra.as_deref())?;
    }
    builder.finish()
}

pub(super) fn check(source_name: &str, bytes: &[u8]) -> Result<()> {
    open(source_name, strip_bom(bytes)).map(|_| ())
}

/// Opens CSV text (without its BOM) and maps its header; the reader is left at the first record.
fn open<'b>(source_name: &str, body: &'b [u8]) -> Result<(::csv::Reader<&'b [u8]>, HeaderMap)> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut record = ::csv::ByteRecord::new();
    let has_header = reader
        .read_byte_record(&mut record)
        .map_err(|error| decode_error(source_name, error))?;
    if !has_header {
        return Err(Error::Header {
            source_name: source_name.to_owned(),
            reason: "it is empty".to_owned(),
        });
    }
    let header_text: Vec<String> = record
        .iter()
        .map(|field| String::from_utf8_lossy(field).into_owned())
        .collect();
    let header_refs: Vec<&str> = header_text.iter().map(String::as_str).collect();
    Ok((reader, HeaderMap::new(source_name, &header_refs)?))
}
