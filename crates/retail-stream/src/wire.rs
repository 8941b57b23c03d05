//! Big-endian fields of the broker protocols written by hand (Kafka's group requests in
//! `kafka_group`, RabbitMQ's stream offsets in `rabbit_offsets`): both send frames after their
//! size in 4 bytes, put strings as a 16-bit length and the bytes, and numbers in network order.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The largest frame accepted from a broker (the answers read here are a few hundred bytes).
const MAX_FRAME: usize = 1 << 20;

/// Sends `frame` after its size.
pub(crate) async fn write_frame(stream: &mut TcpStream, frame: &[u8]) -> Result<(), String> {
    let size = u32::try_from(frame.len()).map_err(|_| "frame too large".to_owned())?;
    let mut bytes = Vec::with_capacity(frame.len() + 4);
    put_u32(&mut bytes, size);
    bytes.extend_from_slice(frame);
    stream
        .write_all(&bytes)
        .await
        .map_err(|error| format!("send: {error}"))
}

/// Reads one frame after its size: at least 4 bytes (both protocols start an answer with a
/// 4-byte field), at most [`MAX_FRAME`].
pub(crate) async fn read_frame(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    let size = stream
        .read_u32()
        .await
        .map_err(|error| format!("receive: {error}"))?;
    let size = usize::try_from(size)
        .ok()
        .filter(|size| (4..=MAX_FRAME).contains(size))
        .ok_or_else(|| format!("a frame of {size} bytes"))?;
    let mut frame = vec![0; size];
    stream
        .read_exact(&mut frame)
        .await
        .map_err(|error| format!("receive: {error}"))?;
    Ok(frame)
}

pub(crate) fn put_u16(buffer: &mut Vec<u8>, value: u16) {
    buffer.extend_from_slice(&value.to_be_bytes());
}

pub(crate) fn put_i16(buffer: &mut Vec<u8>, value: i16) {
    buffer.extend_from_slice(&value.to_be_bytes());
}

pub(crate) fn put_u32(buffer: &mut Vec<u8>, value: u32) {
    buffer.extend_from_slice(&value.to_be_bytes());
}

pub(crate) fn put_i32(buffer: &mut Vec<u8>, value: i32) {
    buffer.extend_from_slice(&value.to_be_bytes());
}

pub(crate) fn put_u64(buffer: &mut Vec<u8>, value: u64) {
    buffer.extend_from_slice(&value.to_be_bytes());
}

pub(crate) fn put_i64(buffer: &mut Vec<u8>, value: i64) {
    buffer.extend_from_slice(&value.to_be_bytes());
}

/// An array's length (a signed 32-bit count).
pub(crate) fn put_len(buffer: &mut Vec<u8>, len: usize) {
    put_i32(buffer, i32::try_from(len).unwrap_or(i32::MAX));
}

/// A string: its length in 16 bits, then its bytes (cut at 32,767 bytes).
pub(crate) fn put_string(buffer: &mut Vec<u8>, value: &str) {
    let len = value.len().min(i16::MAX as usize);
    put_i16(buffer, i16::try_from(len).expect("at most i16::MAX"));
    buffer.extend_from_slice(&value.as_bytes()[..len]);
}

/// Reads the fields of an answer, failing on a short one.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        if self.0.len() < N {
            return Err("a truncated answer".to_owned());
        }
        let (head, tail) = self.0.split_at(N);
        self.0 = tail;
        Ok(head.try_into().expect("N bytes"))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, String> {
        self.take().map(u16::from_be_bytes)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, String> {
        self.take().map(i16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        self.take().map(u32::from_be_bytes)
    }

    pub(crate) fn i32(&mut self) -> Result<i32, String> {
        self.take().map(i32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        self.take().map(u64::from_be_bytes)
    }

    pub(crate) fn i64(&mut self) -> Result<i64, String> {
        self.take().map(i64::from_be_bytes)
    }

    /// An array's length.
    pub(crate) fn len(&mut self) -> Result<usize, String> {
        usize::try_from(self.i32()?).map_err(|_| "a negative array length".to_owned())
    }

    pub(crate) fn string(&mut self) -> Result<String, String> {
        self.nullable_string()?
            .ok_or_else(|| "a null where a string was expected".to_owned())
    }

    pub(crate) fn nullable_string(&mut self) -> Result<Option<String>, String> {
        let Ok(len) = usize::try_from(self.i16()?) else {
            return Ok(None);
        };
        if self.0.len() < len {
            return Err("a truncated answer".to_owned());
        }
        let (bytes, tail) = self.0.split_at(len);
        self.0 = tail;
        Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_or_odd_answer_is_an_error_not_a_panic() {
        assert!(Reader(&[0, 1]).i32().is_err());
        assert!(Reader(&[0, 1, 2]).u32().is_err());
        assert!(Reader(&[0, 5, b'a']).string().is_err());
        assert_eq!(Reader(&[0xff, 0xff]).nullable_string(), Ok(None));
        assert!(Reader(&[0xff, 0xff]).string().is_err());
        assert!(Reader(&[0xff, 0xff, 0xff, 0xff]).len().is_err());
        let mut fine = Reader(&[0, 2, b'o', b'k', 0, 0, 0, 7]);
        assert_eq!(fine.string().as_deref(), Ok("ok"));
        assert_eq!(fine.i32(), Ok(7));
        let mut written = Vec::new();
        put_string(&mut written, "retail");
        put_i64(&mut written, -1);
        let mut read = Reader(&written);
        assert_eq!(read.string().as_deref(), Ok("retail"));
        assert_eq!(read.i64(), Ok(-1));
    }
}
