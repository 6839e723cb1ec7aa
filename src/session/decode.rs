//! Decoding what a read buffer holds: every complete frame, with what stays undecoded
//! bounded by the session's max frame length. Shared by the byte-stream reader
//! (`super::frame_reader`) and the WebSocket reader.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::error::BoxError;
use crate::Error;

/// Decodes every complete frame in `buf` into `batch`. Fails with
/// [`ErrorKind::FrameTooLong`](crate::ErrorKind::FrameTooLong) when what stays undecoded is
/// longer than `bound`.
pub(crate) fn decode_available<D>(
    decoder: &mut D,
    buf: &mut BytesMut,
    bound: usize,
    batch: &mut Vec<D::Item>,
) -> Result<(), Error>
where
    D: Decoder<Error: Into<BoxError>>,
{
    while let Some(frame) = decoder.decode(buf).map_err(Error::from_decode)? {
        batch.push(frame);
    }
    if buf.len() > bound {
        return Err(Error::frame_too_long(buf.len(), bound));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::LengthDelimited;
    use crate::ErrorKind;
    use tokio_util::codec::LinesCodec;

    #[test]
    fn bound_applies_to_codecs_without_length_checks() {
        let mut lines = LinesCodec::new();
        let mut buf = BytesMut::from(&b"one\ntwo\nthree-without-end"[..]);
        let mut batch = Vec::new();
        let err = decode_available(&mut lines, &mut buf, 8, &mut batch).unwrap_err();
        assert_eq!(batch, vec!["one".to_string(), "two".to_string()]);
        assert!(matches!(
            err.kind(),
            ErrorKind::FrameTooLong {
                len: 17,
                max: 8,
                ..
            }
        ));
    }

    #[test]
    fn complete_frames_pass_under_the_bound() {
        let mut codec = LengthDelimited::with_max_frame_length(4);
        let mut buf = BytesMut::from(&b"\0\0\0\x01a\0\0\0\x02bc\0\0"[..]);
        let mut batch = Vec::new();
        decode_available(&mut codec, &mut buf, 4 + 64, &mut batch).unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(buf.len(), 2);
    }
}
