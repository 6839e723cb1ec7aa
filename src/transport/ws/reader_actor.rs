//! What the server's and the client's WebSocket reader actors share: reacting to each
//! incoming message, pings, and the end of the connection.
//!
//! Frames decoded from the messages that one read of the socket brought are handed to
//! the logic actor as one batch: the reader gathers them until the connection has
//! nothing more ready (or a batch is full), so a busy session pays for one hand-over,
//! one clock read and one wake-up per read instead of per message.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_http::ws::{CloseCode, Frame, Item, Message, ProtocolError};
use bytes::Bytes;
use futures::Stream;
use tokio_util::codec::Decoder;

use super::deflate::Agreed;
use super::inflow::{protocol_error, Inflow, Step, WsIn};
use super::options::WsOptions;
use super::payload_frames::InFrame;
use super::pipe::Pipe;
use crate::error::{BoxError, Error};
use crate::listener::EventListener;
use crate::session::{
    forward, BatchPool, Inbound, InboxSender, ReaderSeat, SessionShared, StopReading,
};

/// Frames or bytes past which a batch goes to the logic actor without waiting for the
/// connection to run dry: bounds the memory and the delay a batch adds.
const BATCH_FRAMES: usize = 64;
const BATCH_BYTES: usize = 64 * 1024;

/// The reader's part of one WebSocket session, whatever actor runs it.
pub(crate) struct WsReader<D: Decoder<Item: Send + 'static>> {
    inflow: Inflow<D>,
    logic: InboxSender<D::Item>,
    pipe: Pipe,
    shared: Arc<SessionShared>,
    ping_interval: Duration,
    /// The last message (EOF or error) is on its way to the logic actor: deliver nothing
    /// more.
    ended: bool,
    /// That last message, kept until it is delivered: if the actor is dropped first (its
    /// connection vanished), `stopped` sends it so the session still ends.
    last: Option<Error>,
    last_delivered: Rc<Cell<bool>>,
    /// Frames decoded and not handed over yet, and the message bytes they came from.
    pending: Vec<D::Item>,
    pending_bytes: usize,
    /// Batch vectors the logic actor gives back.
    batches: BatchPool<D::Item>,
}

impl<D> WsReader<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + 'static,
{
    /// The reader of the session `seat` belongs to, inflating with `agreed`'s
    /// permessage-deflate where it was agreed.
    pub(crate) fn new<L: EventListener<Codec = D>>(
        seat: ReaderSeat<L>,
        pipe: Pipe,
        options: WsOptions,
        agreed: Option<Agreed>,
    ) -> Self {
        let ReaderSeat {
            shared,
            codec: decoder,
            logic,
            batches,
        } = seat;
        let inflater = agreed.map(|a| a.inflater());
        let ping_interval = options
            .ping_interval
            .unwrap_or(shared.config.cron_period)
            .max(Duration::from_millis(1));
        WsReader {
            inflow: Inflow::new(decoder, shared.clone(), options, inflater),
            logic,
            pipe,
            shared,
            ping_interval,
            ended: false,
            last: None,
            last_delivered: Rc::new(Cell::new(false)),
            pending: Vec::new(),
            pending_bytes: 0,
            batches,
        }
    }

    /// Longest message accepted, for the WebSocket codec's own limit.
    pub(crate) fn bound(&self) -> usize {
        self.inflow.bound()
    }

    /// How often the actor sends a ping.
    pub(crate) fn ping_interval(&self) -> Duration {
        self.ping_interval
    }

    /// Sends a ping (its payload is empty; the pong proves the peer alive).
    pub(crate) fn ping(&self) {
        self.pipe.push_control(Message::Ping(Bytes::new()));
    }

    /// One message from the peer.
    pub(crate) fn on_message<A>(&mut self, msg: WsIn, ctx: &mut A::Context)
    where
        A: Actor,
        A::Context: AsyncContext<A>,
    {
        if self.ended {
            return;
        }
        if self.pending.is_empty() {
            self.pending = self.batches.take(16);
        }
        self.pending_bytes += msg.len();
        match self.inflow.on_message(msg, &mut self.pending) {
            Step::Nothing => {
                if self.pending.len() >= BATCH_FRAMES || self.pending_bytes >= BATCH_BYTES {
                    self.flush::<A>(ctx);
                }
            }
            Step::Pong(payload) => self.pipe.push_control(Message::Pong(payload)),
            Step::Closed(reason) => {
                // Our answer goes once the logic actor has flushed what it still sends.
                self.pipe.close_received(reason);
                self.end::<A>(None, ctx);
            }
            Step::Failed(err, code) => self.fail::<A>(err, code, ctx),
        }
    }

