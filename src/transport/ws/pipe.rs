//! The outgoing side of one WebSocket session: a small bounded queue between the
//! session's writer and the one task that puts messages on the wire.
//!
//! The logic actor writes through a [`PipeWriter`] (an `AsyncWrite` taking one whole
//! encoded frame per write, which becomes one message: binary in codec mode, of the kind
//! the codec chose in message mode), encoded at once into wire frames, all of them in one
//! buffer. The reader actor queues control messages (pings, pongs) and learns of the
//! peer's close. The pump (the HTTP response body on the server, a task owning the
//! socket's write half on the client) takes what is ready as one chunk of wire bytes:
//! control frames first, then the data frames, then the close frame. The pump is the only
//! writer of the socket, so frames never interleave, and the queue is bounded in bytes,
//! so a peer that does not read stalls the writer (`Pending`) instead of growing memory.
//!
//! Everything of one session lives on one arbiter, so the state is an `Rc<RefCell<..>>`
//! borrowed only for the length of a call.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use actix_http::ws::{CloseCode, CloseReason, Message};
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;

use super::message::{BINARY, TEXT};
use super::options::WsOptions;
use super::outgoing::FrameEncoder;
use crate::session::{MessageLimit, SessionWriter};

/// Encoded bytes the pipe holds before the writer must wait for the pump. One message
/// is always taken, however long, so any frame fits.
pub(crate) const PIPE_LIMIT: usize = 64 * 1024;
/// Most control messages (pings, pongs) waiting at once; past it, pongs are dropped
/// (RFC 6455 lets an endpoint answer only the latest ping).
const MAX_CONTROL: usize = 8;
/// How long a close frame we sent waits for the peer's answer before the connection is
/// dropped anyway.
pub(crate) const CLOSE_LINGER: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq)]
enum CloseState {
    /// No close queued.
    Open,
    /// A close frame waits behind the data queued before it.
    Queued(Option<CloseReason>),
    /// The close frame was handed to the socket: nothing more may be sent.
    Sent,
}

struct State {
    /// Data frames, encoded: whole frames, in order.
    data: BytesMut,
    /// Encodes every frame of this side (masked on a client; compressed where agreed).
    encoder: FrameEncoder,
    control: VecDeque<Message>,
    close: CloseState,
    /// The peer's close frame arrived (the handshake completes once ours is sent).
    close_received: Option<Option<CloseReason>>,
    /// The reader ended: nothing will answer our close.
    reader_gone: bool,
    /// The connection is gone: writes fail.
    dead: bool,
    /// The session dropped its writer: nothing more will be written.
    writer_gone: bool,
    writer: Option<Waker>,
    pump: Option<Waker>,
    /// The connection's socket (a duplicate of its descriptor), where the server has it:
    /// shut once the session is gone and the pump could not end the connection.
    socket: Option<Rc<socket2::Socket>>,
}

impl State {
    fn wake_pump(&mut self) {
        if let Some(w) = self.pump.take() {
            w.wake();
        }
    }

    fn wake_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }
}

/// Shared handle onto one session's outgoing queue (see the module docs).
#[derive(Clone)]
pub(crate) struct Pipe(Rc<RefCell<State>>);

impl std::fmt::Debug for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0.borrow();
        f.debug_struct("Pipe")
            .field("data", &s.data.len())
            .field("control", &s.control.len())
            .field("close", &s.close)
            .field("dead", &s.dead)
            .finish_non_exhaustive()
    }
}

impl Pipe {
    /// A pipe whose frames `encoder` encodes.
    pub(crate) fn new(encoder: FrameEncoder) -> Self {
        Pipe(Rc::new(RefCell::new(State {
            data: BytesMut::new(),
            encoder,
            control: VecDeque::new(),
            close: CloseState::Open,
            close_received: None,
            reader_gone: false,
            dead: false,
            writer_gone: false,
            writer: None,
            pump: None,
            socket: None,
        })))
    }

