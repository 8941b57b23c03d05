//! Ingestion for callers: files (the CLI), HTTP bodies, and changes to one transaction.
//!
//! A body is decoded by the same decoder as a file of its format (header variants, extra
//! columns, field rules), then handed to the pipeline's ingestion service as one batch whose
//! checkpoint is the caller's idempotency key: the key's check and the commit are one atomic
//! step there. Because a caller is waiting, a body with malformed records is refused whole,
//! every malformed record listed, and nothing is written (a file keeps them as malformed rows).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use retail_domain::error::ErrorKind;
use retail_domain::progress::Progress;
use retail_domain::record::{DateWindow, cleanse};
use retail_domain::{Operation, parse_transaction_id};
use retail_ingest::decode::{Format, Part, decode, unnamed_columns};
use retail_ingest::{
    BatchSource, Checkpoint, Fields, RawRows, RecordChange, SourceBatch, raw_fields,
};
use retail_metadata::{MetadataStore, RunRecord};
use retail_pipeline::{IngestRequest, IngestionService, SilverRules};
use serde::Serialize;
use sha2::Digest as _;

use crate::access::Principal;
use crate::error::{Error, Result};

/// Most records one request may carry.
pub const MAX_RECORDS: usize = 100_000;

/// Application-transaction id prefix marking records written under an idempotency key.
const KEY_APP_PREFIX: &str = "retail.ingest.key.";

/// A problem with one record of a body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RecordProblem {
    /// Position in the body, from 0 (for CSV: the data row, from 0).
    pub index: usize,
    /// What is wrong: a parse error, or the quarantine reasons the contract will give.
    pub problems: Vec<String>,
}

/// Who sends records, and how to recognise a retry.
#[derive(Debug, Clone)]
pub struct Sender {
    /// The authenticated caller, if any.
    pub caller: Option<Principal>,
    /// The caller's `Idempotency-Key`: records sent again under it are not written twice.
    pub idempotency_key: Option<String>,
    /// Where the request came from (`POST /api/v1/ingest/transactions <request id>`), kept
    /// as bronze's source location.
    pub location: String,
}

/// What an ingestion of records did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Written to bronze now.
    Accepted(IngestReceipt),
    /// The idempotency key was used before: nothing written this time.
    Replayed(IngestReceipt),
    /// Malformed records: nothing written.
    Refused(Vec<RecordProblem>),
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestReceipt {
    /// The ingestion's id (its run id); for a replay, the ingestion that wrote the records.
    pub ingestion_id: Option<String>,
    /// Records in the request.
    pub records: usize,
    /// Records written to bronze now.
    pub written: u64,
    /// Records written that the contract will quarantine at the next pipeline run, with the
    /// reasons.
    pub will_be_quarantined: Vec<RecordProblem>,
}

/// A change to one raw transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionChange {
    /// A new transaction.
    Create,
    /// Replace the silver transaction with this id.
    Update(String),
    /// Remove the silver transaction with this id.
    Delete(String),
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeReceipt {
    /// Whether the idempotency key was used before (nothing written this time).
    pub replayed: bool,
    /// `insert`, `update` or `delete`.
    pub operation: &'static str,
    /// The ingestion's id; for a replay, the ingestion that wrote the record.
    pub ingestion_id: Option<String>,
    /// The `transaction_id` the new silver row will have (create and update), when its fields
    /// pass the contract's rules.
    pub transaction_id: Option<String>,
    /// The transaction updated or deleted.
    pub target_transaction_id: Option<String>,
    /// For a create: the rules its fields break (the row will be quarantined).
    pub will_be_quarantined: Vec<String>,
}

/// Ingestion for callers.
#[async_trait]
pub trait IngestService: Send + Sync {
    /// Lands files, directories and glob patterns in bronze (content seen before is skipped).
    async fn ingest_files(
        &self,
        inputs: &[String],
        requested_by: &str,
        progress: &dyn Progress,
    ) -> Result<RunRecord>;

