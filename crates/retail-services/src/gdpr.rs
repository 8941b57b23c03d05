//! The GDPR erasure (ADR 0013): one customer forgotten everywhere the platform keeps data,
//! with a report kept in the audit trail.
//!
//! Under the pipeline's claim, in this order: silver catches up with bronze; the customer's
//! rows leave bronze (raw text of malformed rows included) and the silver tables
//! ([`retail_pipeline::erasure`]) and the models' per-customer tables; gold, its history and
//! the followers of gold (the warehouse, the search index) are rebuilt from silver by a
//! pipeline run; each follower then forgets the customer (what a follower keeps beyond gold);
//! every lake table's past is purged ([`Lake::purge_history`]: unreferenced files removed,
//! the log before a fresh checkpoint deleted), so time travel cannot bring the rows back. The
//! API's caches are keyed by the warehouse's data version, which the rebuild moves.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use retail_domain::audit::{AuditEvent, Outcome};
use retail_domain::error::ErrorKind;
use retail_domain::field::{MAX_CODE_CHARS, normalise_customer_id};
use retail_domain::ports::Follower;
use retail_domain::privacy::ErasedSubjects;
use retail_domain::progress::NoProgress;
use retail_lake::{Lake, Purged};
use retail_metadata::{AuditFilter, RunKind, RunRecord};
use retail_pipeline::erasure::{self, TableErasure};
use retail_pipeline::subject::{self, SubjectTable};
use retail_pipeline::{Erased, RunRequest, Runner, SilverAsset};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::audit::AuditService;
use crate::consent::{ConsentService, CustomerConsent};
use crate::error::{Error, Result};

/// The audit trail's action for an erasure.
pub const FORGET_ACTION: &str = "gdpr.forget";

/// What one erasure did: kept as the detail of its audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErasureReport {
    /// The request's id (`erasure-...`).
    pub request_id: String,
    /// The customer, as the keyed hash of `privacy.key` (`None` without a key); never the
    /// id itself.
    pub subject: Option<String>,
    /// Who asked (`user:alice`, `cli:root`).
    pub requested_by: String,
    /// `succeeded` or `failed`.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// How long it took, in seconds.
    pub seconds: f64,
    /// The lake tables the customer's rows were removed from, in order, with their versions
    /// before and after.
    pub tables: Vec<TableErasure>,
    /// The pipeline runs that rebuilt gold and its followers without the customer.
    pub runs: Vec<String>,
    /// What each follower of gold removed beyond the rebuild.
    pub followers: Vec<FollowerErasure>,
    /// What the purge of each table's past removed (tables with nothing to remove left out).
    pub purged: Vec<TablePurge>,
    /// Data files removed in all.
    pub files_removed: usize,
    /// Their bytes.
    pub bytes_removed: u64,
    /// Log files deleted in all.
    pub log_files_removed: usize,
    /// The customer's consent choices removed from the consent log.
    #[serde(default)]
    pub consent_records: u64,
}

/// What the purge of one table's past removed ([`Lake::purge_history`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TablePurge {
    /// The table (`layer/name`).
    pub table: String,
    /// Data files removed: the latest version does not reference them.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Log files deleted.
    pub log_files: usize,
}

impl From<Purged> for TablePurge {
    fn from(purged: Purged) -> Self {
        Self {
            table: purged.table,
            files: purged.files,
            bytes: purged.bytes,
            log_files: purged.log_files,
        }
    }
}

/// What one follower removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FollowerErasure {
    /// The follower's asset key.
    pub follower: String,
    /// Rows or documents it removed or changed.
    pub rows: u64,
}

/// GDPR requests.
#[async_trait]
pub trait GdprService: Send + Sync {
    /// Erases `customer` everywhere; `actor` and `source` go to the audit trail with the
    /// report. A failed erasure is recorded too, and running it again finishes it.
    async fn forget(&self, customer: &str, actor: &str, source: &str) -> Result<ErasureReport>;

