//! RabbitMQ streams and queues into bronze against a real broker (RabbitMQ with the stream
//! plugin, started by `scripts/services.sh start rabbitmq`): every message once, across
//! restarts and redeliveries.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use retail_domain::progress::NoProgress;
use retail_ingest::{Checkpoint, Source, SourceBatch};
use retail_lake::schema::BRONZE_TRANSACTIONS;
use retail_stream::rabbitmq::message_count;
use retail_stream::{
    RabbitOptions, RabbitSource, RabbitTarget, StreamEndpoint, StreamOffsets, StreamSource,
};
use support::{TestLake, sale};

/// Declares `name` (a stream when `stream`) and publishes `payloads` with publisher confirms;
/// each message gets the id `m-<n>` when `ids`.
async fn publish(url: &str, name: &str, stream: bool, payloads: &[(usize, Vec<u8>)], ids: bool) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut arguments = FieldTable::default();
    if stream {
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("stream".into()),
        );
    }
    channel
        .queue_declare(name.into(), QueueDeclareOptions::durable(), arguments)
        .await
        .unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for chunk in payloads.chunks(500) {
        let mut confirms = Vec::new();
        for (n, payload) in chunk {
            let mut properties = BasicProperties::default();
            if ids {
                properties = properties.with_message_id(format!("m-{n}").as_str().into());
            }
            confirms.push(
                channel
                    .basic_publish(
                        "".into(),
                        name.into(),
                        BasicPublishOptions::default(),
                        payload,
                        properties,
                    )
                    .await
                    .unwrap(),
            );
        }
        for confirm in confirms {
            assert!(confirm.await.unwrap().is_ack());
        }
    }
    connection.close(200, "published".into()).await.unwrap();
}

/// A source over `target` for `lake`, `batch` messages a round, waiting 100 ms.
async fn source_of(lake: &TestLake, url: &str, target: RabbitTarget, batch: u16) -> RabbitSource {
    RabbitSource::connect(
        RabbitOptions {
            batch_messages: batch,
            max_wait: Duration::from_millis(100),
            ..RabbitOptions::new(url, target)
        },
        lake.lake.clone(),
        lake.positions(),
    )
    .await
    .unwrap()
}

/// In small batches: many rounds, so restarts fall between commits.
async fn rabbit_source(lake: &TestLake, url: &str, target: RabbitTarget) -> RabbitSource {
    source_of(lake, url, target, 200).await
}

#[tokio::test]
async fn a_streams_server_side_offset_follows_bronzes_position() {
    let (Some(url), Some(port)) = (
        retail_test_support::amqp_url(),
        retail_test_support::rabbitmq_stream_port(),
    ) else {
        return;
    };
    let stream = retail_test_support::unique_name("tracked_stream");
    let payloads: Vec<(usize, Vec<u8>)> = (0..1_200).map(|n| (n, sale(n))).collect();
    publish(&url, &stream, true, &payloads, false).await;
    let endpoint = StreamEndpoint::from_amqp_url(&url, port).unwrap();
    let reference = retail_test_support::unique_name("retail");
    let lake = TestLake::new();
    let mut source = RabbitSource::connect(
        RabbitOptions {
            batch_messages: 200,
            max_wait: Duration::from_millis(100),
            server_offsets: Some((endpoint.clone(), reference.clone())),
            ..RabbitOptions::new(&url, RabbitTarget::Stream(stream.clone()))
        },
        lake.lake.clone(),
        lake.positions(),
    )
    .await
    .unwrap();
    let consumed = lake.consume(&mut source, 1_000).await;
    assert_eq!(consumed.records, 1_200, "{consumed:?}");
    assert_eq!(
        source.positions(),
        BTreeMap::from([(stream.clone(), 1_200)])
    );

    // Read back over a connection of its own, as a lag tool would: the last message taken.
    let mut reader = StreamOffsets::new(endpoint.clone(), reference);
    assert_eq!(reader.query(&stream).await.unwrap(), Some(1_199));
    assert_eq!(source.server_offset().await.unwrap(), Some(1_199));
    // A name that never stored one has none; a wrong password is a clear error.
    let mut unknown = StreamOffsets::new(endpoint.clone(), "nobody");
    assert_eq!(unknown.query(&stream).await.unwrap(), None);
    let mut refused = StreamOffsets::new(
        StreamEndpoint {
            password: "wrong".to_owned(),
            ..endpoint
        },
        "retail",
    );
    let error = refused.query(&stream).await.unwrap_err();
    assert!(error.contains("refused"), "{error}");
}

