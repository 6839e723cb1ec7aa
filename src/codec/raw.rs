//! No framing: bytes as they arrive.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::defaults::DEFAULT_MAX_FRAME_LENGTH;
use crate::Error;

/// Passes bytes through: each decode yields the bytes buffered so far (at most
/// `max_chunk` of them), each encode appends the bytes given.
///
/// For protocols framed elsewhere, proxies, or byte-level tests.
///
/// ```
/// use bytes::BytesMut;
/// use tokio_util::codec::Decoder;
/// let mut codec = getty::RawBytes::with_max_chunk(3);
/// let mut src = BytesMut::from(&b"hello"[..]);
/// assert_eq!(codec.decode(&mut src).unwrap().unwrap(), "hel");
/// assert_eq!(codec.decode(&mut src).unwrap().unwrap(), "lo");
/// ```
#[derive(Debug, Clone)]
pub struct RawBytes {
    max_chunk: usize,
}

impl Default for RawBytes {
    fn default() -> Self {
        Self::new()
    }
}

impl RawBytes {
    /// Chunks of at most 4 KiB ([`DEFAULT_MAX_FRAME_LENGTH`](crate::defaults::DEFAULT_MAX_FRAME_LENGTH)).
    pub fn new() -> Self {
        Self::with_max_chunk(DEFAULT_MAX_FRAME_LENGTH)
    }

    /// Chunks of at most `max` bytes (at least 1).
    pub fn with_max_chunk(max: usize) -> Self {
        RawBytes {
            max_chunk: max.max(1),
        }
    }
}

impl Decoder for RawBytes {
    type Item = BytesMut;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, Error> {
        if src.is_empty() {
            return Ok(None);
        }
        let n = src.len().min(self.max_chunk);
        Ok(Some(src.split_to(n)))
    }
}

impl Encoder<Bytes> for RawBytes {
    type Error = Error;
    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), Error> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}