    /// Gives the pipe the connection's socket, for [`PipeWriter`]'s drop to shut it if
    /// the connection outlives the session (see there).
    pub(crate) fn set_socket(&self, socket: Rc<socket2::Socket>) {
        self.0.borrow_mut().socket = Some(socket);
    }

    /// Queues a ping or pong, ahead of data. Ignored once a close is queued.
    pub(crate) fn push_control(&self, msg: Message) {
        let mut s = self.0.borrow_mut();
        if s.close != CloseState::Open || s.dead || s.control.len() >= MAX_CONTROL {
            return;
        }
        s.control.push_back(msg);
        s.wake_pump();
    }

    /// Queues the close frame behind the data already queued (once; later calls are
    /// ignored). When the peer closed first, its code is echoed instead of `reason`'s.
    pub(crate) fn close(&self, reason: Option<CloseReason>) {
        let mut s = self.0.borrow_mut();
        if s.close != CloseState::Open {
            return;
        }
        let reason = match &s.close_received {
            Some(theirs) => theirs.as_ref().map(|r| CloseReason::from(r.code)),
            None => reason,
        };
        s.close = CloseState::Queued(reason);
        s.wake_pump();
        s.wake_writer();
    }

    /// The peer's close frame arrived.
    pub(crate) fn close_received(&self, reason: Option<CloseReason>) {
        let mut s = self.0.borrow_mut();
        s.close_received.get_or_insert(reason);
        s.wake_pump();
    }

    /// The reader ended (EOF, error, or the actor stopped).
    pub(crate) fn reader_gone(&self) {
        let mut s = self.0.borrow_mut();
        s.reader_gone = true;
        s.wake_pump();
    }

    /// The connection is gone: nothing more can be sent; the writer fails from now on.
    pub(crate) fn mark_dead(&self) {
        let mut s = self.0.borrow_mut();
        s.dead = true;
        s.data = BytesMut::new();
        s.control.clear();
        s.wake_writer();
        s.wake_pump();
    }

    /// For the pump: the wire bytes ready now, if any: the control frames, then every
    /// data frame, then the close frame once no data is left before it.
    pub(crate) fn take_chunk(&self) -> Option<Bytes> {
        let mut s = self.0.borrow_mut();
        let s = &mut *s;
        if s.dead {
            return None;
        }
        let mut chunk = BytesMut::new();
        while let Some(msg) = s.control.pop_front() {
            s.encoder.control(msg, &mut chunk);
        }
        if !s.data.is_empty() {
            // Taken whole, without a copy when there is no control frame before it; the
            // buffer's memory comes back to `data` once the chunk is written and dropped.
            if chunk.is_empty() {
                chunk = s.data.split();
            } else {
                chunk.extend_from_slice(&s.data);
                s.data.clear();
            }
            s.wake_writer();
        }
        if let CloseState::Queued(reason) = &s.close {
            let reason = reason.clone();
            s.close = CloseState::Sent;
            s.encoder.control(Message::Close(reason), &mut chunk);
        }
        (!chunk.is_empty()).then(|| chunk.freeze())
    }

    /// For the pump: the next chunk, `Pending` until there is one, `None` once nothing
    /// more will ever be sent (the close frame went, or the connection is gone).
    pub(crate) fn poll_chunk(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Some(chunk) = self.take_chunk() {
            return Poll::Ready(Some(chunk));
        }
        let mut s = self.0.borrow_mut();
        if s.dead || s.close == CloseState::Sent {
            return Poll::Ready(None);
        }
        s.pump = Some(cx.waker().clone());
        Poll::Pending
    }

    /// True once our close frame went and the peer answered it (or cannot any more), or
    /// the connection is gone: the pump may end the connection.
    pub(crate) fn is_finished(&self) -> bool {
        let s = self.0.borrow();
        s.dead || (s.close == CloseState::Sent && (s.close_received.is_some() || s.reader_gone))
    }

    /// True once our close frame was handed to the socket.
    pub(crate) fn close_sent(&self) -> bool {
        self.0.borrow().close == CloseState::Sent
    }

