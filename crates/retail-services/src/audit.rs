//! The audit trail: who did what, when, from where and with what outcome, in a hash chain in
//! the metadata store that anyone can verify ([`retail_domain::audit`]).

use std::sync::Arc;

use async_trait::async_trait;
use retail_domain::audit::{AuditEntry, AuditEvent, ChainCheck, ChainVerifier, Outcome};
pub use retail_metadata::AuditFilter;
use retail_metadata::MetadataStore;

use crate::Result;

/// Entries read at once by a verification.
const VERIFY_PAGE: usize = 10_000;

/// Records and reads the audit trail.
#[async_trait]
pub trait AuditService: Send + Sync {
    /// Appends an event. A failure to record is logged as an error and counted
    /// (`retail_audit_failures_total`), never returned: the action it describes has happened.
    async fn record(&self, event: AuditEvent);

    /// Entries matching `filter`, in order of number.
    async fn entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;

    /// Checks the whole chain, page by page; with `expect_head` (a head a verification printed
    /// earlier, kept elsewhere) also that nothing up to it was rewritten. `progress` is told
    /// the entries checked so far after each page.
    async fn verify(
        &self,
        expect_head: Option<(i64, String)>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<ChainCheck>;
}

/// The audit trail in the metadata store.
#[derive(Debug, Clone)]
pub struct Audit {
    store: Arc<dyn MetadataStore>,
}

impl Audit {
    /// The trail of `store`.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl AuditService for Audit {
    async fn record(&self, event: AuditEvent) {
        if let Err(error) = self.store.append_audit(&event).await {
            retail_telemetry::metrics::record_audit_failure();
            tracing::error!(
                %error,
                actor = %event.actor,
                action = %event.action,
                target = %event.target,
                outcome = event.outcome.as_str(),
                "an audit event could not be recorded"
            );
        }
    }

    async fn entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        Ok(self.store.audit_entries(filter).await?)
    }

    async fn verify(
        &self,
        expect_head: Option<(i64, String)>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<ChainCheck> {
        let mut verifier = ChainVerifier::new(expect_head);
        let mut filter = AuditFilter {
            limit: VERIFY_PAGE,
            ..AuditFilter::default()
        };
        let mut read = 0;
        loop {
            let page = self.store.audit_entries_as_stored(&filter).await?;
            let Some(last) = page.last() else { break };
            filter.after_seq = last.seq;
            read += page.len() as u64;
            if !page.iter().all(|entry| verifier.push(entry)) {
                break;
            }
            progress(read);
            if page.len() < VERIFY_PAGE {
                break;
            }
        }
        Ok(verifier.finish())
    }
}

/// The actor of an authenticated caller: `key:<id>` for an API key, else `user:<name>`.
pub fn actor_of(subject: &str) -> String {
    if subject.starts_with("key:") {
        subject.to_owned()
    } else {
        format!("user:{subject}")
    }
}

/// An event with no detail.
pub fn event(
    actor: impl Into<String>,
    action: &str,
    target: impl Into<String>,
    source: impl Into<String>,
    outcome: Outcome,
) -> AuditEvent {
    AuditEvent {
        actor: actor.into(),
        action: action.to_owned(),
        target: target.into(),
        source: source.into(),
        outcome,
        detail: "{}".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verification_pages_through_the_chain_and_stops_at_the_first_problem() {
        let store: Arc<dyn MetadataStore> =
            Arc::new(retail_metadata::SqliteStore::in_memory().unwrap());
        let audit = Audit::new(Arc::clone(&store));
        for i in 0..25 {
            audit
                .record(event(
                    "user:a",
                    "http.write",
                    format!("POST /{i}"),
                    "::1",
                    Outcome::Success,
                ))
                .await;
        }
        let seen = std::sync::Mutex::new(Vec::new());
        let check = audit
            .verify(None, &|n| seen.lock().unwrap().push(n))
            .await
            .unwrap();
        assert!(check.is_intact());
        assert_eq!(check.verified, 25);
        let head = check.head.clone().unwrap();
        assert_eq!(head.0, 25);
        assert_eq!(*seen.lock().unwrap(), [25]);
        // The head kept from now holds later.
        audit
            .record(event(
                "user:a",
                "http.write",
                "POST /x",
                "::1",
                Outcome::Failure,
            ))
            .await;
        let later = audit.verify(Some(head), &|_| {}).await.unwrap();
        assert!(later.is_intact());
        assert_eq!(later.verified, 26);
        assert_eq!(actor_of("key:ab12"), "key:ab12");
        assert_eq!(actor_of("alice"), "user:alice");
    }
}
