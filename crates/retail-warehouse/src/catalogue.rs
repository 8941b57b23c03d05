//! The one catalogue of analytics queries, run unchanged by both backends.
//!
//! A query is a name, a description, typed parameters and a function that writes its SQL with
//! numbered placeholders (`$1`, `$2`, ...) and the values to bind. Parameter values are never
//! pasted into SQL text; the only text substituted is chosen from closed lists (a time grain, a
//! sort column) or is a checked number (a row limit). Results are ordered completely, so two
//! backends can be compared row by row.

use std::collections::BTreeMap;

use chrono::{Datelike as _, Months, NaiveDate, NaiveDateTime, Timelike as _};
use retail_domain::measure::sql as measure;

use crate::error::{Error, Result};

/// The kind of a parameter and how its text is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A month, `YYYY-MM`.
    Month,
    /// Free text (a country name, a customer id, a stock code), 1 to 200 characters.
    Text,
    /// A whole number within bounds.
    Int {
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
    /// One of a closed list of words.
    Choice(&'static [&'static str]),
    /// A page cursor: `YYYY-MM-DDTHH:MM:SS~<transaction id>`, as a previous page returned it.
    Cursor,
}

impl std::fmt::Display for ParamKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Date => f.write_str("date (YYYY-MM-DD)"),
            Self::Month => f.write_str("month (YYYY-MM)"),
            Self::Text => f.write_str("text"),
            Self::Int { min, max } => write!(f, "integer {min}..={max}"),
            Self::Choice(words) => write!(f, "one of {}", words.join(", ")),
            Self::Cursor => f.write_str("a cursor from a previous page"),
        }
    }
}

/// A parameter of a catalogue query.
#[derive(Debug, Clone, Copy)]
pub struct ParamDef {
    /// Its name (`from`, `country`, ...).
    pub name: &'static str,
    /// Its kind.
    pub kind: ParamKind,
    /// The default as text, or `None` when absent means "no filter" or it is required.
    pub default: Option<&'static str>,
    /// Whether it must be given.
    pub required: bool,
    /// What it does.
    pub description: &'static str,
}

/// A checked parameter value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    /// A date.
    Date(NaiveDate),
    /// A month (its first day).
    Month(NaiveDate),
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A word of a closed list.
    Choice(&'static str),
    /// A page cursor: the last row's invoice date and transaction id.
    Cursor(NaiveDateTime, String),
}

/// The checked parameters of one query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<&'static str, ParamValue>);

