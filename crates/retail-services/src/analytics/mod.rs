//! Analytics: the warehouse's query catalogue served to callers, behind a circuit breaker and
//! a cache (both layers around the warehouse), with the data version every answer reflects.

mod breaker;
mod cache;
mod export;

use std::sync::Arc;

use async_trait::async_trait;
use retail_domain::privacy::Masker;
use retail_warehouse::{Backend, Catalogue, Cell, Params, QueryResult, Warehouse};

pub use breaker::{BreakerWarehouse, CircuitBreaker, CircuitState};
pub use cache::{CacheOutcome, Cached, CachedWarehouse};
pub use export::{EXPORT_PAGE, Export, ExportFormat, ExportLimits, csv_page};

use export::ExportSlots;

use crate::error::{Error, Result};

/// Raw `name=value` parameters, as a caller sent them.
pub type RawParams = Vec<(String, String)>;

/// The answer to a catalogue query.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The catalogue query that answered.
    pub query: &'static str,
    /// Which backend answered.
    pub backend: Backend,
    /// Changes whenever the data served changes.
    pub data_version: String,
    /// The rows (money exact).
    pub rows: Arc<QueryResult>,
    /// Which cache tier answered, if any.
    pub cache: CacheOutcome,
}

/// A page of sales lines.
#[derive(Debug, Clone)]
pub struct SalesPage {
    /// The lines.
    pub rows: QueryResult,
    /// The cursor of the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A customer: one row of profile and the newest invoices.
#[derive(Debug, Clone)]
pub struct CustomerRows {
    /// Current country, versions, RFM scores and segment (one row).
    pub profile: QueryResult,
    /// The 20 newest invoices.
    pub invoices: QueryResult,
}

/// A product: one row of profile and its months.
#[derive(Debug, Clone)]
pub struct ProductRows {
    /// Description, line type, first and last sale dates (one row).
    pub profile: QueryResult,
    /// Revenue, units, orders and return rate per month.
    pub months: QueryResult,
}

/// What callers ask of the warehouse.
#[async_trait]
pub trait AnalyticsService: Send + Sync {
    /// Runs catalogue query `name` with raw parameters, from the cache when it can.
    async fn query(&self, name: &str, params: RawParams) -> Result<Answer>;

    /// A page of sales lines (the `sales_lines` filters, `limit` and `cursor`). Unless
    /// `customers` is [`CustomerDetail::Ids`], the `customer_id` filter is refused and the
    /// column comes back as `customers` says (pseudonyms or empty).
    async fn sales(&self, params: RawParams, customers: &CustomerDetail) -> Result<SalesPage>;

    /// A customer's profile and newest invoices.
    async fn customer(&self, customer_id: &str) -> Result<CustomerRows>;

    /// A product's profile and months.
    async fn product(&self, stock_code: &str) -> Result<ProductRows>;

    /// An invoice's lines, in order.
    async fn invoice(&self, invoice: &str) -> Result<QueryResult>;

    /// The sales lines that `filters` select, streamed in `format` in one pass over one
    /// snapshot (the filters and the selection's size are checked before the stream starts;
    /// `caller` runs at most a few exports at once); `customers` as for
    /// [`AnalyticsService::sales`].
    async fn export(
        &self,
        filters: RawParams,
        format: &str,
        customers: &CustomerDetail,
        caller: &str,
    ) -> Result<Export>;
}

/// The analytics service over a warehouse layered with a breaker and a cache.
#[derive(Debug)]
pub struct Analytics {
    /// Breaker, then cache: what the catalogue endpoints read.
    cached: Arc<CachedWarehouse>,
    /// Breaker only: entity lookups, pages and exports (each answer is its own).
    guarded: Arc<dyn Warehouse>,
    /// The exports running now.
    exports: ExportSlots,
}

impl Analytics {
    /// Serves `cached` (the cache layer) and `guarded` (the breaker layer it wraps); exports
    /// within `limits`.
    pub fn new(
        cached: Arc<CachedWarehouse>,
        guarded: Arc<dyn Warehouse>,
        limits: ExportLimits,
    ) -> Self {
        Self {
            cached,
            guarded,
            exports: ExportSlots::new(limits),
        }
    }

