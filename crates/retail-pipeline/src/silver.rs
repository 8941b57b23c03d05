//! Silver: bronze rows through the contract's rules into silver, quarantine or duplicates.
//!
//! Pure computation over Arrow batches. [`SilverTransform`] keeps the set of transaction ids
//! already in silver, so duplicates are found across files, batches, sources and runs; the first
//! row ingested wins because bronze is read in commit order.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Datelike as _, NaiveDateTime, Utc};
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray as _, BooleanBuilder, Decimal128Builder, Int64Builder, ListBuilder,
    RecordBatch, StringArray, StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use deltalake::arrow::error::ArrowError;
use retail_domain::record::{CleanTransaction, DateWindow, QuarantineReason, RawFields, cleanse};
use retail_domain::{Operation, parse_transaction_id};
use retail_lake::schema::{
    SILVER_CHANGES, SILVER_DUPLICATES, SILVER_QUARANTINE, SILVER_TRANSACTIONS,
};
use serde::{Deserialize, Serialize};

/// Lineage columns copied from bronze, in schema order.
pub(crate) const LINEAGE: [&str; 6] = [
    "ingestion_id",
    "batch_id",
    "source_system",
    "source_location",
    "source_row",
    "ingested_at",
];

/// What one silver pass saw: the run's reconciliation and the inputs of its quality report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SilverStats {
    /// Bronze rows read.
    pub bronze_rows: u64,
    /// Rows that entered silver.
    pub silver_rows: u64,
    /// Rows quarantined.
    pub quarantined_rows: u64,
    /// Rows dropped as duplicates of a row already kept.
    pub duplicate_rows: u64,
    /// Updates applied: each removed one silver row (its replacement counts as a silver or
    /// duplicate row).
    #[serde(default)]
    pub updates: u64,
    /// Deletes applied: each removed one silver row and became no silver row itself.
    #[serde(default)]
    pub deletes: u64,
    /// Quarantined rows by reason code (a row with several reasons counts under each).
    pub quarantine_by_reason: BTreeMap<String, u64>,
    /// Sum over bronze rows of present business fields (of 8).
    pub present_fields: u64,
    /// Sum over silver rows of passed accuracy checks (of 3).
    pub accuracy_passed: u64,
    /// Sum over silver rows of passed validity checks (of 2).
    pub validity_passed: u64,
    /// Silver rows per quality score (`"0.95"` → rows).
    pub score_distribution: BTreeMap<String, u64>,
    /// The newest invoice date among the new silver rows.
    pub newest_invoice_date: Option<NaiveDateTime>,
    /// The newest ingestion time among the bronze rows read.
    pub newest_ingested_at: Option<DateTime<Utc>>,
}

impl SilverStats {
    /// Returns true when every bronze row read is accounted for.
    pub fn reconciles(&self) -> bool {
        self.bronze_rows
            == self.silver_rows + self.quarantined_rows + self.duplicate_rows + self.deletes
    }
}

/// Output batches of one bronze batch.
#[derive(Debug)]
pub struct SilverOutput {
    /// New silver rows.
    pub silver: RecordBatch,
    /// New quarantined rows.
    pub quarantine: RecordBatch,
    /// New duplicate rows.
    pub duplicates: RecordBatch,
    /// Changes applied (rows of `silver/retail_transaction_changes`).
    pub changes: RecordBatch,
}

/// One applied update or delete: the bronze row that asked for it and what it did.
#[derive(Debug)]
struct AppliedChange {
    row: usize,
    operation: Operation,
    target: u128,
    replacement: Option<u128>,
}

/// The configurable parts of the silver rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SilverRules {
    /// The earliest plausible invoice date (`pipeline.earliest_invoice_date`); earlier rows are
    /// quarantined as `implausible_invoice_date`, as are rows dated more than one day after
    /// their ingestion.
    pub earliest_invoice_date: NaiveDateTime,
}

impl Default for SilverRules {
    fn default() -> Self {
        Self {
            earliest_invoice_date: DateWindow::default_earliest(),
        }
    }
}

/// Applies the contract's silver rules to bronze batches.
#[derive(Debug)]
pub struct SilverTransform {
    rules: SilverRules,
    run_id: String,
    processed_at: DateTime<Utc>,
    bronze_version: i64,
    seen: HashSet<u128>,
    /// Invoice months (`YYYY-MM`) whose silver ids are in `seen`; `None`: every month.
    /// A transaction id hashes the invoice date, so a duplicate is always in its row's month.
    loaded_months: Option<HashSet<i32>>,
    /// Transactions an update or delete of this pass removed, in order.
    removed: Vec<u128>,
    removed_set: HashSet<u128>,
    stats: SilverStats,
    score_counts: [u64; 101],
}

