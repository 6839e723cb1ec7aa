//! Starting a session: the one [`start_session`] every transport calls, with what
//! differs between transports, the write half ([`SessionWriter`]) and how its reader
//! is made ([`ReaderKind`]).

use std::collections::VecDeque;
use std::sync::Arc;

use actix::prelude::*;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};

use super::close::CloseMachine;
use super::frame_reader::FrameReader;
use super::inbox::{read_queue, BatchPool, InboxSender};
use super::logic::LogicActor;
use super::messages::{Inbound, StopReading};
use super::out_buffer::{MessageLimit, OutBuffer};
use super::reader_actor::ReaderActor;
use super::{Session, SessionSetup, SessionShared};
use crate::endpoint::SessionSlot;
use crate::listener::{EventListener, Frame};

/// The write side of a session as [`start_session`] takes it.
pub(crate) struct SessionWriter<W> {
    /// The write half the logic actor writes to; its `poll_shutdown` ends the session.
    pub(crate) io: W,
    /// Hand the writer one whole frame per write (see `Transport::PRESERVES_MESSAGES`).
    pub(crate) preserves_messages: bool,
    /// The bound on each message, for a message transport with one (datagrams).
    pub(crate) limit: Option<MessageLimit>,
}

/// What a session's reader is started with.
pub(crate) struct ReaderSeat<L: EventListener> {
    /// The session's shared state (config, stats, activity, read pause).
    pub(crate) shared: Arc<SessionShared>,
    /// The reader's own clone of the codec, for decoding.
    pub(crate) codec: L::Codec,
    /// Where decoded frames go: the read queue to the logic actor.
    pub(crate) logic: InboxSender<Frame<L>>,
    /// Batch vectors the logic actor gives back once it delivered their frames.
    pub(crate) batches: BatchPool<Frame<L>>,
}

/// How a session's reader is made: the one thing besides the writer in which the
/// sessions of different transports differ. See [`ByteReader`], [`ItemReader`] and
/// [`ActorReader`].
pub(crate) trait ReaderKind<L: EventListener> {
    /// Starts the reader on the current arbiter, before the logic actor runs. Returns
    /// where to send [`StopReading`] when the session ends; a reader that takes none
    /// (`None`) must end by itself when the connection does.
    fn start(self, seat: ReaderSeat<L>) -> Option<Recipient<StopReading>>;
}

/// The read half of a byte stream (TCP, Unix, TLS): read and decoded by a
/// [`FrameReader`], run by a [`ReaderActor`].
pub(crate) struct ByteReader<R>(pub(crate) R);

impl<L, R> ReaderKind<L> for ByteReader<R>
where
    L: EventListener,
    R: AsyncRead + Unpin + 'static,
{
    fn start(self, seat: ReaderSeat<L>) -> Option<Recipient<StopReading>> {
        let position = seat.shared.clone();
        let frames = FrameReader::new(self.0, seat.codec, seat.shared, seat.batches)
            .map(move |batch| Inbound::from_batch(batch, position.forwarded_upto()));
        Some(ReaderActor::<L::Codec>::start(frames, seat.logic).recipient())
    }
}

/// Any stream of [`Inbound`] items (the datagram readers), made by the function from
/// the session's codec, shared state and batch pool, and run by a [`ReaderActor`]: a
/// `Failed` item is the last, and the end of the stream is EOF.
pub(crate) struct ItemReader<F>(pub(crate) F);

impl<L, F, S> ReaderKind<L> for ItemReader<F>
where
    L: EventListener,
    F: FnOnce(L::Codec, Arc<SessionShared>, BatchPool<Frame<L>>) -> S,
    S: Stream<Item = Inbound<Frame<L>>> + Unpin + 'static,
{
    fn start(self, seat: ReaderSeat<L>) -> Option<Recipient<StopReading>> {
        let items = (self.0)(seat.codec, seat.shared, seat.batches);
        Some(ReaderActor::<L::Codec>::start(items, seat.logic).recipient())
    }
}

/// A reader that is an actor of its own (the WebSocket readers), started by the
/// function. Frames it forwards once a close began are dropped.
pub(crate) struct ActorReader<F>(pub(crate) F);

impl<L, F> ReaderKind<L> for ActorReader<F>
where
    L: EventListener,
    F: FnOnce(ReaderSeat<L>) -> Option<Recipient<StopReading>>,
{
    fn start(self, seat: ReaderSeat<L>) -> Option<Recipient<StopReading>> {
        (self.0)(seat)
    }
}

/// Starts a session's logic actor and its reader (made by `reader`) on the current
/// arbiter, writing to `writer`: every transport's sessions start here. Returns a handle
/// to the new session.
pub(crate) fn start_session<L, W>(
    setup: SessionSetup,
    listener: L,
    codec: L::Codec,
    slot: SessionSlot,
    writer: SessionWriter<W>,
    reader: impl ReaderKind<L>,
) -> Session<L::Out>
where
    L: EventListener,
    W: AsyncWrite + Unpin + 'static,
{
    let shared = SessionShared::with_budget(setup, slot.budget());
    let mut ctx = Context::new();
    let actor = {
        let ctx = &mut ctx;
        // The mailbox carries only closes and the supervisor's ticks (frames come through
        // the read queue, handles' writes through the hand-over queue).
        ctx.set_mailbox_capacity(shared.config.read_queue);
        let session = Session::new(shared.clone(), ctx.address().recipient());
        let (frames, inbox) = read_queue(shared.config.read_queue);
        let batches = BatchPool::new();
        // The reader may read before `on_open` runs; the queue is polled only by the
        // pump that `open` spawns, so frames still wait for `on_open`.
        let reader = reader.start(ReaderSeat {
            shared: shared.clone(),
            codec: codec.clone(),
            logic: frames,
            batches: batches.clone(),
        });
        let span = tracing::debug_span!("session", id = shared.id.get(), name = %shared.name, peer = %shared.peer_addr);
        LogicActor {
            out: OutBuffer::new(
                codec,
                shared.id,
                shared.config.write_high_water,
                shared.config.write_low_water,
            )
            .preserve_messages(writer.preserves_messages)
            .limit_messages(writer.limit),
            listener,
            session,
            io: Some(writer.io),
            reader,
            close: CloseMachine::new(),
            inbox: Some(inbox),
            batches,
            backlog_upto: 0,
            backlog: VecDeque::new(),
            read_paused: false,
            told_writable: true,
            needs_flush: false,
            stalled_ms: 0,
            rejected: Vec::new(),
            slot,
            span,
        }
    };
    let session = actor.session.clone();
    ctx.run(actor);
    session
}