    /// Hands the frames gathered so far to the logic actor. Called when the connection
    /// has nothing more ready (the reader is about to wait, for the peer or for leave to
    /// read), when a batch is full, and before the session's last message.
    pub(crate) fn flush<A>(&mut self, ctx: &mut A::Context)
    where
        A: Actor,
        A::Context: AsyncContext<A>,
    {
        self.pending_bytes = 0;
        if self.pending.is_empty() || self.ended {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        self.shared.note_forwarded(self.inflow.undecoded());
        self.shared.note_frames(batch.len());
        let upto = self.shared.forwarded_upto();
        forward::<A, _>(&self.logic, Inbound::Frames(batch, upto), None, ctx);
    }

    /// The WebSocket codec refused what the peer sent.
    pub(crate) fn on_protocol_error<A>(&mut self, err: &ProtocolError, ctx: &mut A::Context)
    where
        A: Actor,
        A::Context: AsyncContext<A>,
    {
        if self.ended {
            ctx.stop();
            return;
        }
        let (err, code) = protocol_error(err, self.bound());
        self.fail::<A>(err, code, ctx);
    }

    fn fail<A>(&mut self, err: Error, code: CloseCode, ctx: &mut A::Context)
    where
        A: Actor,
        A::Context: AsyncContext<A>,
    {
        tracing::debug!(%err, "websocket peer failed");
        self.pipe.close(Some(code.into()));
        // The actor stops after this: the codec would only refuse the same bytes again.
        self.end::<A>(Some(err), ctx);
    }

    /// Sends the last message (EOF, or the error that ends the session) after the frames
    /// gathered before it, then stops.
    fn end<A>(&mut self, cause: Option<Error>, ctx: &mut A::Context)
    where
        A: Actor,
        A::Context: AsyncContext<A>,
    {
        self.flush::<A>(ctx);
        self.ended = true;
        self.last = cause.clone();
        let msg = match cause {
            Some(err) => Inbound::Failed(err),
            None => Inbound::Eof,
        };
        forward::<A, _>(&self.logic, msg, Some(self.last_delivered.clone()), ctx);
    }

    /// The connection ended (the stream of messages is over).
    pub(crate) fn finished<A>(&mut self, ctx: &mut A::Context)
    where
        A: Actor,
        A::Context: AsyncContext<A>,
    {
        if self.ended {
            ctx.stop();
        } else {
            self.end::<A>(None, ctx);
        }
    }

    /// The actor stopped: nothing will read the peer's answer to a close any more. If the
    /// session has not been told that the connection ended (the actor was dropped with
    /// its connection, or before its last message got through), tell it now: one message,
    /// so past the read queue's bound if need be.
    pub(crate) fn stopped(&mut self) {
        self.pipe.reader_gone();
        if !self.last_delivered.get() {
            self.last_delivered.set(true);
            let msg = match self.last.take() {
                Some(err) => Inbound::Failed(err),
                None => Inbound::Eof,
            };
            self.logic.send_last(msg);
        }
    }
}

/// The reader actor of one WebSocket session, server or client: its stream is the
/// connection's incoming frames (the server's decoded from the upgraded request's
/// payload, the client's from awc's framed connection).
pub(crate) struct WsReaderActor<D: Decoder<Item: Send + 'static>> {
    reader: WsReader<D>,
    /// The session ended: read on regardless of pauses (see [`WhileAllowed`]).
    released: Rc<Cell<bool>>,
}

// Nothing in the actor is pinned in place; the decoder need not be Unpin.
impl<D: Decoder<Item: Send + 'static>> Unpin for WsReaderActor<D> {}

impl<D> WsReaderActor<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + 'static,
{
    /// Starts the actor on the current arbiter, reading `frames` while the session
    /// lets it read.
    pub(crate) fn start<S>(reader: WsReader<D>, frames: S) -> Addr<Self>
    where
        S: Stream<Item = Result<InFrame, ProtocolError>> + Unpin + 'static,
    {
        let shared = reader.shared.clone();
        let released = Rc::new(Cell::new(false));
        WsReaderActor::create(move |ctx| {
            ctx.add_stream(WhileAllowed {
                frames,
                shared,
                released: released.clone(),
                yielded: false,
            });
            WsReaderActor { reader, released }
        })
    }
}