impl SilverTransform {
    /// Starts a pass that knows every transaction id already in silver; `bronze_version` is
    /// the bronze version the pass reads up to (recorded with each applied change).
    pub fn new(
        run_id: &str,
        processed_at: DateTime<Utc>,
        bronze_version: i64,
        seen: HashSet<u128>,
    ) -> Self {
        Self {
            rules: SilverRules::default(),
            run_id: run_id.to_owned(),
            processed_at,
            bronze_version,
            seen,
            loaded_months: None,
            removed: Vec::new(),
            removed_set: HashSet::new(),
            stats: SilverStats::default(),
            score_counts: [0; 101],
        }
    }

    /// The pass with `rules` instead of the default ones.
    #[must_use]
    pub fn with_rules(self, rules: SilverRules) -> Self {
        Self { rules, ..self }
    }

    /// Starts a pass that knows no silver id yet: before each batch, the caller asks
    /// [`SilverTransform::ids_needed`] and hands over those ids with
    /// [`SilverTransform::add_known`]. So an incremental run reads the ids of the months its
    /// rows fall in, not of the whole history.
    pub fn new_lazy(run_id: &str, processed_at: DateTime<Utc>, bronze_version: i64) -> Self {
        Self {
            loaded_months: Some(HashSet::new()),
            ..Self::new(run_id, processed_at, bronze_version, HashSet::new())
        }
    }

    /// The silver ids a batch needs that are not known yet: the invoice months of its rows, or
    /// every month (`None`) when it holds an update or delete, whose target may be anywhere.
    /// Returns `Some(empty)` when nothing is missing.
    pub fn ids_needed(&self, bronze: &RecordBatch) -> Result<Option<HashSet<String>>, ArrowError> {
        let Some(loaded) = &self.loaded_months else {
            return Ok(Some(HashSet::new()));
        };
        let input = BronzeColumns::new(bronze)?;
        let mut missing = HashSet::new();
        for row in 0..bronze.num_rows() {
            if input.operation(row) != Some(Operation::Insert) {
                return Ok(None);
            }
            if let Some(month) = input.month(row)
                && !loaded.contains(&month)
            {
                missing.insert(month);
            }
        }
        Ok(Some(
            missing
                .into_iter()
                .map(|m| format!("{:04}-{:02}", m.div_euclid(12), m.rem_euclid(12) + 1))
                .collect(),
        ))
    }

    /// Adds silver ids of the given months (`None`: of every month).
    pub fn add_known(
        &mut self,
        months: Option<HashSet<String>>,
        ids: impl IntoIterator<Item = u128>,
    ) {
        // Ids a change of this pass removed stay removed.
        self.seen
            .extend(ids.into_iter().filter(|id| !self.removed_set.contains(id)));
        match (months, &mut self.loaded_months) {
            (None, loaded) => *loaded = None,
            (Some(months), Some(loaded)) => loaded.extend(months.iter().filter_map(|label| {
                let (year, month) = label.split_once('-')?;
                Some(year.parse::<i32>().ok()? * 12 + month.parse::<i32>().ok()? - 1)
            })),
            (Some(_), None) => {}
        }
    }

    fn knows_month_of(&self, clean: &CleanTransaction) -> bool {
        self.loaded_months.as_ref().is_none_or(|loaded| {
            loaded.contains(&(clean.invoice_date.year() * 12 + clean.invoice_date.month0() as i32))
        })
    }

    /// Returns the transactions that updates and deletes of the pass removed from silver (as
    /// silver writes ids); the caller deletes them from the table.
    pub fn removed(&self) -> Vec<String> {
        self.removed.iter().map(|id| format!("{id:032x}")).collect()
    }

    /// Returns the statistics of the whole pass.
    pub fn into_stats(mut self) -> SilverStats {
        for (hundredths, rows) in self.score_counts.iter().enumerate() {
            if *rows > 0 {
                let score = rust_decimal::Decimal::new(hundredths as i64, 2);
                *self
                    .stats
                    .score_distribution
                    .entry(score.to_string())
                    .or_default() += rows;
            }
        }
        self.stats
    }

