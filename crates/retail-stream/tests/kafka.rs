//! A Kafka topic into bronze against a real Kafka-protocol broker (tansu, started by
//! `scripts/services.sh start kafka`): every record once, across restarts.

mod support;

use std::time::Duration;

use retail_lake::arrow::array::Array as _;
use retail_lake::schema::BRONZE_TRANSACTIONS;
use retail_stream::{GroupOffsets, KafkaOptions, KafkaSource};
use rskafka::client::ClientBuilder;
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::record::Record;
use support::{TestLake, sale};

const PARTITIONS: i32 = 3;

/// Creates a topic and produces `payloads` round-robin over its partitions.
async fn produce(brokers: &str, topic: &str, payloads: &[Vec<u8>], create: bool) {
    let client = ClientBuilder::new(vec![brokers.to_owned()])
        .build()
        .await
        .unwrap();
    if create {
        client
            .controller_client()
            .unwrap()
            .create_topic(topic, PARTITIONS, 1, 5_000)
            .await
            .unwrap();
    }
    for partition in 0..PARTITIONS {
        let records: Vec<Record> = payloads
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as i32 % PARTITIONS == partition)
            .map(|(_, payload)| Record {
                key: None,
                value: Some(payload.clone()),
                headers: Default::default(),
                timestamp: chrono::Utc::now(),
            })
            .collect();
        let producer = client
            .partition_client(topic, partition, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        for chunk in records.chunks(500) {
            producer
                .produce(chunk.to_vec(), Compression::NoCompression)
                .await
                .unwrap();
        }
    }
}

