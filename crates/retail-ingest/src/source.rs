//! The `Source` seam: anything that yields batches of raw records for bronze, each with the
//! checkpoint that says how far the source has been ingested.

use async_trait::async_trait;

use crate::decode::Part;
use crate::error::Result;
use crate::raw::RecordChange;

/// How far a source has been ingested. It lands in the same Delta commit as the records it
/// covers (a Delta application transaction): `app_id` names the source (a file's content, an
/// idempotency key, a stream partition), `version` how far. A batch whose checkpoint bronze
/// already holds is not written again: a file is never ingested twice, a retried request never
/// doubles, a stream restarted after a crash resumes exactly where its last commit ended.
///
/// Two kinds, made by [`Checkpoint::progress`] and [`Checkpoint::fingerprint`]:
/// - **progress** (files: `1`; stream partitions: the next offset): held once bronze records
///   this version or a later one;
/// - **fingerprint** (an idempotency key: a hash of the request): held when bronze records
///   exactly this version; another version means the id was used for other content, which
///   [`Checkpoint::held_by`] reports so the caller can refuse it rather than drop it silently.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// The application id recorded in bronze's log.
    pub app_id: String,
    /// The version recorded with it.
    pub version: i64,
    /// Whether the version fingerprints the content (held only by exactly this version).
    pub exact: bool,
}

impl Checkpoint {
    /// A checkpoint of progress: held by this version or any later one.
    pub fn progress(app_id: impl Into<String>, version: i64) -> Self {
        Self {
            app_id: app_id.into(),
            version,
            exact: false,
        }
    }

    /// A checkpoint whose version fingerprints the content: held by exactly this version.
    pub fn fingerprint(app_id: impl Into<String>, version: i64) -> Self {
        Self {
            app_id: app_id.into(),
            version,
            exact: true,
        }
    }

    /// Whether `recorded` (the version bronze records for this app id, if any) holds this
    /// checkpoint; `Err(recorded)` when a fingerprint's id was recorded for other content.
    ///
    /// # Errors
    ///
    /// The recorded version, when it is not this fingerprint.
    pub fn held_by(&self, recorded: Option<i64>) -> std::result::Result<bool, i64> {
        match recorded {
            None => Ok(false),
            Some(version) if self.exact && version != self.version => Err(version),
            Some(version) => Ok(version >= self.version),
        }
    }
}

/// One batch of a source: its records and its checkpoint.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    /// Where the records came from (a file path, `POST /api/v1/...  <request id>`, a topic,
    /// partition and offsets); bronze's `source_location`.
    pub location: String,
    /// A short identifier of the unit, added to bronze's `batch_id` (a checksum prefix);
    /// empty when the ingestion has one unit.
    pub unit: String,
    /// The records, in parts (the sheets of a workbook; one part otherwise).
    pub parts: Vec<Part>,
    /// The checkpoint the records advance, if the source has one.
    pub checkpoint: Option<Checkpoint>,
    /// When set, every record is this update or delete of a silver transaction.
    pub change: Option<RecordChange>,
    /// SHA-256 of a file's content (empty for other sources), for the run record.
    pub checksum: String,
}

impl SourceBatch {
    /// Records in the batch.
    pub fn rows(&self) -> u64 {
        self.parts.iter().map(|p| p.rows.rows).sum()
    }

    /// Malformed records in the batch.
    pub fn malformed(&self) -> u64 {
        self.parts.iter().map(|p| p.rows.malformed).sum()
    }
}

/// A unit a source knows it will deliver before reading it, so that the ingestion can drop
/// what bronze holds already without reading it again.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// Where it is.
    pub location: String,
    /// Its checkpoint.
    pub checkpoint: Checkpoint,
    /// SHA-256 of a file's content (empty for other sources).
    pub checksum: String,
}

/// A source of raw records for bronze: files, an HTTP request, a stream.
///
/// The ingestion service drives it: it asks for announcements and drops the units bronze
/// holds already, then takes batches until the source has none left, committing them (with
/// their checkpoints, atomically) as it goes, and tells the source what was committed.
#[async_trait]
pub trait Source: Send {
    /// The source system bronze records: `file`, `api`, `kafka`, `rabbitmq`.
    fn system(&self) -> &'static str;

    /// The units known before reading, in delivery order (files: every input); empty for a
    /// source that cannot know (a stream).
    fn announced(&self) -> Vec<Announcement> {
        Vec::new()
    }

    /// Drops announced units (by their position in [`Source::announced`]): bronze holds them
    /// already, or an earlier unit of this ingestion has the same checkpoint.
    fn skip(&mut self, _positions: &[usize]) {}

    /// The next batch, or `None` when the source has nothing more to give now.
    async fn next_batch(&mut self) -> Result<Option<SourceBatch>>;

    /// The batches with these checkpoints are committed to bronze (a broker source
    /// acknowledges its messages here).
    async fn committed(&mut self, _checkpoints: &[Checkpoint]) -> Result<()> {
        Ok(())
    }
}

/// A source of one batch held in memory: a decoded HTTP body, a change to one transaction,
/// records handed over by a test.
#[derive(Debug)]
pub struct BatchSource {
    system: &'static str,
    batch: Option<SourceBatch>,
}

impl BatchSource {
    /// A source that yields `batch` once, as `system`.
    pub fn new(system: &'static str, batch: SourceBatch) -> Self {
        Self {
            system,
            batch: Some(batch),
        }
    }
}

#[async_trait]
impl Source for BatchSource {
    fn system(&self) -> &'static str {
        self.system
    }

    async fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        Ok(self.batch.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_held_by_later_versions_and_a_fingerprint_only_by_itself() {
        let offset = Checkpoint::progress("partition-0", 10);
        assert_eq!(offset.held_by(None), Ok(false));
        assert_eq!(offset.held_by(Some(9)), Ok(false));
        assert_eq!(offset.held_by(Some(10)), Ok(true));
        assert_eq!(offset.held_by(Some(11)), Ok(true));
        let key = Checkpoint::fingerprint("key", 77);
        assert_eq!(key.held_by(None), Ok(false));
        assert_eq!(key.held_by(Some(77)), Ok(true));
        assert_eq!(key.held_by(Some(78)), Err(78));
        assert_eq!(key.held_by(Some(1)), Err(1));
    }
}
