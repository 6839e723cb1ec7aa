//! 4-byte big-endian length prefix + payload.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::defaults::DEFAULT_MAX_FRAME_LENGTH;
use crate::Error;

const HEADER: usize = 4;

/// Frames made of a 4-byte big-endian payload length followed by the payload.
///
/// Decodes to [`BytesMut`] (the payload, without header); encodes [`Bytes`] payloads
/// (one `Encoder` impl, so `Sink` types infer without annotations). Both directions refuse payloads longer than
/// [`max_frame_length`](Self::max_frame_length) with
/// [`ErrorKind::FrameTooLong`](crate::ErrorKind::FrameTooLong); on decode this happens as
/// soon as the header is read, so a peer announcing 4 GiB costs nothing.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use tokio_util::codec::{Decoder, Encoder};
/// let mut codec = getty::LengthDelimited::new();
/// let mut wire = BytesMut::new();
/// codec.encode(Bytes::from_static(b"hi"), &mut wire).unwrap();
/// assert_eq!(&wire[..], b"\0\0\0\x02hi");
/// assert_eq!(codec.decode(&mut wire).unwrap().unwrap(), "hi");
/// ```
#[derive(Debug, Clone)]
pub struct LengthDelimited {
    max_frame_length: usize,
    /// Payload length of the frame being read, once its header is consumed.
    pending: Option<usize>,
}

impl Default for LengthDelimited {
    fn default() -> Self {
        Self::new()
    }
}

impl LengthDelimited {
    /// A codec with the default max frame length, 4 KiB
    /// ([`DEFAULT_MAX_FRAME_LENGTH`](crate::defaults::DEFAULT_MAX_FRAME_LENGTH), the same as [`SessionConfig`](crate::SessionConfig)).
    pub fn new() -> Self {
        Self::with_max_frame_length(DEFAULT_MAX_FRAME_LENGTH)
    }

    /// A codec that refuses payloads longer than `max` bytes. Give it the session's
    /// [`max_frame_length`](crate::SessionConfig::max_frame_length) in the `new_session`
    /// hook so the two agree.
    pub fn with_max_frame_length(max: usize) -> Self {
        LengthDelimited {
            max_frame_length: max.min(u32::MAX as usize),
            pending: None,
        }
    }

    /// The longest payload this codec accepts, in bytes.
    pub fn max_frame_length(&self) -> usize {
        self.max_frame_length
    }

    #[inline]
    fn put_frame(&self, payload: &[u8], dst: &mut BytesMut) -> Result<(), Error> {
        if payload.len() > self.max_frame_length {
            return Err(Error::frame_too_long(payload.len(), self.max_frame_length));
        }
        dst.reserve(HEADER + payload.len());
        dst.put_u32(payload.len() as u32);
        dst.put_slice(payload);
        Ok(())
    }
}

impl Decoder for LengthDelimited {
    type Item = BytesMut;
    type Error = Error;

    // Inlined into the reader's decode loop: as a call, its result went through memory,
    // and reading it back stalled (a third of the loop's samples in the echo profile).
    #[inline]
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, Error> {
        let len = match self.pending {
            Some(len) => len,
            None => {
                if src.len() < HEADER {
                    return Ok(None);
                }
                let len = src.get_u32() as usize;
                if len > self.max_frame_length {
                    return Err(Error::frame_too_long(len, self.max_frame_length));
                }
                self.pending = Some(len);
                len
            }
        };
        if src.len() < len {
            // Room for the rest of this frame, but only where the buffer can make it
            // without allocating: frames decoded just before this one may still share
            // the buffer's chunk, and allocating now would abandon that chunk for
            // a fresh one per partial frame. The reader makes room otherwise.
            let _reclaimed = src.try_reclaim(len - src.len());
            return Ok(None);
        }
        self.pending = None;
        Ok(Some(src.split_to(len)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, Error> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() && self.pending.is_none() => Ok(None),
            None => Err(Error::from_decode(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "stream ended inside a frame",
            ))),
        }
    }
}

impl Encoder<Bytes> for LengthDelimited {
    type Error = Error;
    #[inline]
    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), Error> {
        self.put_frame(&item, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn decodes_split_input_byte_by_byte() {
        let mut codec = LengthDelimited::new();
        let mut wire = BytesMut::new();
        codec
            .encode(Bytes::from_static(b"hello"), &mut wire)
            .unwrap();
        codec.encode(Bytes::from_static(b""), &mut wire).unwrap();
        let mut src = BytesMut::new();
        let mut frames = Vec::new();
        for byte in wire.iter() {
            src.put_u8(*byte);
            while let Some(frame) = codec.decode(&mut src).unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames, vec![BytesMut::from(&b"hello"[..]), BytesMut::new()]);
    }

    #[test]
    fn refuses_long_header_before_buffering() {
        let mut codec = LengthDelimited::with_max_frame_length(16);
        let mut src = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        let err = codec.decode(&mut src).unwrap_err();
        assert!(matches!(
            err.kind(),
            ErrorKind::FrameTooLong {
                len: 0xffff_ffff,
                max: 16,
                ..
            }
        ));
        assert!(
            src.capacity() < 64,
            "no buffer grown for the announced length"
        );
    }

    #[test]
    fn refuses_long_payload_on_encode() {
        let mut codec = LengthDelimited::with_max_frame_length(2);
        let mut dst = BytesMut::new();
        assert!(codec.encode(Bytes::from_static(b"abc"), &mut dst).is_err());
        assert!(dst.is_empty());
    }

    #[test]
    fn truncated_frame_at_eof_is_a_decode_error() {
        let mut codec = LengthDelimited::new();
        let mut src = BytesMut::from(&[0, 0, 0, 5, b'a'][..]);
        assert!(codec.decode(&mut src).unwrap().is_none());
        assert!(matches!(
            codec.decode_eof(&mut src),
            Err(e) if matches!(e.kind(), ErrorKind::Decode { .. })
        ));
    }
}
