//! Message mode: each WebSocket message is one frame of the session, and keeps its kind
//! (text or binary) both ways. See [`WsMessageCodec`] for the codecs that run it.
//!
//! Inside the session, the reader hands each whole message (reassembled from its
//! fragments, its text already checked to be UTF-8) to the codec as one buffer: the
//! payload, then one byte for the kind. The codec's encoder writes its output the same
//! way, and the writer sends the payload as a message of that kind. That byte form is
//! the seam between the session and these codecs, not a wire format: on the wire each
//! message is exactly its payload. The codecs are sealed, so nothing else is ever handed
//! a buffer of that form.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::BoxError;

/// The kind byte of a text message.
pub(crate) const TEXT: u8 = 0x1;
/// The kind byte of a binary message.
pub(crate) const BINARY: u8 = 0x2;

/// One WebSocket message of a message-mode session: text or binary, as the peer sent it
/// (or as the listener wants it sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    /// A text message: always valid UTF-8 (a peer's invalid text ends its session with
    /// close code 1007 before it gets here).
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

impl WsMessage {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        WsMessage::Text(text.into())
    }

    /// A binary message.
    pub fn binary(bytes: impl Into<Bytes>) -> Self {
        WsMessage::Binary(bytes.into())
    }

    /// The payload's bytes, whichever the kind.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            WsMessage::Text(text) => text.as_bytes(),
            WsMessage::Binary(bytes) => bytes,
        }
    }

    /// True for a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, WsMessage::Text(_))
    }
}

impl From<String> for WsMessage {
    fn from(text: String) -> Self {
        WsMessage::Text(text)
    }
}

impl From<&str> for WsMessage {
    fn from(text: &str) -> Self {
        WsMessage::Text(text.to_owned())
    }
}

impl From<Bytes> for WsMessage {
    fn from(bytes: Bytes) -> Self {
        WsMessage::Binary(bytes)
    }
}

mod sealed {
    pub trait Sealed {}
}

/// The codecs of message-mode WebSocket sessions, started with `start_messages` on
/// [`WsServer`](super::WsServer) and [`WsClient`](super::WsClient):
/// - [`WsMessages`]: frames are [`WsMessage`]s, text or binary, both ways;
/// - [`TextMessages`]: frames are `String`s, each one text message (a chat, say);
/// - [`MessageCodec`]: your codec on top, one frame per message (JSON over text
///   messages with serde, say).
///
/// Sealed: these codecs know how the session hands them a message (see the
/// [module docs](self)), and a byte-stream codec such as
/// [`LengthDelimited`](crate::LengthDelimited) would not.
pub trait WsMessageCodec: sealed::Sealed {}

/// Why a codec of message mode refused a buffer or a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageError(String);

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MessageError {}

impl From<std::io::Error> for MessageError {
    fn from(err: std::io::Error) -> Self {
        MessageError(err.to_string())
    }
}

/// Takes one whole message out of `src`: its kind byte and its payload (the buffer
/// itself, without a copy). `None` for an empty buffer.
fn take_message(src: &mut BytesMut) -> Result<Option<(u8, BytesMut)>, MessageError> {
    let Some(&kind) = src.last() else {
        return Ok(None);
    };
    if kind != TEXT && kind != BINARY {
        return Err(MessageError(
            "not a message of a message-mode session: start the endpoint with start_messages"
                .to_owned(),
        ));
    }
    src.truncate(src.len() - 1);
    Ok(Some((kind, std::mem::take(src))))
}

/// A payload checked to be UTF-8 (again: the reader checked text already; binary
/// messages taken as text are checked here first).
fn into_string(payload: BytesMut) -> Result<String, MessageError> {
    String::from_utf8(Vec::from(payload))
        .map_err(|_| MessageError("message is not valid UTF-8".to_owned()))
}

fn put_message(dst: &mut BytesMut, payload: &[u8], kind: u8) {
    dst.reserve(payload.len() + 1);
    dst.put_slice(payload);
    dst.put_u8(kind);
}

/// The codec of message-mode sessions whose frames are [`WsMessage`]s: each message
/// the peer sends is one frame, text or binary, and each frame written is one message
/// of its kind.
///
/// ```no_run
/// # async fn run() -> getty::Result<()> {
/// use getty::transport::ws::{WsMessage, WsMessages, WsServer};
/// use getty::{EventListener, SessionContext};
///
/// /// Echoes every message as it came: text as text, binary as binary.
/// struct Echo;
/// impl EventListener for Echo {
///     type Codec = WsMessages;
///     type Out = WsMessage;
///     fn on_message(&mut self, s: &mut SessionContext<'_, Self>, msg: WsMessage) {
///         if let Err(err) = s.write(msg) {
///             tracing::warn!(%err, "echo refused; the peer misses it");
///         }
///     }
/// }
///
/// let server = WsServer::new("127.0.0.1:7000")
///     .start_messages(|_| Ok((Echo, WsMessages)))
///     .await?;
/// # server.stop().await; Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct WsMessages;

