//! Asset checks: declarative rules on the tables an asset wrote, evaluated after the asset by
//! the runner. A failing `error` check holds back the assets downstream of the one it checks
//! (any asset, not only SQL models), and the run says which check held what back; a failing
//! `warn` check is recorded and logged only.
//!
//! The rules, with exact definitions (another tool counting the same table gets the same
//! numbers):
//!
//! - `row_count`: the table's rows (from the Delta log) within `min` and `max`;
//! - `not_null`: no row has a null in any of `columns` (observed: the rows with one);
//! - `unique`: no two rows share the values of `columns` (nulls are values; observed: the rows
//!   beyond the first of each repeated key);
//! - `accepted_values`: every non-null value of `column`, as text, is one of `values`
//!   (observed: the rows with another);
//! - `relationship`: every non-null value of `column` is a value of `to_column` in `to_table`
//!   (referential integrity; observed: the rows whose value is not there);
//! - `freshness`: the newest non-null value of `column` (a date or timestamp, in UTC) is at
//!   most `max_age_hours` before the evaluation; without `column`, the table's last commit is
//!   (value: the age in hours);
//! - `reconciliation`: the sum of `column` equals the sum of `to_column` in `to_table`, exactly
//!   (integers and decimals summed as decimals of 38 digits with 10 after the point); without
//!   columns, the two tables' row counts are equal (value: this table's minus the other's);
//! - `drift`: the mean of the non-null values of `column` (without `column`: the table's rows)
//!   is within `max_change_percent` of the median of the same check's values in the last
//!   `runs` (10) runs that evaluated it: |x − m| ≤ p/100 · |m|; with no earlier value it holds
//!   (value: the mean or the rows, which later runs compare with).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use deltalake::arrow::array::Array as _;
use deltalake::arrow::datatypes::DataType;
use futures::TryStreamExt as _;
use retail_lake::Lake;
use retail_lake::schema::{self as tables, TableSpec};
use retail_metadata::CheckResult;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a failing check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Recorded and logged; nothing is held back.
    Warn,
    /// Recorded; the assets downstream of the checked asset are held back and the run fails.
    #[default]
    Error,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// The rule of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// The table's rows within `min` and `max`.
    RowCount,
    /// No null in `columns`.
    NotNull,
    /// No two rows share `columns`.
    Unique,
    /// Every non-null `column` one of `values`.
    AcceptedValues,
    /// Every non-null `column` a value of `to_table`'s `to_column`.
    Relationship,
    /// The newest `column` (or the last commit) at most `max_age_hours` old.
    Freshness,
    /// The sum of `column` equal to the sum of `to_table`'s `to_column` (or the row counts).
    Reconciliation,
    /// The mean of `column` (or the rows) within `max_change_percent` of the last `runs`.
    Drift,
}

impl CheckKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::RowCount => "row_count",
            Self::NotNull => "not_null",
            Self::Unique => "unique",
            Self::AcceptedValues => "accepted_values",
            Self::Relationship => "relationship",
            Self::Freshness => "freshness",
            Self::Reconciliation => "reconciliation",
            Self::Drift => "drift",
        }
    }
}

/// A check as a user writes it (`[[checks]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Its name, unique: runs and messages name it.
    pub name: String,
    /// The asset it follows: evaluated after the asset runs; an `error` holds back the assets
    /// downstream of it.
    pub asset: String,
    /// The table it reads (`gold/fact_sales`).
    pub table: String,
    /// The rule.
    pub kind: CheckKind,
    /// `warn` or `error` (default).
    #[serde(default)]
    pub severity: Severity,
    /// `row_count`: the fewest rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    /// `row_count`: the most rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// `not_null`, `unique`: the columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// `accepted_values`, `relationship`, `freshness`, `reconciliation`, `drift`: the column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// `accepted_values`: the values, as text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// `relationship`, `reconciliation`: the other table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_table: Option<String>,
    /// `relationship`, `reconciliation`: its column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_column: Option<String>,
    /// `freshness`: the oldest the newest value (or commit) may be, in hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_hours: Option<u64>,
    /// `drift`: how far from the median of the earlier values, in percent of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_change_percent: Option<u32>,
    /// `drift`: how many earlier runs' values make the median (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<u32>,
}

