//! A consumer group's committed offsets on the Kafka brokers, written for lag monitoring only.
//!
//! Bronze's marks are the positions a consumer resumes from; the broker's committed offsets of
//! a group are a copy, so that the tools operators already use (`kafka-consumer-groups`, Burrow,
//! a Grafana panel over an exporter) see the consumer's lag. The group is never joined: offsets
//! are committed as a "simple consumer" does (generation -1, no member id), which brokers accept
//! for a group with no active members. rskafka has no group API, so the three requests needed
//! (FindCoordinator v0, OffsetCommit v2, OffsetFetch v1) are written here, on one connection to
//! the group's coordinator.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::wire::{
    Reader, put_i16, put_i32, put_i64, put_len, put_string, read_frame, write_frame,
};

/// How long one request to the coordinator may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

const FIND_COORDINATOR: i16 = 10;
const OFFSET_COMMIT: i16 = 8;
const OFFSET_FETCH: i16 = 9;

/// A group's committed offsets on the brokers.
#[derive(Debug)]
pub struct GroupOffsets {
    brokers: Vec<String>,
    group: String,
    /// The open connection to the group's coordinator.
    coordinator: Option<TcpStream>,
    correlation: i32,
}

impl GroupOffsets {
    /// The offsets of `group`, reached through `brokers` (`host:port`). Connects on first use.
    pub fn new(brokers: Vec<String>, group: impl Into<String>) -> Self {
        Self {
            brokers,
            group: group.into(),
            coordinator: None,
            correlation: 0,
        }
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Commits `offsets` (partition, next offset to read) of `topic` for the group.
    ///
    /// # Errors
    ///
    /// When the coordinator cannot be found or reached, or refuses a partition's offset (the
    /// error names the partition and Kafka's error code). The connection is dropped and made
    /// again on the next call.
    pub async fn commit(&mut self, topic: &str, offsets: &[(i32, i64)]) -> Result<(), String> {
        let mut body = Vec::new();
        put_string(&mut body, &self.group);
        put_i32(&mut body, -1); // generation: not a member
        put_string(&mut body, ""); // member id
        put_i64(&mut body, -1); // retention: the broker's
        put_i32(&mut body, 1);
        put_string(&mut body, topic);
        put_len(&mut body, offsets.len());
        for (partition, offset) in offsets {
            put_i32(&mut body, *partition);
            put_i64(&mut body, *offset);
            put_i16(&mut body, -1); // metadata: null
        }
        let answer = self.call(OFFSET_COMMIT, 2, &body).await?;
        let mut answer = Reader(&answer);
        for _ in 0..answer.len()? {
            let _topic = answer.string()?;
            for _ in 0..answer.len()? {
                let partition = answer.i32()?;
                let code = answer.i16()?;
                if code != 0 {
                    return Err(format!(
                        "the offset of {topic} partition {partition} was refused (Kafka error {code})"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The group's committed offset of each of `partitions` of `topic`; `None` where it has
    /// none.
    ///
    /// # Errors
    ///
    /// When the coordinator cannot be found or reached, or answers with an error.
    pub async fn fetch(
        &mut self,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Vec<(i32, Option<i64>)>, String> {
        let mut body = Vec::new();
        put_string(&mut body, &self.group);
        put_i32(&mut body, 1);
        put_string(&mut body, topic);
        put_len(&mut body, partitions.len());
        for partition in partitions {
            put_i32(&mut body, *partition);
        }
        let answer = self.call(OFFSET_FETCH, 1, &body).await?;
        let mut answer = Reader(&answer);
        let mut offsets = Vec::new();
        for _ in 0..answer.len()? {
            let _topic = answer.string()?;
            for _ in 0..answer.len()? {
                let partition = answer.i32()?;
                let offset = answer.i64()?;
                let _metadata = answer.nullable_string()?;
                let code = answer.i16()?;
                if code != 0 {
                    return Err(format!(
                        "the offset of {topic} partition {partition} could not be read (Kafka error {code})"
                    ));
                }
                offsets.push((partition, (offset >= 0).then_some(offset)));
            }
        }
        Ok(offsets)
    }

    /// Sends one request to the coordinator and returns the answer's body; on any failure the
    /// connection is dropped.
    async fn call(&mut self, api_key: i16, version: i16, body: &[u8]) -> Result<Vec<u8>, String> {
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, async {
            if self.coordinator.is_none() {
                self.coordinator = Some(self.find_coordinator().await?);
            }
            self.correlation = self.correlation.wrapping_add(1);
            let stream = self.coordinator.as_mut().expect("just connected");
            exchange(stream, api_key, version, self.correlation, body).await
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())));
        if outcome.is_err() {
            self.coordinator = None;
        }
        outcome.map_err(|error| format!("kafka consumer group {}: {error}", self.group))
    }

    /// Asks the first bootstrap broker that answers where the group's coordinator is, and
    /// connects to it.
    async fn find_coordinator(&mut self) -> Result<TcpStream, String> {
        let mut last = String::from("no brokers");
        for broker in &self.brokers {
            let mut stream = match TcpStream::connect(broker).await {
                Ok(stream) => stream,
                Err(error) => {
                    last = format!("connect to {broker}: {error}");
                    continue;
                }
            };
            let mut body = Vec::new();
            put_string(&mut body, &self.group);
            let answer = exchange(&mut stream, FIND_COORDINATOR, 0, 0, &body).await?;
            let mut answer = Reader(&answer);
            let code = answer.i16()?;
            if code != 0 {
                last = format!("{broker} could not name the coordinator (Kafka error {code})");
                continue;
            }
            let _node = answer.i32()?;
            let host = answer.string()?;
            let port = answer.i32()?;
            let address = format!("{host}:{port}");
            if address == *broker {
                return Ok(stream);
            }
            return TcpStream::connect(&address)
                .await
                .map_err(|error| format!("connect to the coordinator {address}: {error}"));
        }
        Err(last)
    }
}

/// Writes one request (header v1) and reads its answer (header v0), checking the correlation
/// id; returns the answer's body.
async fn exchange(
    stream: &mut TcpStream,
    api_key: i16,
    version: i16,
    correlation: i32,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let mut request = Vec::with_capacity(body.len() + 32);
    put_i16(&mut request, api_key);
    put_i16(&mut request, version);
    put_i32(&mut request, correlation);
    put_string(&mut request, "retail-stream");
    request.extend_from_slice(body);
    write_frame(stream, &request).await?;
    let mut answer = read_frame(stream).await?;
    let answered = Reader(&answer).i32()?;
    if answered != correlation {
        return Err(format!(
            "an answer to request {answered} where {correlation} was expected"
        ));
    }
    answer.drain(..4);
    Ok(answer)
}
