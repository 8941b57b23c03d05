//! `retail serve` with `[[streams]]`: the configured streams are consumed beside the API, gold
//! follows bronze, `/ready` and `/metrics` tell how the consumers stand, and a shutdown commits
//! what was consumed.

use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use retail_app::{App, Role, StreamConfig};
use retail_lake::schema::{BRONZE_TRANSACTIONS, GOLD_FACT_SALES};
use retail_services::ApiConfig;
use rskafka::client::ClientBuilder;
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::record::Record;

use crate::api::support::test_config;

/// A sale as the ingestion API accepts it; `n` makes it unique.
fn sale(n: usize) -> Vec<u8> {
    serde_json::json!({
        "InvoiceNo": format!("{}", 600_000 + n), "StockCode": "85123A",
        "Description": "WHITE HANGING HEART T-LIGHT HOLDER", "Quantity": 1 + n % 7,
        "InvoiceDate": "2011-12-09 12:00:00", "UnitPrice": "2.55",
        "CustomerID": format!("{}", 12_346 + n % 100), "Country": "United Kingdom"
    })
    .to_string()
    .into_bytes()
}

/// Produces `sales` over the two partitions of `topic`, creating it first when `create`.
pub(crate) async fn produce_kafka(
    brokers: &str,
    topic: &str,
    sales: std::ops::Range<usize>,
    create: bool,
) {
    let client = ClientBuilder::new(vec![brokers.to_owned()])
        .build()
        .await
        .unwrap();
    if create {
        client
            .controller_client()
            .unwrap()
            .create_topic(topic, 2, 1, 5_000)
            .await
            .unwrap();
    }
    for partition in 0..2 {
        let records: Vec<Record> = sales
            .clone()
            .filter(|n| *n as i32 % 2 == partition)
            .map(|n| Record {
                key: None,
                value: Some(sale(n)),
                headers: Default::default(),
                timestamp: chrono::Utc::now(),
            })
            .collect();
        client
            .partition_client(topic, partition, UnknownTopicHandling::Retry)
            .await
            .unwrap()
            .produce(records, Compression::NoCompression)
            .await
            .unwrap();
    }
}

async fn publish_queue(url: &str, queue: &str, sales: std::ops::Range<usize>) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for n in sales {
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &sale(n),
                BasicProperties::default().with_message_id(format!("sale-{n}").as_str().into()),
            )
            .await
            .unwrap();
        assert!(confirm.await.unwrap().is_ack());
    }
    connection.close(200, "published".into()).await.unwrap();
}

/// Waits up to 60 s for `done`.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn serve_consumes_the_configured_streams_and_gold_follows() {
    let Some(brokers) = retail_test_support::kafka_brokers() else {
        return;
    };
    let Some(url) = retail_test_support::amqp_url() else {
        return;
    };
    let topic = retail_test_support::unique_name("serve-sales");
    let queue = retail_test_support::unique_name("serve_web_sales");
    produce_kafka(&brokers, &topic, 0..300, true).await;
    publish_queue(&url, &queue, 300..500).await;

    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), ApiConfig::default());
    config.pipeline.follow_interval_ms = 200;
    config.streams = vec![
        StreamConfig {
            name: "pos".to_owned(),
            brokers: vec![brokers.clone()],
            topic: topic.clone(),
            max_wait_ms: 100,
            ..StreamConfig::default()
        },
        StreamConfig {
            source: "rabbitmq".to_owned(),
            url: url.clone(),
            queue: queue.clone(),
            max_wait_ms: 100,
            ..StreamConfig::default()
        },
    ];
    let app = App::build(config, Role::Server).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let checks = async {
        eventually("gold holds every consumed sale", || async {
            app.lake.count_rows(&GOLD_FACT_SALES).await.unwrap_or(0) == 500
        })
        .await;
        let readiness = app.services.operations.readiness().await;
        assert_eq!(
            readiness.checks.get("streams"),
            Some(&"ok"),
            "{readiness:?}"
        );
        // More arrives while serving: gold follows again.
        produce_kafka(&brokers, &topic, 1_000..1_010, false).await;
        eventually("gold follows the new sales", || async {
            app.lake.count_rows(&GOLD_FACT_SALES).await.unwrap_or(0) == 510
        })
        .await;
        let metrics = app.services.operations.metrics().await;
        for line in [
            "retail_stream_records_total{stream=\"pos\"} 310",
            &format!("retail_stream_records_total{{stream=\"rabbitmq:queue:{queue}\"}} 200"),
            "retail_stream_connected{stream=\"pos\"} 1",
        ] {
            assert!(metrics.contains(line), "{line} in\n{metrics}");
        }
        assert!(metrics.contains("retail_stream_lag{"), "{metrics}");
        stop.send(()).unwrap();
    };
    let (served, ()) = tokio::join!(
        app.serve_until(listener, async {
            let _ = stopped.await;
        }),
        checks
    );
    served.unwrap();
    assert_eq!(
        app.lake.count_rows(&BRONZE_TRANSACTIONS).await.unwrap(),
        510
    );
}

