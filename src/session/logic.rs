//! The logic actor: runs the listener's callbacks, owns the write queue and the write
//! half, and carries out the one close path of a session.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use actix::fut::ActorFuture;
use actix::prelude::*;
use futures::{Stream, StreamExt};
use tokio::io::AsyncWrite;

use super::context::SessionContext;
use super::frame_reader::FrameReader;
use super::handoff::Entry;
use super::inbox::{read_queue, BatchPool, Inbox, InboxSender};
use super::messages::{CloseSession, Control, Inbound, MessageRejected, Payload, StopReading};
use super::out_buffer::{BudgetGate, MessageLimit, OutBuffer};
use super::reader_actor::ReaderActor;
use super::{AnySession, Phase, Session, SessionSetup, SessionShared};
use crate::clock;
use crate::endpoint::{panic_error, Outcome, SessionSlot};
use crate::error::Error;
use crate::listener::{EventListener, Frame};
use crate::transport::Transport;

/// Starts a session's logic and reader actors on the current arbiter.
pub(crate) fn start_session<L, T>(
    io: T,
    setup: SessionSetup,
    listener: L,
    codec: L::Codec,
    slot: SessionSlot,
) where
    L: EventListener,
    T: Transport,
{
    let (read_half, write_half) = io.into_split();
    let writer = SessionWriter {
        io: write_half,
        preserves_messages: T::PRESERVES_MESSAGES,
        limit: None,
    };
    let _ = start_session_with(
        setup,
        listener,
        codec,
        slot,
        writer,
        |codec, shared, batches| {
            let position = shared.clone();
            FrameReader::new(read_half, codec, shared, batches)
                .map(move |batch| Inbound::from_batch(batch, position.forwarded_upto()))
        },
    );
}

/// The write side of a session as [`start_session_with`] takes it.
pub(crate) struct SessionWriter<W> {
    pub(crate) io: W,
    /// Hand the writer one whole frame per write (see `Transport::PRESERVES_MESSAGES`).
    pub(crate) preserves_messages: bool,
    /// The bound on each message, for a message transport with one (datagrams).
    pub(crate) limit: Option<MessageLimit>,
}

