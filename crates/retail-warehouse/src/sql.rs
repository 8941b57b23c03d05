//! SQL shared by both backends: the summary views over the star schema.
//!
//! Each view is one `SELECT` that PostgreSQL and DataFusion both accept. PostgreSQL holds them
//! as materialized views refreshed after each load; the embedded warehouse computes them once
//! per gold version and keeps the result in memory. The catalogue queries them by these names
//! on both backends.

/// A summary view: its name and its defining query.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    /// Relation name on both backends.
    pub(crate) name: &'static str,
    /// The defining `SELECT`.
    pub(crate) query: &'static str,
    /// Columns that identify a row (the unique index a concurrent refresh needs).
    pub(crate) key: &'static [&'static str],
}

/// Sales per day and country, from the facts (the warehouse's own recomputation of
/// `daily_sales`, which the conformance tests compare with gold).
pub(crate) const SALES_DAILY_COUNTRY: View = View {
    name: "sales_daily_country",
    query: "SELECT f.date_key, c.country_name, c.region,
       SUM(CASE WHEN f.quantity > 0 THEN f.total_amount ELSE 0 END) AS gross_revenue,
       -SUM(CASE WHEN f.quantity < 0 THEN f.total_amount ELSE 0 END) AS returns_amount,
       SUM(f.total_amount) AS net_revenue,
       COUNT(DISTINCT CASE WHEN f.quantity > 0 AND NOT f.is_cancellation THEN f.invoice END)
           AS orders,
       CAST(SUM(CASE WHEN f.quantity > 0 THEN f.quantity ELSE 0 END) AS BIGINT) AS units,
       COUNT(*) AS lines
  FROM fact_sales f
  JOIN dim_country c ON c.country_key = f.country_key
 GROUP BY f.date_key, c.country_name, c.region",
    key: &["date_key", "country_name"],
};

/// Sales per calendar month and country; distinct orders and customers per month.
pub(crate) const SALES_MONTHLY_COUNTRY: View = View {
    name: "sales_monthly_country",
    query: "SELECT m.month, m.country_name, m.region,
       SUM(CASE WHEN m.quantity > 0 THEN m.total_amount ELSE 0 END) AS gross_revenue,
       -SUM(CASE WHEN m.quantity < 0 THEN m.total_amount ELSE 0 END) AS returns_amount,
       SUM(m.total_amount) AS net_revenue,
       COUNT(DISTINCT CASE WHEN m.quantity > 0 AND NOT m.is_cancellation THEN m.invoice END)
           AS orders,
       CAST(SUM(CASE WHEN m.quantity > 0 THEN m.quantity ELSE 0 END) AS BIGINT) AS units,
       COUNT(DISTINCT m.customer_id) AS customers,
       COUNT(*) AS lines
  FROM (SELECT CAST(date_trunc('month', f.invoice_date) AS DATE) AS month,
               c.country_name, c.region, f.quantity, f.total_amount, f.is_cancellation,
               f.invoice, d.customer_id
          FROM fact_sales f
          JOIN dim_country c ON c.country_key = f.country_key
          LEFT JOIN dim_customer d ON d.customer_key = f.customer_key AND f.customer_key <> 0) m
 GROUP BY m.month, m.country_name, m.region",
    key: &["month", "country_name"],
};

/// Which identified customers bought or returned on which day in which country: distinct
/// customers over any period are counted from this small relation instead of the facts.
pub(crate) const CUSTOMER_DAYS: View = View {
    name: "customer_days",
    query: "SELECT DISTINCT f.date_key, c.country_name, d.customer_id
  FROM fact_sales f
  JOIN dim_customer d ON d.customer_key = f.customer_key
  JOIN dim_country c ON c.country_key = f.country_key
 WHERE f.customer_key <> 0",
    key: &["date_key", "country_name", "customer_id"],
};