#[tokio::test]
async fn a_stream_whose_broker_is_out_of_reach_makes_ready_say_so_and_shutdown_is_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), ApiConfig::default());
    config.streams = vec![StreamConfig {
        brokers: vec!["127.0.0.1:1".to_owned()],
        topic: "sales".to_owned(),
        retry_seconds: 1,
        ..StreamConfig::default()
    }];
    let app = App::build(config, Role::Server).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let checks = async {
        eventually("ready reports the stream's broker", || async {
            let readiness = app.services.operations.readiness().await;
            readiness.checks.get("streams") == Some(&"unavailable") && !readiness.ready
        })
        .await;
        stop.send(()).unwrap();
    };
    let started = Instant::now();
    let (served, ()) = tokio::join!(
        app.serve_until(listener, async {
            let _ = stopped.await;
        }),
        checks
    );
    served.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a consumer waiting to reconnect stops at once"
    );
}

#[tokio::test]
async fn a_stream_lag_sensor_fires_once_when_the_lag_rises_above_its_limit_and_again_after_it_fell()
{
    use retail_services::scheduler::{LagLook, SensorConfig, SensorKind};
    let Some(brokers) = retail_test_support::kafka_brokers() else {
        return;
    };
    let topic = retail_test_support::unique_name("lag-sales");
    produce_kafka(&brokers, &topic, 0..50, true).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), ApiConfig::default());
    config.streams = vec![StreamConfig {
        name: "pos".to_owned(),
        brokers: vec![brokers.clone()],
        topic: topic.clone(),
        max_wait_ms: 100,
        ..StreamConfig::default()
    }];
    config.scheduler.sensors = vec![SensorConfig {
        name: "backlog".to_owned(),
        kind: SensorKind::StreamLag,
        path: None,
        asset: None,
        url: None,
        stream: Some("pos".to_owned()),
        max_lag: Some(40),
        assets: vec!["silver".to_owned()],
    }];
    let app = App::build(config.clone(), Role::Cli).await.unwrap();
    let scheduler = &app.services.scheduler;
    let runs = |report: &retail_services::scheduler::TickReport| -> Vec<String> {
        report.runs.iter().map(|(by, _, _)| by.clone()).collect()
    };
    let look = || async {
        scheduler.status().await.unwrap().sensors[0]
            .lag
            .clone()
            .expect("a look")
    };

    // 50 messages on the broker, none in bronze: above 40, the sensor fires once.
    let report = scheduler.tick().await.unwrap();
    assert_eq!(runs(&report), ["sensor:backlog"], "{report:?}");
    assert_eq!(
        look().await,
        LagLook {
            lag: 50,
            above: true
        }
    );
    let report = scheduler.tick().await.unwrap();
    assert!(
        runs(&report).is_empty(),
        "still above: not again {report:?}"
    );

    // Consumed into bronze: the lag falls to 0, nothing runs.
    let mut source = retail_app::streams::open(&app, &config.streams[0])
        .await
        .unwrap();
    let consumed = retail_stream::consume(
        &app.ingestion,
        source.as_mut(),
        &retail_stream::ConsumeOptions {
            until_idle: Some(Duration::from_millis(500)),
            requested_by: "stream:pos".to_owned(),
        },
        &retail_domain::progress::NoProgress,
        &mut retail_stream::NoHook,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(consumed.records, 50);
    let report = scheduler.tick().await.unwrap();
    assert!(runs(&report).is_empty(), "{report:?}");
    assert_eq!(
        look().await,
        LagLook {
            lag: 0,
            above: false
        }
    );

    // 30 more: within the limit; 20 more: above again, and it fires again.
    produce_kafka(&brokers, &topic, 100..130, false).await;
    assert!(runs(&scheduler.tick().await.unwrap()).is_empty());
    assert_eq!(
        look().await,
        LagLook {
            lag: 30,
            above: false
        }
    );
    produce_kafka(&brokers, &topic, 200..220, false).await;
    let report = scheduler.tick().await.unwrap();
    assert_eq!(runs(&report), ["sensor:backlog"], "{report:?}");
    assert_eq!(
        look().await,
        LagLook {
            lag: 50,
            above: true
        }
    );

    // A sensor naming no configured stream is refused at start.
    config.scheduler.sensors[0].stream = Some("till".to_owned());
    let error = App::build(config, Role::Cli).await.unwrap_err().to_string();
    assert!(
        error.contains(
            "stream_lag sensors name [\"till\"], not streams of [[streams]] (known: pos)"
        ),
        "{error}"
    );
}
