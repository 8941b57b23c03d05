//! Properties of the gold builder over random silver rows: merging per-month history parts
//! equals one walk over all rows, and a build month by month equals a full build.

use std::collections::BTreeSet;
use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use proptest::prelude::*;

use super::{GoldInput, PriorKeys, build_gold};
use crate::calendar::{day_of, month_index};
use crate::history::History;
use crate::silver_set::{SilverSet, countries_of, walk_order};

/// One random silver row: (customer, country, invoice, day, minute, stock code, description,
/// quantity, price in thousandths).
pub(crate) type Spec = (Option<u8>, u8, u8, u16, u16, u8, Option<u8>, i64, i64);

const COUNTRIES: [(&str, Option<&str>, &str); 3] = [
    ("United Kingdom", Some("GB"), "Europe"),
    ("France", Some("FR"), "Europe"),
    ("Channel Islands", None, "Europe"),
];

fn row() -> impl Strategy<Value = Spec> {
    (
        proptest::option::weighted(0.8, 0..6_u8),
        0..3_u8,
        0..24_u8,
        0..120_u16,
        0..600_u16,
        0..8_u8,
        proptest::option::weighted(0.9, 0..3_u8),
        prop_oneof![-5..0_i64, 1..12_i64],
        0..5_000_i64,
    )
}

/// Silver rows from specs, as `SilverSet::push_batch` reads them. An invoice keeps one day and
/// one party, as in real data; every 7th invoice is a cancellation.
pub(crate) fn silver_batch(specs: &[Spec]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("transaction_id", DataType::Utf8, false),
        Field::new("invoice", DataType::Utf8, false),
        Field::new("stock_code", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, true),
        Field::new("quantity", DataType::Int64, false),
        Field::new(
            "invoice_date",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("unit_price", DataType::Decimal128(18, 3), false),
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("country_name", DataType::Utf8, false),
        Field::new("country_code", DataType::Utf8, true),
        Field::new("region", DataType::Utf8, false),
        Field::new("total_amount", DataType::Decimal128(18, 3), false),
        Field::new("line_type", DataType::Utf8, false),
        Field::new("data_quality_score", DataType::Decimal128(3, 2), false),
    ]));
    // 2010-12-01 00:00 in micros.
    let start = 1_291_161_600_000_000_i64;
    let invoice = |s: &Spec| {
        if s.2.is_multiple_of(7) {
            format!("C5{:05}", s.2)
        } else {
            format!("5{:05}", s.2)
        }
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            (0..specs.len()).map(|i| format!("{:032x}", i + 1)),
        )),
        Arc::new(StringArray::from_iter_values(specs.iter().map(invoice))),
        Arc::new(StringArray::from_iter_values(
            specs.iter().map(|s| format!("2{:04}", s.5)),
        )),
        Arc::new(StringArray::from_iter(
            specs
                .iter()
                .map(|s| s.6.map(|d| format!("DESCRIPTION {d}"))),
        )),
        Arc::new(Int64Array::from_iter_values(specs.iter().map(|s| s.7))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            specs.iter().map(|s| {
                // The invoice's own day (an invoice falls on one day) and the row's minute.
                let day = i64::from(s.3 / 24 * 24 + u16::from(s.2) % 24);
                start + day * 86_400_000_000 + i64::from(s.4) * 60_000_000
            }),
        )),
        Arc::new(
            Decimal128Array::from_iter_values(specs.iter().map(|s| i128::from(s.8)))
                .with_precision_and_scale(18, 3)
                .unwrap(),
        ),
        // An invoice's customer and country follow from the invoice (one party each).
        Arc::new(StringArray::from_iter(specs.iter().map(|s| {
            (!s.2.is_multiple_of(5)).then(|| format!("1{:04}", u16::from(s.2) * 7 % 6))
        }))),
        Arc::new(StringArray::from_iter_values(
            specs
                .iter()
                .map(|s| COUNTRIES[usize::from((s.2 / 3) % 3)].0),
        )),
        Arc::new(StringArray::from_iter(
            specs
                .iter()
                .map(|s| COUNTRIES[usize::from((s.2 / 3) % 3)].1),
        )),
        Arc::new(StringArray::from_iter_values(
            specs
                .iter()
                .map(|s| COUNTRIES[usize::from((s.2 / 3) % 3)].2),
        )),
        Arc::new(
            Decimal128Array::from_iter_values(
                specs.iter().map(|s| i128::from(s.7) * i128::from(s.8)),
            )
            .with_precision_and_scale(18, 3)
            .unwrap(),
        ),
        Arc::new(StringArray::from_iter_values(
            specs.iter().map(|_| "product"),
        )),
        Arc::new(
            Decimal128Array::from_iter_values(specs.iter().map(|_| 100_i128))
                .with_precision_and_scale(3, 2)
                .unwrap(),
        ),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn silver_of(batch: &RecordBatch) -> SilverSet {
    let mut silver = SilverSet::default();
    silver.push_batch(batch).unwrap();
    silver
}