    /// Transforms one bronze batch.
    ///
    /// # Errors
    ///
    /// When the batch lacks a bronze column (a bug or a foreign table).
    pub fn transform(&mut self, bronze: &RecordBatch) -> Result<SilverOutput, ArrowError> {
        let input = BronzeColumns::new(bronze)?;
        let mut silver = SilverBuilder::new(bronze.num_rows());
        let mut quarantine: Vec<(usize, Vec<QuarantineReason>)> = Vec::new();
        let mut duplicates: Vec<(usize, u128)> = Vec::new();
        let mut changes: Vec<AppliedChange> = Vec::new();
        for row in 0..bronze.num_rows() {
            self.stats.bronze_rows += 1;
            let ingested_micros = input.ingested_at.value(row);
            let ingested_at = DateTime::from_timestamp_micros(ingested_micros);
            if ingested_at > self.stats.newest_ingested_at {
                self.stats.newest_ingested_at = ingested_at;
            }
            if !input.raw_text.is_null(row) {
                quarantine.push((row, vec![QuarantineReason::MalformedRecord]));
                continue;
            }
            let operation = input.operation(row);
            let raw = input.raw_fields(row);
            if operation != Some(Operation::Delete) {
                // A delete carries no fields: completeness is measured on the others.
                self.stats.present_fields += u64::from(raw.count_present());
            }
            let Some(operation) = operation else {
                quarantine.push((row, vec![QuarantineReason::ConflictingChange]));
                continue;
            };
            // A change must name a transaction silver holds now.
            let target = match operation {
                Operation::Insert => None,
                Operation::Update | Operation::Delete => {
                    match input.target(row).filter(|id| self.seen.contains(id)) {
                        Some(target) => Some(target),
                        None => {
                            quarantine.push((row, vec![QuarantineReason::UnknownTransaction]));
                            continue;
                        }
                    }
                }
            };
            if operation == Operation::Delete {
                let target = target.expect("checked above");
                self.remove(target);
                self.stats.deletes += 1;
                changes.push(AppliedChange {
                    row,
                    operation,
                    target,
                    replacement: None,
                });
                continue;
            }
            let email = input.email(row);
            let window = DateWindow::for_record(
                self.rules.earliest_invoice_date,
                ingested_at.map_or(NaiveDateTime::MAX, |at| at.naive_utc()),
            );
            let clean = match cleanse(&raw, email.as_deref(), &window) {
                Err(reasons) => {
                    quarantine.push((row, reasons));
                    continue;
                }
                Ok(clean) => clean,
            };
            let id = u128::from_str_radix(&clean.transaction_id, 16)
                .expect("transaction ids are 32 hex digits");
            if !self.knows_month_of(&clean) {
                return Err(ArrowError::ComputeError(format!(
                    "the silver ids of the month of {} were not loaded",
                    clean.invoice_date
                )));
            }
            if self.removed_set.contains(&id) {
                // Re-created after a change of this pass removed it: the delete at the end of
                // the pass would remove it again.
                quarantine.push((row, vec![QuarantineReason::ConflictingChange]));
                continue;
            }
            if let Some(target) = target {
                if target == id {
                    // An update that changes nothing: the row is a duplicate of its target.
                    duplicates.push((row, id));
                    continue;
                }
                self.remove(target);
                self.stats.updates += 1;
                changes.push(AppliedChange {
                    row,
                    operation,
                    target,
                    replacement: Some(id),
                });
            }
            if self.seen.insert(id) {
                self.record_clean(&clean);
                silver.push(&clean, email.as_deref(), row, &self.run_id);
            } else {
                duplicates.push((row, id));
            }
        }
        self.stats.silver_rows += silver.rows as u64;
        self.stats.duplicate_rows += duplicates.len() as u64;
        self.stats.quarantined_rows += quarantine.len() as u64;
        for (_, reasons) in &quarantine {
            for reason in reasons {
                *self
                    .stats
                    .quarantine_by_reason
                    .entry(reason.as_str().to_owned())
                    .or_default() += 1;
            }
        }
        Ok(SilverOutput {
            silver: silver.finish(bronze)?,
            quarantine: self.quarantine_batch(bronze, &quarantine)?,
            duplicates: self.duplicates_batch(bronze, &duplicates)?,
            changes: self.changes_batch(bronze, &changes)?,
        })
    }

    fn remove(&mut self, target: u128) {
        self.seen.remove(&target);
        self.removed_set.insert(target);
        self.removed.push(target);
    }

