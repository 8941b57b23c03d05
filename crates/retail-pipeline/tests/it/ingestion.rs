//! Ingestion by several processes at once (API replicas sharing one lake): the checkpoint of a
//! batch is checked and recorded in the commit of its rows, so a unit lands exactly once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use retail_domain::progress::NoProgress;
use retail_ingest::{BatchSource, Checkpoint, Fields, RawRows, Source, SourceBatch};
use retail_lake::schema::BRONZE_TRANSACTIONS;
use retail_metadata::RunRecord;
use retail_pipeline::{IngestRequest, IngestionService};
use tokio::sync::Barrier;

use crate::support::TestLake;

/// A source of one batch that, once the batch is taken, waits at `gate` before it says it has
/// no more: every ingestion sharing the gate has read bronze and staged its rows before any
/// of them commits, the window in which two replicas race.
struct Gated {
    inner: BatchSource,
    gate: Arc<Barrier>,
    given: bool,
}

#[async_trait]
impl Source for Gated {
    fn system(&self) -> &'static str {
        "api"
    }

    async fn next_batch(&mut self) -> retail_ingest::Result<Option<SourceBatch>> {
        if !self.given {
            self.given = true;
            return self.inner.next_batch().await;
        }
        // Bounded, so that a racer that failed before the gate fails the test instead of
        // hanging it.
        let _ = tokio::time::timeout(Duration::from_secs(20), self.gate.wait()).await;
        Ok(None)
    }
}

fn records(invoice: &str, lines: usize) -> Vec<Fields> {
    (0..lines)
        .map(|line| {
            [
                Some(invoice.to_owned()),
                Some(format!("2{line:04}")),
                Some("LANTERN".to_owned()),
                Some("2".to_owned()),
                Some("2011-03-01 10:00:00".to_owned()),
                Some("1.25".to_owned()),
                Some("17850".to_owned()),
                Some("United Kingdom".to_owned()),
            ]
        })
        .collect()
}

fn gated(lake: &TestLake, key: &str, records: &[Fields], gate: &Arc<Barrier>) -> Gated {
    let batch = SourceBatch {
        location: format!("POST /api/v1/transactions {key}"),
        unit: String::new(),
        parts: vec![retail_ingest::decode::Part {
            suffix: String::new(),
            rows: RawRows::from_fields(records, lake.lake.batch_rows()).expect("raw rows"),
        }],
        checkpoint: Some(Checkpoint::fingerprint(format!("test-key-{key}"), 1)),
        change: None,
        checksum: String::new(),
    };
    Gated {
        inner: BatchSource::new("api", batch),
        gate: Arc::clone(gate),
        given: false,
    }
}

async fn race(
    first: (&IngestionService, &mut Gated),
    second: (&IngestionService, &mut Gated),
) -> (RunRecord, RunRecord) {
    let request = IngestRequest::default();
    let (a, b) = tokio::join!(
        first.0.ingest(first.1, &request, &NoProgress),
        second.0.ingest(second.1, &request, &NoProgress),
    );
    (a.expect("first ingestion"), b.expect("second ingestion"))
}

#[tokio::test]
async fn two_replicas_racing_with_the_same_checkpoint_write_it_once() {
    let lake = TestLake::new();
    let (one, other) = (lake.replica(), lake.replica());
    let rows = records("581001", 3);
    let gate = Arc::new(Barrier::new(2));
    let (mut a, mut b) = (
        gated(&lake, "k1", &rows, &gate),
        gated(&lake, "k1", &rows, &gate),
    );

    let (a, b) = Box::pin(race((&one, &mut a), (&other, &mut b))).await;

    // Exactly one of them wrote; the other's commit conflicted on the checkpoint, and its batch
    // counts as already ingested rather than as an error.
    let mut written = [a.rows_out, b.rows_out];
    written.sort_unstable();
    assert_eq!(written, [0, 3]);
    let loser = if a.rows_out == 0 { &a } else { &b };
    assert!(loser.detail.files.iter().all(|f| f.skipped && f.rows == 0));
    assert_eq!(lake.lake.count_rows(&BRONZE_TRANSACTIONS).await.unwrap(), 3);
    assert_eq!(
        lake.lake
            .latest_version(&BRONZE_TRANSACTIONS)
            .await
            .unwrap(),
        Some(1),
        "one creation of the table and one commit of the rows"
    );

    // A later retry of the same key is skipped before anything is staged.
    let gate = Arc::new(Barrier::new(1));
    let retry = one
        .ingest(
            &mut gated(&lake, "k1", &rows, &gate),
            &IngestRequest::default(),
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(retry.rows_out, 0);
    assert_eq!(lake.lake.count_rows(&BRONZE_TRANSACTIONS).await.unwrap(), 3);
}

#[tokio::test]
async fn two_replicas_racing_with_different_checkpoints_both_land() {
    let lake = TestLake::new();
    // The table exists before the race, as it does once anything was ingested.
    lake.ingest_records(&records("581000", 1), None).await;
    let (one, other) = (lake.replica(), lake.replica());
    let gate = Arc::new(Barrier::new(2));
    let (mut a, mut b) = (
        gated(&lake, "k1", &records("581001", 2), &gate),
        gated(&lake, "k2", &records("581002", 4), &gate),
    );

    let (a, b) = Box::pin(race((&one, &mut a), (&other, &mut b))).await;

    assert_eq!((a.rows_out, b.rows_out), (2, 4));
    assert_eq!(lake.lake.count_rows(&BRONZE_TRANSACTIONS).await.unwrap(), 7);
    for key in ["test-key-k1", "test-key-k2"] {
        let bronze = lake.lake.open(&BRONZE_TRANSACTIONS).await.unwrap().unwrap();
        assert_eq!(
            lake.lake
                .app_version_in(&bronze, &BRONZE_TRANSACTIONS, key)
                .await
                .unwrap(),
            Some(1),
            "{key} is recorded"
        );
    }
}