impl sealed::Sealed for WsMessages {}
impl WsMessageCodec for WsMessages {}

impl Decoder for WsMessages {
    type Item = WsMessage;
    type Error = MessageError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<WsMessage>, MessageError> {
        Ok(match take_message(src)? {
            Some((TEXT, payload)) => Some(WsMessage::Text(into_string(payload)?)),
            Some((_, payload)) => Some(WsMessage::Binary(payload.freeze())),
            None => None,
        })
    }
}

impl Encoder<WsMessage> for WsMessages {
    type Error = MessageError;

    fn encode(&mut self, msg: WsMessage, dst: &mut BytesMut) -> Result<(), MessageError> {
        match msg {
            WsMessage::Text(text) => put_message(dst, text.as_bytes(), TEXT),
            WsMessage::Binary(bytes) => put_message(dst, &bytes, BINARY),
        }
        Ok(())
    }
}

/// The codec of message-mode sessions whose frames are `String`s: each text message is
/// one frame, and each frame written is one text message. A binary message is taken as
/// text when it is valid UTF-8; otherwise it ends the session (close code 1007).
#[derive(Debug, Clone, Copy, Default)]
pub struct TextMessages;

impl sealed::Sealed for TextMessages {}
impl WsMessageCodec for TextMessages {}

impl Decoder for TextMessages {
    type Item = String;
    type Error = MessageError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<String>, MessageError> {
        match take_message(src)? {
            Some((_, payload)) => into_string(payload).map(Some),
            None => Ok(None),
        }
    }
}

impl Encoder<String> for TextMessages {
    type Error = MessageError;

    fn encode(&mut self, text: String, dst: &mut BytesMut) -> Result<(), MessageError> {
        put_message(dst, text.as_bytes(), TEXT);
        Ok(())
    }
}

/// Your codec on top of message mode: each message's payload (text or binary) is
/// decoded by `C` into exactly one frame, and each frame `C` encodes goes out as one
/// message of the kind this codec was made with. A text codec's output is checked to be
/// UTF-8, and a write of anything else fails (nothing is sent).
///
/// `C` sees one whole message at a time: `decode`, then `decode_eof` if `decode` asked
/// for more, must give one frame and leave nothing over.
///
/// ```
/// use bytes::BytesMut;
/// use getty::transport::ws::MessageCodec;
/// use tokio_util::codec::{Decoder, Encoder};
///
/// /// JSON values, one per message.
/// #[derive(Clone)]
/// struct Json;
/// impl Decoder for Json {
///     type Item = serde_json::Value;
///     type Error = std::io::Error;
///     fn decode(&mut self, src: &mut BytesMut) -> std::io::Result<Option<Self::Item>> {
///         let value = serde_json::from_slice(src)?;
///         src.clear();
///         Ok(Some(value))
///     }
/// }
/// impl Encoder<serde_json::Value> for Json {
///     type Error = std::io::Error;
///     fn encode(&mut self, v: serde_json::Value, dst: &mut BytesMut) -> std::io::Result<()> {
///         dst.extend_from_slice(v.to_string().as_bytes());
///         Ok(())
///     }
/// }
///
/// // A session codec: JSON in either kind of message, JSON out as text messages.
/// let codec = MessageCodec::text(Json);
/// # fn is_a_session_codec<C: getty::Codec<serde_json::Value>>(_: C) {}
/// # is_a_session_codec(codec);
/// ```
#[derive(Debug, Clone)]
pub struct MessageCodec<C> {
    inner: C,
    kind: u8,
    /// Reused for each message `inner` encodes, so a frame costs no allocation.
    scratch: BytesMut,
}

impl<C> MessageCodec<C> {
    /// Frames written go out as text messages.
    pub fn text(inner: C) -> Self {
        MessageCodec {
            inner,
            kind: TEXT,
            scratch: BytesMut::new(),
        }
    }

    /// Frames written go out as binary messages.
    pub fn binary(inner: C) -> Self {
        MessageCodec {
            inner,
            kind: BINARY,
            scratch: BytesMut::new(),
        }
    }

    /// The codec inside.
    pub fn inner(&self) -> &C {
        &self.inner
    }
}

impl<C> sealed::Sealed for MessageCodec<C> {}
impl<C> WsMessageCodec for MessageCodec<C> {}