    fn changes_batch(
        &self,
        bronze: &RecordBatch,
        rows: &[AppliedChange],
    ) -> Result<RecordBatch, ArrowError> {
        let schema = SILVER_CHANGES.arrow_schema();
        let indices: Vec<usize> = rows.iter().map(|change| change.row).collect();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|change| format!("{:032x}", change.target)),
            )),
            Arc::new(StringArray::from_iter(
                rows.iter()
                    .map(|change| change.replacement.map(|id| format!("{id:032x}"))),
            )),
        ];
        for name in LINEAGE.iter().chain(["record_hash"].iter()) {
            columns.push(take(bronze, name, &indices)?);
        }
        columns.push(constant_text(&self.run_id, rows.len()));
        columns.push(Arc::new(deltalake::arrow::array::Int64Array::from(vec![
            self.bronze_version;
            rows.len()
        ])));
        columns.push(Arc::new(StringArray::from_iter_values(
            rows.iter().map(|change| change.operation.as_str()),
        )));
        RecordBatch::try_new(schema, columns)
    }

    fn record_clean(&mut self, clean: &CleanTransaction) {
        let inputs = clean.score_inputs;
        self.stats.accuracy_passed += u64::from(inputs.accuracy_passed);
        self.stats.validity_passed += u64::from(inputs.validity_passed);
        // Scores are hundredths from 0 to 100: count them in an array, name them at the end.
        let hundredths = usize::try_from(clean.data_quality_score.mantissa())
            .unwrap_or(0)
            .min(100);
        self.score_counts[hundredths] += 1;
        if Some(clean.invoice_date) > self.stats.newest_invoice_date {
            self.stats.newest_invoice_date = Some(clean.invoice_date);
        }
    }

    fn quarantine_batch(
        &self,
        bronze: &RecordBatch,
        rows: &[(usize, Vec<QuarantineReason>)],
    ) -> Result<RecordBatch, ArrowError> {
        let schema = SILVER_QUARANTINE.arrow_schema();
        let indices: Vec<usize> = rows.iter().map(|(row, _)| *row).collect();
        let mut columns = take_columns(bronze, &schema, &indices, 18)?;
        let mut reasons = ListBuilder::new(StringBuilder::new());
        for (_, row_reasons) in rows {
            for reason in row_reasons {
                reasons.values().append_value(reason.as_str());
            }
            reasons.append(true);
        }
        columns.push(Arc::new(reasons.finish()));
        columns.push(constant_text(&self.run_id, rows.len()));
        let mut at = TimestampMicrosecondBuilder::with_capacity(rows.len()).with_timezone("UTC");
        at.append_slice(&vec![self.processed_at.timestamp_micros(); rows.len()]);
        columns.push(Arc::new(at.finish()));
        for name in ["operation", "target_transaction_id"] {
            columns.push(match bronze.column_by_name(name) {
                Some(_) => take(bronze, name, &indices)?,
                // Bronze files written before changes existed lack the columns.
                None => deltalake::arrow::array::new_null_array(
                    &deltalake::arrow::datatypes::DataType::Utf8,
                    rows.len(),
                ),
            });
        }
        RecordBatch::try_new(schema, columns)
    }

    fn duplicates_batch(
        &self,
        bronze: &RecordBatch,
        rows: &[(usize, u128)],
    ) -> Result<RecordBatch, ArrowError> {
        let schema = SILVER_DUPLICATES.arrow_schema();
        let indices: Vec<usize> = rows.iter().map(|(row, _)| *row).collect();
        let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(_, id)| format!("{id:032x}")),
        ))];
        for name in LINEAGE.iter().chain(["record_hash"].iter()) {
            columns.push(take(bronze, name, &indices)?);
        }
        columns.push(constant_text(&self.run_id, rows.len()));
        RecordBatch::try_new(schema, columns)
    }
}

fn constant_text(value: &str, rows: usize) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
        value, rows,
    )))
}

fn take(batch: &RecordBatch, name: &str, indices: &[usize]) -> Result<ArrayRef, ArrowError> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("bronze batch has no column {name}")))?;
    let indices = deltalake::arrow::array::UInt32Array::from_iter_values(
        indices
            .iter()
            .map(|i| u32::try_from(*i).expect("batches hold fewer than 4 billion rows")),
    );
    deltalake::arrow::compute::take(column.as_ref(), &indices, None)
}

