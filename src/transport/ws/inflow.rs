//! The incoming side of one WebSocket session, without sockets: WebSocket messages in,
//! decoded frames and protocol reactions out. Shared by the server's and the client's
//! reader actors.

use std::sync::Arc;

use actix_http::ws::{CloseCode, CloseReason, Item, ProtocolError};
use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::message::{BINARY, TEXT};
use super::options::WsOptions;
use super::utf8::Utf8Stream;
use crate::error::{BoxError, Error, ErrorKind};
use crate::session::decode_available;
use crate::session::SessionShared;

/// One message as the reader sees it, whichever side it came from.
#[derive(Debug)]
pub(crate) enum WsIn {
    /// A whole binary (`text: false`) or text message.
    Data {
        bytes: Bytes,
        text: bool,
    },
    /// A fragment of a message.
    Continuation(Item),
    Ping(Bytes),
    Pong,
    Close(Option<CloseReason>),
}

/// What the reader must do after a message.
#[derive(Debug)]
pub(crate) enum Step<T> {
    Nothing,
    /// Hand these frames to the logic actor.
    Frames(Vec<T>),
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
/// §8.1: close code 1007), and one message may hold at most `bound` bytes (1009).
pub(crate) struct Inflow<D> {
    decoder: D,
    /// Codec mode: the bytes not decoded yet. Message mode: the fragments of the message
    /// being received.
    buf: BytesMut,
    /// Longest message; in codec mode also the longest undecoded frame.
    bound: usize,
    allow_text: bool,
    messages: bool,
    shared: Arc<SessionShared>,
    /// The fragmented message being received, if one is.
    fragment: Option<Fragment>,
    /// The UTF-8 check of the text message being received.
    utf8: Utf8Stream,
}

/// What is known of a fragmented message so far.
#[derive(Debug, Clone, Copy)]
struct Fragment {
    /// Bytes received.
    len: usize,
    text: bool,
}

impl<D> Inflow<D>
where
    D: Decoder<Error: Into<BoxError>>,
{
    pub(crate) fn new(decoder: D, shared: Arc<SessionShared>, options: WsOptions) -> Self {
        Inflow {
            decoder,
            buf: BytesMut::new(),
            bound: options.message_bound(&shared.config),
            allow_text: options.allow_text || options.messages,
            messages: options.messages,
            shared,
            fragment: None,
            utf8: Utf8Stream::default(),
        }
    }

    /// Longest WebSocket message accepted (see [`WsOptions::message_bound`]).
    pub(crate) fn bound(&self) -> usize {
        self.bound
    }

    pub(crate) fn on_message(&mut self, msg: WsIn) -> Step<D::Item> {
        self.shared.note_alive();
        match msg {
            WsIn::Data { .. } if self.fragment.is_some() => {
                protocol("a new message began inside a fragmented one")
            }
            WsIn::Data { bytes, text } => {
                if let Some(refused) = self.check_text(text) {
                    return refused;
                }
                if bytes.len() > self.bound {
                    return too_long(bytes.len(), self.bound);
                }
                if text && (self.utf8.push(&bytes).is_err() || self.utf8.finish().is_err()) {
                    return not_utf8();
                }
                if self.messages {
                    self.shared.note_read(bytes.len());
                    let mut message = BytesMut::with_capacity(bytes.len() + 1);
                    message.extend_from_slice(&bytes);
                    self.deliver(message, text)
                } else {
                    self.feed(&bytes)
                }
            }
            WsIn::Continuation(item) => self.on_fragment(item),
            WsIn::Ping(payload) => Step::Pong(payload),
            WsIn::Pong => Step::Nothing,
            WsIn::Close(reason) => Step::Closed(reason),
        }
    }

    fn check_text(&self, text: bool) -> Option<Step<D::Item>> {
        (text && !self.allow_text).then(|| {
            Step::Failed(
                Error::websocket("text message refused: this session takes binary messages"),
                CloseCode::Unsupported,
            )
        })
    }

    fn on_fragment(&mut self, item: Item) -> Step<D::Item> {
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
            (Some(text), None) => Fragment { len: 0, text },
            (None, Some(fragment)) => fragment,
        };
        let len = so_far.len.saturating_add(bytes.len());
        if len > self.bound {
            return too_long(len, self.bound);
        }
        if so_far.text && (self.utf8.push(&bytes).is_err() || (last && self.utf8.finish().is_err()))
        {
            return not_utf8();
        }
        self.fragment = (!last).then_some(Fragment { len, ..so_far });
        if !self.messages {
            return self.feed(&bytes);
        }
        self.shared.note_read(bytes.len());
        self.buf.extend_from_slice(&bytes);
        if !last {
            self.shared.note_reader_buffers(self.buf.capacity());
            return Step::Nothing;
        }
        let mut message = std::mem::take(&mut self.buf);
        message.reserve(1);
        self.shared.note_reader_buffers(0);
        self.deliver(message, so_far.text)
    }

    /// Message mode: hands one whole message to the codec, which must make one frame
    /// of it.
    fn deliver(&mut self, mut message: BytesMut, text: bool) -> Step<D::Item> {
        message.put_u8(if text { TEXT } else { BINARY });
        match self.decoder.decode(&mut message) {
            Ok(Some(frame)) => {
                self.shared.note_forwarded(0);
                self.shared.note_frames(1);
                Step::Frames(vec![frame])
            }
            Ok(None) => Step::Failed(
                Error::websocket("the codec made no frame of a message"),
                CloseCode::Invalid,
            ),
            Err(err) => Step::Failed(Error::from_decode(err), CloseCode::Invalid),
        }
    }

    /// Codec mode: feeds message bytes to the codec's byte stream.
    fn feed(&mut self, bytes: &[u8]) -> Step<D::Item> {
        self.shared.note_read(bytes.len());
        self.buf.extend_from_slice(bytes);
        self.shared.note_reader_buffers(self.buf.capacity());
        let mut batch = Vec::new();
        let result = decode_available(&mut self.decoder, &mut self.buf, self.bound, &mut batch);
        if !batch.is_empty() {
            self.shared.note_forwarded(self.buf.len());
            self.shared.note_frames(batch.len());
        }
        match result {
            // Frames decoded before the error are dropped with the session.
            Err(err) => {
                let code = match err.kind() {
                    ErrorKind::FrameTooLong { .. } => CloseCode::Size,
                    _ => CloseCode::Invalid,
                };
                Step::Failed(err, code)
            }
            Ok(()) if batch.is_empty() => Step::Nothing,
            Ok(()) => Step::Frames(batch),
        }
    }
}

fn not_utf8<T>() -> Step<T> {
    Step::Failed(
        Error::websocket("text message is not valid UTF-8"),
        CloseCode::Invalid,
    )
}

fn protocol<T>(reason: &str) -> Step<T> {
    Step::Failed(Error::websocket(reason), CloseCode::Protocol)
}

fn too_long<T>(len: usize, max: usize) -> Step<T> {
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
