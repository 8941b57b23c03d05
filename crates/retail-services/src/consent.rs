//! Consent per customer and purpose, with its whole history (ADR 0014).
//!
//! Every choice is appended to the metadata store's consent log; the current state of a
//! purpose is the latest choice, or the purpose's default when the customer never made one:
//! purposes listed in `privacy.opt_in` need a recorded grant (opt-in), the others hold until
//! withdrawn (opt-out). The same answer serves the API, the customer's export, the assets that
//! profile customers (through the [`ConsentRegister`] port) and the services that read what
//! they wrote, so a withdrawal takes effect in every answer at once and in the tables at the
//! next run of the asset.

use std::collections::BTreeSet;

use async_trait::async_trait;
use retail_domain::ports::{BoxFuture, ConsentRegister, PortError};
use retail_domain::privacy::{ConsentView, Purpose};
use retail_metadata::{ConsentRecord, MetadataStore};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::error::Result;

/// The longest `source` a caller may give.
pub const MAX_SOURCE_CHARS: usize = 100;

/// One choice to record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentChoice {
    /// The purpose: `analytics`, `marketing` or `profiling`.
    #[schema(value_type = String, pattern = "^(analytics|marketing|profiling)$")]
    pub purpose: Purpose,
    /// `true` to grant, `false` to withdraw.
    pub granted: bool,
    /// Where the customer made the choice (`web-form`, `store`); `api` when not given.
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000-\u001f\u007f]{0,100}$")]
    pub source: Option<String>,
}

/// A purpose's state for one customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PurposeConsent {
    /// The purpose: `analytics`, `marketing` or `profiling`.
    #[schema(value_type = String)]
    pub purpose: Purpose,
    /// Whether the customer's data may be used for it now.
    pub granted: bool,
    /// `recorded` (the customer's latest choice) or `default` (no choice recorded: opt-out
    /// purposes hold, opt-in purposes do not).
    pub basis: String,
    /// When the latest choice was recorded (RFC 3339); absent by default.
    pub since: Option<String>,
}

/// One recorded choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConsentEvent {
    /// The purpose.
    pub purpose: String,
    /// Granted or withdrawn.
    pub granted: bool,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Who recorded it.
    pub recorded_by: String,
    /// Where the choice was made.
    pub source: String,
}

/// A customer's consent: each purpose's state and every choice, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CustomerConsent {
    /// The customer (normalised).
    pub customer_id: String,
    /// Each purpose, in order.
    pub purposes: Vec<PurposeConsent>,
    /// Every choice, oldest first.
    pub history: Vec<ConsentEvent>,
}

/// Consent: record choices, read a customer's, tell processing whom it may use.
#[async_trait]
pub trait ConsentService: Send + Sync {
    /// Records `customer`'s choice (by `actor`) and answers their consent after it.
    async fn record(
        &self,
        customer: &str,
        choice: &ConsentChoice,
        actor: &str,
    ) -> Result<CustomerConsent>;

    /// A customer's consent.
    async fn consent(&self, customer: &str) -> Result<CustomerConsent>;

    /// Who may be processed for `purpose` now.
    async fn view(&self, purpose: Purpose) -> Result<ConsentView>;

    /// Removes a customer's choices (the GDPR erasure); returns how many.
    async fn erase(&self, customer: &str) -> Result<u64>;
}

/// [`ConsentService`] over the metadata store's consent log.
#[derive(Debug, Clone)]
pub struct Consents {
    store: Arc<dyn MetadataStore>,
    opt_in: BTreeSet<Purpose>,
}

impl Consents {
    /// The consent log of `store`; purposes in `opt_in` need a recorded grant.
    pub fn new(store: Arc<dyn MetadataStore>, opt_in: impl IntoIterator<Item = Purpose>) -> Self {
        Self {
            store,
            opt_in: opt_in.into_iter().collect(),
        }
    }

    fn granted_by_default(&self, purpose: Purpose) -> bool {
        !self.opt_in.contains(&purpose)
    }

    fn answer(&self, customer_id: String, history: Vec<ConsentRecord>) -> CustomerConsent {
        let purposes = Purpose::ALL
            .into_iter()
            .map(|purpose| {
                match history
                    .iter()
                    .rev()
                    .find(|record| record.purpose == purpose.as_str())
                {
                    Some(latest) => PurposeConsent {
                        purpose,
                        granted: latest.granted,
                        basis: "recorded".to_owned(),
                        since: Some(retail_domain::audit::timestamp(latest.at)),
                    },
                    None => PurposeConsent {
                        purpose,
                        granted: self.granted_by_default(purpose),
                        basis: "default".to_owned(),
                        since: None,
                    },
                }
            })
            .collect();
        CustomerConsent {
            customer_id,
            purposes,
            history: history
                .into_iter()
                .map(|record| ConsentEvent {
                    purpose: record.purpose,
                    granted: record.granted,
                    at: retail_domain::audit::timestamp(record.at),
                    recorded_by: record.recorded_by,
                    source: record.source,
                })
                .collect(),
        }
    }
}

/// Checks a choice's source: blank means `api`; otherwise at most [`MAX_SOURCE_CHARS`]
/// characters without control characters.
fn source(choice: &ConsentChoice) -> Result<String> {
    let source = choice.source.as_deref().map_or("", str::trim);
    if source.is_empty() {
        return Ok("api".to_owned());
    }
    if retail_domain::field::breaks_text_rule(source, MAX_SOURCE_CHARS) {
        return Err(crate::Error::invalid(format!(
            "source must be at most {MAX_SOURCE_CHARS} characters without control characters"
        )));
    }
    Ok(source.to_owned())
}