/// RFM recomputed from the facts by the contract's rules (NTILE(5), segments from R and F),
/// compared with `customer_rfm` by the conformance tests.
pub(crate) const CUSTOMER_RFM_LIVE: View = View {
    name: "customer_rfm_live",
    query: "SELECT s.customer_id, s.last_purchase_date, s.recency_days, s.frequency, s.monetary,
       s.r_score, s.f_score, s.m_score,
       CASE
         WHEN s.r_score <= 2 AND s.f_score <= 2 THEN 'Hibernating'
         WHEN s.r_score <= 2 AND s.f_score <= 4 THEN 'At Risk'
         WHEN s.r_score <= 2 THEN 'Can''t Lose Them'
         WHEN s.r_score = 3 AND s.f_score <= 2 THEN 'About to Sleep'
         WHEN s.r_score = 3 AND s.f_score = 3 THEN 'Need Attention'
         WHEN s.r_score <= 4 AND s.f_score >= 4 THEN 'Loyal Customers'
         WHEN s.r_score = 4 AND s.f_score = 1 THEN 'Promising'
         WHEN s.r_score = 5 AND s.f_score = 1 THEN 'New Customers'
         WHEN s.f_score <= 3 THEN 'Potential Loyalists'
         ELSE 'Champions'
       END AS segment
  FROM (SELECT b.customer_id, b.last_purchase_date, b.recency_days, b.frequency, b.monetary,
               NTILE(5) OVER (ORDER BY b.recency_days DESC, b.customer_id) AS r_score,
               NTILE(5) OVER (ORDER BY b.frequency, b.customer_id) AS f_score,
               NTILE(5) OVER (ORDER BY b.monetary, b.customer_id) AS m_score
          FROM (SELECT p.customer_id, dd.date AS last_purchase_date,
                       r.reference_day - p.last_day AS recency_days,
                       p.frequency, p.monetary
                  FROM (SELECT d.customer_id,
                               MAX(CASE WHEN f.quantity > 0 THEN f.date_key END) AS last_key,
                               MAX(CASE WHEN f.quantity > 0 THEN
                                   CAST(EXTRACT(EPOCH FROM f.invoice_date) AS BIGINT) / 86400
                                   END) AS last_day,
                               COUNT(DISTINCT CASE WHEN f.quantity > 0 AND NOT f.is_cancellation
                                                   THEN f.invoice END) AS frequency,
                               SUM(f.total_amount) AS monetary
                          FROM fact_sales f
                          JOIN dim_customer d ON d.customer_key = f.customer_key
                         WHERE f.customer_key <> 0
                         GROUP BY d.customer_id) p
                  JOIN dim_date dd ON dd.date_key = p.last_key
                 CROSS JOIN (SELECT MAX(CAST(EXTRACT(EPOCH FROM invoice_date) AS BIGINT)
                                    / 86400) + 1 AS reference_day
                               FROM fact_sales) r
                 WHERE p.last_key IS NOT NULL) b) s",
    key: &["customer_id"],
};

/// Product sales per calendar month and country: top products over whole months read this
/// instead of the facts.
pub(crate) const PRODUCT_MONTHLY_COUNTRY: View = View {
    name: "product_monthly_country",
    query: "SELECT CAST(date_trunc('month', f.invoice_date) AS DATE) AS month, c.country_name,
       p.stock_code,
       SUM(f.total_amount) AS net_revenue,
       CAST(SUM(CASE WHEN f.quantity > 0 THEN f.quantity ELSE 0 END) AS BIGINT) AS units_sold,
       CAST(-SUM(CASE WHEN f.quantity < 0 THEN f.quantity ELSE 0 END) AS BIGINT) AS units_returned,
       COUNT(DISTINCT CASE WHEN f.quantity > 0 AND NOT f.is_cancellation THEN f.invoice END)
           AS orders
  FROM fact_sales f
  JOIN dim_product p ON p.product_key = f.product_key
  JOIN dim_country c ON c.country_key = f.country_key
 WHERE p.line_type = 'product'
 GROUP BY CAST(date_trunc('month', f.invoice_date) AS DATE), c.country_name, p.stock_code",
    key: &["month", "country_name", "stock_code"],
};

/// Every summary view, in dependency order (none depends on another).
pub(crate) const VIEWS: [View; 5] = [
    SALES_DAILY_COUNTRY,
    SALES_MONTHLY_COUNTRY,
    CUSTOMER_DAYS,
    CUSTOMER_RFM_LIVE,
    PRODUCT_MONTHLY_COUNTRY,
];