/// A check, checked: its tables are in the registry and its columns in their schemas.
#[derive(Debug, Clone)]
pub struct Check {
    config: CheckConfig,
    table: TableSpec,
    to_table: Option<TableSpec>,
}

fn has_column(table: &TableSpec, column: &str) -> bool {
    (table.schema)().field_with_name(column).is_ok()
}

/// Adds a problem when `table`'s `column` exists and is not a number.
fn numeric_column(table: &Option<TableSpec>, column: &str, at: &str, problems: &mut Vec<String>) {
    if let Some(table) = table
        && let Ok(field) = (table.schema)().field_with_name(column)
        && !field.data_type().is_numeric()
    {
        problems.push(format!("{at}: {}.{column} is not a number", table.name));
    }
}

impl Check {
    /// The checks of `configs`, each against the registry and `assets` (the runner's keys);
    /// every problem is listed.
    ///
    /// # Errors
    ///
    /// The problems, each naming the check and what is wrong.
    pub fn all(
        configs: &[CheckConfig],
        assets: &[&str],
    ) -> std::result::Result<Vec<Self>, Vec<String>> {
        let mut problems = Vec::new();
        let mut checks = Vec::new();
        let mut names = HashSet::new();
        for (index, config) in configs.iter().enumerate() {
            let at = format!("checks[{index}] ({:?})", config.name);
            let before = problems.len();
            if config.name.trim().is_empty() {
                problems.push(format!("checks[{index}].name must not be empty"));
            } else if !names.insert(config.name.as_str()) {
                problems.push(format!("{at}: another check has this name"));
            }
            if !assets.contains(&config.asset.as_str()) {
                problems.push(format!(
                    "{at}.asset {:?} is not an asset (known: {})",
                    config.asset,
                    assets.join(", ")
                ));
            }
            let table = tables::find_table(&config.table);
            if table.is_none() {
                problems.push(format!(
                    "{at}.table {:?} is not a table of the lake",
                    config.table
                ));
            }
            let to_table = config.to_table.as_deref().map(tables::find_table);
            let column_of =
                |table: &Option<TableSpec>, column: &str, problems: &mut Vec<String>| {
                    if let Some(table) = table
                        && !has_column(table, column)
                    {
                        problems.push(format!("{at}: {} has no column {column:?}", table.name));
                    }
                };
            match config.kind {
                CheckKind::RowCount => {
                    if config.min.is_none() && config.max.is_none() {
                        problems.push(format!("{at}: row_count needs min, max or both"));
                    }
                    if let (Some(min), Some(max)) = (config.min, config.max)
                        && min > max
                    {
                        problems.push(format!("{at}: min ({min}) is above max ({max})"));
                    }
                }
                CheckKind::NotNull | CheckKind::Unique => {
                    if config.columns.is_empty() {
                        problems.push(format!("{at}: {} needs columns", config.kind.as_str()));
                    }
                    for column in &config.columns {
                        column_of(&table, column, &mut problems);
                    }
                }
                CheckKind::AcceptedValues => match &config.column {
                    Some(column) if !config.values.is_empty() => {
                        column_of(&table, column, &mut problems);
                    }
                    _ => problems.push(format!("{at}: accepted_values needs column and values")),
                },
                CheckKind::Relationship => match (&config.column, &to_table, &config.to_column) {
                    (Some(column), Some(Some(_)), Some(to_column)) => {
                        column_of(&table, column, &mut problems);
                        column_of(&to_table.flatten(), to_column, &mut problems);
                    }
                    (_, Some(None), _) => problems.push(format!(
                        "{at}.to_table {:?} is not a table of the lake",
                        config.to_table.as_deref().unwrap_or_default()
                    )),
                    _ => problems.push(format!(
                        "{at}: relationship needs column, to_table and to_column"
                    )),
                },
                CheckKind::Freshness => {
                    if config.max_age_hours.is_none_or(|hours| hours == 0) {
                        problems.push(format!("{at}: freshness needs max_age_hours of 1 or more"));
                    }
                    if let Some(column) = &config.column {
                        column_of(&table, column, &mut problems);
                        if let Some(table) = &table
                            && let Ok(field) = (table.schema)().field_with_name(column)
                            && !matches!(
                                field.data_type(),
                                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
                            )
                        {
                            problems.push(format!(
                                "{at}: {}.{column} is not a date or timestamp",
                                table.name
                            ));
                        }
                    }
                }
                CheckKind::Reconciliation => match (&to_table, &config.column, &config.to_column) {
                    (Some(Some(_)), column, to_column)
                        if column.is_some() == to_column.is_some() =>
                    {
                        for (table, column) in [(&table, column), (&to_table.flatten(), to_column)]
                        {
                            if let Some(column) = column {
                                column_of(table, column, &mut problems);
                                numeric_column(table, column, &at, &mut problems);
                            }
                        }
                    }
                    (Some(None), _, _) => problems.push(format!(
                        "{at}.to_table {:?} is not a table of the lake",
                        config.to_table.as_deref().unwrap_or_default()
                    )),
                    _ => problems.push(format!(
                        "{at}: reconciliation needs to_table, and column with to_column or neither"
                    )),
                },
                CheckKind::Drift => {
                    if config.max_change_percent.is_none() {
                        problems.push(format!("{at}: drift needs max_change_percent"));
                    }
                    if config.runs == Some(0) {
                        problems.push(format!("{at}: drift's runs must be at least 1"));
                    }
                    if let Some(column) = &config.column {
                        column_of(&table, column, &mut problems);
                        numeric_column(&table, column, &at, &mut problems);
                    }
                }
            }
            if problems.len() == before
                && let Some(table) = table
            {
                checks.push(Self {
                    config: config.clone(),
                    table,
                    to_table: to_table.flatten(),
                });
            }
        }
        if problems.is_empty() {
            Ok(checks)
        } else {
            Err(problems)
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The asset it follows.
    pub fn asset(&self) -> &str {
        &self.config.asset
    }

    /// Whether it fails the run and holds back the downstream assets.
    pub fn blocks(&self) -> bool {
        self.config.severity == Severity::Error
    }

    /// How many earlier values it compares with (`drift`), or `None`.
    pub fn history_runs(&self) -> Option<usize> {
        (self.config.kind == CheckKind::Drift).then(|| self.config.runs.unwrap_or(10) as usize)
    }

    /// Evaluates it on the lake as it is `now`; `history` holds its values in earlier runs,
    /// newest first (for `drift`, see [`Check::history_runs`]).
    ///
    /// # Errors
    ///
    /// When a table cannot be read (a missing table fails a row count of at least one, and
    /// is an error for the other rules).
    pub async fn evaluate(
        &self,
        lake: &Lake,
        history: &[f64],
        now: DateTime<Utc>,
    ) -> Result<CheckResult> {
        let config = &self.config;
        let mut value = None;
        let (observed, detail) = match config.kind {
            CheckKind::RowCount => {
                let rows = lake.count_rows(&self.table).await?;
                let low = config.min.is_some_and(|min| rows < min);
                let high = config.max.is_some_and(|max| rows > max);
                let bounds = match (config.min, config.max) {
                    (Some(min), Some(max)) => format!("{min} to {max}"),
                    (Some(min), None) => format!("at least {min}"),
                    (None, Some(max)) => format!("at most {max}"),
                    (None, None) => String::new(),
                };
                let verdict = if low || high { "outside" } else { "within" };
                (
                    u64::from(low || high),
                    format!("{rows} rows, {verdict} {bounds}"),
                )
            }
            CheckKind::NotNull => {
                let columns: Vec<&str> = config.columns.iter().map(String::as_str).collect();
                let mut rows = 0u64;
                let mut by_column: HashMap<&str, u64> = HashMap::new();
                let mut stream = lake.scan(&self.table, Some(columns.as_slice())).await?;
                while let Some(batch) = stream.try_next().await.map_err(|e| read(&self.table, e))? {
                    let mut any = vec![false; batch.num_rows()];
                    for (index, column) in columns.iter().enumerate() {
                        let array = batch.column(index);
                        *by_column.entry(*column).or_default() += array.null_count() as u64;
                        for (row, flag) in any.iter_mut().enumerate() {
                            *flag |= array.is_null(row);
                        }
                    }
                    rows += any.iter().filter(|f| **f).count() as u64;
                }
                let mut counts: Vec<String> = columns
                    .iter()
                    .map(|c| format!("{c}: {}", by_column.get(c).copied().unwrap_or(0)))
                    .collect();
                counts.sort();
                (
                    rows,
                    format!(
                        "{rows} rows with a null (nulls by column: {})",
                        counts.join(", ")
                    ),
                )
            }
            CheckKind::Unique => {
                let columns: Vec<&str> = config.columns.iter().map(String::as_str).collect();
                let mut seen: HashSet<Vec<Option<String>>> = HashSet::new();
                let mut repeated = 0u64;
                let mut example = None;
                let mut stream = lake.scan(&self.table, Some(columns.as_slice())).await?;
                while let Some(batch) = stream.try_next().await.map_err(|e| read(&self.table, e))? {
                    let texts = text_columns(&batch, &self.table)?;
                    for row in 0..batch.num_rows() {
                        let key: Vec<Option<String>> =
                            texts.iter().map(|c| c[row].clone()).collect();
                        if seen.contains(&key) {
                            repeated += 1;
                            example.get_or_insert(key);
                        } else {
                            seen.insert(key);
                        }
                    }
                }
                let detail = match example {
                    Some(key) => format!("{repeated} rows repeat a key, e.g. {}", show(&key)),
                    None => format!("{} distinct keys, none repeated", seen.len()),
                };
                (repeated, detail)
            }
            CheckKind::AcceptedValues => {
                let column = config.column.as_deref().unwrap_or_default();
                let accepted: HashSet<&str> = config.values.iter().map(String::as_str).collect();
                let mut others: HashMap<String, u64> = HashMap::new();
                each_value(lake, &self.table, column, |value| {
                    if !accepted.contains(value.as_str()) {
                        *others.entry(value).or_default() += 1;
                    }
                })
                .await?;
                let (rows, shown) = most_frequent(others);
                let detail = if rows == 0 {
                    "every value accepted".to_owned()
                } else {
                    format!("{rows} rows with other values: {shown}")
                };
                (rows, detail)
            }
            CheckKind::Relationship => {
                let column = config.column.as_deref().unwrap_or_default();
                let to_column = config.to_column.as_deref().unwrap_or_default();
                let Some(to_table) = &self.to_table else {
                    return Err(Error::Check {
                        check: config.name.clone(),
                        detail: "no table to refer to".to_owned(),
                    });
                };
                let mut keys: HashSet<String> = HashSet::new();
                each_value(lake, to_table, to_column, |value| {
                    keys.insert(value);
                })
                .await?;
                let mut orphans: HashMap<String, u64> = HashMap::new();
                each_value(lake, &self.table, column, |value| {
                    if !keys.contains(&value) {
                        *orphans.entry(value).or_default() += 1;
                    }
                })
                .await?;
                let (rows, shown) = most_frequent(orphans);
                let detail = if rows == 0 {
                    format!("every {column} is a {}.{to_column}", to_table.name)
                } else {
                    format!(
                        "{rows} rows whose {column} is not a {}.{to_column}: {shown}",
                        to_table.name
                    )
                };
                (rows, detail)
            }
            CheckKind::Freshness => {
                let limit = config.max_age_hours.unwrap_or(0);
                let (newest, what) = match &config.column {
                    Some(column) => (
                        newest_time(lake, &self.table, column).await?,
                        format!("the newest {column}"),
                    ),
                    None => (
                        lake.last_commit_time(&self.table).await?,
                        "the last commit".to_owned(),
                    ),
                };
                match newest {
                    None => (1, format!("no {what}: the table is empty or never written")),
                    Some(newest) => {
                        let hours = (now - newest).num_seconds() as f64 / 3600.0;
                        value = Some(hours);
                        let stale = hours > limit as f64;
                        (
                            u64::from(stale),
                            format!(
                                "{what} is {} ({hours:.1} hours before the check), {} {limit} hours",
                                newest.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                                if stale { "more than" } else { "within" }
                            ),
                        )
                    }
                }
            }
            CheckKind::Reconciliation => {
                let Some(to_table) = &self.to_table else {
                    return Err(Error::Check {
                        check: config.name.clone(),
                        detail: "no table to reconcile with".to_owned(),
                    });
                };
                let (ours, theirs, what) = match (&config.column, &config.to_column) {
                    (Some(column), Some(to_column)) => (
                        sum_of(lake, &self.table, column).await?,
                        sum_of(lake, to_table, to_column).await?,
                        format!(
                            "sum({}.{column}) and sum({}.{to_column})",
                            self.table.name, to_table.name
                        ),
                    ),
                    _ => (
                        i128::from(lake.count_rows(&self.table).await?) * SUM_UNIT,
                        i128::from(lake.count_rows(to_table).await?) * SUM_UNIT,
                        format!("the rows of {} and of {}", self.table.name, to_table.name),
                    ),
                };
                value = Some((ours - theirs) as f64 / SUM_UNIT as f64);
                let (a, b) = (decimal(ours), decimal(theirs));
                if ours == theirs {
                    (0, format!("{what} are both {a}"))
                } else {
                    (1, format!("{what} differ: {a} and {b}"))
                }
            }
            CheckKind::Drift => {
                let statistic = match &config.column {
                    Some(column) => mean_of(lake, &self.table, column).await?,
                    None => Some(lake.count_rows(&self.table).await? as f64),
                };
                let what = config
                    .column
                    .as_deref()
                    .map_or_else(|| "rows".to_owned(), |c| format!("mean {c}"));
                match statistic {
                    None => (0, format!("no values of {what} to compare")),
                    Some(x) => {
                        value = Some(x);
                        let runs = self.history_runs().unwrap_or(10);
                        let earlier: Vec<f64> = history.iter().take(runs).copied().collect();
                        match median(&earlier) {
                            None => (0, format!("{what} {x}: the first value, kept to compare")),
                            Some(m) => {
                                let percent = f64::from(config.max_change_percent.unwrap_or(0));
                                let drifted = (x - m).abs() > percent / 100.0 * m.abs();
                                let change = if m == 0.0 {
                                    String::new()
                                } else {
                                    format!(" ({:+.1} %)", (x - m) / m.abs() * 100.0)
                                };
                                (
                                    u64::from(drifted),
                                    format!(
                                        "{what} {x} against a median of {m} over the last {} runs{change}, {} {percent} %",
                                        earlier.len(),
                                        if drifted { "more than" } else { "within" }
                                    ),
                                )
                            }
                        }
                    }
                }
            }
        };
        Ok(CheckResult {
            name: config.name.clone(),
            asset: config.asset.clone(),
            table: config.table.clone(),
            kind: config.kind.as_str().to_owned(),
            severity: config.severity.as_str().to_owned(),
            passed: observed == 0,
            observed,
            detail,
            value,
        })
    }
}

/// Sums are kept in units of 10⁻¹⁰: exact for the lake's integers and decimals.
const SUM_UNIT: i128 = 10_000_000_000;

/// The exact sum of the non-null values of a number column, in [`SUM_UNIT`]s.
async fn sum_of(lake: &Lake, table: &TableSpec, column: &str) -> Result<i128> {
    use deltalake::arrow::array::AsArray as _;
    use deltalake::arrow::datatypes::Decimal128Type;
    let mut total: i128 = 0;
    each_batch(
        lake,
        table,
        column,
        &DataType::Decimal128(38, 10),
        |values| {
            for value in values.as_primitive::<Decimal128Type>().iter().flatten() {
                total = total.checked_add(value).ok_or_else(|| Error::Check {
                    check: table.name.to_owned(),
                    detail: format!("the sum of {column} overflows 38 digits"),
                })?;
            }
            Ok(())
        },
    )
    .await?;
    Ok(total)
}

/// A sum in [`SUM_UNIT`]s as a decimal, without trailing zeros.
fn decimal(units: i128) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let (whole, fraction) = (units.abs() / SUM_UNIT, units.abs() % SUM_UNIT);
    if fraction == 0 {
        format!("{sign}{whole}")
    } else {
        let fraction = format!("{fraction:010}");
        format!("{sign}{whole}.{}", fraction.trim_end_matches('0'))
    }
}

/// The mean of the non-null values of a number column (`None` when there are none).
async fn mean_of(lake: &Lake, table: &TableSpec, column: &str) -> Result<Option<f64>> {
    use deltalake::arrow::array::AsArray as _;
    use deltalake::arrow::datatypes::Float64Type;
    let (mut sum, mut count) = (0.0_f64, 0_u64);
    each_batch(lake, table, column, &DataType::Float64, |values| {
        for value in values.as_primitive::<Float64Type>().iter().flatten() {
            sum += value;
            count += 1;
        }
        Ok(())
    })
    .await?;
    Ok((count > 0).then(|| sum / count as f64))
}

/// The newest non-null value of a date or timestamp column, as UTC.
async fn newest_time(
    lake: &Lake,
    table: &TableSpec,
    column: &str,
) -> Result<Option<DateTime<Utc>>> {
    use deltalake::arrow::array::AsArray as _;
    use deltalake::arrow::datatypes::{TimeUnit, TimestampMicrosecondType};
    let mut newest: Option<i64> = None;
    let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
    each_batch(lake, table, column, &micros, |values| {
        if let Some(max) =
            deltalake::arrow::compute::max(values.as_primitive::<TimestampMicrosecondType>())
        {
            newest = Some(newest.map_or(max, |n| n.max(max)));
        }
        Ok(())
    })
    .await?;
    Ok(newest.and_then(DateTime::from_timestamp_micros))
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Calls `each` with every batch of `column` of `table`, cast to `to` as Arrow casts.
async fn each_batch(
    lake: &Lake,
    table: &TableSpec,
    column: &str,
    to: &DataType,
    mut each: impl FnMut(&dyn deltalake::arrow::array::Array) -> Result<()>,
) -> Result<()> {
    let mut stream = lake.scan(table, Some(&[column][..])).await?;
    while let Some(batch) = stream.try_next().await.map_err(|e| read(table, e))? {
        let values =
            deltalake::arrow::compute::cast(batch.column(0), to).map_err(|e| read(table, e))?;
        each(values.as_ref())?;
    }
    Ok(())
}

/// Calls `each` with every non-null value of `column` of `table`, as text.
async fn each_value(
    lake: &Lake,
    table: &TableSpec,
    column: &str,
    mut each: impl FnMut(String),
) -> Result<()> {
    use deltalake::arrow::array::AsArray as _;
    each_batch(lake, table, column, &DataType::Utf8, |values| {
        for value in values.as_string::<i32>().iter().flatten() {
            each(value.to_owned());
        }
        Ok(())
    })
    .await
}

/// The rows counted in all, and the five most frequent values with their rows (`"x" (3), ...`).
fn most_frequent(counts: HashMap<String, u64>) -> (u64, String) {
    let rows = counts.values().sum();
    let mut values: Vec<(String, u64)> = counts.into_iter().collect();
    values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let shown: Vec<String> = values
        .iter()
        .take(5)
        .map(|(v, n)| format!("{v:?} ({n})"))
        .collect();
    (rows, shown.join(", "))
}

fn read(table: &TableSpec, error: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Read {
        table: table.name,
        source: Box::new(error),
    }
}

/// Every column of `batch` as text per row (`None` for null), as Arrow casts it to a string.
fn text_columns(
    batch: &deltalake::arrow::record_batch::RecordBatch,
    table: &TableSpec,
) -> Result<Vec<Vec<Option<String>>>> {
    use deltalake::arrow::array::AsArray as _;
    batch
        .columns()
        .iter()
        .map(|column| {
            let text = deltalake::arrow::compute::cast(column, &DataType::Utf8)
                .map_err(|error| read(table, error))?;
            let text = text.as_string::<i32>();
            Ok((0..text.len())
                .map(|row| (!text.is_null(row)).then(|| text.value(row).to_owned()))
                .collect())
        })
        .collect()
}

fn show(key: &[Option<String>]) -> String {
    let parts: Vec<String> = key
        .iter()
        .map(|v| {
            v.as_deref()
                .map_or_else(|| "null".to_owned(), |v| format!("{v:?}"))
        })
        .collect();
    format!("({})", parts.join(", "))
}