    /// For the pump: `Ready` once [`is_finished`](Self::is_finished).
    pub(crate) fn poll_finished(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_finished() {
            return Poll::Ready(());
        }
        self.0.borrow_mut().pump = Some(cx.waker().clone());
        Poll::Pending
    }

    /// For the pump: `Ready` once the session dropped its writer.
    pub(crate) fn poll_writer_gone(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.0.borrow_mut();
        if s.writer_gone {
            return Poll::Ready(());
        }
        s.pump = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Registers the pump's waker (for a pump that polls other things too).
    pub(crate) fn register_pump(&self, cx: &mut Context<'_>) {
        self.0.borrow_mut().pump = Some(cx.waker().clone());
    }
}

fn broken(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, what.to_owned())
}

/// What one write of an encoded frame is sent as: in codec mode a binary message of all
/// of it; in message mode the kind is its last byte (see [`message`](super::message)),
/// and the sealed codecs that write it mark only UTF-8 as text.
fn split_kind(buf: &[u8], messages: bool) -> io::Result<(&[u8], bool)> {
    if !messages {
        return Ok((buf, false));
    }
    match buf.split_last() {
        Some((&TEXT, payload)) => Ok((payload, true)),
        Some((&BINARY, payload)) => Ok((payload, false)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a message-mode write without its kind",
        )),
    }
}

/// The session's write half: each `poll_write` is one whole encoded frame, sent as one
/// message (see [`split_kind`]). Dropping it without a shutdown closes with code 1001
/// (going away).
#[derive(Debug)]
pub(crate) struct PipeWriter {
    pipe: Pipe,
    /// Message mode: each write ends with its kind byte.
    messages: bool,
}

impl PipeWriter {
    pub(crate) fn new(pipe: Pipe, messages: bool) -> Self {
        PipeWriter { pipe, messages }
    }

    /// The write half of a session on `pipe`. In message mode each message carries its
    /// kind byte, which is not payload: not counted in the byte stats.
    pub(crate) fn for_session(pipe: Pipe, options: WsOptions) -> SessionWriter<Self> {
        SessionWriter {
            io: PipeWriter::new(pipe, options.messages),
            preserves_messages: true,
            limit: options.messages.then_some(MessageLimit {
                max: usize::MAX,
                overhead: 1,
            }),
        }
    }
}