impl Params {
    /// Checks raw `name=value` pairs against the query's parameters: unknown names, values of
    /// the wrong kind and missing required values are refused. Each value must be exactly of
    /// its kind ([`ParamKind::json_schema`] describes the values accepted); a reversed range
    /// (`from` after `to`) selects nothing.
    ///
    /// # Errors
    ///
    /// [`Error::BadParameter`] naming the first problem.
    pub fn parse<'a>(
        query: &QueryDef,
        raw: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self> {
        let bad = |message: String| Error::BadParameter {
            query: query.name,
            message,
        };
        let mut given: BTreeMap<&'static str, &str> = BTreeMap::new();
        for (name, value) in raw {
            let Some(def) = query.params.iter().find(|p| p.name == name) else {
                let known: Vec<&str> = query.params.iter().map(|p| p.name).collect();
                return Err(bad(format!(
                    "unknown parameter {name:?} (parameters: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            };
            if given.insert(def.name, value).is_some() {
                return Err(bad(format!("parameter {name:?} given twice")));
            }
        }
        let mut params = BTreeMap::new();
        for def in query.params {
            let Some(text) = given.get(def.name).copied().or(def.default) else {
                if def.required {
                    return Err(bad(format!("parameter {:?} is required", def.name)));
                }
                continue;
            };
            let value = parse_value(def, text).map_err(|problem| {
                bad(format!(
                    "parameter {:?} must be {}: {problem}",
                    def.name, def.kind
                ))
            })?;
            params.insert(def.name, value);
        }
        // A range whose start is after its end is empty, not an error: it selects nothing.
        Ok(Self(params))
    }

    /// Sets a value directly (for callers that hold typed values already).
    pub fn with(mut self, name: &'static str, value: ParamValue) -> Self {
        self.0.insert(name, value);
        self
    }

    fn date(&self, name: &str) -> Option<NaiveDate> {
        match self.0.get(name)? {
            ParamValue::Date(date) | ParamValue::Month(date) => Some(*date),
            _ => None,
        }
    }

    fn text(&self, name: &str) -> Option<&str> {
        match self.0.get(name)? {
            ParamValue::Text(text) => Some(text),
            _ => None,
        }
    }

    fn int(&self, name: &str) -> Option<i64> {
        match self.0.get(name)? {
            ParamValue::Int(value) => Some(*value),
            _ => None,
        }
    }

    fn cursor(&self, name: &str) -> Option<(NaiveDateTime, &str)> {
        match self.0.get(name)? {
            ParamValue::Cursor(at, id) => Some((*at, id)),
            _ => None,
        }
    }

    fn choice(&self, name: &str) -> Option<&'static str> {
        match self.0.get(name)? {
            ParamValue::Choice(word) => Some(word),
            _ => None,
        }
    }

    /// The checked values, by name.
    pub fn values(&self) -> impl Iterator<Item = (&'static str, &ParamValue)> {
        self.0.iter().map(|(name, value)| (*name, value))
    }
}

/// The years a date, month or cursor parameter may name: wide enough for any retail history,
/// narrow enough that no date arithmetic or key (`yyyymmdd` as an integer) can overflow.
pub const YEARS: std::ops::RangeInclusive<i32> = 1900..=2100;

/// `YYYY-MM-DD` exactly (four-digit year, no sign), a real date within [`YEARS`].
fn strict_date(text: &str) -> Option<NaiveDate> {
    let shape = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    shape
        .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
        .filter(|date| YEARS.contains(&date.year()))
}

/// A regular expression (ECMA 262 and Rust syntax alike) matching exactly the `YYYY-MM-DD`
/// dates [`strict_date`] accepts: real dates of the years 1900 to 2100 (1900 and 2100 are not
/// leap years).
const DATE_PATTERN: &str = "(?:(?:19[0-9]{2}|20[0-9]{2}|2100)-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])\
                            |(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)\
                            |(?:19(?:0[48]|[2468][048]|[13579][26])|20(?:[02468][048]|[13579][26]))-02-29)";

/// The years of [`YEARS`] as a regular expression.
const YEAR_PATTERN: &str = "(?:19[0-9]{2}|20[0-9]{2}|2100)";

/// Characters that are not control characters of the contract's text rule
/// (`retail_domain::field::is_control`: U+0000 to U+001F and U+007F), so that any customer id
/// or description the contract keeps can be asked for.
const NOT_CONTROL: &str = "[^\\u0000-\\u001f\\u007f]";

/// A character that is neither such a control character nor white space
/// (`char::is_whitespace`).
const VISIBLE: &str = "[^\\u0000-\\u0020\\u007f\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";

/// Longest text parameter, in characters.
const MAX_TEXT_CHARS: usize = 200;

impl ParamKind {
    /// The JSON Schema (2020-12, as OpenAPI 3.1 uses it) of the values [`Params::parse`]
    /// accepts for this kind: exactly those, so a document built from it neither promises a
    /// value the server refuses nor calls invalid a value it accepts.
    pub fn json_schema(self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::Date => json!({"type": "string", "pattern": format!("^{DATE_PATTERN}$"),
                                 "description": "a real date, YYYY-MM-DD, years 1900 to 2100"}),
            Self::Month => json!({"type": "string",
                                  "pattern": format!("^{YEAR_PATTERN}-(?:0[1-9]|1[0-2])$"),
                                  "description": "a month, YYYY-MM, years 1900 to 2100"}),
            Self::Text => json!({"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS,
                                 "pattern": format!("^{NOT_CONTROL}*{VISIBLE}{NOT_CONTROL}*$"),
                                 "description": "1 to 200 characters, not only white space, no \
                                                 control characters (surrounding white space is \
                                                 ignored)"}),
            Self::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
            Self::Choice(words) => json!({"type": "string", "enum": words}),
            Self::Cursor => json!({"type": "string",
                                   "pattern": format!("^{DATE_PATTERN}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]~[0-9a-fA-F]{{32}}$"),
                                   "description": "the next_cursor of the previous page"}),
        }
    }
}

fn parse_value(def: &ParamDef, text: &str) -> std::result::Result<ParamValue, String> {
    let years = format!("{} to {}", YEARS.start(), YEARS.end());
    match def.kind {
        ParamKind::Date => strict_date(text)
            .map(ParamValue::Date)
            .ok_or_else(|| format!("{text:?} is not a real date (YYYY-MM-DD, years {years})")),
        ParamKind::Month => (text.len() == 7)
            .then(|| strict_date(&format!("{text}-01")))
            .flatten()
            .map(ParamValue::Month)
            .ok_or_else(|| format!("{text:?} is not a month (YYYY-MM, years {years})")),
        ParamKind::Text => {
            if text.chars().any(retail_domain::field::is_control) {
                Err("control characters are not allowed".to_owned())
            } else if text.chars().count() > MAX_TEXT_CHARS || text.trim().is_empty() {
                Err(format!(
                    "between 1 and {MAX_TEXT_CHARS} characters, not only white space"
                ))
            } else {
                Ok(ParamValue::Text(text.trim().to_owned()))
            }
        }
        ParamKind::Int { min, max } => text
            .parse::<i64>()
            .ok()
            .filter(|v| (min..=max).contains(v))
            .map(ParamValue::Int)
            .ok_or_else(|| format!("{text:?} is not a whole number from {min} to {max}")),
        ParamKind::Choice(words) => words
            .iter()
            .find(|w| **w == text)
            .map(|w| ParamValue::Choice(w))
            .ok_or_else(|| format!("{text:?} is not one of them")),
        ParamKind::Cursor => text
            .split_once('~')
            .and_then(|(at, id)| {
                let (day, time) = at.split_once('T')?;
                strict_date(day)?;
                let time_shape = time.len() == 8
                    && time.bytes().enumerate().all(|(i, b)| match i {
                        2 | 5 => b == b':',
                        _ => b.is_ascii_digit(),
                    });
                if !time_shape {
                    return None;
                }
                let at = NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S").ok()?;
                // chrono reads second 60 as a leap second: not a time this API returns.
                let valid_id = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
                (valid_id && at.nanosecond() < 1_000_000_000)
                    .then(|| ParamValue::Cursor(at, id.to_ascii_lowercase()))
            })
            .ok_or_else(|| format!("{text:?} is not a cursor this API returned")),
    }
}

/// The type of a result column, as both backends return it and the API serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Exact money (`Decimal`); served rounded to cents, as a number.
    Money,
    /// A whole number.
    Int,
    /// A floating-point share or mean.
    Float,
    /// Text.
    Text,
    /// A calendar date, served as `YYYY-MM-DD`.
    Date,
    /// A shop-local date and time, served as `YYYY-MM-DDTHH:MM:SS`.
    Timestamp,
    /// A boolean.
    Bool,
}

/// A column of a query's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnDef {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub kind: ColumnKind,
    /// Whether it may be null.
    pub nullable: bool,
}

const fn col(name: &'static str, kind: ColumnKind) -> ColumnDef {
    ColumnDef {
        name,
        kind,
        nullable: false,
    }
}

const fn opt(name: &'static str, kind: ColumnKind) -> ColumnDef {
    ColumnDef {
        name,
        kind,
        nullable: true,
    }
}

impl ColumnDef {
    /// Whether a cell fits the column (PostgreSQL may sum whole numbers into `numeric`, so a
    /// whole decimal fits an integer column).
    pub fn admits(&self, cell: &crate::value::Cell) -> bool {
        use crate::value::Cell;
        match (self.kind, cell) {
            (_, Cell::Null) => self.nullable,
            (ColumnKind::Money, Cell::Decimal(_) | Cell::Int(_))
            | (ColumnKind::Float, Cell::Float(_))
            | (ColumnKind::Text, Cell::Text(_))
            | (ColumnKind::Date, Cell::Date(_))
            | (ColumnKind::Timestamp, Cell::Timestamp(_))
            | (ColumnKind::Bool, Cell::Bool(_))
            | (ColumnKind::Int, Cell::Int(_)) => true,
            (ColumnKind::Int, Cell::Decimal(d)) => d.fract().is_zero(),
            _ => false,
        }
    }
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A 32-bit integer (date keys).
    Int(i32),
    /// Text.
    Text(String),
    /// A calendar date.
    Date(NaiveDate),
    /// A date and time without zone (invoice dates, so PostgreSQL prunes partitions).
    Timestamp(NaiveDateTime),
}