impl<C> Decoder for MessageCodec<C>
where
    C: Decoder<Error: Into<BoxError>>,
{
    type Item = C::Item;
    type Error = BoxError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<C::Item>, BoxError> {
        let Some((_, mut payload)) = take_message(src)? else {
            return Ok(None);
        };
        let frame = match self.inner.decode(&mut payload).map_err(Into::into)? {
            Some(frame) => frame,
            None => self
                .inner
                .decode_eof(&mut payload)
                .map_err(Into::into)?
                .ok_or_else(|| MessageError("the codec found no frame in a message".to_owned()))?,
        };
        if !payload.is_empty() {
            return Err(MessageError(format!(
                "the codec left {} bytes of a message undecoded: one message is one frame",
                payload.len()
            ))
            .into());
        }
        Ok(Some(frame))
    }
}

impl<C, Out> Encoder<Out> for MessageCodec<C>
where
    C: Encoder<Out, Error: Into<BoxError>>,
{
    type Error = BoxError;

    fn encode(&mut self, frame: Out, dst: &mut BytesMut) -> Result<(), BoxError> {
        self.scratch.clear();
        self.inner
            .encode(frame, &mut self.scratch)
            .map_err(Into::into)?;
        if self.kind == TEXT && std::str::from_utf8(&self.scratch).is_err() {
            return Err(MessageError("a text message must be valid UTF-8".to_owned()).into());
        }
        put_message(dst, &self.scratch, self.kind);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: &[u8], kind: u8) -> BytesMut {
        let mut buf = BytesMut::new();
        put_message(&mut buf, payload, kind);
        buf
    }

    #[test]
    fn ws_messages_keep_their_kind_both_ways() {
        let mut codec = WsMessages;
        let mut buf = message("héllo".as_bytes(), TEXT);
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(WsMessage::text("héllo"))
        );
        assert!(buf.is_empty());
        let mut buf = message(&[0, 159, 146, 150], BINARY);
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(WsMessage::binary(vec![0, 159, 146, 150]))
        );
        let mut out = BytesMut::new();
        codec.encode(WsMessage::text("hi"), &mut out).unwrap();
        codec
            .encode(WsMessage::binary(vec![1u8]), &mut out)
            .unwrap();
        assert_eq!(&out[..], &[b'h', b'i', TEXT, 1, BINARY]);
    }

    #[test]
    fn a_buffer_without_a_kind_byte_is_refused() {
        // What a byte-stream (codec mode) session would hand it.
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x03abc"[..]);
        assert!(WsMessages.decode(&mut buf).is_err());
        assert_eq!(WsMessages.decode(&mut BytesMut::new()).unwrap(), None);
    }

    #[test]
    fn text_messages_take_utf8_of_either_kind() {
        let mut buf = message(b"plain", BINARY);
        assert_eq!(
            TextMessages.decode(&mut buf).unwrap().as_deref(),
            Some("plain")
        );
        let mut buf = message(&[0xFF], BINARY);
        assert!(TextMessages.decode(&mut buf).is_err());
    }

    /// Splits a message's payload at its first comma: a codec that finds a frame in a
    /// prefix and leaves the rest, to show a message must be one frame exactly.
    #[derive(Clone)]
    struct UpToComma;
    impl Decoder for UpToComma {
        type Item = BytesMut;
        type Error = std::io::Error;
        fn decode(&mut self, src: &mut BytesMut) -> std::io::Result<Option<BytesMut>> {
            Ok(src.iter().position(|&b| b == b',').map(|at| {
                let frame = src.split_to(at);
                let _comma = src.split_to(1);
                frame
            }))
        }
        fn decode_eof(&mut self, src: &mut BytesMut) -> std::io::Result<Option<BytesMut>> {
            Ok((!src.is_empty()).then(|| src.split()))
        }
    }
    impl Encoder<&'static [u8]> for UpToComma {
        type Error = std::io::Error;
        fn encode(&mut self, item: &'static [u8], dst: &mut BytesMut) -> std::io::Result<()> {
            dst.extend_from_slice(item);
            Ok(())
        }
    }

    #[test]
    fn message_codec_decodes_one_frame_per_message() {
        let mut codec = MessageCodec::text(UpToComma);
        // No comma: `decode` wants more, `decode_eof` takes the whole message.
        let mut buf = message(b"whole", TEXT);
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"whole");
        // Two frames in one message is not one message per frame.
        let mut buf = message(b"one,two", TEXT);
        assert!(codec.decode(&mut buf).is_err());
    }

    #[test]
    fn message_codec_sends_its_kind_and_checks_text() {
        let mut out = BytesMut::new();
        MessageCodec::binary(UpToComma)
            .encode(&[0xFFu8][..], &mut out)
            .unwrap();
        assert_eq!(&out[..], &[0xFF, BINARY]);
        let mut text = MessageCodec::text(UpToComma);
        out.clear();
        text.encode(&b"ok"[..], &mut out).unwrap();
        assert_eq!(&out[..], b"ok\x01");
        out.clear();
        assert!(text.encode(&[0xFFu8][..], &mut out).is_err());
        assert!(out.is_empty(), "nothing of a refused frame is queued");
    }
}