    /// Lands the records of a body in bronze, in one commit, durably before returning.
    async fn ingest_body(
        &self,
        format: Format,
        body: Bytes,
        sender: Sender,
    ) -> Result<IngestOutcome>;

    /// Writes one change to a raw transaction (a JSON object body for create and update).
    async fn change(
        &self,
        change: TransactionChange,
        body: Option<Bytes>,
        sender: Sender,
    ) -> Result<ChangeReceipt>;

    /// The invoice dates a record sent now may carry (`pipeline.earliest_invoice_date` to one
    /// day after now); a create or update outside them is refused.
    fn plausible_dates(&self) -> DateWindow;
}

/// The ingestion service for callers, over the pipeline's.
#[derive(Debug)]
pub struct Ingest {
    ingestion: IngestionService,
    store: Arc<dyn MetadataStore>,
    batch_rows: usize,
    rules: SilverRules,
}

impl Ingest {
    /// Callers' ingestion over `ingestion`, looking replays up in `store`; records are judged
    /// with silver's `rules` to tell callers what will be quarantined.
    pub fn new(
        ingestion: IngestionService,
        store: Arc<dyn MetadataStore>,
        rules: SilverRules,
    ) -> Self {
        let batch_rows = ingestion.lake().batch_rows();
        Self {
            ingestion,
            store,
            batch_rows,
            rules,
        }
    }

    /// The plausible invoice dates of records ingested now.
    fn window(&self) -> DateWindow {
        DateWindow::for_record(
            self.rules.earliest_invoice_date,
            chrono::Utc::now().naive_utc(),
        )
    }

    /// Decodes a body on the blocking pool: its records, or every malformed one.
    /// `every_field`: JSON records must name all eight fields (requests to ingest; a change
    /// names those its rules need).
    async fn decode_body(
        &self,
        format: Format,
        body: Bytes,
        every_field: bool,
    ) -> Result<std::result::Result<RawRows, Vec<RecordProblem>>> {
        let batch_rows = self.batch_rows;
        tokio::task::spawn_blocking(move || {
            let parts = match decode(format, "the request body", &body, batch_rows) {
                Ok(parts) => parts,
                Err(error) => {
                    return Ok(Err(vec![RecordProblem {
                        index: 0,
                        problems: vec![error.to_string()],
                    }]));
                }
            };
            let mut rows = RawRows::default();
            for Part { rows: part, .. } in parts {
                rows.batches.extend(part.batches);
                rows.rows += part.rows;
                rows.malformed += part.malformed;
            }
            if rows.rows == 0 {
                return Ok(Err(vec![RecordProblem {
                    index: 0,
                    problems: vec!["the body holds no records".to_owned()],
                }]));
            }
            if rows.rows > MAX_RECORDS as u64 {
                return Ok(Err(vec![RecordProblem {
                    index: 0,
                    problems: vec![format!(
                        "{} records in one request; send at most {MAX_RECORDS}",
                        rows.rows
                    )],
                }]));
            }
            let mut malformed: Vec<RecordProblem> = rows
                .malformed_records()
                .into_iter()
                .map(|(index, _, error)| RecordProblem {
                    index,
                    problems: vec![error],
                })
                .collect();
            if every_field {
                for (index, missing) in unnamed_columns(format, &body) {
                    let names: Vec<&str> = missing.iter().map(|c| c.name()).collect();
                    let problem = format!(
                        "field(s) {} not named: name every field, null for no value",
                        names.join(", ")
                    );
                    match malformed.iter_mut().find(|m| m.index == index) {
                        Some(record) => record.problems.push(problem),
                        None => malformed.push(RecordProblem {
                            index,
                            problems: vec![problem],
                        }),
                    }
                }
                malformed.sort_by_key(|m| m.index);
            }
            Ok(if malformed.is_empty() {
                Ok(rows)
            } else {
                Err(malformed)
            })
        })
        .await
        .map_err(|error| Error::new(retail_domain::error::ErrorKind::Internal, error.to_string()))?
    }