impl AsyncWrite for PipeWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = self.pipe.0.borrow_mut();
        if s.dead {
            return Poll::Ready(Err(broken("websocket connection gone")));
        }
        if s.close != CloseState::Open {
            return Poll::Ready(Err(broken("websocket closing")));
        }
        if s.data.len() >= PIPE_LIMIT {
            s.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let (payload, text) = split_kind(buf, self.messages)?;
        let s = &mut *s;
        s.encoder.data(payload, text, &mut s.data);
        s.wake_pump();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.pipe.0.borrow_mut();
        if s.dead {
            return Poll::Ready(Err(broken("websocket connection gone")));
        }
        if s.data.is_empty() {
            return Poll::Ready(Ok(()));
        }
        s.writer = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.pipe.close(Some(CloseCode::Normal.into()));
        Poll::Ready(Ok(()))
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.pipe.close(Some(CloseCode::Away.into()));
        let mut s = self.pipe.0.borrow_mut();
        s.writer_gone = true;
        s.wake_pump();
        // The session is gone. The pump ends the connection once the close handshake is
        // over or has lingered long enough, but only while the socket takes what it
        // writes: a peer that never reads leaves actix-web's dispatcher stuck flushing
        // (even after the body ended, with the close frame in its buffer), and it would
        // keep the connection open for as long as the peer likes. Past twice the linger,
        // shut the socket, which ends it. A connection that already ended is shut too:
        // this descriptor is a duplicate, so the shutdown is all that happens.
        if let Some(socket) = s.socket.clone() {
            actix_rt::spawn(async move {
                tokio::time::sleep(2 * CLOSE_LINGER).await;
                tracing::debug!(
                    "websocket connection outlived its session by the linger; shutting it"
                );
                let _ = socket.shutdown(std::net::Shutdown::Both);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::ws::{Codec, Frame};
    use futures::task::noop_waker_ref;
    use tokio_util::codec::Decoder;

    fn write(w: &mut PipeWriter, bytes: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(w).poll_write(&mut Context::from_waker(noop_waker_ref()), bytes)
    }

    fn server_pipe() -> Pipe {
        Pipe::new(FrameEncoder::server(None))
    }

    /// The frames of the next chunk, as a client reads them.
    fn frames(pipe: &Pipe) -> Vec<Frame> {
        let mut chunk = BytesMut::from(&pipe.take_chunk().unwrap_or_default()[..]);
        let mut codec = Codec::new().client_mode();
        let mut frames = Vec::new();
        while let Some(frame) = codec.decode(&mut chunk).unwrap() {
            frames.push(frame);
        }
        assert!(chunk.is_empty(), "whole frames only");
        frames
    }

    #[test]
    fn control_first_then_data_then_close() {
        let pipe = server_pipe();
        let mut w = PipeWriter::new(pipe.clone(), false);
        assert!(matches!(write(&mut w, b"one"), Poll::Ready(Ok(3))));
        assert!(matches!(write(&mut w, b"two"), Poll::Ready(Ok(3))));
        pipe.push_control(Message::Ping(Bytes::new()));
        drop(w); // queues a close behind the data
        let got = frames(&pipe);
        assert!(matches!(&got[0], Frame::Ping(_)), "{got:?}");
        assert!(
            matches!(&got[1], Frame::Binary(b) if &b[..] == b"one"),
            "{got:?}"
        );
        assert!(
            matches!(&got[2], Frame::Binary(b) if &b[..] == b"two"),
            "{got:?}"
        );
        assert!(
            matches!(&got[3], Frame::Close(Some(r)) if r.code == CloseCode::Away),
            "{got:?}"
        );
        assert_eq!(got.len(), 4);
        assert!(pipe.take_chunk().is_none());
        assert!(!pipe.is_finished(), "waits for the peer's close");
        pipe.close_received(None);
        assert!(pipe.is_finished());
    }

    #[test]
    fn bounded_and_refuses_after_close() {
        let pipe = server_pipe();
        let mut w = PipeWriter::new(pipe.clone(), false);
        let big = vec![0u8; PIPE_LIMIT];
        assert!(matches!(write(&mut w, &big), Poll::Ready(Ok(_))));
        assert!(write(&mut w, b"x").is_pending());
        assert!(pipe.take_chunk().is_some());
        assert!(matches!(write(&mut w, b"x"), Poll::Ready(Ok(1))));
        pipe.close(None);
        assert!(matches!(write(&mut w, b"x"), Poll::Ready(Err(_))));
    }

    #[test]
    fn message_mode_writes_keep_their_kind() {
        let pipe = server_pipe();
        let mut w = PipeWriter::new(pipe.clone(), true);
        assert!(matches!(write(&mut w, b"hi\x01"), Poll::Ready(Ok(3))));
        assert!(matches!(write(&mut w, b"\xFF\x02"), Poll::Ready(Ok(2))));
        // A write with no kind: refused, nothing queued.
        assert!(matches!(write(&mut w, b""), Poll::Ready(Err(_))));
        assert!(matches!(write(&mut w, b"x\x07"), Poll::Ready(Err(_))));
        let got = frames(&pipe);
        assert!(
            matches!(&got[0], Frame::Text(t) if &t[..] == b"hi"),
            "{got:?}"
        );
        assert!(
            matches!(&got[1], Frame::Binary(b) if &b[..] == b"\xFF"),
            "{got:?}"
        );
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn echoes_the_peers_close_code() {
        let pipe = server_pipe();
        pipe.close_received(Some(CloseCode::Protocol.into()));
        pipe.close(Some(CloseCode::Normal.into()));
        let got = frames(&pipe);
        assert!(
            matches!(&got[..], [Frame::Close(Some(r))] if r.code == CloseCode::Protocol),
            "{got:?}"
        );
        assert!(pipe.is_finished());
    }
}