/// SQL with numbered placeholders and the values to bind, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statement {
    /// The SQL text.
    pub sql: String,
    /// Values for `$1`, `$2`, ...
    pub args: Vec<Arg>,
}

/// Writes a statement, numbering placeholders as values are bound.
#[derive(Debug, Default)]
struct Builder {
    args: Vec<Arg>,
}

impl Builder {
    fn bind(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    fn finish(self, sql: String) -> Statement {
        Statement {
            sql,
            args: self.args,
        }
    }

    /// ` AND col >= $n AND col <= $m` for the `from` / `to` parameters, as date keys.
    fn period(&mut self, params: &Params, column: &str) -> String {
        let mut sql = String::new();
        if let Some(from) = params.date("from") {
            sql += &format!(" AND {column} >= {}", self.bind(Arg::Int(date_key(from))));
        }
        if let Some(to) = params.date("to") {
            sql += &format!(" AND {column} <= {}", self.bind(Arg::Int(date_key(to))));
        }
        sql
    }

    /// ` AND col >= $n AND col < $m` on an invoice timestamp, for `from` / `to` (inclusive
    /// days), so that PostgreSQL reads only the partitions of the period.
    fn period_facts(&mut self, params: &Params, column: &str) -> String {
        self.range_facts(params.date("from"), params.date("to"), column)
    }

    /// As [`Builder::period_facts`] for explicit inclusive days.
    fn range_facts(
        &mut self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        column: &str,
    ) -> String {
        let mut sql = String::new();
        if let Some(from) = from {
            let start = from.and_hms_opt(0, 0, 0).expect("midnight exists");
            sql += &format!(" AND {column} >= {}", self.bind(Arg::Timestamp(start)));
        }
        if let Some(end) = to.and_then(|to| to.succ_opt()) {
            let end = end.and_hms_opt(0, 0, 0).expect("midnight exists");
            sql += &format!(" AND {column} < {}", self.bind(Arg::Timestamp(end)));
        }
        sql
    }

    /// ` AND col = $n` for the `country` parameter.
    fn country(&mut self, params: &Params, column: &str) -> String {
        match params.text("country") {
            Some(country) => format!(" AND {column} = {}", self.bind(Arg::Text(country.into()))),
            None => String::new(),
        }
    }
}

fn date_key(date: NaiveDate) -> i32 {
    date.year() * 10_000 + date.month() as i32 * 100 + date.day() as i32
}

/// One query of the catalogue.
#[derive(Clone, Copy)]
pub struct QueryDef {
    /// Its name, as the CLI and the API call it.
    pub name: &'static str,
    /// What it answers.
    pub description: &'static str,
    /// Its parameters.
    pub params: &'static [ParamDef],
    /// The columns of its result, in order.
    pub columns: &'static [ColumnDef],
    build: fn(&Params) -> Statement,
}

impl std::fmt::Debug for QueryDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryDef")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl QueryDef {
    /// The SQL and bound values for checked parameters.
    pub fn statement(&self, params: &Params) -> Statement {
        (self.build)(params)
    }
}

const FROM: ParamDef = ParamDef {
    name: "from",
    kind: ParamKind::Date,
    default: None,
    required: false,
    description: "first day included (default: the first day of data)",
};
const TO: ParamDef = ParamDef {
    name: "to",
    kind: ParamKind::Date,
    default: None,
    required: false,
    description: "last day included (default: the last day of data)",
};
const COUNTRY: ParamDef = ParamDef {
    name: "country",
    kind: ParamKind::Text,
    default: None,
    required: false,
    description: "only this country (its name, as in dim_country)",
};
const CUSTOMER_ID: ParamDef = ParamDef {
    name: "customer_id",
    kind: ParamKind::Text,
    default: None,
    required: true,
    description: "the customer's id",
};
const STOCK_CODE: ParamDef = ParamDef {
    name: "stock_code",
    kind: ParamKind::Text,
    default: None,
    required: true,
    description: "the product's stock code",
};

const SUMS: &str = "COALESCE(SUM(s.gross_revenue), 0) AS gross_revenue,
       COALESCE(SUM(s.returns_amount), 0) AS returns_amount,
       COALESCE(SUM(s.net_revenue), 0) AS net_revenue,
       CAST(COALESCE(SUM(s.orders), 0) AS BIGINT) AS orders,
       CAST(COALESCE(SUM(s.units), 0) AS BIGINT) AS units";

fn sales_summary(params: &Params) -> Statement {
    let mut b = Builder::default();
    let sales_filter = format!(
        "{}{}",
        b.period(params, "s.date_key"),
        b.country(params, "s.country_name")
    );
    let customer_filter = format!(
        "{}{}",
        b.period(params, "k.date_key"),
        b.country(params, "k.country_name")
    );
    b.finish(format!(
        "SELECT t.gross_revenue, t.returns_amount, t.net_revenue, t.orders, t.units, t.lines,
       c.customers
  FROM (SELECT {SUMS}, CAST(COALESCE(SUM(s.lines), 0) AS BIGINT) AS lines
          FROM sales_daily_country s WHERE 1 = 1{sales_filter}) t
 CROSS JOIN (SELECT COUNT(DISTINCT k.customer_id) AS customers
               FROM customer_days k WHERE 1 = 1{customer_filter}) c"
    ))
}

fn revenue_trend(params: &Params) -> Statement {
    let mut b = Builder::default();
    let grain = params.choice("grain").unwrap_or("month");
    let filter = format!(
        "{}{}",
        b.period(params, "s.date_key"),
        b.country(params, "s.country_name")
    );
    b.finish(format!(
        "SELECT s.period_start, {SUMS}
  FROM (SELECT CAST(date_trunc('{grain}', CAST(d.date AS TIMESTAMP)) AS DATE) AS period_start,
               x.*
          FROM sales_daily_country x
          JOIN dim_date d ON d.date_key = x.date_key) s
 WHERE 1 = 1{filter}
 GROUP BY s.period_start
 ORDER BY s.period_start"
    ))
}