impl<D> Actor for WsReaderActor<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + 'static,
{
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.reader.ping_interval(), |act, _| act.reader.ping());
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.reader.stopped();
    }
}

impl<D> StreamHandler<Read<Result<InFrame, ProtocolError>>> for WsReaderActor<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + 'static,
{
    fn handle(&mut self, item: Read<Result<InFrame, ProtocolError>>, ctx: &mut Context<Self>) {
        let item = match item {
            Read::Item(item) => item,
            Read::Idle => return self.reader.flush::<Self>(ctx),
        };
        let InFrame { frame, compressed } = match item {
            Ok(frame) => frame,
            Err(err) => return self.reader.on_protocol_error::<Self>(&err, ctx),
        };
        let msg = match frame {
            Frame::Binary(bytes) => WsIn::Data {
                bytes,
                text: false,
                compressed,
            },
            Frame::Text(bytes) => WsIn::Data {
                bytes,
                text: true,
                compressed,
            },
            Frame::Continuation(item @ (Item::FirstText(_) | Item::FirstBinary(_))) => {
                WsIn::Continuation(item, compressed)
            }
            // RFC 7692 §6.1: RSV1 marks only the first frame of a data message.
            _ if compressed => WsIn::Misplaced("RSV1 on a continuation or control frame"),
            Frame::Continuation(item) => WsIn::Continuation(item, false),
            Frame::Ping(payload) => WsIn::Ping(payload),
            Frame::Pong(_) => WsIn::Pong,
            Frame::Close(reason) => WsIn::Close(reason),
        };
        self.reader.on_message::<Self>(msg, ctx);
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.reader.finished::<Self>(ctx);
    }
}

/// The session ended. The reader does not stop at once: the peer's answer to our close
/// frame is still to be read (closing a socket with unread bytes would reset the
/// connection, and the peer could lose our close frame). It reads on, pauses or not,
/// and stops at the next frame it cannot deliver, at the peer's close frame, or when
/// the connection ends.
impl<D> Handler<StopReading> for WsReaderActor<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + 'static,
{
    type Result = ();

    fn handle(&mut self, _: StopReading, _: &mut Context<Self>) {
        // The context polls its stream again after this message.
        self.released.set(true);
    }
}

/// What the reader's stream yields: a frame, or word that nothing more is ready now.
pub(crate) enum Read<T> {
    Item(T),
    /// The connection has nothing more ready, or the reader must wait for leave to read:
    /// hand over the frames gathered so far.
    Idle,
}

/// Frames taken only while the session lets its reader read: not while it pauses
/// reading (its write queue is full, or the application asked) or the endpoint's memory
/// budget holds it back. Pausing in the stream, rather than with `ctx.wait`, leaves the
/// actor's mailbox open, so a paused reader still hears [`StopReading`]. Before it
/// waits, for the peer or for leave to read, it yields [`Read::Idle`] once after any
/// frames, so the reader hands them over: a reader waiting for room with frames held
/// back would wait for ever.
struct WhileAllowed<S> {
    frames: S,
    shared: Arc<SessionShared>,
    released: Rc<Cell<bool>>,
    /// Frames were yielded since the last `Idle`.
    yielded: bool,
}

impl<S: Stream + Unpin> Stream for WhileAllowed<S> {
    type Item = Read<S::Item>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Read<S::Item>>> {
        use std::task::Poll;
        let allowed = self.released.get() || self.shared.poll_read_allowed(cx).is_ready();
        let next = if allowed {
            std::pin::Pin::new(&mut self.frames).poll_next(cx)
        } else {
            Poll::Pending
        };
        match next {
            Poll::Ready(Some(item)) => {
                self.yielded = true;
                Poll::Ready(Some(Read::Item(item)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if std::mem::take(&mut self.yielded) => Poll::Ready(Some(Read::Idle)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Tells a reader to stop: the connection is over (a client's pump sends it once it
/// dropped the connection).
pub(crate) struct Stop;

impl actix::Message for Stop {
    type Result = ();
}

impl<D> Handler<Stop> for WsReaderActor<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + 'static,
{
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        self.reader.finished::<Self>(ctx);
        ctx.stop();
    }
}