/// Starts a session whose reader is any stream of [`Inbound`] items, made by `reader`
/// from the session's codec, shared state and batch pool (a `Failed` item is the last;
/// the end of the stream is EOF), run by a [`ReaderActor`]: byte streams and datagrams
/// both start here. Returns a handle to the new session.
pub(crate) fn start_session_with<L, W, S>(
    setup: SessionSetup,
    listener: L,
    codec: L::Codec,
    slot: SessionSlot,
    writer: SessionWriter<W>,
    reader: impl FnOnce(L::Codec, Arc<SessionShared>, BatchPool<Frame<L>>) -> S,
) -> Session<L::Out>
where
    L: EventListener,
    W: AsyncWrite + Unpin + 'static,
    S: Stream<Item = Inbound<Frame<L>>> + Unpin + 'static,
{
    start_session_with_reader(setup, listener, codec, slot, writer, |seat| {
        let frames = reader(seat.codec, seat.shared, seat.batches);
        let reader = ReaderActor::<L::Codec>::start(frames, seat.logic);
        Some(reader.recipient())
    })
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

/// Starts a session whose reader is started by `start_reader` (on this arbiter), for a
/// transport whose reader is an actor of its own (the WebSocket readers). The reader is
/// sent [`StopReading`] when the session ends; one that takes none (`None`) must end by
/// itself when the connection does. Frames a reader forwards once a close began are
/// dropped. Returns a handle to the new session.
pub(crate) fn start_session_with_reader<L, W>(
    setup: SessionSetup,
    listener: L,
    codec: L::Codec,
    slot: SessionSlot,
    writer: SessionWriter<W>,
    start_reader: impl FnOnce(ReaderSeat<L>) -> Option<Recipient<StopReading>>,
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
        let reader = start_reader(ReaderSeat {
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
            phase: Phase::Opening,
            inbox: Some(inbox),
            batches,
            reader_done: false,
            backlog_upto: 0,
            backlog: VecDeque::new(),
            end_after_backlog: None,
            read_paused: false,
            told_writable: true,
            close_requested: false,
            cause: None,
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

pub(crate) struct LogicActor<L: EventListener, W> {
    listener: L,
    session: Session<L::Out>,
    out: OutBuffer<L::Codec>,
    /// The write half; dropped once the session is closed.
    io: Option<W>,
    reader: Option<Recipient<StopReading>>,
    phase: Phase,
    /// The read queue; `None` once the reader is gone and it was drained.
    inbox: Option<Inbox<Frame<L>>>,
    /// Where delivered batch vectors go back to the reader.
    batches: BatchPool<Frame<L>>,
    /// The reader sent its last item (EOF or error), or its queue ended.
    reader_done: bool,
    /// Where in the bytes read the frames delivered or in the backlog end.
    backlog_upto: u64,

    /// Frames read but not yet delivered because the write queue was full; they go to
    /// `on_message` once it drains to the low-water mark, before anything read later.
    backlog: VecDeque<Frame<L>>,
    /// The peer's EOF (`None`) or a read error that arrived behind the backlog.
    end_after_backlog: Option<Option<Error>>,
    /// Mirror of what the reader was last told.
    read_paused: bool,
    /// The writability the listener was last told of (see `on_writability`).
    told_writable: bool,
    /// A callback asked to close.
    close_requested: bool,
    /// The error that is ending the session, if one is.
    cause: Option<Error>,
    /// Bytes were written since the last `poll_flush` (TLS buffers them).
    needs_flush: bool,
    /// Since when queued bytes made no progress (0: they do, or none are queued).
    stalled_ms: u64,
    /// Messages the transport rejected since the last report to `on_error`.
    rejected: Vec<Error>,
    slot: SessionSlot,
    span: tracing::Span,
}

impl<L: EventListener, W: AsyncWrite + Unpin + 'static> LogicActor<L, W> {
    fn shared(&self) -> &Arc<SessionShared> {
        self.session.shared()
    }

    /// Runs one listener callback with a context onto this session. A panic in it becomes
    /// [`Error::ListenerPanic`].
    fn callback<R>(
        &mut self,
        f: impl FnOnce(&mut L, &mut SessionContext<'_, L>) -> R,
    ) -> Result<R, Error> {
        let _entered = self.span.enter();
        let mut cx = SessionContext {
            session: &self.session,
            out: &mut self.out,
            close_requested: &mut self.close_requested,
        };
        let listener = &mut self.listener;
        catch_unwind(AssertUnwindSafe(|| f(listener, &mut cx)))
            .map_err(|p| panic_error(&*p, self.session.id()))
    }

    /// After a callback: close if it panicked or asked to.
    fn after_callback(&mut self, result: Result<(), Error>, ctx: &mut Context<Self>) {
        match result {
            Err(err) => self.begin_close(Some(err), ctx),
            Ok(()) if self.close_requested => self.begin_close(None, ctx),
            Ok(()) => {}
        }
    }

    /// Delivers the frames that waited in the backlog, if the session is open and its
    /// write queue drained to the low-water mark; says whether it did. Frames that find
    /// the queue full again go back to the backlog, so a loop calling this ends.
    fn deliver_backlog(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.phase != Phase::Open || self.backlog.is_empty() || !self.out.is_writable() {
            return false;
        }
        let backlog = std::mem::take(&mut self.backlog);
        self.run_frames(backlog.into_iter(), ctx);
        if self.backlog.is_empty() {
            self.session.shared().note_delivered(self.backlog_upto);
        }
        true
    }

    /// Tells the listener when the write queue crossed a water mark (or the memory budget
    /// held it back or let it go) since it was last told, once per change.
    fn tell_writability(&mut self, ctx: &mut Context<Self>, task: &mut std::task::Context<'_>) {
        let writable = self.out.is_writable();
        if writable == self.told_writable || self.phase != Phase::Open {
            return;
        }
        self.told_writable = writable;
        let result = self.callback(|listener, cx| listener.on_writability(cx, writable));
        self.after_callback(result, ctx);
        // What the listener wrote (or a close it asked for) is the write loop's to do.
        task.waker().wake_by_ref();
    }

    /// Frames from the reader, which end at byte `upto` of what it read. While the write
    /// queue is full they wait in the backlog, so `on_message` always starts with room
    /// to reply.
    fn deliver(&mut self, mut batch: Vec<Frame<L>>, upto: u64, ctx: &mut Context<Self>) {
        if self.phase != Phase::Open {
            // The session is closing: frames read after that are not delivered.
        } else if self.backlog.is_empty() {
            self.run_frames(batch.drain(..), ctx);
        } else {
            self.backlog.extend(batch.drain(..));
        }
        self.batches.give(batch);
        self.backlog_upto = upto;
        if self.backlog.is_empty() {
            self.session.shared().note_delivered(upto);
        }
    }

    /// Calls `on_message` for each frame while the write queue has room; the rest joins
    /// the backlog.
    fn run_frames<I>(&mut self, frames: I, ctx: &mut Context<Self>)
    where
        I: Iterator<Item = Frame<L>>,
    {
        // The frames that found the queue full come back out of the callback, so the
        // common case (every frame delivered) touches the backlog not at all.
        let result = self.callback(|listener, cx| {
            let mut frames = frames;
            while let Some(frame) = frames.next() {
                if !cx.out.is_writable() {
                    return Some((frame, frames));
                }
                listener.on_message(cx, frame);
                if *cx.close_requested {
                    return None; // nothing more is delivered after close()
                }
            }
            None
        });
        let result = result.map(|waiting| {
            if let Some((first, rest)) = waiting {
                self.backlog.push_back(first);
                self.backlog.extend(rest);
            }
        });
        self.after_callback(result, ctx);
        if self.backlog.is_empty() {
            if let Some(cause) = self.end_after_backlog.take() {
                self.begin_close(cause, ctx);
            }
        }
    }

    /// The reader finished, with an error or at EOF: close once the backlog is delivered.
    fn reader_ended(&mut self, cause: Option<Error>, ctx: &mut Context<Self>) {
        if std::mem::replace(&mut self.reader_done, true) {
            return; // its queue ending after its last item says nothing new
        }
        if self.backlog.is_empty() {
            self.begin_close(cause, ctx);
        } else {
            self.end_after_backlog = Some(cause);
        }
    }

    fn write(&mut self, payload: Payload<L::Out>) -> Result<(), Error> {
        let frames = match payload {
            Payload::One(frame) => self.out.encode(frame).map(|()| 1)?,
            Payload::Many(frames) => self.out.encode_all(frames)?,
            Payload::Raw(bytes) => self.out.push_raw(&bytes).map(|()| 1)?,
        };
        self.shared().stats.add_frames_written(frames);
        Ok(())
    }

    /// Encodes the writes that wait in the hand-over queue, in order, while the write
    /// queue has room below its high-water mark; the rest keep their place. Returns
    /// whether any were encoded.
    fn drain_handoff(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.session.handoff().is_empty() {
            return false;
        }
        let mut entries = self.session.handoff().take_all();
        let mut encoded = 0;
        while self.out.has_room() {
            let Some(entry) = entries.pop_front() else {
                break;
            };
            encoded += entry.frames();
            let Entry { payload, ack } = entry;
            match (self.write(payload), ack) {
                (Ok(()), Some(ack)) => self.out.ack_when_written(ack),
                (Ok(()), None) => {}
                (Err(err), Some(ack)) => {
                    let _ = ack.send(Err(err));
                }
                (Err(err), None) => {
                    // A `try_write` whose frame the encoder refused: nobody waits for it,
                    // so keep its promise (written, or the session ends with on_error and
                    // on_close) rather than drop it silently.
                    self.session.handoff().put_back(encoded, entries);
                    self.begin_close(Some(err), ctx);
                    return true;
                }
            }
        }
        self.session.handoff().put_back(encoded, entries);
        encoded > 0
    }

    /// The one close path. Stops reading, reports `cause` through `on_error`, then lets
    /// the write queue drain for at most the wait time before [`finish`](Self::finish).
    fn begin_close(&mut self, cause: Option<Error>, ctx: &mut Context<Self>) {
        if self.phase != Phase::Open {
            return;
        }
        // Writes already handed over are owed: encode what fits, then take no more (what
        // does not fit fails with the session, and its writers hear it).
        self.drain_handoff(ctx);
        if self.phase != Phase::Open {
            return; // a frame handed over could not be encoded, and that closed us
        }
        self.session.handoff().close();
        self.phase = Phase::Closing;
        self.shared().set_phase(Phase::Closing);
        self.out.stop_accepting();
        self.backlog.clear();
        if let Some(reader) = self.reader.take() {
            reader.do_send(StopReading);
        }
        if let Some(err) = &cause {
            let _entered = self.span.enter();
            tracing::debug!(%err, "session ending on error");
            let (listener, session) = (&mut self.listener, &self.session);
            if catch_unwind(AssertUnwindSafe(|| listener.on_error(session, err))).is_err() {
                tracing::error!("on_error panicked");
            }
        }
        self.cause = cause;
        ctx.run_later(self.shared().config.wait_time, |act, ctx| {
            if act.phase == Phase::Closing {
                tracing::debug!(parent: &act.span, queued = act.out.len(), "wait time over; closing with bytes unsent");
                act.finish(ctx);
            }
        });
    }

    /// Ends the session: fails what is still queued, shuts the socket, runs `on_close`
    /// (if `on_open` ran), and releases the endpoint slot.
    fn finish(&mut self, ctx: &mut Context<Self>) {
        if self.phase == Phase::Closed {
            return;
        }
        let opened = self.phase != Phase::Opening;
        self.phase = Phase::Closed;
        let id = self.session.id();
        let err = self.cause.clone().unwrap_or_else(|| Error::closed(id));
        self.session.handoff().close();
        self.out.fail(&err);
        self.io = None;
        if let Some(reader) = self.reader.take() {
            reader.do_send(StopReading);
        }
        if opened {
            let (listener, session) = (&mut self.listener, &self.session);
            let _entered = self.span.enter();
            if catch_unwind(AssertUnwindSafe(|| listener.on_close(session))).is_err() {
                tracing::error!("on_close panicked");
            }
            tracing::debug!("session closed");
        }
        self.shared().note_queue(0, false, 0);
        self.shared().charge.release();
        self.shared().set_phase(Phase::Closed);
        self.slot.release(if opened {
            Outcome::Closed
        } else {
            Outcome::Refused
        });
        ctx.stop();
    }

    /// A datagram went wrong but the session goes on: tell `on_error` and count it.
    fn soft_error(&mut self, err: Error, ctx: &mut Context<Self>) {
        let err = err.with_session(self.session.id());
        self.shared().stats.add_soft_error();
        if self.phase != Phase::Open {
            return; // nothing after on_close, and nothing before on_open
        }
        let _entered = self.span.enter();
        tracing::debug!(%err, "datagram error; session goes on");
        let (listener, session) = (&mut self.listener, &self.session);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| listener.on_error(session, &err))) {
            // Like any other callback that panics: the session ends.
            let panic = panic_error(&*panic, self.session.id());
            drop(_entered);
            self.begin_close(Some(panic), ctx);
        }
    }

    /// A write to the socket failed: nothing more can leave, so close at once.
    fn write_failed(&mut self, err: Error, ctx: &mut Context<Self>) {
        let err = err.with_session(self.session.id());
        if self.phase == Phase::Open {
            self.begin_close(Some(err), ctx);
        } else if self.cause.is_none() {
            self.cause = Some(err);
        }
        self.finish(ctx);
    }

    /// Handles what the reader queued, at most [`MAX_ITEMS_PER_POLL`] items per poll.
    fn poll_inbox(&mut self, ctx: &mut Context<Self>, task: &mut std::task::Context<'_>) {
        for _ in 0..MAX_ITEMS_PER_POLL {
            let Some(inbox) = self.inbox.as_mut() else {
                return;
            };
            match Pin::new(inbox).poll_next(task) {
                Poll::Ready(Some(item)) => self.handle_inbound(item, ctx),
                Poll::Ready(None) => {
                    self.inbox = None;
                    // The reader is gone: its EOF, if it did not say so itself.
                    self.reader_ended(None, ctx);
                }
                Poll::Pending => return,
            }
            if self.phase == Phase::Closed {
                return;
            }
        }
        // More may be queued: come back after the writes, as a fair share of the arbiter.
        task.waker().wake_by_ref();
    }

    /// One item from the reader: frames, its end, or a datagram's soft error.
    fn handle_inbound(&mut self, msg: Inbound<Frame<L>>, ctx: &mut Context<Self>) {
        match msg {
            Inbound::Frames(batch, upto) => self.deliver(batch, upto, ctx),
            Inbound::Eof => self.reader_ended(None, ctx),
            Inbound::Failed(err) => {
                let err = err.with_session(self.session.id());
                self.reader_ended(Some(err), ctx);
            }
            Inbound::Warn(err) => self.soft_error(err, ctx),
        }
    }

    /// Moves queued bytes to the socket; shuts it once a close has drained the queue.
    /// Polled after every batch of messages, so the writes of one batch share syscalls.
    fn poll_io(&mut self, ctx: &mut Context<Self>, task: &mut std::task::Context<'_>) -> Poll<()> {
        let mut progressed = false;
        let blocked = loop {
            if self.phase == Phase::Open {
                self.drain_handoff(ctx);
                if self.phase != Phase::Open && self.io.is_none() {
                    return Poll::Ready(());
                }
            }
            match self.poll_write_queue(task) {
                Poll::Ready(Ok(wrote)) => progressed |= wrote,
                Poll::Ready(Err(err)) => {
                    self.write_failed(err, ctx);
                    return Poll::Ready(());
                }
                // The socket is full, but the queue may have drained below its low-water
                // mark before it filled: the frames that waited go in now, up to the
                // high-water mark, rather than wait (reading paused) for the peer to read.
                Poll::Pending if self.deliver_backlog(ctx) => continue,
                Poll::Pending => break true,
            }
            if self.deliver_backlog(ctx) {
                continue;
            }
            // Everything queued is written: the writes still handed over fit now (and
            // only then go round again, so the loop always makes progress).
            if self.phase == Phase::Open
                && !self.session.handoff().is_empty()
                && self.out.has_room()
            {
                continue;
            }
            break false;
        };
        for err in std::mem::take(&mut self.rejected) {
            self.soft_error(err, ctx);
        }
        if self.io.is_none() {
            return Poll::Ready(()); // a callback above ended the session
        }
        self.stalled_ms = match (blocked, progressed) {
            (false, _) => 0,
            (true, true) => clock::now_ms(),
            (true, false) if self.stalled_ms == 0 => clock::now_ms(),
            (true, false) => self.stalled_ms,
        };
        self.account();
        let shared = self.session.shared();
        shared.note_queue(self.out.len(), self.out.is_writable(), self.stalled_ms);
        if progressed {
            self.session.handoff().wake_writers(); // the write queue has room again
        }
        let paused =
            self.phase == Phase::Open && (!self.out.is_writable() || !self.backlog.is_empty());
        if paused != self.read_paused {
            self.read_paused = paused;
            shared.pause_reading(paused);
        }
        self.tell_writability(ctx, task);
        if blocked || self.phase != Phase::Closing {
            return Poll::Pending;
        }
        let Some(io) = self.io.as_mut() else {
            return Poll::Ready(());
        };
        match Pin::new(io).poll_shutdown(task) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                if let Err(err) = result {
                    // Everything queued was written already, so nothing is lost.
                    tracing::debug!(parent: &self.span, %err, "socket shutdown failed");
                }
                self.finish(ctx);
                Poll::Ready(())
            }
        }
    }

    /// Reports what the session holds to the endpoint's memory budget (write queue,
    /// read-ahead, datagrams queued for it) and applies the verdict (see
    /// `crate::endpoint::budget`): writes are held back while the write queue alone is at the fair
    /// share of a spent budget, and a reader the budget held back is woken once it may
    /// read. Once per batch, so the shared counter is touched once.
    fn account(&mut self) {
        let shared = self.session.shared();
        let memory = self.out.memory();
        let held = shared.report_held(memory);
        // The queue may grow by the budget's grant until the next report. A queue that
        // alone fills its share of a spent budget gets nothing; otherwise at least one
        // more write, so that frames read (which count too) still reach the listener
        // and drain.
        let terms = shared.charge.terms();
        let grant = match terms.grant(memory) {
            0 => 0,
            _ => terms.grant(held).max(1),
        };
        let (share, budget) = (terms.share, terms.limit);
        // The grant is memory; the buffer may be up to twice the bytes in it (it grows
        // by doubling), so bytes may grow to half of what memory may.
        let cap =
            (memory.saturating_add(grant) / 2).max(self.out.len().saturating_add(grant.min(1)));
        self.out.set_budget_gate(BudgetGate { cap, share, budget });
        shared.note_budget_blocked(grant == 0);
        shared.release_budget_parked_reader();
    }

    /// Writes the queue out and flushes the socket. `Ready(Ok(wrote_any))` once all is
    /// written, `Pending` when the socket is full.
    fn poll_write_queue(&mut self, task: &mut std::task::Context<'_>) -> Poll<Result<bool, Error>> {
        let Some(io) = self.io.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        let mut wrote = false;
        while !self.out.is_empty() {
            match Pin::new(&mut *io).poll_write(task, self.out.chunk()) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(
                        std::io::Error::from(std::io::ErrorKind::WriteZero).into()
                    ))
                }
                Poll::Ready(Ok(n))
                    if n < self.out.chunk().len() && self.out.preserves_messages() =>
                {
                    // A message transport must take a message whole; a part would be a
                    // different message on the wire.
                    let msg = format!(
                        "transport wrote {n} of a {}-byte message",
                        self.out.chunk().len()
                    );
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        msg,
                    )
                    .into()));
                }
                Poll::Ready(Ok(n)) => {
                    let envelope = self.out.message_overhead();
                    self.out.consume(n);
                    let stats = &self.session.shared().stats;
                    stats.add_bytes_written(n.saturating_sub(envelope));
                    wrote = true;
                    self.needs_flush = true;
                }
                Poll::Ready(Err(err)) if MessageRejected::is(&err) => {
                    // One datagram the OS would not send: the write that queued it hears
                    // it, `on_error` too, and the session goes on with the next message.
                    if let Some(Ok(rejected)) =
                        err.into_inner().map(|e| e.downcast::<MessageRejected>())
                    {
                        let rejected = rejected.0.with_session(self.session.id());
                        self.out.reject_message(&rejected);
                        self.rejected.push(rejected);
                    }
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err.into())),
                Poll::Pending if wrote => {
                    // Progress was made: report it so the stall clock restarts.
                    self.stalled_ms = 0;
                    return Poll::Pending;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        if self.needs_flush {
            match Pin::new(&mut *io).poll_flush(task) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err.into())),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(wrote))
    }
}