    /// The report of one request; `None` when there is no such request.
    async fn erasure(&self, request_id: &str) -> Result<Option<ErasureReport>>;

    /// The latest requests' reports, newest first.
    async fn erasures(&self, limit: usize) -> Result<Vec<ErasureReport>>;

    /// Everything the lake holds about `customer` (access and portability), table by table.
    async fn export(&self, customer: &str) -> Result<SubjectExport>;
}

/// What the platform holds about one customer.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SubjectExport {
    /// The customer, as the request named them (normalised).
    pub customer_id: String,
    /// When it was read (RFC 3339, UTC).
    pub generated_at: String,
    /// Each table's rows about the customer: profile (`gold/dim_customer`, every version),
    /// segment (`gold/customer_rfm`), transactions (`silver/retail_transactions`), rows
    /// quarantined as they arrived, lifetime value and personal recommendations.
    pub tables: Vec<SubjectTable>,
    /// Their consent: each purpose's state and every choice recorded.
    pub consent: CustomerConsent,
}

/// The erasure over the lake, the runner and the followers.
pub struct Gdpr {
    lake: Lake,
    runner: Arc<Runner>,
    silver: SilverAsset,
    followers: Vec<Arc<dyn Follower>>,
    audit: Arc<dyn AuditService>,
    consent: Arc<dyn ConsentService>,
    key: Option<Vec<u8>>,
    erased: Erased,
}

impl std::fmt::Debug for Gdpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gdpr")
            .field("followers", &self.followers.len())
            .finish_non_exhaustive()
    }
}

impl Gdpr {
    /// The service: `silver` is the pipeline's silver asset, `followers` every follower of
    /// gold the runner drives, `key` the privacy key (subjects in reports are its keyed
    /// hashes; without it reports name no subject and nothing is kept out on arrival),
    /// `erased` the list ingestion keeps out, which each erasure extends; `consent` the
    /// consent log, from which an erasure removes the customer's choices.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        lake: Lake,
        runner: Arc<Runner>,
        silver: SilverAsset,
        followers: Vec<Arc<dyn Follower>>,
        audit: Arc<dyn AuditService>,
        consent: Arc<dyn ConsentService>,
        key: Option<Vec<u8>>,
        erased: Erased,
    ) -> Self {
        Self {
            lake,
            runner,
            silver,
            followers,
            audit,
            consent,
            key,
            erased,
        }
    }

    /// The customers erased so far under `key`, from the subjects of the succeeded erasures'
    /// reports in the trail: what ingestion keeps out.
    ///
    /// # Errors
    ///
    /// When the trail cannot be read.
    pub async fn erased_subjects(audit: &dyn AuditService, key: Vec<u8>) -> Result<ErasedSubjects> {
        let mut erased = ErasedSubjects::new(key);
        for subject in Self::erased_since(audit, 0).await?.0 {
            erased.insert(subject);
        }
        Ok(erased)
    }

    /// The subjects of the erasures the trail recorded after entry `after_seq`, and the number
    /// of the last erasure entry read (`after_seq` when there is none): reading on from it
    /// finds only newer erasures.
    ///
    /// # Errors
    ///
    /// When the trail cannot be read.
    pub async fn erased_since(
        audit: &dyn AuditService,
        after_seq: i64,
    ) -> Result<(Vec<String>, i64)> {
        let (reports, last) = reports_after(audit, Some(Outcome::Success), after_seq).await?;
        Ok((
            reports
                .into_iter()
                .filter_map(|report| report.subject)
                .collect(),
            last,
        ))
    }

    async fn erase(&self, customer: &str, report: &mut ErasureReport) -> Result<()> {
        let claim = self.runner.claim().await.map_err(|error| {
            Error::new(
                ErrorKind::Conflict,
                format!("the pipeline is busy, try again when it is free: {error}"),
            )
        })?;
        let by = format!("gdpr:{}", report.request_id);
        // Silver consumes what bronze holds, unless an erasure is unfinished (silver refuses
        // to run then; this erasure finishes it).
        let pending = match erasure::check_no_erasure_pending(&self.lake).await {
            Ok(()) => false,
            Err(retail_pipeline::Error::ErasureInterrupted { .. }) => true,
            Err(error) => return Err(error.into()),
        };
        if !pending {
            let run = self
                .runner
                .run_claimed(
                    &claim,
                    RunRequest {
                        assets: vec!["silver".to_owned()],
                        force: false,
                        requested_by: by.clone(),
                        ..RunRequest::default()
                    },
                    &NoProgress,
                )
                .await?;
            report.runs.push(run.run_id);
        }
        let mut scratch = RunRecord::start(RunKind::Pipeline);
        report.tables =
            erasure::erase_customer(&self.lake, &self.silver, &mut scratch, customer).await?;
        report
            .tables
            .extend(erasure::erase_from_models(&self.lake, customer).await?);

        // Gold, its history and the followers rebuilt from silver.
        let mut assets = vec!["gold".to_owned()];
        assets.extend(self.followers.iter().map(|f| f.key().to_owned()));
        let run = self
            .runner
            .run_claimed(
                &claim,
                RunRequest {
                    assets,
                    force: false,
                    requested_by: by,
                    ..RunRequest::default()
                },
                &NoProgress,
            )
            .await?;
        report.runs.push(run.run_id);
        let customers = [customer.to_owned()];
        for follower in &self.followers {
            let rows = follower.forget(&customers).await.map_err(|error| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("{} could not forget the customer: {error}", follower.key()),
                )
            })?;
            report.followers.push(FollowerErasure {
                follower: follower.key().to_owned(),
                rows,
            });
        }

        report.consent_records = self.consent.erase(customer).await?;

        // No earlier version of any table may still hold the rows.
        for table in &retail_lake::schema::ALL_TABLES {
            let purged = self.lake.purge_history(table).await?;
            report.files_removed += purged.files;
            report.bytes_removed += purged.bytes;
            report.log_files_removed += purged.log_files;
            if purged.files > 0 || purged.log_files > 0 {
                report.purged.push(purged.into());
            }
        }
        drop(claim);
        Ok(())
    }
}