/// Takes the first `count` columns of `schema` from the bronze batch by name.
fn take_columns(
    batch: &RecordBatch,
    schema: &SchemaRef,
    indices: &[usize],
    count: usize,
) -> Result<Vec<ArrayRef>, ArrowError> {
    schema
        .fields()
        .iter()
        .take(count)
        .map(|field| take(batch, field.name(), indices))
        .collect()
}

struct BronzeColumns<'a> {
    business: [&'a StringArray; 8],
    extra: &'a StringArray,
    raw_text: &'a StringArray,
    ingested_at: &'a deltalake::arrow::array::PrimitiveArray<TimestampMicrosecondType>,
    /// Absent in bronze files written before changes existed.
    operation: Option<&'a StringArray>,
    target: Option<&'a StringArray>,
}

impl<'a> BronzeColumns<'a> {
    fn new(batch: &'a RecordBatch) -> Result<Self, ArrowError> {
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .map(|c| c.as_string::<i32>())
                .ok_or_else(|| {
                    ArrowError::SchemaError(format!("bronze batch has no column {name}"))
                })
        };
        let business = [
            text("invoice")?,
            text("stock_code")?,
            text("description")?,
            text("quantity")?,
            text("invoice_date")?,
            text("unit_price")?,
            text("customer_id")?,
            text("country")?,
        ];
        let ingested_at = batch
            .column_by_name("ingested_at")
            .ok_or_else(|| {
                ArrowError::SchemaError("bronze batch has no column ingested_at".into())
            })?
            .as_primitive::<TimestampMicrosecondType>();
        Ok(Self {
            business,
            extra: text("extra_columns")?,
            raw_text: text("raw_text")?,
            ingested_at,
            operation: text("operation").ok(),
            target: text("target_transaction_id").ok(),
        })
    }

    /// The row's operation; `None` when the stored code is unknown.
    fn operation(&self, row: usize) -> Option<Operation> {
        match self.operation {
            Some(column) if !column.is_null(row) => Operation::parse(column.value(row)),
            _ => Some(Operation::Insert),
        }
    }

    /// The invoice month (year × 12 + month from 0) of a row whose invoice date parses, as
    /// silver will partition it.
    fn month(&self, row: usize) -> Option<i32> {
        let date = retail_domain::field::parse_invoice_date(self.field(4, row)?.trim())?;
        Some(date.year() * 12 + date.month0() as i32)
    }

    /// The transaction a change targets, when it is a well-formed id.
    fn target(&self, row: usize) -> Option<u128> {
        let column = self.target?;
        (!column.is_null(row))
            .then(|| parse_transaction_id(column.value(row)))
            .flatten()
    }

    fn field(&self, column: usize, row: usize) -> Option<&'a str> {
        let array = self.business[column];
        (!array.is_null(row)).then(|| array.value(row))
    }

    fn raw_fields(&self, row: usize) -> RawFields<'a> {
        RawFields {
            invoice: self.field(0, row),
            stock_code: self.field(1, row),
            description: self.field(2, row),
            quantity: self.field(3, row),
            invoice_date: self.field(4, row),
            unit_price: self.field(5, row),
            customer_id: self.field(6, row),
            country: self.field(7, row),
        }
    }

    fn extra(&self, row: usize) -> Option<&'a str> {
        (!self.extra.is_null(row)).then(|| self.extra.value(row))
    }

    /// The `email` extra column, if the source had one (any letter case).
    fn email(&self, row: usize) -> Option<String> {
        let extra = self.extra(row)?;
        let map: BTreeMap<String, String> = serde_json::from_str(extra).ok()?;
        map.into_iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("email"))
            .map(|(_, value)| value)
    }
}

struct SilverBuilder {
    rows: usize,
    indices: Vec<usize>,
    transaction_id: StringBuilder,
    invoice: StringBuilder,
    stock_code: StringBuilder,
    description: StringBuilder,
    quantity: Int64Builder,
    invoice_date: TimestampMicrosecondBuilder,
    unit_price: Decimal128Builder,
    customer_id: StringBuilder,
    country: StringBuilder,
    country_name: StringBuilder,
    country_code: StringBuilder,
    total_amount: Decimal128Builder,
    is_return: BooleanBuilder,
    is_cancellation: BooleanBuilder,
    line_type: StringBuilder,
    score: Decimal128Builder,
    email: StringBuilder,
    run_id: StringBuilder,
    region: StringBuilder,
    invoice_month: StringBuilder,
    month_label: ((i32, u32), String),
}

