//! A RabbitMQ stream's server-side offset of a named consumer, written for lag monitoring only.
//!
//! Bronze's marks are the positions a consumer resumes from; the offset the broker keeps for a
//! consumer name (a "reference") is a copy, so that `rabbitmq-streams list_stream_tracking` and
//! the management tools show how far the consumer is. AMQP 0-9-1, which the consumer reads
//! with, has no such offset: it lives in the stream protocol, so the few frames needed
//! (PeerProperties, SASL PLAIN, Tune, Open, StoreOffset and QueryOffset) are written here, on
//! one connection to the stream port.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::wire::{Reader, put_string, put_u16, put_u32, put_u64, read_frame, write_frame};

/// The stream protocol's port unless set otherwise.
pub const DEFAULT_STREAM_PORT: u16 = 5552;

/// How long connecting, or one request, may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The stream protocol's "OK" response code.
const OK: u16 = 1;
/// The response code of a query for a reference that stored no offset.
const NO_OFFSET: u16 = 0x13;

const STORE_OFFSET: u16 = 0x000a;
const QUERY_OFFSET: u16 = 0x000b;
const PEER_PROPERTIES: u16 = 0x0011;
const SASL_HANDSHAKE: u16 = 0x0012;
const SASL_AUTHENTICATE: u16 = 0x0013;
const TUNE: u16 = 0x0014;
const OPEN: u16 = 0x0015;
const RESPONSE: u16 = 0x8000;

/// Where the stream protocol is served and who logs in.
#[derive(Debug, Clone)]
pub struct StreamEndpoint {
    /// `host:port` of the stream protocol (5552 by default).
    pub address: String,
    /// The user.
    pub user: String,
    /// The password.
    pub password: String,
    /// The virtual host.
    pub vhost: String,
}

impl StreamEndpoint {
    /// The stream protocol on `port` of the broker an `amqp://` URL names, with its user,
    /// password and virtual host.
    ///
    /// # Errors
    ///
    /// When the URL cannot be parsed.
    pub fn from_amqp_url(url: &str, port: u16) -> Result<Self, String> {
        let uri: lapin::uri::AMQPUri = url
            .parse()
            .map_err(|error| format!("the AMQP URL cannot be read: {error}"))?;
        Ok(Self {
            address: format!("{}:{port}", uri.authority.host),
            user: uri.authority.userinfo.username,
            password: uri.authority.userinfo.password,
            vhost: uri.vhost,
        })
    }
}

/// A consumer name's offsets in RabbitMQ streams.
#[derive(Debug)]
pub struct StreamOffsets {
    endpoint: StreamEndpoint,
    reference: String,
    connection: Option<TcpStream>,
    correlation: u32,
}

impl StreamOffsets {
    /// The offsets of the consumer named `reference`. Connects on first use.
    pub fn new(endpoint: StreamEndpoint, reference: impl Into<String>) -> Self {
        Self {
            endpoint,
            reference: reference.into(),
            connection: None,
            correlation: 0,
        }
    }

    /// The consumer's name.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// Stores `offset` (the last message the consumer has taken) for `stream`. The protocol
    /// has no answer to a store: a refused one shows in [`StreamOffsets::query`].
    ///
    /// # Errors
    ///
    /// When the broker cannot be reached or refuses the login.
    pub async fn store(&mut self, stream: &str, offset: u64) -> Result<(), String> {
        let mut frame = header(STORE_OFFSET);
        put_string(&mut frame, &self.reference);
        put_string(&mut frame, stream);
        put_u64(&mut frame, offset);
        self.send(frame).await
    }