#[tokio::test]
async fn a_stream_lands_in_bronze_once_across_restarts_and_bad_messages_are_kept() {
    let Some(url) = retail_test_support::amqp_url() else {
        return;
    };
    let stream = retail_test_support::unique_name("sales_stream");
    let mut payloads: Vec<(usize, Vec<u8>)> = (0..3_000).map(|n| (n, sale(n))).collect();
    payloads[7].1 = b"not json at all".to_vec();
    payloads[1_500].1 = br#"{"InvoiceNo": {"nested": true}}"#.to_vec();
    publish(&url, &stream, true, &payloads, false).await;

    let lake = TestLake::new();
    let mut source = rabbit_source(&lake, &url, RabbitTarget::Stream(stream.clone())).await;
    let consumed = lake.consume(&mut source, 1_000).await;
    assert_eq!(consumed.records, 3_000, "{consumed:?}");
    assert_eq!(
        consumed.malformed, 2,
        "bad messages are kept as malformed records"
    );
    assert!(consumed.commits > 1, "small batches: {consumed:?}");
    assert_eq!(lake.bronze().await, 3_000);
    assert_eq!(
        source.positions(),
        BTreeMap::from([(stream.clone(), 3_000)]),
        "the next offset"
    );

    // A restarted consumer resumes from bronze's mark: nothing is read twice.
    let mut restarted = rabbit_source(&lake, &url, RabbitTarget::Stream(stream.clone())).await;
    assert_eq!(restarted.positions(), source.positions());
    let more: Vec<(usize, Vec<u8>)> = (3_000..4_000).map(|n| (n, sale(n))).collect();
    publish(&url, &stream, true, &more, false).await;
    let consumed = lake.consume(&mut restarted, 1_000).await;
    assert_eq!(consumed.records, 1_000, "{consumed:?}");
    assert_eq!(lake.bronze().await, 4_000);

    // A second consumer of the same stream racing the first (which was subscribed all along
    // and received the new messages too) writes nothing twice: its batches' checkpoints are
    // held already.
    let consumed = lake.consume(&mut source, 1_000).await;
    assert_eq!(consumed.records, 0, "{consumed:?}");
    assert_eq!(lake.bronze().await, 4_000);

    // Bronze's lineage names the stream and each message's offset.
    let rows = lake.lake.read_all(&BRONZE_TRANSACTIONS).await.unwrap();
    let mut offsets = Vec::new();
    for batch in &rows {
        let system = batch
            .column_by_name("source_system")
            .unwrap()
            .as_any()
            .downcast_ref::<retail_lake::arrow::array::StringArray>()
            .unwrap();
        let row = batch
            .column_by_name("source_row")
            .unwrap()
            .as_any()
            .downcast_ref::<retail_lake::arrow::array::Int64Array>()
            .unwrap();
        for index in 0..batch.num_rows() {
            assert_eq!(system.value(index), "rabbitmq");
            offsets.push(row.value(index));
        }
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (0..4_000).collect::<Vec<i64>>());
}

/// A source that never acknowledges: a consumer that dies between the Delta commit and the
/// acknowledgement.
struct NoAck(RabbitSource);

#[async_trait]
impl Source for NoAck {
    fn system(&self) -> &'static str {
        self.0.system()
    }

    async fn next_batch(&mut self) -> retail_ingest::Result<Option<SourceBatch>> {
        self.0.next_batch().await
    }

    async fn committed(&mut self, _checkpoints: &[Checkpoint]) -> retail_ingest::Result<()> {
        Ok(())
    }
}

#[async_trait]
impl StreamSource for NoAck {
    fn start_round(&mut self) {
        self.0.start_round();
    }

    fn positions(&self) -> BTreeMap<String, i64> {
        self.0.positions()
    }
}

#[tokio::test]
async fn a_queue_is_acknowledged_after_the_commit_and_redelivered_messages_land_once() {
    let Some(url) = retail_test_support::amqp_url() else {
        return;
    };
    let queue = retail_test_support::unique_name("sales_queue");
    let target = RabbitTarget::Queue(queue.clone());
    // Half with message ids, half recognised by their body.
    let with_ids: Vec<(usize, Vec<u8>)> = (0..1_000).map(|n| (n, sale(n))).collect();
    let without: Vec<(usize, Vec<u8>)> = (1_000..2_000).map(|n| (n, sale(n))).collect();
    publish(&url, &queue, false, &with_ids, true).await;
    publish(&url, &queue, false, &without, false).await;
    assert_eq!(message_count(&url, &target).await.unwrap(), 2_000);

    let lake = TestLake::new();
    // A consumer that commits a round of 600 and dies before acknowledging it.
    let mut dying = NoAck(source_of(&lake, &url, target.clone(), 600).await);
    dying.start_round();
    lake.ingestion
        .ingest(
            &mut dying,
            &retail_pipeline::IngestRequest {
                requested_by: Some("test".to_owned()),
                idempotency_digest: None,
                record_if_unchanged: false,
            },
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(lake.bronze().await, 600, "one round of 600, unacknowledged");
    dying.0.close().await.unwrap();

    // The broker delivers them again, flagged redelivered: recognised, acknowledged, not
    // written twice; the rest lands once and the queue is empty afterwards.
    let mut source = rabbit_source(&lake, &url, target.clone()).await;
    let consumed = lake.consume(&mut source, 1_000).await;
    assert_eq!(consumed.records, 1_400, "{consumed:?}");
    assert_eq!(source.redelivered_skipped(), 600);
    assert_eq!(lake.bronze().await, 2_000);
    source.close().await.unwrap();
    assert_eq!(message_count(&url, &target).await.unwrap(), 0);

    // The same sale sent twice without an id is two messages, both kept (silver counts the
    // second as a duplicate): only a broker's redelivery is dropped.
    let twice: Vec<(usize, Vec<u8>)> = vec![(5_000, sale(5_000)), (5_001, sale(5_000))];
    publish(&url, &queue, false, &twice, false).await;
    let mut source = rabbit_source(&lake, &url, target.clone()).await;
    let consumed = lake.consume(&mut source, 500).await;
    assert_eq!(consumed.records, 2, "{consumed:?}");
    assert_eq!(lake.bronze().await, 2_002);
}

#[tokio::test]
async fn an_unknown_queue_is_a_clear_error_and_is_not_created() {
    let Some(url) = retail_test_support::amqp_url() else {
        return;
    };
    let lake = TestLake::new();
    let target = RabbitTarget::Queue("no-such-queue".to_owned());
    let error = RabbitSource::connect(
        RabbitOptions::new(&url, target.clone()),
        lake.lake.clone(),
        lake.positions(),
    )
    .await
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("cannot read queue \"no-such-queue\""),
        "{error}"
    );
    assert!(message_count(&url, &target).await.is_err(), "not created");
}