/// The whole months inside `[from, to]` (first day, first day after), when there is one.
fn whole_months(
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Option<(Option<NaiveDate>, Option<NaiveDate>)> {
    let month_start = |d: NaiveDate| d.with_day(1).expect("day 1 exists");
    let start = from.map(|from| {
        if from.day() == 1 {
            from
        } else {
            month_start(from) + Months::new(1)
        }
    });
    let end = to.map(|to| month_start(to.succ_opt().unwrap_or(to)));
    match (start, end) {
        (Some(start), Some(end)) if start >= end => None,
        bounds => Some(bounds),
    }
}

fn top_products(params: &Params) -> Statement {
    let mut b = Builder::default();
    let limit = params.int("limit").unwrap_or(10);
    let order = match params.choice("by") {
        Some("units") => "units_sold DESC, net_revenue DESC",
        Some("orders") => "orders DESC, net_revenue DESC",
        _ => "net_revenue DESC, units_sold DESC",
    };
    let (from, to) = (params.date("from"), params.date("to"));
    // Whole months come from the monthly product view; the days before and after them from
    // the facts. Orders add up across the parts: an invoice falls on one day.
    let mut parts = Vec::new();
    let fact_part = |b: &mut Builder, from: Option<NaiveDate>, to: Option<NaiveDate>| {
        let filter = format!(
            "{}{}",
            b.range_facts(from, to, "f.invoice_date"),
            b.country(params, "c.country_name")
        );
        format!(
            "SELECT p.stock_code,
       SUM(f.total_amount) AS net_revenue,
       {units_sold} AS units_sold,
       {units_returned} AS units_returned,
       {orders} AS orders
  FROM fact_sales f
  JOIN dim_product p ON p.product_key = f.product_key
  JOIN dim_country c ON c.country_key = f.country_key
 WHERE p.line_type = 'product'{filter}
 GROUP BY p.stock_code",
            units_sold = measure::units_sold("f"),
            units_returned = measure::units_returned("f"),
            orders = measure::orders("f"),
        )
    };
    match whole_months(from, to) {
        None => parts.push(fact_part(&mut b, from, to)),
        Some((start, end)) => {
            let mut filter = String::new();
            if let Some(start) = start {
                filter += &format!(" AND m.month >= {}", b.bind(Arg::Date(start)));
            }
            if let Some(end) = end {
                filter += &format!(" AND m.month < {}", b.bind(Arg::Date(end)));
            }
            filter += &b.country(params, "m.country_name");
            parts.push(format!(
                "SELECT m.stock_code, m.net_revenue, m.units_sold, m.units_returned, m.orders
  FROM product_monthly_country m
 WHERE 1 = 1{filter}"
            ));
            if let (Some(from), Some(start)) = (from, start)
                && from < start
            {
                parts.push(fact_part(&mut b, Some(from), start.pred_opt()));
            }
            if let (Some(to), Some(end)) = (to, end)
                && end <= to
            {
                parts.push(fact_part(&mut b, Some(end), Some(to)));
            }
        }
    }
    let union = parts.join("\n UNION ALL\n");
    b.finish(format!(
        "SELECT a.stock_code, p.description, a.net_revenue, a.units_sold, a.units_returned,
       a.orders
  FROM (SELECT t.stock_code,
               SUM(t.net_revenue) AS net_revenue,
               CAST(SUM(t.units_sold) AS BIGINT) AS units_sold,
               CAST(SUM(t.units_returned) AS BIGINT) AS units_returned,
               CAST(SUM(t.orders) AS BIGINT) AS orders
          FROM ({union}) t
         GROUP BY t.stock_code) a
  JOIN dim_product p ON p.stock_code = a.stock_code
 ORDER BY {order}, a.stock_code
 LIMIT {limit}"
    ))
}

fn returns(params: &Params) -> Statement {
    let mut b = Builder::default();
    let filter = format!(
        "{}{}",
        b.period_facts(params, "f.invoice_date"),
        b.country(params, "c.country_name")
    );
    b.finish(format!(
        "SELECT r.month,
       COUNT(*) AS return_lines,
       CAST(-SUM(r.quantity) AS BIGINT) AS units_returned,
       -SUM(r.total_amount) AS returns_amount,
       COUNT(DISTINCT CASE WHEN r.is_cancellation THEN r.invoice END) AS cancelled_invoices,
       COUNT(DISTINCT r.product_key) AS products
  FROM (SELECT CAST(date_trunc('month', f.invoice_date) AS DATE) AS month, f.quantity,
               f.total_amount, f.is_cancellation, f.invoice, f.product_key
          FROM fact_sales f
          JOIN dim_country c ON c.country_key = f.country_key
         WHERE f.is_return{filter}) r
 GROUP BY r.month
 ORDER BY r.month"
    ))
}

fn rfm_segments(params: &Params) -> Statement {
    let mut b = Builder::default();
    let filter = match params.text("segment") {
        Some(segment) => format!(" WHERE segment = {}", b.bind(Arg::Text(segment.into()))),
        None => String::new(),
    };
    b.finish(format!(
        "SELECT segment,
       COUNT(*) AS customers,
       AVG(CAST(recency_days AS DOUBLE PRECISION)) AS avg_recency_days,
       AVG(CAST(frequency AS DOUBLE PRECISION)) AS avg_frequency,
       SUM(monetary) AS monetary
  FROM customer_rfm{filter}
 GROUP BY segment
 ORDER BY customers DESC, segment"
    ))
}

fn marketing_audience(params: &Params) -> Statement {
    let mut b = Builder::default();
    let mut filter = String::new();
    if let Some(segment) = params.text("segment") {
        filter += &format!(" AND r.segment = {}", b.bind(Arg::Text(segment.into())));
    }
    if let Some(country) = params.text("country") {
        filter += &format!(
            " AND d.country_name = {}",
            b.bind(Arg::Text(country.into()))
        );
    }
    b.finish(format!(
        "SELECT r.customer_id, d.country_name, r.segment, r.recency_days, r.frequency,
       r.monetary, r.last_purchase_date
  FROM customer_rfm r
  JOIN dim_customer d ON d.customer_id = r.customer_id AND d.is_current
 WHERE TRUE{filter}
 ORDER BY r.monetary DESC, r.customer_id"
    ))
}

fn cohorts(params: &Params) -> Statement {
    let mut b = Builder::default();
    let mut filter = String::new();
    for (name, op) in [("from_cohort", ">="), ("to_cohort", "<=")] {
        if let Some(month) = params.date(name) {
            let label = month.format("%Y-%m").to_string();
            filter += &format!(" AND cohort_month {op} {}", b.bind(Arg::Text(label)));
        }
    }
    b.finish(format!(
        "SELECT cohort_month, month_offset, activity_month, cohort_size, active_customers,
       retention
  FROM cohort_retention
 WHERE 1 = 1{filter}
 ORDER BY cohort_month, month_offset"
    ))
}

fn geography(params: &Params) -> Statement {
    let mut b = Builder::default();
    let sales = b.period(params, "s.date_key");
    let customers = b.period(params, "k.date_key");
    b.finish(format!(
        "SELECT c.country_name, c.country_code, c.region, t.gross_revenue, t.returns_amount,
       t.net_revenue, t.orders, t.units, COALESCE(u.customers, 0) AS customers
  FROM (SELECT s.country_name, {SUMS}
          FROM sales_daily_country s WHERE 1 = 1{sales}
         GROUP BY s.country_name) t
  JOIN dim_country c ON c.country_name = t.country_name
  LEFT JOIN (SELECT k.country_name, COUNT(DISTINCT k.customer_id) AS customers
               FROM customer_days k WHERE 1 = 1{customers}
              GROUP BY k.country_name) u ON u.country_name = t.country_name
 ORDER BY t.net_revenue DESC, c.country_name"
    ))
}

fn customer_profile(params: &Params) -> Statement {
    let mut b = Builder::default();
    let id = b.bind(Arg::Text(
        params.text("customer_id").unwrap_or_default().into(),
    ));
    b.finish(format!(
        "SELECT d.customer_id, d.country_name AS current_country, v.versions, v.first_seen,
       r.last_purchase_date, r.recency_days, r.frequency, r.monetary, r.r_score, r.f_score,
       r.m_score, r.segment
  FROM dim_customer d
  JOIN (SELECT customer_id, COUNT(*) AS versions, MIN(valid_from) AS first_seen
          FROM dim_customer WHERE customer_id = {id} GROUP BY customer_id) v
    ON v.customer_id = d.customer_id
  LEFT JOIN customer_rfm r ON r.customer_id = d.customer_id
 WHERE d.is_current"
    ))
}

fn customer_history(params: &Params) -> Statement {
    let mut b = Builder::default();
    let id = b.bind(Arg::Text(
        params.text("customer_id").unwrap_or_default().into(),
    ));
    let limit = params.int("limit").unwrap_or(100);
    let filter = b.period_facts(params, "f.invoice_date");
    b.finish(format!(
        "SELECT f.invoice, f.invoice_date, c.country_name, f.is_cancellation,
       COUNT(*) AS lines,
       CAST(SUM(f.quantity) AS BIGINT) AS units,
       SUM(f.total_amount) AS amount
  FROM fact_sales f
  JOIN dim_customer d ON d.customer_key = f.customer_key
  JOIN dim_country c ON c.country_key = f.country_key
 WHERE d.customer_id = {id}{filter}
 GROUP BY f.invoice, f.invoice_date, c.country_name, f.is_cancellation
 ORDER BY f.invoice_date DESC, f.invoice
 LIMIT {limit}"
    ))
}

fn product_profile(params: &Params) -> Statement {
    let mut b = Builder::default();
    let code = b.bind(Arg::Text(
        params.text("stock_code").unwrap_or_default().into(),
    ));
    b.finish(format!(
        "SELECT stock_code, description, line_type, first_sale_date, last_sale_date
  FROM dim_product
 WHERE stock_code = {code}"
    ))
}

fn product_history(params: &Params) -> Statement {
    let mut b = Builder::default();
    let code = b.bind(Arg::Text(
        params.text("stock_code").unwrap_or_default().into(),
    ));
    b.finish(format!(
        "SELECT month, net_revenue, units_sold, units_returned, orders, return_rate
  FROM product_monthly
 WHERE stock_code = {code}
 ORDER BY month"
    ))
}

/// The filters of sales lines (period, country, customer, product, invoice) as SQL over
/// `fact_sales f`, `dim_product p`, `dim_country c` and `dim_customer d`.
fn sales_filter(b: &mut Builder, params: &Params) -> String {
    let mut filter = format!(
        "{}{}",
        b.period_facts(params, "f.invoice_date"),
        b.country(params, "c.country_name")
    );
    for (name, column) in [
        ("customer_id", "d.customer_id"),
        ("stock_code", "p.stock_code"),
        ("invoice", "f.invoice"),
    ] {
        if let Some(value) = params.text(name) {
            filter += &format!(" AND {column} = {}", b.bind(Arg::Text(value.to_owned())));
        }
    }
    filter
}

/// The relations sales lines read.
const SALES_FROM: &str = "FROM fact_sales f
  JOIN dim_product p ON p.product_key = f.product_key
  JOIN dim_country c ON c.country_key = f.country_key
  LEFT JOIN dim_customer d ON d.customer_key = f.customer_key AND f.customer_key <> 0";

/// The columns of a sales line.
const SALES_COLUMNS: &str = "f.invoice_date, f.transaction_id, f.invoice, p.stock_code, \
p.description, f.quantity, f.unit_price, f.total_amount, d.customer_id, c.country_name, \
f.line_type, f.is_return, f.is_cancellation";

fn sales_export(params: &Params) -> Statement {
    let mut b = Builder::default();
    let filter = sales_filter(&mut b, params);
    b.finish(format!(
        "SELECT {SALES_COLUMNS}
  {SALES_FROM}
 WHERE 1 = 1{filter}
 ORDER BY f.invoice_date ASC, f.transaction_id ASC"
    ))
}

fn sales_count(params: &Params) -> Statement {
    let mut b = Builder::default();
    let filter = sales_filter(&mut b, params);
    b.finish(format!(
        "SELECT CAST(count(*) AS BIGINT) AS lines
  {SALES_FROM}
 WHERE 1 = 1{filter}"
    ))
}

fn sales_lines(params: &Params) -> Statement {
    let mut b = Builder::default();
    let mut filter = sales_filter(&mut b, params);
    let descending = params.choice("order") != Some("asc");
    if let Some((at, id)) = params.cursor("cursor") {
        let (at_1, at_2) = (b.bind(Arg::Timestamp(at)), b.bind(Arg::Timestamp(at)));
        let id = b.bind(Arg::Text(id.to_owned()));
        let op = if descending { "<" } else { ">" };
        filter += &format!(
            " AND (f.invoice_date {op} {at_1} OR (f.invoice_date = {at_2} AND f.transaction_id {op} {id}))"
        );
    }
    let direction = if descending { "DESC" } else { "ASC" };
    let limit = params.int("limit").unwrap_or(100);
    b.finish(format!(
        "SELECT {SALES_COLUMNS}
  {SALES_FROM}
 WHERE 1 = 1{filter}
 ORDER BY f.invoice_date {direction}, f.transaction_id {direction}
 LIMIT {limit}"
    ))
}

/// The columns of a sales line (`sales_lines`, `sales_export`).
const SALES_LINE_COLUMNS: &[ColumnDef] = &[
    col("invoice_date", ColumnKind::Timestamp),
    col("transaction_id", ColumnKind::Text),
    col("invoice", ColumnKind::Text),
    col("stock_code", ColumnKind::Text),
    opt("description", ColumnKind::Text),
    col("quantity", ColumnKind::Int),
    col("unit_price", ColumnKind::Money),
    col("total_amount", ColumnKind::Money),
    opt("customer_id", ColumnKind::Text),
    col("country_name", ColumnKind::Text),
    col("line_type", ColumnKind::Text),
    col("is_return", ColumnKind::Bool),
    col("is_cancellation", ColumnKind::Bool),
];

const CUSTOMER_FILTER: ParamDef = ParamDef {
    name: "customer_id",
    kind: ParamKind::Text,
    default: None,
    required: false,
    description: "only this customer's lines",
};

const STOCK_CODE_FILTER: ParamDef = ParamDef {
    name: "stock_code",
    kind: ParamKind::Text,
    default: None,
    required: false,
    description: "only this product's lines",
};

const INVOICE_FILTER: ParamDef = ParamDef {
    name: "invoice",
    kind: ParamKind::Text,
    default: None,
    required: false,
    description: "only this invoice's lines",
};

const LIMIT_100: ParamDef = ParamDef {
    name: "limit",
    kind: ParamKind::Int { min: 1, max: 1000 },
    default: Some("100"),
    required: false,
    description: "most rows returned",
};

/// Every query of the catalogue.
#[allow(clippy::enum_glob_use)] // the column kinds read as a table
pub const QUERIES: &[QueryDef] = {
    use ColumnKind::*;
    &[
        QueryDef {
            name: "sales_summary",
            description: "Gross, returns and net revenue, orders, units, lines and distinct \
                      customers over a period, for all countries or one",
            params: &[FROM, TO, COUNTRY],
            columns: &[
                col("gross_revenue", Money),
                col("returns_amount", Money),
                col("net_revenue", Money),
                col("orders", Int),
                col("units", Int),
                col("lines", Int),
                col("customers", Int),
            ],
            build: sales_summary,
        },
        QueryDef {
            name: "revenue_trend",
            description: "Revenue, orders and units per day, ISO week (from Monday) or month",
            params: &[
                ParamDef {
                    name: "grain",
                    kind: ParamKind::Choice(&["day", "week", "month"]),
                    default: Some("month"),
                    required: false,
                    description: "length of each period",
                },
                FROM,
                TO,
                COUNTRY,
            ],
            columns: &[
                col("period_start", Date),
                col("gross_revenue", Money),
                col("returns_amount", Money),
                col("net_revenue", Money),
                col("orders", Int),
                col("units", Int),
            ],
            build: revenue_trend,
        },
        QueryDef {
            name: "top_products",
            description: "The best-selling products (product lines only) over a period",
            params: &[
                FROM,
                TO,
                COUNTRY,
                ParamDef {
                    name: "by",
                    kind: ParamKind::Choice(&["revenue", "units", "orders"]),
                    default: Some("revenue"),
                    required: false,
                    description: "ranking measure",
                },
                ParamDef {
                    name: "limit",
                    kind: ParamKind::Int { min: 1, max: 100 },
                    default: Some("10"),
                    required: false,
                    description: "how many products",
                },
            ],
            columns: &[
                col("stock_code", Text),
                opt("description", Text),
                col("net_revenue", Money),
                col("units_sold", Int),
                col("units_returned", Int),
                col("orders", Int),
            ],
            build: top_products,
        },
        QueryDef {
            name: "returns",
            description: "Returned lines, units and amount, cancelled invoices and products per month",
            params: &[FROM, TO, COUNTRY],
            columns: &[
                col("month", Date),
                col("return_lines", Int),
                col("units_returned", Int),
                col("returns_amount", Money),
                col("cancelled_invoices", Int),
                col("products", Int),
            ],
            build: returns,
        },
        QueryDef {
            name: "rfm_segments",
            description: "Customers per RFM segment with average recency and frequency and total \
                      monetary value",
            params: &[ParamDef {
                name: "segment",
                kind: ParamKind::Text,
                default: None,
                required: false,
                description: "only this segment",
            }],
            columns: &[
                col("segment", Text),
                col("customers", Int),
                col("avg_recency_days", Float),
                col("avg_frequency", Float),
                col("monetary", Money),
            ],
            build: rfm_segments,
        },
        QueryDef {
            name: "marketing_audience",
            description: "Customers with their current country, RFM segment and scores, highest \
                      monetary value first (the marketing export; the service keeps only \
                      customers who consent to marketing)",
            params: &[
                ParamDef {
                    name: "segment",
                    kind: ParamKind::Text,
                    default: None,
                    required: false,
                    description: "only this segment",
                },
                COUNTRY,
            ],
            columns: &[
                col("customer_id", Text),
                col("country_name", Text),
                col("segment", Text),
                col("recency_days", Int),
                col("frequency", Int),
                col("monetary", Money),
                col("last_purchase_date", Date),
            ],
            build: marketing_audience,
        },
        QueryDef {
            name: "cohort_retention",
            description: "Monthly cohorts by first purchase and the share active in each later month",
            params: &[
                ParamDef {
                    name: "from_cohort",
                    kind: ParamKind::Month,
                    default: None,
                    required: false,
                    description: "first cohort month included",
                },
                ParamDef {
                    name: "to_cohort",
                    kind: ParamKind::Month,
                    default: None,
                    required: false,
                    description: "last cohort month included",
                },
            ],
            columns: &[
                col("cohort_month", Text),
                col("month_offset", Int),
                col("activity_month", Text),
                col("cohort_size", Int),
                col("active_customers", Int),
                col("retention", Float),
            ],
            build: cohorts,
        },
        QueryDef {
            name: "geography",
            description: "Revenue, orders, units and distinct customers per country over a period",
            params: &[FROM, TO],
            columns: &[
                col("country_name", Text),
                opt("country_code", Text),
                col("region", Text),
                col("gross_revenue", Money),
                col("returns_amount", Money),
                col("net_revenue", Money),
                col("orders", Int),
                col("units", Int),
                col("customers", Int),
            ],
            build: geography,
        },
        QueryDef {
            name: "customer_profile",
            description: "A customer's current country, history versions, and RFM scores",
            params: &[CUSTOMER_ID],
            columns: &[
                col("customer_id", Text),
                col("current_country", Text),
                col("versions", Int),
                col("first_seen", Timestamp),
                opt("last_purchase_date", Date),
                opt("recency_days", Int),
                opt("frequency", Int),
                opt("monetary", Money),
                opt("r_score", Int),
                opt("f_score", Int),
                opt("m_score", Int),
                opt("segment", Text),
            ],
            build: customer_profile,
        },
        QueryDef {
            name: "customer_history",
            description: "A customer's invoices, newest first",
            params: &[CUSTOMER_ID, FROM, TO, LIMIT_100],
            columns: &[
                col("invoice", Text),
                col("invoice_date", Timestamp),
                col("country_name", Text),
                col("is_cancellation", Bool),
                col("lines", Int),
                col("units", Int),
                col("amount", Money),
            ],
            build: customer_history,
        },
        QueryDef {
            name: "sales_lines",
            description: "Sales lines, newest (or oldest) first, filtered and paged with a cursor",
            params: &[
                FROM,
                TO,
                COUNTRY,
                CUSTOMER_FILTER,
                STOCK_CODE_FILTER,
                INVOICE_FILTER,
                ParamDef {
                    name: "order",
                    kind: ParamKind::Choice(&["desc", "asc"]),
                    default: Some("desc"),
                    required: false,
                    description: "by invoice date, newest first (desc) or oldest first (asc)",
                },
                LIMIT_100,
                ParamDef {
                    name: "cursor",
                    kind: ParamKind::Cursor,
                    default: None,
                    required: false,
                    description: "continue after this row: the next_cursor of the previous page",
                },
            ],
            columns: SALES_LINE_COLUMNS,
            build: sales_lines,
        },
        QueryDef {
            name: "sales_export",
            description: "Every sales line of a selection, oldest first, in one pass (exports \
                          stream it; use sales_lines for pages)",
            params: &[
                FROM,
                TO,
                COUNTRY,
                CUSTOMER_FILTER,
                STOCK_CODE_FILTER,
                INVOICE_FILTER,
            ],
            columns: SALES_LINE_COLUMNS,
            build: sales_export,
        },
        QueryDef {
            name: "sales_count",
            description: "How many sales lines a selection holds (the sales_lines filters)",
            params: &[
                FROM,
                TO,
                COUNTRY,
                CUSTOMER_FILTER,
                STOCK_CODE_FILTER,
                INVOICE_FILTER,
            ],
            columns: &[col("lines", Int)],
            build: sales_count,
        },
        QueryDef {
            name: "product_profile",
            description: "A product's description, line type and first and last sale dates",
            params: &[STOCK_CODE],
            columns: &[
                col("stock_code", Text),
                opt("description", Text),
                col("line_type", Text),
                opt("first_sale_date", Date),
                opt("last_sale_date", Date),
            ],
            build: product_profile,
        },
        QueryDef {
            name: "product_history",
            description: "A product's revenue, units, orders and return rate per month",
            params: &[STOCK_CODE],
            columns: &[
                col("month", Text),
                col("net_revenue", Money),
                col("units_sold", Int),
                col("units_returned", Int),
                col("orders", Int),
                opt("return_rate", Float),
            ],
            build: product_history,
        },
    ]
};

/// Looks queries up by name.
#[derive(Debug, Clone, Copy, Default)]
pub struct Catalogue;

impl Catalogue {
    /// Every query.
    pub fn queries() -> &'static [QueryDef] {
        QUERIES
    }

    /// The query called `name`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownQuery`] listing the known names.
    pub fn get(name: &str) -> Result<&'static QueryDef> {
        QUERIES
            .iter()
            .find(|q| q.name == name)
            .ok_or_else(|| Error::UnknownQuery {
                name: name.to_owned(),
                known: QUERIES
                    .iter()
                    .map(|q| q.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, raw: &[(&str, &str)]) -> Result<Params> {
        Params::parse(Catalogue::get(name)?, raw.iter().copied())
    }

    #[test]
    fn parameters_are_checked_by_kind_and_defaults_apply() {
        let params = parse("top_products", &[("from", "2011-01-01")]).unwrap();
        assert_eq!(params.int("limit"), Some(10));
        assert_eq!(params.choice("by"), Some("revenue"));
        for (raw, wanted) in [
            (("from", "2011-02-30"), "not a real date"),
            (("limit", "0"), "from 1 to 100"),
            (("limit", "ten"), "from 1 to 100"),
            (("by", "price"), "one of revenue, units, orders"),
            (("colour", "red"), "unknown parameter \"colour\""),
            (("country", ""), "between 1 and 200"),
        ] {
            let error = parse("top_products", &[raw]).unwrap_err().to_string();
            assert!(error.contains(wanted), "{raw:?}: {error}");
        }
        let error = parse("customer_history", &[]).unwrap_err().to_string();
        assert!(error.contains("\"customer_id\" is required"), "{error}");
        // A reversed range is empty, not refused.
        assert!(
            parse(
                "sales_summary",
                &[("from", "2011-05-01"), ("to", "2011-04-01")]
            )
            .is_ok()
        );
        let error = parse("cohort_retention", &[("from_cohort", "2011-13")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a month"), "{error}");
        assert!(matches!(
            Catalogue::get("nope"),
            Err(Error::UnknownQuery { .. })
        ));
    }

    /// What a client reading the OpenAPI document would conclude: whether `schema`'s pattern
    /// and lengths accept a text.
    fn schema_check(schema: &serde_json::Value) -> impl Fn(&str) -> bool + use<> {
        let min = schema["minLength"].as_u64().unwrap_or(0) as usize;
        let max = schema["maxLength"]
            .as_u64()
            .map_or(usize::MAX, |n| n as usize);
        let pattern = schema["pattern"].as_str().expect("a pattern");
        let regex = regex::Regex::new(pattern).expect("the pattern compiles");
        move |text| (min..=max).contains(&text.chars().count()) && regex.is_match(text)
    }

    #[test]
    fn each_kinds_schema_accepts_exactly_the_values_the_parser_accepts() {
        let def = |kind| ParamDef {
            name: "p",
            kind,
            default: None,
            required: false,
            description: "",
        };
        let mut dates = Vec::new();
        let mut day = NaiveDate::from_ymd_opt(1895, 1, 1).unwrap();
        while day.year() <= 2105 {
            dates.push(day.format("%Y-%m-%d").to_string());
            day = day.succ_opt().unwrap();
        }
        for impossible in [
            "1900-02-29",
            "2100-02-29",
            "2011-02-30",
            "2011-04-31",
            "2011-00-10",
            "2011-13-01",
            "2011-01-00",
            "2011-01-32",
            "+2011-01-01",
            " 2011-01-01",
            "2011-1-01",
            "0000-01-01",
            "9999-12-31",
            "",
        ] {
            dates.push(impossible.to_owned());
        }
        let kinds = [
            (ParamKind::Date, dates.clone()),
            (
                ParamKind::Month,
                dates
                    .iter()
                    .map(|d| d.get(..7).unwrap_or(d).to_owned())
                    .collect(),
            ),
            (
                ParamKind::Cursor,
                dates
                    .iter()
                    .flat_map(|d| {
                        [
                            "00:00:00", "23:59:59", "24:00:00", "12:60:00", "12:00:60", "1:00:00",
                        ]
                        .map(|t| format!("{d}T{t}~{}", "aB".repeat(16)))
                    })
                    .chain(["2011-01-01T00:00:00~abc".to_owned(), "x~y".to_owned()])
                    .collect(),
            ),
            (
                ParamKind::Text,
                [
                    "United Kingdom",
                    " EIRE ",
                    "",
                    " ",
                    "\u{3000}",
                    "\u{a0}x",
                    "a\tb",
                    "\u{7f}",
                    "\u{85}",
                    "\u{9f}",
                    "\u{feff}",
                    "C536379",
                    "\u{1680}\u{2028}",
                    "é",
                ]
                .into_iter()
                .map(str::to_owned)
                .chain([
                    "x".repeat(200),
                    "x".repeat(201),
                    format!(" {}", "x".repeat(199)),
                ])
                .chain((0..=0x3000u32).filter_map(char::from_u32).map(String::from))
                .collect(),
            ),
        ];
        for (kind, values) in kinds {
            let accepts = schema_check(&kind.json_schema());
            for value in values {
                assert_eq!(
                    accepts(&value),
                    parse_value(&def(kind), &value).is_ok(),
                    "{kind}: {value:?}"
                );
            }
        }
    }

    #[test]
    fn dates_months_and_cursors_outside_four_digit_years_1900_to_2100_are_refused() {
        for from in [
            "+262142-12-15",
            "-0001-01-01",
            "+2011-01-01",
            "10000-01-01",
            "1899-12-31",
            "2101-01-01",
            "2011-1-01",
            "2011-01-1",
            "20110101",
            "2011-01-01T00:00:00",
            "２０１１-01-01",
        ] {
            let error = parse("top_products", &[("from", from)])
                .unwrap_err()
                .to_string();
            assert!(error.contains("not a real date"), "{from}: {error}");
        }
        for month in ["+262142-12", "1899-12", "2101-01", "2011-1", "211-01"] {
            let error = parse("cohort_retention", &[("from_cohort", month)])
                .unwrap_err()
                .to_string();
            assert!(error.contains("not a month"), "{month}: {error}");
        }
        assert!(
            parse(
                "top_products",
                &[("from", "1900-01-01"), ("to", "2100-12-31")]
            )
            .is_ok()
        );
        let id = "0123456789abcdef0123456789abcdef";
        for at in [
            "+262142-12-15T00:00:00",
            "1899-12-31T23:59:59",
            "2011-01-01T1:00:00",
            "2011-01-01 10:00:00",
        ] {
            let cursor = format!("{at}~{id}");
            let error = parse("sales_lines", &[("cursor", cursor.as_str())])
                .unwrap_err()
                .to_string();
            assert!(error.contains("not a cursor"), "{at}: {error}");
        }
        let cursor = format!("2011-01-01T10:00:00~{id}");
        assert!(parse("sales_lines", &[("cursor", cursor.as_str())]).is_ok());
    }

    #[test]
    fn top_products_reads_whole_months_from_the_view_and_the_rest_from_the_facts() {
        let day = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
        assert_eq!(
            whole_months(day("2011-01-15"), day("2011-04-10")),
            Some((day("2011-02-01"), day("2011-04-01")))
        );
        assert_eq!(
            whole_months(day("2011-01-01"), day("2011-03-31")),
            Some((day("2011-01-01"), day("2011-04-01")))
        );
        assert_eq!(whole_months(day("2011-01-02"), day("2011-01-30")), None);
        assert_eq!(whole_months(None, None), Some((None, None)));
        let params = parse(
            "top_products",
            &[("from", "2011-01-15"), ("to", "2011-04-10")],
        )
        .unwrap();
        let sql = Catalogue::get("top_products")
            .unwrap()
            .statement(&params)
            .sql;
        assert_eq!(sql.matches("UNION ALL").count(), 2, "{sql}");
        let params = parse("top_products", &[]).unwrap();
        let sql = Catalogue::get("top_products")
            .unwrap()
            .statement(&params)
            .sql;
        assert!(!sql.contains("fact_sales"), "{sql}");
    }

    #[test]
    fn values_are_bound_never_pasted_into_sql() {
        let hostile = "United Kingdom' OR '1'='1";
        let params = parse(
            "sales_summary",
            &[("country", hostile), ("from", "2011-01-01")],
        )
        .unwrap();
        let statement = Catalogue::get("sales_summary").unwrap().statement(&params);
        assert!(!statement.sql.contains(hostile));
        assert!(statement.sql.contains("$2") && statement.sql.contains("$4"));
        assert_eq!(statement.args[0], Arg::Int(20_110_101));
        assert_eq!(statement.args[1], Arg::Text(hostile.to_owned()));
        assert_eq!(statement.args.len(), 4);
    }

    #[test]
    fn every_query_orders_its_rows_or_returns_one() {
        for query in QUERIES {
            let params = Params::default()
                .with("customer_id", ParamValue::Text("1".into()))
                .with("stock_code", ParamValue::Text("1".into()));
            let sql = query.statement(&params).sql;
            let single_row = [
                "sales_summary",
                "sales_count",
                "customer_profile",
                "product_profile",
            ];
            // sales_lines orders by its cursor columns.
            assert!(
                sql.contains("ORDER BY") || single_row.contains(&query.name),
                "{} has no ORDER BY",
                query.name
            );
        }
    }
}