/// Most read-queue items handled per poll before the writes and other sessions get a turn.
const MAX_ITEMS_PER_POLL: usize = 16;

/// Drives the session as one item of the logic actor's context: handles what the reader
/// queued ([`LogicActor::poll_inbox`]), then moves the write queue to the socket
/// ([`LogicActor::poll_io`]), so the replies to a batch share one write. One item
/// instead of a stream for the queue plus a flusher saves a poll of each per batch.
struct Pump;

impl<L: EventListener, W: AsyncWrite + Unpin + 'static> ActorFuture<LogicActor<L, W>> for Pump {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut LogicActor<L, W>,
        ctx: &mut Context<LogicActor<L, W>>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        // Registered before the queue is looked at, so a write handed over from another
        // thread after the look wakes this task again.
        act.session.handoff().register(task.waker());
        act.poll_inbox(ctx, task);
        act.poll_io(ctx, task)
    }
}

impl<L: EventListener, W: AsyncWrite + Unpin + 'static> Actor for LogicActor<L, W> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match self.callback(|listener, cx| listener.on_open(cx)) {
            Ok(Ok(())) if self.close_requested => {
                self.open(ctx);
                self.begin_close(None, ctx);
            }
            Ok(Ok(())) => self.open(ctx),
            Ok(Err(err)) => {
                tracing::debug!(parent: &self.span, %err, "on_open refused the session");
                self.finish(ctx);
            }
            Err(err) => {
                tracing::error!(parent: &self.span, %err, "on_open panicked; session refused");
                self.finish(ctx);
            }
        }
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        // Only reached through `finish`, which already ran; kept as a safety net.
        self.finish(ctx);
    }
}

