//! The incoming side of one WebSocket session, without sockets: WebSocket messages in,
//! decoded frames and protocol reactions out. Shared by the server's and the client's
//! reader actors.

use std::sync::Arc;

use actix_http::ws::{CloseCode, CloseReason, Item, ProtocolError};
use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::deflate::{InflateError, Inflater};
use super::message::{BINARY, TEXT};
use super::options::WsOptions;
use super::utf8::Utf8Stream;
use crate::error::{BoxError, Error, ErrorKind};
use crate::session::decode_available;
use crate::session::SessionShared;

/// One message as the reader sees it, whichever side it came from.
#[derive(Debug)]
pub(crate) enum WsIn {
    /// A whole binary (`text: false`) or text message; `compressed` by
    /// permessage-deflate.
    Data {
        bytes: Bytes,
        text: bool,
        compressed: bool,
    },
    /// A fragment of a message; for a first fragment, whether the message is compressed.
    Continuation(Item, bool),
    /// A frame with RSV1 where it may not be: this reason.
    Misplaced(&'static str),
    Ping(Bytes),
    Pong,
    Close(Option<CloseReason>),
}

impl WsIn {
    /// The message bytes it carries.
    pub(crate) fn len(&self) -> usize {
        match self {
            WsIn::Data { bytes, .. } => bytes.len(),
            WsIn::Continuation(Item::FirstText(b) | Item::FirstBinary(b), _)
            | WsIn::Continuation(Item::Continue(b) | Item::Last(b), _) => b.len(),
            WsIn::Ping(b) => b.len(),
            WsIn::Misplaced(_) | WsIn::Pong | WsIn::Close(_) => 0,
        }
    }
}

/// What the reader must do after a message (the frames it decoded are in the batch it
/// passed).
#[derive(Debug)]
pub(crate) enum Step {
    Nothing,
    /// Answer a ping.
    Pong(Bytes),
    /// The peer closed.
    Closed(Option<CloseReason>),
    /// The peer broke the protocol or a limit: end the session with this error, and
    /// close with this code.
    Failed(Error, CloseCode),
}

/// Hands the peer's messages to the session's codec, in one of two modes:
/// - codec mode: binary (and allowed text) messages feed one byte stream, so a message
///   may carry several frames and a frame may span several messages;
/// - message mode: each whole message, reassembled from its fragments, is one frame
///   (see [`message`](super::message) for how it reaches the codec).
///
/// Either way a text message must be UTF-8 (checked fragment by fragment, RFC 6455
/// §8.1: close code 1007), and one message may hold at most `bound` bytes (1009). A
/// message compressed by permessage-deflate is inflated (within `bound`) once whole, and
/// then goes on as any other.
pub(crate) struct Inflow<D> {
    decoder: D,
    /// Codec mode: the bytes not decoded yet. Message mode: the fragments of the message
    /// being received.
    buf: BytesMut,
    /// The compressed fragments of the message being received.
    packed: BytesMut,
    /// Longest message; in codec mode also the longest undecoded frame.
    bound: usize,
    allow_text: bool,
    messages: bool,
    shared: Arc<SessionShared>,
    /// The fragmented message being received, if one is.
    fragment: Option<Fragment>,
    /// The UTF-8 check of the text message being received.
    utf8: Utf8Stream,
    /// permessage-deflate, where it was agreed.
    inflater: Option<Inflater>,
}

/// What is known of a fragmented message so far.
#[derive(Debug, Clone, Copy)]
struct Fragment {
    /// Bytes received.
    len: usize,
    text: bool,
    compressed: bool,
}

impl<D> Inflow<D>
where
    D: Decoder<Error: Into<BoxError>>,
{
    pub(crate) fn new(
        decoder: D,
        shared: Arc<SessionShared>,
        options: WsOptions,
        inflater: Option<Inflater>,
    ) -> Self {
        Inflow {
            decoder,
            buf: BytesMut::new(),
            packed: BytesMut::new(),
            bound: options.message_bound(&shared.config),
            allow_text: options.allow_text || options.messages,
            messages: options.messages,
            shared,
            fragment: None,
            utf8: Utf8Stream::default(),
            inflater,
        }
    }

    /// Longest WebSocket message accepted (see [`WsOptions::message_bound`]).
    pub(crate) fn bound(&self) -> usize {
        self.bound
    }

    /// Bytes read and not yet decoded (codec mode).
    pub(crate) fn undecoded(&self) -> usize {
        if self.messages {
            0
        } else {
            self.buf.len()
        }
    }

    /// Takes one message from the peer; the frames decoded from it go to `batch`.
    pub(crate) fn on_message(&mut self, msg: WsIn, batch: &mut Vec<D::Item>) -> Step {
        self.shared.note_alive();
        match msg {
            WsIn::Data { .. } if self.fragment.is_some() => {
                protocol("a new message began inside a fragmented one")
            }
            WsIn::Data {
                bytes,
                text,
                compressed,
            } => {
                if let Some(refused) = self.check_text(text) {
                    return refused;
                }
                if bytes.len() > self.bound {
                    return too_long(bytes.len(), self.bound);
                }
                if compressed {
                    return match self.inflate(&bytes) {
                        Ok(message) => self.whole(message, text, batch),
                        Err(failed) => failed,
                    };
                }
                if text && (self.utf8.push(&bytes).is_err() || self.utf8.finish().is_err()) {
                    return not_utf8();
                }
                if self.messages {
                    self.shared.note_read(bytes.len());
                    let mut message = BytesMut::with_capacity(bytes.len() + 1);
                    message.extend_from_slice(&bytes);
                    self.deliver(message, text, batch)
                } else {
                    self.feed(&bytes, batch)
                }
            }
            WsIn::Continuation(item, compressed) => self.on_fragment(item, compressed, batch),
            WsIn::Misplaced(reason) => protocol(reason),
            WsIn::Ping(payload) => Step::Pong(payload),
            WsIn::Pong => Step::Nothing,
            WsIn::Close(reason) => Step::Closed(reason),
        }
    }

    fn check_text(&self, text: bool) -> Option<Step> {
        (text && !self.allow_text).then(|| {
            Step::Failed(
                Error::websocket("text message refused: this session takes binary messages"),
                CloseCode::Unsupported,
            )
        })
    }

    fn on_fragment(&mut self, item: Item, compressed: bool, batch: &mut Vec<D::Item>) -> Step {
        let (bytes, first, last) = match item {
            Item::FirstText(b) => {
                if let Some(refused) = self.check_text(true) {
                    return refused;
                }
                (b, Some(true), false)
            }
            Item::FirstBinary(b) => (b, Some(false), false),
            Item::Continue(b) => (b, None, false),
            Item::Last(b) => (b, None, true),
        };
        let so_far = match (first, self.fragment) {
            (Some(_), Some(_)) => return protocol("a fragmented message began inside another"),
            (None, None) => return protocol("a continuation frame without a first fragment"),
            (Some(text), None) => Fragment {
                len: 0,
                text,
                compressed,
            },
            (None, Some(fragment)) => fragment,
        };
        let len = so_far.len.saturating_add(bytes.len());
        if len > self.bound {
            return too_long(len, self.bound);
        }
        self.fragment = (!last).then_some(Fragment { len, ..so_far });
        if so_far.compressed {
            // Inflated once whole: a shared decompressor serves one message at a time.
            self.packed.extend_from_slice(&bytes);
            self.note_buffers();
            if !last {
                return Step::Nothing;
            }
            let packed = std::mem::take(&mut self.packed);
            self.note_buffers();
            return match self.inflate(&packed) {
                Ok(message) => self.whole(message, so_far.text, batch),
                Err(failed) => failed,
            };
        }
        if so_far.text && (self.utf8.push(&bytes).is_err() || (last && self.utf8.finish().is_err()))
        {
            return not_utf8();
        }
        if !self.messages {
            return self.feed(&bytes, batch);
        }
        self.shared.note_read(bytes.len());
        self.buf.extend_from_slice(&bytes);
        if !last {
            self.note_buffers();
            return Step::Nothing;
        }
        let mut message = std::mem::take(&mut self.buf);
        message.reserve(1);
        self.note_buffers();
        self.deliver(message, so_far.text, batch)
    }

    /// Reports the memory the reader's buffers hold, for the endpoint's budget.
    fn note_buffers(&self) {
        let held = self.buf.capacity() + self.packed.capacity();
        self.shared.note_reader_buffers(held);
    }

    /// Inflates a compressed message within the bound.
    fn inflate(&mut self, packed: &[u8]) -> Result<BytesMut, Step> {
        let Some(inflater) = &mut self.inflater else {
            return Err(protocol("a compressed message, and no compression agreed"));
        };
        inflater
            .inflate(packed, self.bound)
            .map_err(|err| match err {
                InflateError::TooLong(len) => too_long(len, self.bound),
                InflateError::Invalid(why) => Step::Failed(
                    Error::websocket(format!("compressed message does not inflate: {why}")),
                    CloseCode::Invalid,
                ),
            })
    }

    /// A whole message, inflated: checked, then handed on as an uncompressed one.
    fn whole(&mut self, message: BytesMut, text: bool, batch: &mut Vec<D::Item>) -> Step {
        if text && std::str::from_utf8(&message).is_err() {
            return not_utf8();
        }
        if self.messages {
            self.shared.note_read(message.len());
            self.deliver(message, text, batch)
        } else {
            self.feed(&message, batch)
        }
    }

    /// Message mode: hands one whole message to the codec, which must make one frame
    /// of it.
    fn deliver(&mut self, mut message: BytesMut, text: bool, batch: &mut Vec<D::Item>) -> Step {
        message.put_u8(if text { TEXT } else { BINARY });
        match self.decoder.decode(&mut message) {
            Ok(Some(frame)) => {
                batch.push(frame);
                Step::Nothing
            }
            Ok(None) => Step::Failed(
                Error::websocket("the codec made no frame of a message"),
                CloseCode::Invalid,
            ),
            Err(err) => Step::Failed(Error::from_decode(err), CloseCode::Invalid),
        }
    }

    /// Codec mode: feeds message bytes to the codec's byte stream.
    fn feed(&mut self, bytes: &[u8], batch: &mut Vec<D::Item>) -> Step {
        self.shared.note_read(bytes.len());
        self.buf.extend_from_slice(bytes);
        self.note_buffers();
        let before = batch.len();
        match decode_available(&mut self.decoder, &mut self.buf, self.bound, batch) {
            Ok(()) => Step::Nothing,
            // Frames of this message decoded before the error are dropped with the
            // session.
            Err(err) => {
                batch.truncate(before);
                let code = match err.kind() {
                    ErrorKind::FrameTooLong { .. } => CloseCode::Size,
                    _ => CloseCode::Invalid,
                };
                Step::Failed(err, code)
            }
        }
    }
}

fn not_utf8() -> Step {
    Step::Failed(
        Error::websocket("text message is not valid UTF-8"),
        CloseCode::Invalid,
    )
}

fn protocol(reason: &str) -> Step {
    Step::Failed(Error::websocket(reason), CloseCode::Protocol)
}

fn too_long(len: usize, max: usize) -> Step {
    Step::Failed(Error::frame_too_long(len, max), CloseCode::Size)
}

/// The error and close code for a frame the WebSocket codec refused.
pub(crate) fn protocol_error(err: &ProtocolError, bound: usize) -> (Error, CloseCode) {
    match err {
        ProtocolError::Overflow => (
            Error::websocket(format!("message over the {bound}-byte limit")),
            CloseCode::Size,
        ),
        other => (Error::websocket(other.to_string()), CloseCode::Protocol),
    }
}