    /// The offset stored for `stream`, `None` when none is.
    ///
    /// # Errors
    ///
    /// When the broker cannot be reached, refuses the login, or answers with an error (an
    /// unknown stream among them).
    pub async fn query(&mut self, stream: &str) -> Result<Option<u64>, String> {
        let mut request = self.request(QUERY_OFFSET);
        put_string(&mut request.frame, &self.reference);
        put_string(&mut request.frame, stream);
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let answer = request.answer(self.connection().await?).await?;
            let mut answer = Reader(&answer);
            match answer.u16()? {
                OK => Ok(Some(answer.u64()?)),
                NO_OFFSET => Ok(None),
                code => Err(format!(
                    "the offset of stream {stream} could not be read (response code {code})"
                )),
            }
        })
        .await
        .unwrap_or_else(|_| Err(timed_out()));
        self.keep_if_ok(outcome)
    }

    async fn send(&mut self, frame: Vec<u8>) -> Result<(), String> {
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let connection = self.connection().await?;
            write_frame(connection, &frame).await
        })
        .await
        .unwrap_or_else(|_| Err(timed_out()));
        self.keep_if_ok(outcome)
    }

    /// Drops the connection after a failure (the next call makes a new one) and names the
    /// endpoint in the error.
    fn keep_if_ok<T>(&mut self, outcome: Result<T, String>) -> Result<T, String> {
        if outcome.is_err() {
            self.connection = None;
        }
        outcome.map_err(|error| {
            format!(
                "rabbitmq stream offsets of {} at {}: {error}",
                self.reference, self.endpoint.address
            )
        })
    }

    /// A request frame with `key` and the next correlation id; its fields are put after.
    fn request(&mut self, key: u16) -> Request {
        self.correlation = self.correlation.wrapping_add(1);
        let mut frame = header(key);
        put_u32(&mut frame, self.correlation);
        Request {
            key,
            correlation: self.correlation,
            frame,
        }
    }

    /// The open connection, made and logged in when there is none.
    async fn connection(&mut self) -> Result<&mut TcpStream, String> {
        if self.connection.is_none() {
            let connection = self.open().await?;
            self.connection = Some(connection);
        }
        Ok(self.connection.as_mut().expect("just opened"))
    }

    /// Connects and goes through the protocol's opening: peer properties, SASL PLAIN, tune
    /// (no heartbeats: the connection only ever sends), open the virtual host.
    async fn open(&mut self) -> Result<TcpStream, String> {
        let address = self.endpoint.address.clone();
        let mut stream = TcpStream::connect(&address)
            .await
            .map_err(|error| format!("connect: {error}"))?;

        let mut request = self.request(PEER_PROPERTIES);
        put_u32(&mut request.frame, 1);
        put_string(&mut request.frame, "product");
        put_string(&mut request.frame, "retail-stream");
        check(request.answer(&mut stream).await?, "connect")?;

        check(
            self.request(SASL_HANDSHAKE).answer(&mut stream).await?,
            "log in",
        )?;

        let mut request = self.request(SASL_AUTHENTICATE);
        put_string(&mut request.frame, "PLAIN");
        let plain = format!("\0{}\0{}", self.endpoint.user, self.endpoint.password);
        put_u32(
            &mut request.frame,
            u32::try_from(plain.len()).unwrap_or(u32::MAX),
        );
        request.frame.extend_from_slice(plain.as_bytes());
        check(
            request.answer(&mut stream).await?,
            "log in (user or password refused)",
        )?;

        // The broker proposes its limits; the answer takes its frame size and no heartbeat.
        let tune = read_frame_with_key(&mut stream, TUNE).await?;
        let frame_max = Reader(&tune).u32()?;
        let mut frame = header(TUNE);
        put_u32(&mut frame, frame_max);
        put_u32(&mut frame, 0);
        write_frame(&mut stream, &frame).await?;

        let mut request = self.request(OPEN);
        put_string(&mut request.frame, &self.endpoint.vhost);
        check(request.answer(&mut stream).await?, "open the virtual host")?;
        Ok(stream)
    }
}

/// A request and what its response must carry.
struct Request {
    key: u16,
    correlation: u32,
    frame: Vec<u8>,
}

impl Request {
    /// Sends the request and returns its response from the response code on.
    async fn answer(self, stream: &mut TcpStream) -> Result<Vec<u8>, String> {
        write_frame(stream, &self.frame).await?;
        read_response(stream, self.key, self.correlation).await
    }
}

fn timed_out() -> String {
    format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())
}

/// Fails unless a response body starts with the OK code.
fn check(answer: Vec<u8>, what: &str) -> Result<(), String> {
    match Reader(&answer).u16()? {
        OK => Ok(()),
        code => Err(format!("could not {what} (response code {code})")),
    }
}

/// A frame's key and version (1); [`write_frame`] sends it after its size.
fn header(key: u16) -> Vec<u8> {
    let mut frame = Vec::with_capacity(64);
    put_u16(&mut frame, key);
    put_u16(&mut frame, 1);
    frame
}

/// Reads frames until one with `key`, returning what follows its key and version; frames the
/// broker sends unasked (a heartbeat) are skipped.
async fn read_frame_with_key(stream: &mut TcpStream, key: u16) -> Result<Vec<u8>, String> {
    loop {
        let frame = read_frame(stream).await?;
        let mut reader = Reader(&frame);
        let got = reader.u16()?;
        let _version = reader.u16()?;
        if got == key {
            return Ok(frame[4..].to_vec());
        }
        if got == 0x0016 {
            return Err("the broker closed the connection".to_owned());
        }
    }
}

/// Reads the response to request `key` with `correlation`; returns what follows the
/// correlation id (the response code first).
async fn read_response(
    stream: &mut TcpStream,
    key: u16,
    correlation: u32,
) -> Result<Vec<u8>, String> {
    let body = read_frame_with_key(stream, key | RESPONSE).await?;
    let mut reader = Reader(&body);
    let answered = reader.u32()?;
    if answered != correlation {
        return Err(format!(
            "an answer to request {answered} where {correlation} was expected"
        ));
    }
    Ok(body[4..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_comes_from_the_amqp_url_and_short_frames_are_errors() {
        let endpoint =
            StreamEndpoint::from_amqp_url("amqp://retail:s3cret@broker:5672/sales", 5552).unwrap();
        assert_eq!(endpoint.address, "broker:5552");
        assert_eq!(
            (endpoint.user.as_str(), endpoint.password.as_str()),
            ("retail", "s3cret")
        );
        assert_eq!(endpoint.vhost, "sales");
        assert!(StreamEndpoint::from_amqp_url("not a url", 5552).is_err());
        assert!(check(vec![0, 6], "log in").unwrap_err().contains("code 6"));
        assert!(check(vec![0, 1], "log in").is_ok());
    }
}
