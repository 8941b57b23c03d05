//! The marketing audience: the customers a campaign may address, with their segment. Only
//! customers whose consent to marketing holds are in it (ADR 0014); the rest of the catalogue
//! query's rows are left out and counted.

use std::sync::Arc;

use async_trait::async_trait;
use retail_domain::privacy::Purpose;
use retail_warehouse::{Cell, QueryResult};

use crate::analytics::{AnalyticsService, Answer, RawParams};
use crate::consent::ConsentService;
use crate::error::{Error, Result};

/// The catalogue query behind the audience.
pub const AUDIENCE_QUERY: &str = "marketing_audience";

/// The audience and what consent left out.
#[derive(Debug, Clone)]
pub struct Audience {
    /// The customers who may be addressed (the query's columns), highest monetary value first.
    pub answer: Answer,
    /// Customers the query selected whose consent to marketing does not hold.
    pub left_out: usize,
}

/// Marketing exports.
#[async_trait]
pub trait MarketingService: Send + Sync {
    /// The customers who consent to marketing, among those the `marketing_audience` filters
    /// (`segment`, `country`) select.
    async fn audience(&self, params: RawParams) -> Result<Audience>;
}

/// [`MarketingService`] over the catalogue and the consent log.
pub struct Marketing {
    analytics: Arc<dyn AnalyticsService>,
    consent: Arc<dyn ConsentService>,
}

impl std::fmt::Debug for Marketing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Marketing").finish_non_exhaustive()
    }
}

impl Marketing {
    /// The audience of `analytics`' warehouse, filtered by `consent`.
    pub fn new(analytics: Arc<dyn AnalyticsService>, consent: Arc<dyn ConsentService>) -> Self {
        Self { analytics, consent }
    }
}

#[async_trait]
impl MarketingService for Marketing {
    async fn audience(&self, params: RawParams) -> Result<Audience> {
        let consent = self.consent.view(Purpose::Marketing).await?;
        let mut answer = self.analytics.query(AUDIENCE_QUERY, params).await?;
        if answer.rows.rows.is_empty() {
            // An empty answer may carry no columns.
            return Ok(Audience {
                answer,
                left_out: 0,
            });
        }
        let column = answer
            .rows
            .columns
            .iter()
            .position(|name| name == "customer_id")
            .ok_or_else(|| {
                Error::new(
                    retail_domain::error::ErrorKind::Internal,
                    "the marketing audience has no customer_id column",
                )
            })?;
        let rows: Vec<Vec<Cell>> = answer
            .rows
            .rows
            .iter()
            .filter(|row| matches!(&row[column], Cell::Text(id) if consent.allows(id)))
            .cloned()
            .collect();
        let left_out = answer.rows.rows.len() - rows.len();
        answer.rows = Arc::new(QueryResult {
            columns: answer.rows.columns.clone(),
            rows,
        });
        Ok(Audience { answer, left_out })
    }
}
