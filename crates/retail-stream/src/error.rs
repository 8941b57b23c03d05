//! Errors of the stream sources.

/// What can go wrong reading a stream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A broker refused or failed a request.
    #[error("kafka: failed to {what}")]
    Kafka {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: rskafka::client::error::Error,
    },
    /// The topic does not exist on the brokers.
    #[error("kafka: no topic {0:?} on the brokers (create it first)")]
    UnknownTopic(String),
    /// A partition asked for does not exist.
    #[error("kafka: topic {topic:?} has no partition {partition}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// A consumer's offsets kept by the broker (a Kafka group's, a RabbitMQ stream
    /// reference's) could not be read or written.
    #[error("{0}")]
    Group(String),
    /// The RabbitMQ broker refused or failed a request.
    #[error("rabbitmq: failed to {what}")]
    Rabbit {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: lapin::Error,
    },
    /// The queue or stream does not exist (or may not be read).
    #[error("rabbitmq: cannot read {kind} {name:?} (declare it first): {reason}")]
    UnknownQueue {
        /// `queue` or `stream`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The broker's answer.
        reason: String,
    },
    /// Ingesting into bronze failed.
    #[error(transparent)]
    Ingestion(#[from] retail_pipeline::Error),
}

/// The stream sources' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