    async fn rows(&self, name: &str, raw: &[(&str, &str)]) -> Result<QueryResult> {
        let query = Catalogue::get(name)?;
        let params = Params::parse(query, raw.iter().copied())?;
        Ok(self.guarded.query(query, &params).await?)
    }
}

/// The cursor after the last row of a full page of `sales_lines`.
pub(crate) fn next_cursor(result: &QueryResult, limit: usize) -> Option<String> {
    if result.rows.len() < limit {
        return None;
    }
    let last = result.rows.len() - 1;
    let at = match result.get(last, "invoice_date")? {
        Cell::Timestamp(at) => at.format("%Y-%m-%dT%H:%M:%S").to_string(),
        _ => return None,
    };
    Some(format!("{at}~{}", result.get(last, "transaction_id")?))
}

fn pairs(raw: &RawParams) -> Vec<(&str, &str)> {
    raw.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[async_trait]
impl AnalyticsService for Analytics {
    async fn query(&self, name: &str, params: RawParams) -> Result<Answer> {
        let query = Catalogue::get(name)?;
        let checked = Params::parse(query, pairs(&params))?;
        let cached = self.cached.lookup(query, &checked).await?;
        Ok(Answer {
            query: query.name,
            backend: self.cached.backend(),
            data_version: cached.data_version,
            rows: cached.rows,
            cache: cached.outcome,
        })
    }

    async fn sales(&self, params: RawParams, customers: &CustomerDetail) -> Result<SalesPage> {
        refuse_customer_filter(&params, customers)?;
        let query = Catalogue::get("sales_lines")?;
        let checked = Params::parse(query, pairs(&params))?;
        let limit = params
            .iter()
            .find(|(k, _)| k == "limit")
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(100);
        let mut rows = self.guarded.query(query, &checked).await?;
        let next_cursor = next_cursor(&rows, limit);
        customers.apply(&mut rows);
        Ok(SalesPage { next_cursor, rows })
    }

    async fn customer(&self, customer_id: &str) -> Result<CustomerRows> {
        let profile = self
            .rows("customer_profile", &[("customer_id", customer_id)])
            .await?;
        if profile.rows.is_empty() {
            return Err(Error::not_found(format!("no customer {customer_id:?}")));
        }
        let invoices = self
            .rows(
                "customer_history",
                &[("customer_id", customer_id), ("limit", "20")],
            )
            .await?;
        Ok(CustomerRows { profile, invoices })
    }

    async fn product(&self, stock_code: &str) -> Result<ProductRows> {
        let profile = self
            .rows("product_profile", &[("stock_code", stock_code)])
            .await?;
        if profile.rows.is_empty() {
            return Err(Error::not_found(format!("no product {stock_code:?}")));
        }
        let months = self
            .rows("product_history", &[("stock_code", stock_code)])
            .await?;
        Ok(ProductRows { profile, months })
    }

    async fn invoice(&self, invoice: &str) -> Result<QueryResult> {
        let lines = self
            .rows(
                "sales_lines",
                &[("invoice", invoice), ("order", "asc"), ("limit", "1000")],
            )
            .await?;
        if lines.rows.is_empty() {
            return Err(Error::not_found(format!("no invoice {invoice:?}")));
        }
        Ok(lines)
    }

    async fn export(
        &self,
        filters: RawParams,
        format: &str,
        customers: &CustomerDetail,
        caller: &str,
    ) -> Result<Export> {
        refuse_customer_filter(&filters, customers)?;
        let format = ExportFormat::parse(format)?;
        let slot = self.exports.take(caller)?;
        export::export(
            Arc::clone(&self.guarded),
            filters,
            format,
            customers.clone(),
            self.exports.limits(),
            slot,
        )
        .await
    }
}

/// What a caller sees of the customers in sales lines and exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerDetail {
    /// Their ids: customer-level access (`read:data` on `/api/v1/customers/`).
    Ids,
    /// Their pseudonyms: a role that pseudonymises `customer_id` (ADR 0015); empty without
    /// the privacy key.
    Masked(Masker),
    /// Nothing: the column is empty.
    Hidden,
}

impl CustomerDetail {
    /// What a caller whose role pseudonymises as `masker` says, and who `may_read_customers`
    /// or not, sees: pseudonyms when the role masks `customer_id` (whatever else it may),
    /// else ids with customer-level access, else nothing.
    pub fn of(may_read_customers: bool, masker: &Masker) -> Self {
        if masker.masks(CUSTOMER_COLUMN) {
            Self::Masked(masker.clone())
        } else if may_read_customers {
            Self::Ids
        } else {
            Self::Hidden
        }
    }

    /// The `customer_id` column of `rows` as this caller sees it.
    pub fn apply(&self, rows: &mut QueryResult) {
        let Some(index) = rows.columns.iter().position(|c| c == CUSTOMER_COLUMN) else {
            return;
        };
        match self {
            Self::Ids => {}
            Self::Hidden => {
                for row in &mut rows.rows {
                    row[index] = Cell::Null;
                }
            }
            Self::Masked(masker) => {
                for row in &mut rows.rows {
                    row[index] = match &row[index] {
                        Cell::Text(id) => masker
                            .mask(CUSTOMER_COLUMN, id)
                            .map_or(Cell::Null, Cell::Text),
                        _ => Cell::Null,
                    };
                }
            }
        }
    }
}

/// The column that names a customer.
const CUSTOMER_COLUMN: &str = "customer_id";

/// A caller without customer-level detail may not select lines by customer (a caller who
/// sees pseudonyms may not name a customer either).
fn refuse_customer_filter(params: &RawParams, customers: &CustomerDetail) -> Result<()> {
    if *customers != CustomerDetail::Ids && params.iter().any(|(name, _)| name == CUSTOMER_COLUMN) {
        return Err(Error::forbidden(
            "filtering sales lines by customer needs customer-level access (read:data on \
             /api/v1/customers/) and a role that sees customer ids, not pseudonyms",
        ));
    }
    Ok(())
}
