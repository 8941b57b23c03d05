//! SQL shared by both backends: summary tables and views over the star schema.
//!
//! Each is one `SELECT` that PostgreSQL and DataFusion both accept, and the catalogue queries
//! them by the same names on both backends. The measures (what counts as a purchase, an order,
//! units sold) and the RFM segment rules come from the domain, written once
//! (`retail_domain::measure::sql`, `retail_domain::rfm::segment_sql`). Summary tables are
//! maintained slice by slice by each PostgreSQL load; views are materialized views refreshed
//! concurrently after it. The embedded warehouse computes both once per gold version and keeps
//! them in memory.

use retail_domain::measure::sql as measure;
use retail_domain::rfm;

/// How a summary table is split for incremental maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SliceBy {
    /// By `date_key` (one day of facts).
    Day,
    /// By calendar month of the invoice date.
    Month,
    /// By customer: every customer with a fact on a rewritten day is recomputed whole.
    Customer,
}

/// A summary table kept up to date slice by slice inside each load's transaction (in the
/// embedded warehouse: computed once per gold version). Its query has a `{filter}` marker where
/// a load appends the conditions that select the changed slices of `fact_sales` (alias `f`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    /// Relation name on both backends.
    pub(crate) name: &'static str,
    /// The defining `SELECT`, with `{filter}`.
    pub(crate) query: fn() -> String,
    /// Columns that identify a row.
    pub(crate) key: &'static [&'static str],
    /// The slice a load rewrites.
    pub(crate) slice: SliceBy,
}

impl Summary {
    /// The query over all facts.
    pub(crate) fn full(&self) -> String {
        (self.query)().replace("{filter}", "")
    }

    /// The query over the facts that `filter` (starting with ` AND `) selects.
    pub(crate) fn sliced(&self, filter: &str) -> String {
        (self.query)().replace("{filter}", filter)
    }

    /// The defining query as stored (with its `{filter}` marker).
    pub(crate) fn text(&self) -> String {
        (self.query)()
    }
}

/// Which identified customers bought or returned on which day in which country: distinct
/// customers over any period are counted from this small relation instead of the facts.
pub(crate) const CUSTOMER_DAYS: Summary = Summary {
    name: "customer_days",
    query: || {
        "SELECT DISTINCT f.date_key, c.country_name, d.customer_id
  FROM fact_sales f
  JOIN dim_customer d ON d.customer_key = f.customer_key
  JOIN dim_country c ON c.country_key = f.country_key
 WHERE f.customer_key <> 0{filter}"
            .to_owned()
    },
    key: &["date_key", "country_name", "customer_id"],
    slice: SliceBy::Day,
};

/// Product sales per calendar month and country: top products over whole months read this
/// instead of the facts.
pub(crate) const PRODUCT_MONTHLY_COUNTRY: Summary = Summary {
    name: "product_monthly_country",
    query: || {
        format!(
            "SELECT CAST(date_trunc('month', f.invoice_date) AS DATE) AS month, c.country_name,
       p.stock_code,
       SUM(f.total_amount) AS net_revenue,
       CAST({units_sold} AS BIGINT) AS units_sold,
       CAST({units_returned} AS BIGINT) AS units_returned,
       {orders} AS orders
  FROM fact_sales f
  JOIN dim_product p ON p.product_key = f.product_key
  JOIN dim_country c ON c.country_key = f.country_key
 WHERE p.line_type = 'product'{{filter}}
 GROUP BY CAST(date_trunc('month', f.invoice_date) AS DATE), c.country_name, p.stock_code",
            units_sold = measure::units_sold("f"),
            units_returned = measure::units_returned("f"),
            orders = measure::orders("f"),
        )
    },
    key: &["month", "country_name", "stock_code"],
    slice: SliceBy::Month,
};

/// Each identified customer's whole history in one row: last purchase (a line with a positive
/// quantity) as date key and day number, frequency (distinct non-cancellation invoices with a
/// purchase line) and monetary value (all lines). RFM ranks these rows.
pub(crate) const CUSTOMER_ACTIVITY: Summary = Summary {
    name: "customer_activity",
    query: || {
        format!(
            "SELECT d.customer_id,
       MAX(CASE WHEN {purchase} THEN f.date_key END) AS last_key,
       MAX(CASE WHEN {purchase} THEN
           CAST(EXTRACT(EPOCH FROM f.invoice_date) AS BIGINT) / 86400 END) AS last_day,
       {orders} AS frequency,
       SUM(f.total_amount) AS monetary
  FROM fact_sales f
  JOIN dim_customer d ON d.customer_key = f.customer_key
 WHERE f.customer_key <> 0{{filter}}
 GROUP BY d.customer_id",
            purchase = measure::is_purchase("f"),
            orders = measure::orders("f"),
        )
    },
    key: &["customer_id"],
    slice: SliceBy::Customer,
};