#[async_trait]
impl ConsentService for Consents {
    async fn record(
        &self,
        customer: &str,
        choice: &ConsentChoice,
        actor: &str,
    ) -> Result<CustomerConsent> {
        let customer = crate::gdpr::customer_id(customer)?;
        let record = ConsentRecord {
            customer_id: customer.clone(),
            purpose: choice.purpose.as_str().to_owned(),
            granted: choice.granted,
            // Whole seconds, as the log keeps them.
            at: chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0)
                .unwrap_or_default(),
            recorded_by: actor.to_owned(),
            source: source(choice)?,
        };
        self.store.append_consent(&record).await?;
        tracing::info!(purpose = %choice.purpose, granted = choice.granted, "consent recorded");
        self.consent(&customer).await
    }

    async fn consent(&self, customer: &str) -> Result<CustomerConsent> {
        let customer = crate::gdpr::customer_id(customer)?;
        let history = self.store.consent_history(&customer).await?;
        Ok(self.answer(customer, history))
    }

    async fn view(&self, purpose: Purpose) -> Result<ConsentView> {
        let granted_by_default = self.granted_by_default(purpose);
        let exceptions = self
            .store
            .latest_consents(purpose.as_str())
            .await?
            .into_iter()
            .filter(|(_, granted)| *granted != granted_by_default)
            .map(|(customer, _)| customer)
            .collect();
        Ok(ConsentView {
            granted_by_default,
            exceptions,
        })
    }

    async fn erase(&self, customer: &str) -> Result<u64> {
        let customer = crate::gdpr::customer_id(customer)?;
        Ok(self.store.erase_consent(&customer).await?)
    }
}

impl ConsentRegister for Consents {
    fn view(&self, purpose: Purpose) -> BoxFuture<'_, std::result::Result<ConsentView, PortError>> {
        Box::pin(async move {
            ConsentService::view(self, purpose)
                .await
                .map_err(PortError::new)
        })
    }
}

/// Who may be profiled now: `register`'s answer, or everyone without one.
pub(crate) async fn profiling(register: Option<&Arc<dyn ConsentRegister>>) -> Result<ConsentView> {
    match register {
        Some(register) => register
            .view(Purpose::Profiling)
            .await
            .map_err(crate::Error::from_classified),
        None => Ok(ConsentView::everyone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retail_domain::error::{Classify as _, ErrorKind};
    use retail_metadata::SqliteStore;

    fn choice(purpose: Purpose, granted: bool) -> ConsentChoice {
        ConsentChoice {
            purpose,
            granted,
            source: Some("web-form".to_owned()),
        }
    }

    #[tokio::test]
    async fn the_latest_choice_or_the_purposes_default_decides() {
        let store: Arc<dyn MetadataStore> = Arc::new(SqliteStore::in_memory().unwrap());
        let consents = Consents::new(Arc::clone(&store), [Purpose::Marketing]);
        let fresh = consents.consent("17850.0").await.unwrap();
        assert_eq!(fresh.customer_id, "17850");
        let states: Vec<_> = fresh
            .purposes
            .iter()
            .map(|p| (p.purpose, p.granted, p.basis.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                (Purpose::Analytics, true, "default"),
                (Purpose::Marketing, false, "default"),
                (Purpose::Profiling, true, "default"),
            ]
        );
        consents
            .record("17850", &choice(Purpose::Profiling, false), "user:dpo")
            .await
            .unwrap();
        consents
            .record("17850", &choice(Purpose::Marketing, true), "user:dpo")
            .await
            .unwrap();
        let after = consents
            .record("12346", &choice(Purpose::Marketing, true), "user:dpo")
            .await
            .unwrap();
        assert_eq!(after.history.len(), 1);
        let of_17850 = consents.consent("17850").await.unwrap();
        assert_eq!(of_17850.history.len(), 2);
        assert_eq!(of_17850.history[0].purpose, "profiling");
        assert_eq!(of_17850.history[0].recorded_by, "user:dpo");
        assert!(!of_17850.purposes[2].granted);
        assert_eq!(of_17850.purposes[2].basis, "recorded");

        let profiling = ConsentService::view(&consents, Purpose::Profiling)
            .await
            .unwrap();
        assert!(!profiling.allows("17850") && profiling.allows("12347"));
        let marketing = ConsentService::view(&consents, Purpose::Marketing)
            .await
            .unwrap();
        assert!(marketing.allows("17850") && marketing.allows("12346"));
        assert!(!marketing.allows("12347"), "marketing is opt-in");

        // Withdrawn again: the latest choice counts.
        consents
            .record("17850", &choice(Purpose::Marketing, false), "user:dpo")
            .await
            .unwrap();
        let marketing = ConsentRegister::view(&consents, Purpose::Marketing)
            .await
            .unwrap();
        assert!(!marketing.allows("17850"));

        assert_eq!(consents.erase("17850").await.unwrap(), 3);
        assert!(consents.consent("17850").await.unwrap().history.is_empty());
    }

    #[tokio::test]
    async fn bad_choices_are_refused_and_change_nothing() {
        let store: Arc<dyn MetadataStore> = Arc::new(SqliteStore::in_memory().unwrap());
        let consents = Consents::new(Arc::clone(&store), []);
        let mut long = choice(Purpose::Analytics, true);
        long.source = Some("x".repeat(MAX_SOURCE_CHARS + 1));
        let error = consents.record("17850", &long, "user:a").await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        let error = consents
            .record(" ", &choice(Purpose::Analytics, true), "user:a")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Unprocessable);
        assert!(store.consent_history("17850").await.unwrap().is_empty());
        let blank_source = ConsentChoice {
            source: Some("  ".to_owned()),
            ..choice(Purpose::Analytics, false)
        };
        let answer = consents
            .record("17850", &blank_source, "user:a")
            .await
            .unwrap();
        assert_eq!(answer.history[0].source, "api");
    }
}