/// The rows of `batch` whose invoice month is (or is not) in `months`.
fn rows_in_months(batch: &RecordBatch, months: &BTreeSet<i32>, inside: bool) -> RecordBatch {
    let dates = batch
        .column_by_name("invoice_date")
        .unwrap()
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    let keep: deltalake::arrow::array::BooleanArray = dates
        .iter()
        .map(|at| Some(months.contains(&month_index(day_of(at.unwrap()))) == inside))
        .collect();
    deltalake::arrow::compute::filter_record_batch(batch, &keep).unwrap()
}

fn history_of(silver: &SilverSet) -> History {
    History::from_silver(silver, &walk_order(silver))
}

/// Gold built from `silver` with no prior keys: every table's batches, the consistency, and the
/// fact batches by month.
fn gold_of(silver: &SilverSet) -> (Vec<Vec<RecordBatch>>, String, Vec<(i32, RecordBatch)>) {
    let history = history_of(silver);
    let countries = countries_of(silver);
    let prior = PriorKeys::default();
    let gold = build_gold(GoldInput {
        silver,
        order: walk_order(silver),
        history: &history,
        countries: &countries,
        prior: &prior,
        batch_rows: 1024,
    })
    .unwrap();
    let facts = gold
        .facts
        .batches(silver)
        .map(|(month, batch)| (month, batch.unwrap()))
        .collect();
    (
        gold.tables.into_iter().map(|t| t.batches).collect(),
        format!("{:?}", gold.consistency),
        facts,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A silver set filled by two workers, each taking some of the batches, and joined is the
    /// set one worker fills: gold built from it is the same, facts included.
    #[test]
    fn two_silver_sets_joined_build_the_gold_of_one(
        specs in proptest::collection::vec(row(), 1..120),
        cut in 0..120_usize,
    ) {
        let all = silver_batch(&specs);
        let cut = cut.min(all.num_rows());
        // The later rows first, so that the joined set interns its strings in another order.
        let mut joined = silver_of(&all.slice(cut, all.num_rows() - cut));
        joined.absorb(silver_of(&all.slice(0, cut)));
        prop_assert_eq!(joined.len(), all.num_rows());
        prop_assert_eq!(gold_of(&joined), gold_of(&silver_of(&all)));
    }

    /// The stored history of some months, with the parts of the others remade from their rows,
    /// is the history of all rows: so gold's whole-history tables need only the new months.
    #[test]
    fn merging_monthly_history_parts_equals_one_walk_over_all_rows(
        specs in proptest::collection::vec(row(), 1..120),
        split in proptest::collection::btree_set(0..5_i32, 0..5),
    ) {
        let all = silver_batch(&specs);
        let whole = history_of(&silver_of(&all));
        let first = whole.months().iter().copied().min().unwrap();
        let rebuilt: BTreeSet<i32> = split.iter().map(|offset| first + offset).collect();
        let mut merged = history_of(&silver_of(&rows_in_months(&all, &rebuilt, false)));
        let newer = history_of(&silver_of(&rows_in_months(&all, &rebuilt, true)));
        merged.replace_months(&newer.months(), newer);
        prop_assert_eq!(merged, whole);
    }

    /// Gold built month by month (the rebuilt months' rows over the merged history) has the
    /// same dimensions and whole-history aggregates as gold built from all rows, and its daily
    /// and monthly aggregates are the full build's rows of those months.
    #[test]
    fn an_incremental_build_equals_a_full_build(
        specs in proptest::collection::vec(row(), 1..120),
        split in proptest::collection::btree_set(0..5_i32, 1..5),
    ) {
        let all = silver_batch(&specs);
        let full_silver = silver_of(&all);
        let full_history = history_of(&full_silver);
        let countries = countries_of(&full_silver);
        let prior = PriorKeys::default();
        let full = build_gold(GoldInput {
            silver: &full_silver,
            order: walk_order(&full_silver),
            history: &full_history,
            countries: &countries,
            prior: &prior,
            batch_rows: 1024,
        })
        .unwrap();
        let first = full_history.months().iter().copied().min().unwrap();
        let rebuilt: BTreeSet<i32> = split.iter().map(|offset| first + offset).collect();
        let slice = silver_of(&rows_in_months(&all, &rebuilt, true));
        let mut history = history_of(&silver_of(&rows_in_months(&all, &rebuilt, false)));
        let newer = history_of(&slice);
        history.replace_months(&newer.months(), newer);
        let incremental = build_gold(GoldInput {
            silver: &slice,
            order: walk_order(&slice),
            history: &history,
            countries: &countries,
            prior: &prior,
            batch_rows: 1024,
        })
        .unwrap();
        for (whole, part) in full.tables.iter().zip(&incremental.tables) {
            let name = whole.table.name;
            match name {
                "gold/daily_sales" | "gold/product_monthly" | "gold/fact_sales" => {}
                _ => prop_assert_eq!(&whole.batches, &part.batches, "{}", name),
            }
        }
        prop_assert_eq!(full.consistency, incremental.consistency);
        prop_assert_eq!(incremental.facts.rows(), slice.len() as u64);
    }
}
