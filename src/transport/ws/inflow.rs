//! The incoming side of one WebSocket session, without sockets: WebSocket messages in,
//! decoded frames and protocol reactions out. Shared by the server's and the client's
//! reader actors.

use std::sync::Arc;

use actix_http::ws::{CloseCode, CloseReason, Item, ProtocolError};
use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

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

/// Feeds binary messages to the session's codec: a message may carry several frames, and
/// a frame may span several messages, so the codec sees one byte stream.
pub(crate) struct Inflow<D> {
    decoder: D,
    buf: BytesMut,
    /// Longest message, and longest undecoded frame, in bytes.
    bound: usize,
    allow_text: bool,
    shared: Arc<SessionShared>,
    /// Bytes of the fragmented message being received, if one is.
    fragment: Option<usize>,
}

impl<D> Inflow<D>
where
    D: Decoder<Error: Into<BoxError>>,
{
    pub(crate) fn new(decoder: D, shared: Arc<SessionShared>, allow_text: bool) -> Self {
        Inflow {
            decoder,
            buf: BytesMut::new(),
            bound: shared.config.read_buffer_bound(),
            allow_text,
            shared,
            fragment: None,
        }
    }

    /// Longest WebSocket message accepted: the session's max frame length plus the
    /// codec header allowance.
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
                self.feed(&bytes)
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
                (b, true, false)
            }
            Item::FirstBinary(b) => (b, true, false),
            Item::Continue(b) => (b, false, false),
            Item::Last(b) => (b, false, true),
        };
        let so_far = match (first, self.fragment) {
            (true, Some(_)) => return protocol("a fragmented message began inside another"),
            (false, None) => return protocol("a continuation frame without a first fragment"),
            (true, None) => 0,
            (false, Some(n)) => n,
        };
        let len = so_far.saturating_add(bytes.len());
        if len > self.bound {
            return too_long(len, self.bound);
        }
        self.fragment = (!last).then_some(len);
        self.feed(&bytes)
    }

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