    /// Writes one batch of records as `sender`; `(ingestion id, replayed)`.
    async fn write(
        &self,
        rows: RawRows,
        change: Option<RecordChange>,
        sender: &Sender,
        fingerprint: i64,
    ) -> Result<(Option<String>, bool)> {
        let key = sender.idempotency_key.as_ref().map(|key| {
            // Scoped to the caller, so that two callers' keys never collide.
            let subject = sender.caller.as_ref().map_or("", |p| p.subject.as_str());
            hex::encode(sha2::Sha256::digest(format!("{subject}\n{key}").as_bytes()))
        });
        let batch = SourceBatch {
            location: sender.location.clone(),
            unit: String::new(),
            parts: vec![Part {
                suffix: String::new(),
                rows,
            }],
            checkpoint: key.as_ref().map(|digest| {
                Checkpoint::fingerprint(format!("{KEY_APP_PREFIX}{digest}"), fingerprint)
            }),
            change,
            checksum: String::new(),
        };
        let request = IngestRequest {
            requested_by: Some(requested_by(sender.caller.as_ref())),
            idempotency_digest: key.clone(),
            record_if_unchanged: false,
        };
        let mut source = BatchSource::new("api", batch);
        let run = self
            .ingestion
            .ingest(&mut source, &request, &retail_domain::progress::NoProgress)
            .await
            .map_err(|error| match error {
                retail_pipeline::Error::CheckpointReused { .. } => Error::new(
                    ErrorKind::Unprocessable,
                    "this Idempotency-Key was already used for a different request: send the \
                     same request again to replay it, or use a new key for new records",
                ),
                other => other.into(),
            })?;
        let replayed = run.detail.files.first().is_some_and(|f| f.skipped);
        if !replayed {
            return Ok((Some(run.run_id), false));
        }
        let original = match &key {
            Some(digest) => self.store.run_by_idempotency_key(digest).await?,
            None => None,
        };
        Ok((original.map(|run| run.run_id), true))
    }
}

/// The version of an idempotency key's checkpoint: a fingerprint of the request (its parts,
/// each with its length), so that a retry of the same request replays and other content under
/// the same key is refused. Positive, as Delta application versions are.
fn fingerprint(parts: &[&[u8]]) -> i64 {
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::try_from(u64::from_le_bytes(first) >> 1)
        .unwrap_or(i64::MAX)
        .max(1)
}

/// The run record's `requested_by` for a caller.
fn requested_by(caller: Option<&Principal>) -> String {
    caller.map_or_else(|| "api".to_owned(), |p| format!("api:{}", p.subject))
}

/// The quarantine reasons the contract will give each record, for those that have any.
fn will_be_quarantined(records: &[Fields], window: &DateWindow) -> Vec<RecordProblem> {
    records
        .iter()
        .enumerate()
        .filter_map(|(index, fields)| {
            cleanse(&raw_fields(fields), None, window)
                .err()
                .map(|reasons| RecordProblem {
                    index,
                    problems: reasons.iter().map(|r| r.as_str().to_owned()).collect(),
                })
        })
        .collect()
}

#[async_trait]
impl IngestService for Ingest {
    fn plausible_dates(&self) -> DateWindow {
        self.window()
    }

    async fn ingest_files(
        &self,
        inputs: &[String],
        requested_by: &str,
        progress: &dyn Progress,
    ) -> Result<RunRecord> {
        Ok(self
            .ingestion
            .ingest_files(inputs, requested_by, progress)
            .await?)
    }

    async fn ingest_body(
        &self,
        format: Format,
        body: Bytes,
        sender: Sender,
    ) -> Result<IngestOutcome> {
        let fingerprint = fingerprint(&[format.as_str().as_bytes(), &body]);
        let rows = match self.decode_body(format, body, true).await? {
            Ok(rows) => rows,
            Err(problems) => return Ok(IngestOutcome::Refused(problems)),
        };
        let records = rows.rows as usize;
        let quarantined = will_be_quarantined(&rows.fields(), &self.window());
        let (ingestion_id, replayed) = self.write(rows, None, &sender, fingerprint).await?;
        Ok(if replayed {
            IngestOutcome::Replayed(IngestReceipt {
                ingestion_id,
                records,
                written: 0,
                will_be_quarantined: Vec::new(),
            })
        } else {
            IngestOutcome::Accepted(IngestReceipt {
                ingestion_id,
                records,
                written: records as u64,
                will_be_quarantined: quarantined,
            })
        })
    }