impl<L: EventListener, W: AsyncWrite + Unpin + 'static> LogicActor<L, W> {
    fn open(&mut self, ctx: &mut Context<Self>) {
        self.phase = Phase::Open;
        self.shared().set_phase(Phase::Open);
        let session = &self.session;
        let shared = session.shared().clone();
        self.slot.opened(shared, ctx.address().recipient(), || {
            AnySession::new(session.clone())
        });
        ctx.spawn(Pump);
        tracing::debug!(parent: &self.span, "session open");
    }
}

// Nothing in the actor is ever pinned in place (actix only needs to move it), so it is
// Unpin whatever the listener and frame types are; users need not make theirs Unpin.
impl<L: EventListener, W> Unpin for LogicActor<L, W> {}

impl<L: EventListener, W> Drop for LogicActor<L, W> {
    fn drop(&mut self) {
        // Dropped without `finish` (its arbiter stopped): make handles see it closed.
        // The slot releases itself.
        let shared = self.session.shared();
        self.session.handoff().close();
        shared.charge.release();
        if shared.phase() != Phase::Closed {
            self.out.fail(&Error::closed(shared.id));
            shared.set_phase(Phase::Closed);
        }
    }
}

impl<L: EventListener, W: AsyncWrite + Unpin + 'static> Handler<CloseSession> for LogicActor<L, W> {
    type Result = ();

    fn handle(&mut self, _: CloseSession, ctx: &mut Context<Self>) {
        self.begin_close(None, ctx);
    }
}