/// A source over `topic` for `lake`, in small fetches: many rounds, so restarts fall between
/// commits.
async fn kafka_source(lake: &TestLake, brokers: &str, topic: &str) -> KafkaSource {
    KafkaSource::connect(
        KafkaOptions {
            max_wait: Duration::from_millis(100),
            fetch_bytes: 16 << 10,
            ..KafkaOptions::new(vec![brokers.to_owned()], topic)
        },
        lake.positions(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_topic_lands_in_bronze_once_across_restarts_and_bad_messages_are_kept() {
    let Some(brokers) = retail_test_support::kafka_brokers() else {
        return;
    };
    let topic = retail_test_support::unique_name("sales");
    let mut payloads: Vec<Vec<u8>> = (0..3_000).map(sale).collect();
    payloads[10] = b"{not json".to_vec();
    payloads[11] = br#"{"InvoiceNo": {"nested": true}}"#.to_vec();
    produce(&brokers, &topic, &payloads, true).await;

    let lake = TestLake::new();
    let mut source = kafka_source(&lake, &brokers, &topic).await;
    let consumed = lake.consume(&mut source, 300).await;
    assert_eq!(consumed.records, 3_000, "{consumed:?}");
    assert_eq!(
        consumed.malformed, 2,
        "bad messages are kept as malformed records"
    );
    assert!(
        consumed.commits > 1,
        "small fetches make several rounds: {consumed:?}"
    );
    assert_eq!(lake.bronze().await, 3_000);
    assert_eq!(
        source.partition_positions(),
        source.ends().await.unwrap(),
        "read to the end"
    );

    // A restarted consumer resumes from bronze's marks: nothing is read twice.
    let mut restarted = kafka_source(&lake, &brokers, &topic).await;
    assert_eq!(
        restarted.partition_positions(),
        source.partition_positions()
    );
    let more: Vec<Vec<u8>> = (3_000..4_000).map(sale).collect();
    produce(&brokers, &topic, &more, false).await;
    let consumed = lake.consume(&mut restarted, 300).await;
    assert_eq!(consumed.records, 1_000, "{consumed:?}");
    assert_eq!(lake.bronze().await, 4_000);

    // A consumer whose commit raced another's (an old source still at the old positions)
    // writes nothing twice: its batches' checkpoints are held already.
    let consumed = lake.consume(&mut source, 300).await;
    assert_eq!(lake.bronze().await, 4_000, "{consumed:?}");
}

#[tokio::test]
async fn the_consumer_groups_offsets_on_the_broker_follow_bronzes_positions() {
    let Some(brokers) = retail_test_support::kafka_brokers() else {
        return;
    };
    let topic = retail_test_support::unique_name("lag");
    let payloads: Vec<Vec<u8>> = (0..1_500).map(sale).collect();
    produce(&brokers, &topic, &payloads, true).await;
    let group = retail_test_support::unique_name("retail");
    let lake = TestLake::new();
    let mut source = KafkaSource::connect(
        KafkaOptions {
            max_wait: Duration::from_millis(100),
            fetch_bytes: 16 << 10,
            group: Some(group.clone()),
            ..KafkaOptions::new(vec![brokers.clone()], &topic)
        },
        lake.positions(),
    )
    .await
    .unwrap();
    let consumed = lake.consume(&mut source, 300).await;
    assert_eq!(consumed.records, 1_500, "{consumed:?}");
    let positions = source.partition_positions();
    assert_eq!(positions.values().sum::<i64>(), 1_500);

    // Read back by a client of its own, as a lag tool would: the positions bronze holds.
    let partitions: Vec<i32> = (0..PARTITIONS).collect();
    let mut reader = GroupOffsets::new(vec![brokers.clone()], group);
    let committed = reader.fetch(&topic, &partitions).await.unwrap();
    let expected: Vec<(i32, Option<i64>)> = positions
        .iter()
        .map(|(partition, offset)| (*partition, Some(*offset)))
        .collect();
    assert_eq!(committed, expected);
    assert_eq!(
        source.group_offsets().await.unwrap(),
        Some(expected.into_iter().collect())
    );

    // Without a group the source has none to read; a group that never committed has no
    // offset for any partition (the broker answers -1).
    let quiet = retail_test_support::unique_name("unused");
    let other = TestLake::new();
    let mut ungrouped = KafkaSource::connect(
        KafkaOptions {
            group: None,
            ..KafkaOptions::new(vec![brokers.clone()], &topic)
        },
        other.positions(),
    )
    .await
    .unwrap();
    assert_eq!(other.consume(&mut ungrouped, 300).await.records, 1_500);
    assert_eq!(ungrouped.group_offsets().await.unwrap(), None);
    let none = GroupOffsets::new(vec![brokers], quiet)
        .fetch(&topic, &partitions)
        .await
        .unwrap();
    assert!(none.iter().all(|(_, offset)| offset.is_none()), "{none:?}");
}

#[tokio::test]
async fn an_unknown_topic_is_a_clear_error() {
    let Some(brokers) = retail_test_support::kafka_brokers() else {
        return;
    };
    let lake = TestLake::new();
    let error = KafkaSource::connect(
        KafkaOptions::new(vec![brokers], "no-such-topic"),
        lake.positions(),
    )
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("no topic \"no-such-topic\""),
        "{error}"
    );
}

#[tokio::test]
async fn csv_lines_are_named_by_the_configured_header_and_bad_ones_are_kept() {
    let Some(brokers) = retail_test_support::kafka_brokers() else {
        return;
    };
    let topic = retail_test_support::unique_name("csv-sales");
    let lines: Vec<Vec<u8>> = (0..300)
        .map(|n| {
            if n == 100 {
                b"600020,85123A,only three".to_vec()
            } else {
                format!(
                    "{},85123A,\"HEART, WHITE\",{},2011-12-09 12:00:00,2.55,{},United Kingdom",
                    600_000 + n / 5,
                    1 + n % 7,
                    12_346 + n
                )
                .into_bytes()
            }
        })
        .collect();
    produce(&brokers, &topic, &lines, true).await;
    let lake = TestLake::new();
    let header = retail_ingest::decode::csv_header(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country",
    )
    .unwrap();
    let mut source = KafkaSource::connect(
        KafkaOptions {
            max_wait: Duration::from_millis(100),
            format: retail_stream::MessageFormat::Csv { header },
            ..KafkaOptions::new(vec![brokers.clone()], &topic)
        },
        lake.positions(),
    )
    .await
    .unwrap();
    let consumed = lake.consume(&mut source, 300).await;
    assert_eq!(
        (consumed.records, consumed.malformed),
        (300, 1),
        "{consumed:?}"
    );
    let batches = lake.lake.read_all(&BRONZE_TRANSACTIONS).await.unwrap();
    let descriptions: Vec<String> = batches
        .iter()
        .flat_map(|batch| {
            let column = batch
                .column_by_name("description")
                .unwrap()
                .as_any()
                .downcast_ref::<retail_lake::arrow::array::StringArray>()
                .unwrap();
            (0..batch.num_rows())
                .filter(|i| !column.is_null(*i))
                .map(|i| column.value(i).to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(descriptions.len(), 299);
    assert!(descriptions.iter().all(|d| d == "HEART, WHITE"));
}