impl SilverBuilder {
    fn new(capacity: usize) -> Self {
        let money = || {
            Decimal128Builder::with_capacity(capacity)
                .with_precision_and_scale(18, 3)
                .expect("18,3 is a valid decimal")
        };
        Self {
            rows: 0,
            indices: Vec::with_capacity(capacity),
            transaction_id: StringBuilder::new(),
            invoice: StringBuilder::new(),
            stock_code: StringBuilder::new(),
            description: StringBuilder::new(),
            quantity: Int64Builder::with_capacity(capacity),
            invoice_date: TimestampMicrosecondBuilder::with_capacity(capacity),
            unit_price: money(),
            customer_id: StringBuilder::new(),
            country: StringBuilder::new(),
            country_name: StringBuilder::new(),
            country_code: StringBuilder::new(),
            total_amount: money(),
            is_return: BooleanBuilder::with_capacity(capacity),
            is_cancellation: BooleanBuilder::with_capacity(capacity),
            line_type: StringBuilder::new(),
            score: Decimal128Builder::with_capacity(capacity)
                .with_precision_and_scale(3, 2)
                .expect("3,2 is a valid decimal"),
            email: StringBuilder::new(),
            run_id: StringBuilder::new(),
            region: StringBuilder::new(),
            invoice_month: StringBuilder::new(),
            month_label: ((0, 0), String::new()),
        }
    }

    fn push(&mut self, clean: &CleanTransaction, email: Option<&str>, row: usize, run_id: &str) {
        let mantissa = |value: rust_decimal::Decimal, scale: u32| {
            let mut value = value;
            value.rescale(scale);
            value.mantissa()
        };
        self.rows += 1;
        self.indices.push(row);
        self.transaction_id.append_value(&clean.transaction_id);
        self.invoice.append_value(&clean.invoice);
        self.stock_code.append_value(&clean.stock_code);
        self.description.append_option(clean.description.as_deref());
        self.quantity.append_value(clean.quantity);
        self.invoice_date
            .append_value(clean.invoice_date.and_utc().timestamp_micros());
        self.unit_price.append_value(mantissa(clean.unit_price, 3));
        self.customer_id.append_option(clean.customer_id.as_deref());
        self.country.append_value(&clean.country);
        self.country_name.append_value(&clean.country_name);
        self.country_code.append_option(clean.country_code);
        self.total_amount
            .append_value(mantissa(clean.total_amount, 3));
        self.is_return.append_value(clean.is_return);
        self.is_cancellation.append_value(clean.is_cancellation);
        self.line_type.append_value(clean.line_type.as_str());
        self.score
            .append_value(mantissa(clean.data_quality_score, 2));
        self.email.append_option(email);
        self.run_id.append_value(run_id);
        self.region.append_value(clean.region.as_str());
        // Rows come mostly in date order: format a month once, not once per row.
        let month = (clean.invoice_date.year(), clean.invoice_date.month());
        if self.month_label.0 != month {
            self.month_label = (month, format!("{:04}-{:02}", month.0, month.1));
        }
        self.invoice_month.append_value(&self.month_label.1);
    }

    /// Builds the silver batch; extra and lineage columns are taken from the bronze batch.
    fn finish(mut self, bronze: &RecordBatch) -> Result<RecordBatch, ArrowError> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.transaction_id.finish()),
            Arc::new(self.invoice.finish()),
            Arc::new(self.stock_code.finish()),
            Arc::new(self.description.finish()),
            Arc::new(self.quantity.finish()),
            Arc::new(self.invoice_date.finish()),
            Arc::new(self.unit_price.finish()),
            Arc::new(self.customer_id.finish()),
            Arc::new(self.country.finish()),
            Arc::new(self.country_name.finish()),
            Arc::new(self.country_code.finish()),
            Arc::new(self.total_amount.finish()),
            Arc::new(self.is_return.finish()),
            Arc::new(self.is_cancellation.finish()),
            Arc::new(self.line_type.finish()),
            Arc::new(self.score.finish()),
            Arc::new(self.email.finish()),
        ];
        for name in ["extra_columns"].iter().chain(LINEAGE.iter()) {
            columns.push(take(bronze, name, &self.indices)?);
        }
        columns.push(Arc::new(self.run_id.finish()));
        columns.push(Arc::new(self.region.finish()));
        columns.push(Arc::new(self.invoice_month.finish()));
        RecordBatch::try_new(SILVER_TRANSACTIONS.arrow_schema(), columns)
    }
}