    async fn change(
        &self,
        change: TransactionChange,
        body: Option<Bytes>,
        sender: Sender,
    ) -> Result<ChangeReceipt> {
        let target = match &change {
            TransactionChange::Create => None,
            TransactionChange::Update(id) | TransactionChange::Delete(id) => {
                if parse_transaction_id(id).is_none() {
                    return Err(Error::invalid(format!(
                        "transaction id {id:?} is not 32 lower-case hexadecimal digits"
                    )));
                }
                Some(id.clone())
            }
        };
        let label = match &change {
            TransactionChange::Create => "create",
            TransactionChange::Update(_) => "update",
            TransactionChange::Delete(_) => "delete",
        };
        let fingerprint = fingerprint(&[
            label.as_bytes(),
            target.as_deref().unwrap_or_default().as_bytes(),
            body.as_deref().unwrap_or_default(),
        ]);
        let fields: Fields = match (&change, body) {
            (TransactionChange::Delete(_), _) => Fields::default(),
            (_, None) => return Err(Error::invalid("send the transaction as a JSON object")),
            (_, Some(body)) => {
                let is_object = body
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .is_some_and(|b| *b == b'{');
                if !is_object {
                    return Err(Error::invalid(
                        "the body must be one JSON object; send many through \
                         /api/v1/ingest/transactions",
                    ));
                }
                one_record(self.decode_body(Format::Json, body, false).await?)?
            }
        };
        let checked = cleanse(&raw_fields(&fields), None, &self.window());
        // A created or updated transaction that silver would refuse is refused now: it could
        // only be quarantined.
        if !matches!(change, TransactionChange::Delete(_))
            && let Err(reasons) = &checked
        {
            return Err(Error::invalid(format!(
                "the fields break the contract's rules ({}); nothing was written",
                reasons
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let (operation, record_change) = match &change {
            TransactionChange::Create => (Operation::Insert, None),
            TransactionChange::Update(id) => (
                Operation::Update,
                Some(RecordChange {
                    operation: Operation::Update,
                    target_transaction_id: id.clone(),
                }),
            ),
            TransactionChange::Delete(id) => (
                Operation::Delete,
                Some(RecordChange {
                    operation: Operation::Delete,
                    target_transaction_id: id.clone(),
                }),
            ),
        };
        let rows = RawRows::from_fields(std::slice::from_ref(&fields), self.batch_rows)?;
        let (ingestion_id, replayed) = self
            .write(rows, record_change, &sender, fingerprint)
            .await?;
        let (transaction_id, will_be_quarantined) = match (&change, checked) {
            (TransactionChange::Delete(_), _) => (None, Vec::new()),
            (_, Ok(clean)) => (Some(clean.transaction_id), Vec::new()),
            (_, Err(reasons)) => (
                None,
                reasons.iter().map(|r| r.as_str().to_owned()).collect(),
            ),
        };
        Ok(ChangeReceipt {
            replayed,
            operation: operation.as_str(),
            ingestion_id,
            transaction_id,
            target_transaction_id: target,
            will_be_quarantined,
        })
    }
}

/// The one record of a body that must hold exactly one JSON object.
fn one_record(decoded: std::result::Result<RawRows, Vec<RecordProblem>>) -> Result<Fields> {
    let rows = decoded.map_err(|problems| {
        Error::invalid(
            problems
                .into_iter()
                .flat_map(|p| p.problems)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let mut records = rows.fields();
    if records.len() != 1 {
        return Err(Error::invalid(
            "the body must be one JSON object; send many through /api/v1/ingest/transactions",
        ));
    }
    Ok(records.remove(0))
}
