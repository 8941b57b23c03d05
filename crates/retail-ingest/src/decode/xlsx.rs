//! Excel workbooks: every sheet is read; a sheet whose first row is not a retail header is an
//! error, an empty sheet holds no records.

use calamine::{Data, Reader as _};

use super::header::HeaderMap;
use super::{Part, decode_error};
use crate::error::Result;
use crate::raw::RawRowsBuilder;

pub(super) fn decode(source_name: &str, bytes: &[u8], batch_rows: usize) -> Result<Vec<Part>> {
    let mut workbook = calamine::Xlsx::new(std::io::Cursor::new(bytes))
        .map_err(|error| decode_error(source_name, error))?;
    let mut sheets = Vec::new();
    for sheet in workbook.sheet_names() {
        let range = workbook
            .worksheet_range(&sheet)
            .map_err(|error| decode_error(source_name, error))?;
        let mut rows = range.rows();
        let Some(first) = rows.next() else {
            continue;
        };
        let header_text: Vec<String> = first
            .iter()
            .map(|cell| cell_text(cell).unwrap_or_default())
            .collect();
        let header_refs: Vec<&str> = header_text.iter().map(String::as_str).collect();
        let header = HeaderMap::new(&format!("{source_name}#{sheet}"), &header_refs)?;
        let mut builder = RawRowsBuilder::new(batch_rows);
        let mut source_row: i64 = 0;
        for row in rows {
            source_row += 1;
            if row.iter().all(|cell| matches!(cell, Data::Empty)) {
                continue;
            }
            if let Some(error) = row.iter().find_map(|cell| match cell {
                Data::Error(error) => Some(error.to_string()),
                _ => None,
            }) {
                let raw: Vec<String> = row
                    .iter()
                    .map(|c| cell_text(c).unwrap_or_default())
                    .collect();
                builder.push_malformed(
                    source_row,
                    &raw.join(","),
                    &format!("cell error {error}"),
                )?;
                continue;
            }
            let texts: Vec<Option<String>> = row.iter().map(cell_text).collect();
            let values: Vec<Option<&str>> = texts.iter().map(Option::as_deref).collect();
            let (raw, extra) = header.split(&values);
            builder.push(source_row, &raw, extra.as_deref())?;
        }
        sheets.push(Part {
            suffix: format!("#{sheet}"),
            rows: builder.finish()?,
        });
    }
    Ok(sheets)
}

fn cell_text(cell: &Data) -> Option<String> {
    match cell {
        Data::Empty => None,
        Data::String(text) if text.is_empty() => None,
        Data::String(text) => Some(text.clone()),
        Data::Int(value) => Some(value.to_string()),
        Data::Float(value) => Some(value.to_string()),
        Data::Bool(value) => Some(value.to_string()),
        Data::DateTime(value) => Some(match value.as_datetime() {
            Some(datetime) => datetime.format("%Y-%m-%d %H:%M:%S").to_string(),
            None => value.as_f64().to_string(),
        }),
        Data::DateTimeIso(text) | Data::DurationIso(text) => Some(text.clone()),
        Data::Error(error) => Some(error.to_string()),
    }
}