/// Every summary table.
pub(crate) const SUMMARIES: [Summary; 3] =
    [CUSTOMER_DAYS, PRODUCT_MONTHLY_COUNTRY, CUSTOMER_ACTIVITY];

/// A summary view: its name and its defining query. PostgreSQL holds it as a materialized view
/// refreshed concurrently after each load; the embedded warehouse computes it once per gold
/// version.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    /// Relation name on both backends.
    pub(crate) name: &'static str,
    /// The defining `SELECT`.
    pub(crate) query: fn() -> String,
    /// Columns that identify a row (the unique index a concurrent refresh needs).
    pub(crate) key: &'static [&'static str],
}

/// Sales per day and country with the country's region (gold's `daily_sales`, ready to join).
pub(crate) const SALES_DAILY_COUNTRY: View = View {
    name: "sales_daily_country",
    query: || {
        "SELECT s.date_key, s.country_name, c.region, s.gross_revenue, s.returns_amount,
       s.net_revenue, s.orders, s.units, s.customers, s.lines
  FROM daily_sales s
  JOIN dim_country c ON c.country_name = s.country_name"
            .to_owned()
    },
    key: &["date_key", "country_name"],
};

/// Sales per calendar month and country, with distinct orders and customers per month. Orders
/// add up from days (an invoice falls on one day); customers are counted from `customer_days`.
pub(crate) const SALES_MONTHLY_COUNTRY: View = View {
    name: "sales_monthly_country",
    query: || {
        "SELECT t.month, t.country_name, t.region, t.gross_revenue, t.returns_amount,
       t.net_revenue, t.orders, t.units, COALESCE(k.customers, 0) AS customers, t.lines
  FROM (SELECT CAST(date_trunc('month', CAST(d.date AS TIMESTAMP)) AS DATE) AS month,
               s.country_name, s.region,
               SUM(s.gross_revenue) AS gross_revenue,
               SUM(s.returns_amount) AS returns_amount,
               SUM(s.net_revenue) AS net_revenue,
               CAST(SUM(s.orders) AS BIGINT) AS orders,
               CAST(SUM(s.units) AS BIGINT) AS units,
               CAST(SUM(s.lines) AS BIGINT) AS lines
          FROM sales_daily_country s
          JOIN dim_date d ON d.date_key = s.date_key
         GROUP BY CAST(date_trunc('month', CAST(d.date AS TIMESTAMP)) AS DATE), s.country_name,
                  s.region) t
  LEFT JOIN (SELECT CAST(date_trunc('month', CAST(d.date AS TIMESTAMP)) AS DATE) AS month,
                    k.country_name, COUNT(DISTINCT k.customer_id) AS customers
               FROM customer_days k
               JOIN dim_date d ON d.date_key = k.date_key
              GROUP BY CAST(date_trunc('month', CAST(d.date AS TIMESTAMP)) AS DATE),
                       k.country_name) k
    ON k.month = t.month AND k.country_name = t.country_name"
            .to_owned()
    },
    key: &["month", "country_name"],
};

/// RFM recomputed by the contract's rules (NTILE(5), segments from R and F) from
/// `customer_activity`; the reference date is the day after the last day of `dim_date` (the
/// newest invoice date). Compared with gold's `customer_rfm` by the conformance tests.
pub(crate) const CUSTOMER_RFM_LIVE: View = View {
    name: "customer_rfm_live",
    query: || {
        format!(
            "SELECT s.customer_id, s.last_purchase_date, s.recency_days, s.frequency, s.monetary,
       s.r_score, s.f_score, s.m_score,
       {segment} AS segment
  FROM (SELECT b.customer_id, b.last_purchase_date, b.recency_days, b.frequency, b.monetary,
               NTILE(5) OVER (ORDER BY b.recency_days DESC, b.customer_id) AS r_score,
               NTILE(5) OVER (ORDER BY b.frequency, b.customer_id) AS f_score,
               NTILE(5) OVER (ORDER BY b.monetary, b.customer_id) AS m_score
          FROM (SELECT p.customer_id, dd.date AS last_purchase_date,
                       r.reference_day - p.last_day AS recency_days,
                       p.frequency, p.monetary
                  FROM customer_activity p
                  JOIN dim_date dd ON dd.date_key = p.last_key
                 CROSS JOIN (SELECT CAST(EXTRACT(EPOCH FROM CAST(MAX(date) AS TIMESTAMP))
                                         AS BIGINT) / 86400 + 1 AS reference_day
                               FROM dim_date) r
                 WHERE p.last_key IS NOT NULL) b) s",
            segment = rfm::segment_sql("s.r_score", "s.f_score"),
        )
    },
    key: &["customer_id"],
};

/// Every summary view, in dependency order.
pub(crate) const VIEWS: [View; 3] = [
    SALES_DAILY_COUNTRY,
    SALES_MONTHLY_COUNTRY,
    CUSTOMER_RFM_LIVE,
];