/// Checks a customer id as the contract reads one: normalised, not blank, within the
/// longest id, without control characters.
pub(crate) fn customer_id(text: &str) -> Result<String> {
    let Some(id) = normalise_customer_id(text) else {
        return Err(Error::new(
            ErrorKind::Unprocessable,
            "customer_id is blank: name the customer to forget",
        ));
    };
    if retail_domain::field::breaks_text_rule(id, MAX_CODE_CHARS) {
        return Err(Error::invalid(format!(
            "customer_id must be 1 to {MAX_CODE_CHARS} characters without control characters"
        )));
    }
    Ok(id.to_owned())
}

#[async_trait]
impl GdprService for Gdpr {
    async fn forget(&self, customer: &str, actor: &str, source: &str) -> Result<ErasureReport> {
        let customer = customer_id(customer)?;
        let started = Instant::now();
        let mut report = ErasureReport {
            request_id: format!("erasure-{}", uuid::Uuid::now_v7()),
            subject: self
                .key
                .as_deref()
                .map(|key| retail_domain::privacy::subject_hash(key, &customer)),
            requested_by: actor.to_owned(),
            status: "succeeded".to_owned(),
            error: None,
            started_at: retail_domain::audit::timestamp(chrono::Utc::now()),
            seconds: 0.0,
            tables: Vec::new(),
            runs: Vec::new(),
            followers: Vec::new(),
            purged: Vec::new(),
            files_removed: 0,
            bytes_removed: 0,
            log_files_removed: 0,
            consent_records: 0,
        };
        let outcome = self.erase(&customer, &mut report).await;
        if outcome.is_ok()
            && let Some(subject) = &report.subject
            && let Some(erased) = self
                .erased
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_mut()
        {
            // From now on, records naming the customer are erased again on arrival.
            let mut next = ErasedSubjects::clone(erased);
            next.insert(subject.clone());
            *erased = Arc::new(next);
        }
        report.seconds = started.elapsed().as_secs_f64();
        if let Err(error) = &outcome {
            report.status = "failed".to_owned();
            report.error = Some(error.to_string());
            warn!(request = %report.request_id, %error, "erasure failed");
        } else {
            info!(
                request = %report.request_id,
                seconds = report.seconds,
                files = report.files_removed,
                "customer erased"
            );
        }
        self.audit
            .record(AuditEvent {
                actor: actor.to_owned(),
                action: FORGET_ACTION.to_owned(),
                target: format!("erasure:{}", report.request_id),
                source: source.to_owned(),
                outcome: if outcome.is_ok() {
                    Outcome::Success
                } else {
                    Outcome::Failure
                },
                detail: serde_json::to_string(&report).unwrap_or_default(),
            })
            .await;
        outcome.map(|()| report)
    }