impl<L: EventListener, W: AsyncWrite + Unpin + 'static> Handler<Control> for LogicActor<L, W> {
    type Result = ();

    fn handle(&mut self, msg: Control, ctx: &mut Context<Self>) {
        let id = Some(self.session.id());
        let config = &self.shared().config;
        match msg {
            Control::Cron if self.phase == Phase::Open => {
                let result = self.callback(|listener, cx| listener.on_cron(cx));
                self.after_callback(result, ctx);
            }
            Control::Cron => {}
            // The supervisor saw the timeout a moment ago; a read or a write may have
            // come in since, so check again here, where the truth is.
            Control::ReadTimeout => {
                let after = config.read_timeout.unwrap_or_default();
                let silent = clock::now_ms().saturating_sub(self.shared().last_read_ms());
                if u128::from(silent) >= after.as_millis() {
                    self.begin_close(Some(Error::ReadTimeout { session: id, after }), ctx);
                }
            }
            Control::WriteTimeout => {
                let after = config.write_timeout.unwrap_or_default();
                let stalled = self.stalled_ms != 0
                    && u128::from(clock::now_ms().saturating_sub(self.stalled_ms))
                        >= after.as_millis();
                if stalled && self.phase != Phase::Closed {
                    // The peer takes nothing: waiting out the wait time would not help.
                    self.write_failed(Error::WriteTimeout { session: id, after }, ctx);
                }
            }
            Control::Shutdown => self.begin_close(None, ctx),
        }
    }
}
