use std::sync::Arc;

use deltalake::arrow::array::{Array as _, AsArray as _, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use deltalake::parquet::arrow::ArrowWriter;

use super::*;
use crate::raw::RawRows;

/// One text column of every batch.
fn column(rows: &RawRows, name: &str) -> Vec<Option<String>> {
    rows.batches
        .iter()
        .flat_map(|batch| {
            let array = batch
                .column_by_name(name)
                .expect("raw column")
                .as_string::<i32>();
            (0..array.len())
                .map(|i| (!array.is_null(i)).then(|| array.value(i).to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn source_rows(rows: &RawRows) -> Vec<i64> {
    rows.batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("source_row")
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

fn some(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| Some((*v).to_owned())).collect()
}

fn one(format: Format, bytes: &[u8], batch_rows: usize) -> RawRows {
    let mut parts = decode(format, "test", bytes, batch_rows).unwrap();
    assert_eq!(parts.len(), 1);
    parts.remove(0).rows
}

#[test]
fn reads_csv_with_bom_online_retail_ii_header_crlf_and_us_dates() {
    let bytes = include_bytes!("../../testdata/or2_header_bom_us_dates.csv");
    let rows = one(Format::Csv, bytes, 100);
    assert_eq!((rows.rows, rows.malformed), (2, 0));
    assert_eq!(column(&rows, "invoice"), some(&["536365", "536366"]));
    assert_eq!(
        column(&rows, "invoice_date"),
        some(&["12/1/2010 08:26", "12/1/2010 8:28"])
    );
    assert_eq!(column(&rows, "unit_price"), some(&["2.55", "1.85"]));
    assert_eq!(
        column(&rows, "customer_id"),
        vec![Some("17850".to_owned()), None]
    );
    assert_eq!(
        column(&rows, "description")[1].as_deref(),
        Some("HAND WARMER UNION JACK, RED")
    );
    assert_eq!(column(&rows, "country"), some(&["United Kingdom", "EIRE"]));
    assert_eq!(source_rows(&rows), [1, 2]);
    assert_eq!(column(&rows, "raw_text"), [None, None]);
}

#[test]
fn keeps_malformed_csv_records_with_their_exact_text_and_error() {
    let bytes = include_bytes!("../../testdata/malformed.csv");
    let rows = one(Format::Csv, bytes, 2);
    assert_eq!((rows.rows, rows.malformed), (4, 2));
    assert_eq!(rows.batches.len(), 2, "cut into batches of two rows");
    assert_eq!(
        source_rows(&rows),
        [1, 2, 3, 4],
        "the blank line is not a record"
    );
    let raw_text = column(&rows, "raw_text");
    assert_eq!(
        raw_text[1].as_deref(),
        Some("536365,71053,TOO FEW FIELDS,6")
    );
    assert!(
        raw_text[2]
            .as_deref()
            .unwrap()
            .contains("BAD \u{fffd} ENCODING")
    );
    let errors = column(&rows, "parse_error");
    assert_eq!(errors[1].as_deref(), Some("expected 8 fields, found 4"));
    assert_eq!(
        errors[2].as_deref(),
        Some("invalid UTF-8 in column Description")
    );
    assert_eq!(
        column(&rows, "invoice")[1],
        None,
        "a malformed record has no fields"
    );
    assert_eq!(
        column(&rows, "description")[3].as_deref(),
        Some("QUOTED, COMMA")
    );
}

#[test]
fn reads_json_lines_with_either_header_style_and_keeps_bad_lines_and_extra_fields() {
    let bytes = include_bytes!("../../testdata/sample.jsonl");
    let rows = one(Format::JsonLines, bytes, 100);
    assert_eq!((rows.rows, rows.malformed), (3, 1));
    assert_eq!(
        column(&rows, "invoice"),
        vec![Some("536365".to_owned()), None, Some("536366".to_owned())]
    );
    assert_eq!(
        column(&rows, "quantity")[0].as_deref(),
        Some("6"),
        "numbers become text"
    );
    assert_eq!(column(&rows, "unit_price")[0].as_deref(), Some("2.55"));
    assert_eq!(
        column(&rows, "extra_columns")[0].as_deref(),
        Some(r#"{"email":"a@b.co"}"#)
    );
    assert_eq!(column(&rows, "description")[2], None, "null stays null");
    assert_eq!(column(&rows, "customer_id")[2], None, "empty is absent");
    assert!(
        column(&rows, "parse_error")[1]
            .as_deref()
            .unwrap()
            .starts_with("not a JSON object")
    );
}

#[test]
fn a_json_document_and_json_lines_give_the_same_records_as_csv() {
    let json = br#"[{"InvoiceNo": "536365", "StockCode": "85123A", "Description": "HEART",
        "Quantity": 6, "InvoiceDate": "2010-12-01 08:26:00", "UnitPrice": 2.55,
        "CustomerID": "17850", "Country": "United Kingdom"}]"#;
    let object = br#"{"InvoiceNo": "536365", "StockCode": "85123A", "Description": "HEART",
        "Quantity": 6, "InvoiceDate": "2010-12-01 08:26:00", "UnitPrice": 2.55,
        "CustomerID": "17850", "Country": "United Kingdom"}"#;
    let lines = b"{\"invoice\": \"536365\", \"stock_code\": \"85123A\", \"description\": \"HEART\", \"quantity\": 6, \"invoice_date\": \"2010-12-01 08:26:00\", \"unit_price\": 2.55, \"customer_id\": \"17850\", \"country\": \"United Kingdom\"}\n";
    let csv = b"Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n";
    let fields = |format, bytes: &[u8]| one(format, bytes, 10).fields();
    let expected = fields(Format::Csv, csv);
    assert_eq!(fields(Format::Json, json), expected);
    assert_eq!(fields(Format::Json, object), expected);
    assert_eq!(fields(Format::JsonLines, lines), expected);
    assert_eq!(expected[0][3].as_deref(), Some("6"));
}

#[test]
fn json_records_that_cannot_be_split_are_kept_malformed_and_others_keep_their_extras() {
    let body = br#"[{"InvoiceNo": "1", "StockCode": "A", "Quantity": 1, "Country": "France"},
        {"InvoiceNo": "2", "Colour": "red", "Size": 3},
        {"InvoiceNo": "3", "Quantity": {"n": 1}},
        {"InvoiceNo": "4", "invoice": "4"},
        "text"]"#;
    let rows = one(Format::Json, body, 10);
    assert_eq!((rows.rows, rows.malformed), (5, 3));
    let malformed = rows.malformed_records();
    let positions: Vec<usize> = malformed.iter().map(|(i, _, _)| *i).collect();
    assert_eq!(positions, [2, 3, 4]);
    assert!(
        malformed[0]
            .2
            .contains("\"Quantity\" must be text or a number")
    );
    assert!(malformed[1].2.contains("invoice given twice"));
    assert_eq!(malformed[2].1, "\"text\"");
    assert_eq!(
        column(&rows, "extra_columns")[1].as_deref(),
        Some(r#"{"Colour":"red","Size":"3"}"#)
    );
    let error = decode(
        Format::Json,
        "request body",
        br#"[{"InvoiceNo": "1", "Quantity": 1}]"#,
        10,
    )
    .unwrap_err();
    assert!(matches!(error, Error::Header { .. }), "{error}");
    assert!(error.to_string().contains("only 2 of the 8"), "{error}");
    assert!(matches!(
        decode(Format::Json, "b", b"{not json", 10),
        Err(Error::Decode { .. })
    ));
    assert!(matches!(
        decode(Format::Json, "b", b"[]", 10),
        Err(Error::Header { .. })
    ));
    assert!(matches!(
        decode(Format::Json, "b", b"42", 10),
        Err(Error::Header { .. })
    ));
}

#[test]
fn reads_every_sheet_of_a_workbook_with_dates_and_extra_columns() {
    let bytes = include_bytes!("../../testdata/two_sheets.xlsx");
    let sheets = decode(Format::Xlsx, "w.xlsx", bytes, 100).unwrap();
    assert_eq!(sheets.len(), 2);
    let first = &sheets[0];
    assert_eq!(first.suffix, "#Year 2009-2010");
    assert_eq!(first.rows.rows, 3, "the empty row is skipped");
    assert_eq!(
        column(&first.rows, "invoice_date")[0].as_deref(),
        Some("2009-12-01 07:45:00")
    );
    assert_eq!(
        column(&first.rows, "customer_id")[0].as_deref(),
        Some("13085")
    );
    assert_eq!(column(&first.rows, "quantity")[2].as_deref(), Some("-12"));
    assert_eq!(
        source_rows(&first.rows),
        [1, 2, 4],
        "row numbers count the skipped row"
    );
    let second = &sheets[1].rows;
    assert_eq!(
        column(second, "extra_columns")[0].as_deref(),
        Some(r#"{"Email":"buyer@example.com"}"#)
    );
    assert_eq!(column(second, "unit_price")[0].as_deref(), Some("2.55"));
}

#[test]
fn reads_parquet_columns_of_any_type_as_text() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("InvoiceNo", DataType::Utf8, false),
        Field::new("StockCode", DataType::Utf8, false),
        Field::new("Quantity", DataType::Int64, false),
        Field::new("UnitPrice", DataType::Float64, false),
        Field::new("Country", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec!["536365", "536366"])),
            Arc::new(StringArray::from(vec!["85123A", "22633"])),
            Arc::new(deltalake::arrow::array::Int64Array::from(vec![6, -2])),
            Arc::new(deltalake::arrow::array::Float64Array::from(vec![
                2.55, 1.85,
            ])),
            Arc::new(StringArray::from(vec![Some("United Kingdom"), None])),
        ],
    )
    .unwrap();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let rows = one(Format::Parquet, &bytes, 100);
    assert_eq!(rows.rows, 2);
    assert_eq!(column(&rows, "quantity"), some(&["6", "-2"]));
    assert_eq!(column(&rows, "unit_price"), some(&["2.55", "1.85"]));
    assert_eq!(
        column(&rows, "country"),
        vec![Some("United Kingdom".to_owned()), None]
    );
    assert_eq!(
        column(&rows, "invoice_date"),
        [None, None],
        "an absent column is null"
    );
    check(Format::Parquet, "p.parquet", &bytes).unwrap();
}

#[test]
fn rejects_sources_that_are_not_retail_transactions_naming_the_problem() {
    let error = decode(Format::Csv, "other.csv", b"a,b,c\n1,2,3\n", 10).unwrap_err();
    assert!(error.to_string().contains("other.csv"), "{error}");
    assert!(matches!(error, Error::Header { .. }));
    assert!(matches!(
        check(Format::Csv, "e.csv", b""),
        Err(Error::Header { .. })
    ));
    let twice = b"Invoice,InvoiceNo,StockCode,Quantity,Country\n";
    let error = check(Format::Csv, "t.csv", twice).unwrap_err();
    assert!(
        error.to_string().contains("column invoice appears twice"),
        "{error}"
    );
    assert!(matches!(
        check(Format::Parquet, "x.parquet", b"nope"),
        Err(Error::Decode { .. })
    ));
    assert!(matches!(
        check(Format::JsonLines, "x.jsonl", b"[1]\n"),
        Err(Error::Header { .. })
    ));
    assert!(matches!(
        check(Format::Xlsx, "x.xlsx", b"not a workbook"),
        Err(Error::Decode { .. })
    ));
}

#[test]
fn formats_are_known_by_extension_and_media_type() {
    for format in Format::ALL {
        assert_eq!(Format::of_media_type(format.media_type()), Some(format));
        let path = std::path::PathBuf::from(format!("x.{}", format.as_str()));
        assert_eq!(Format::of_path(&path), Some(format));
    }
    assert_eq!(
        Format::of_media_type("text/csv; charset=utf-8"),
        Some(Format::Csv)
    );
    assert_eq!(Format::of_media_type("text/plain"), None);
    assert_eq!(
        Format::of_path(std::path::Path::new("a.ndjson")),
        Some(Format::JsonLines)
    );
}

#[test]
fn csv_messages_are_named_by_the_configured_header_and_bad_lines_are_kept() {
    let header = csv_header(
        "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country,Till",
    )
    .unwrap();
    let messages: [(i64, &[u8]); 4] = [
        (
            10,
            b"536365,85123A,\"WHITE HANGING HEART, T-LIGHT\",6,2010-12-01 08:26:00,2.55,17850,United Kingdom,7\n",
        ),
        (11, b"536366,22633,HAND WARMER,6,2010-12-01 08:28:00,1.85"),
        (12, b"536367,84879,,32,2010-12-01 08:34:00,1.69,13047,United Kingdom,\r\n"),
        (13, b"536368,a\nb"),
    ];
    let rows = csv_messages(&messages, &header, 100).unwrap();
    assert_eq!((rows.rows, rows.malformed), (4, 2));
    assert_eq!(
        source_rows(&rows),
        vec![10, 11, 12, 13],
        "positions are kept"
    );
    assert_eq!(
        column(&rows, "description")[0].as_deref(),
        Some("WHITE HANGING HEART, T-LIGHT"),
        "quoted commas stay in the field"
    );
    assert_eq!(column(&rows, "unit_price")[0].as_deref(), Some("2.55"));
    assert_eq!(column(&rows, "customer_id")[0].as_deref(), Some("17850"));
    assert_eq!(
        column(&rows, "extra_columns")[0].as_deref(),
        Some(r#"{"Till":"7"}"#),
        "a name outside the contract is an extra column"
    );
    assert_eq!(column(&rows, "description")[2], None, "empty is absent");
    let errors = column(&rows, "parse_error");
    assert!(
        errors[1]
            .as_deref()
            .unwrap()
            .contains("6 fields where the stream's header has 9"),
        "{errors:?}"
    );
    assert!(
        errors[3]
            .as_deref()
            .unwrap()
            .contains("more than one CSV line"),
        "{errors:?}"
    );
    assert_eq!(
        column(&rows, "raw_text")[1].as_deref(),
        Some("536366,22633,HAND WARMER,6,2010-12-01 08:28:00,1.85")
    );

    assert!(
        csv_header("a,b,c")
            .unwrap_err()
            .contains("names none of the fields")
    );
    assert!(
        csv_header("InvoiceNo,Invoice,StockCode")
            .unwrap_err()
            .contains("twice")
    );
}