    async fn erasure(&self, request_id: &str) -> Result<Option<ErasureReport>> {
        let entries = self
            .audit
            .entries(&AuditFilter {
                action: Some(FORGET_ACTION.to_owned()),
                target_contains: Some(format!("erasure:{request_id}")),
                limit: 10,
                ..AuditFilter::default()
            })
            .await?;
        Ok(entries
            .iter()
            .filter(|entry| entry.event.target == format!("erasure:{request_id}"))
            .find_map(|entry| serde_json::from_str(&entry.event.detail).ok()))
    }

    async fn export(&self, customer: &str) -> Result<SubjectExport> {
        let customer = customer_id(customer)?;
        let tables = subject::customer_data(&self.lake, &customer).await?;
        let consent = self.consent.consent(&customer).await?;
        Ok(SubjectExport {
            customer_id: customer,
            generated_at: retail_domain::audit::timestamp(chrono::Utc::now()),
            tables,
            consent,
        })
    }

    async fn erasures(&self, limit: usize) -> Result<Vec<ErasureReport>> {
        let mut reports = reports(self.audit.as_ref(), None).await?;
        reports.reverse();
        reports.truncate(limit);
        Ok(reports)
    }
}

/// Every erasure's report in the trail (with this outcome, when given), oldest first.
async fn reports(audit: &dyn AuditService, outcome: Option<Outcome>) -> Result<Vec<ErasureReport>> {
    Ok(reports_after(audit, outcome, 0).await?.0)
}

/// The erasure reports recorded after entry `after_seq`, and the number of the last one read.
async fn reports_after(
    audit: &dyn AuditService,
    outcome: Option<Outcome>,
    mut after_seq: i64,
) -> Result<(Vec<ErasureReport>, i64)> {
    let mut reports = Vec::new();
    loop {
        let page = audit
            .entries(&AuditFilter {
                action: Some(FORGET_ACTION.to_owned()),
                outcome,
                after_seq,
                limit: 500,
                ..AuditFilter::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after_seq = last.seq;
        reports.extend(
            page.iter()
                .filter_map(|entry| serde_json::from_str(&entry.event.detail).ok()),
        );
    }
    Ok((reports, after_seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use retail_domain::error::Classify as _;

    #[test]
    fn customer_ids_are_read_as_the_contract_reads_them() {
        assert_eq!(customer_id(" 17850.0 ").unwrap(), "17850");
        assert_eq!(customer_id("C-12").unwrap(), "C-12");
        for blank in ["", "   ", ".0"] {
            let error = customer_id(blank).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Unprocessable, "{blank:?}");
        }
        for bad in ["a\u{7}b", &"9".repeat(51)] {
            let error = customer_id(bad).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidInput, "{bad:?}");
        }
    }
}
