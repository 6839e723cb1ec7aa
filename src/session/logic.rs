//! The logic actor: runs the listener's callbacks, delivers the frames the reader
//! queued, and carries out what the session's [`CloseMachine`] decides. Its write loop
//! is in `super::write_loop`.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use actix::prelude::*;
use futures::Stream;
use tokio::io::AsyncWrite;

use super::close::{CloseMachine, Decision, Phase};
use super::context::SessionContext;
use super::inbox::{BatchPool, Inbox};
use super::messages::{CloseSession, Control, Inbound, StopReading};
use super::out_buffer::OutBuffer;
use super::write_loop::Pump;
use super::{AnySession, Session, SessionShared};
use crate::clock;
use crate::endpoint::{panic_error, Outcome, SessionSlot};
use crate::error::Error;
use crate::listener::{EventListener, Frame};

/// The actor that owns a session's listener, write queue and write half (see the
/// module docs). Started by `super::start_session`.
pub(crate) struct LogicActor<L: EventListener, W> {
    /// The application's callbacks.
    pub(super) listener: L,
    /// The session's own handle (callbacks see it; its handoff brings handles' writes).
    pub(super) session: Session<L::Out>,
    /// The write queue.
    pub(super) out: OutBuffer<L::Codec>,
    /// The write half; dropped once the session is closed.
    pub(super) io: Option<W>,
    /// Where to tell the reader to stop; taken when it is told.
    pub(super) reader: Option<Recipient<StopReading>>,
    /// When and how the session closes.
    pub(super) close: CloseMachine,
    /// The read queue; `None` once the reader is gone and it was drained.
    pub(super) inbox: Option<Inbox<Frame<L>>>,
    /// Where delivered batch vectors go back to the reader.
    pub(super) batches: BatchPool<Frame<L>>,
    /// Where in the bytes read the frames delivered or in the backlog end.
    pub(super) backlog_upto: u64,
    /// Frames read but not yet delivered because the write queue was full; they go to
    /// `on_message` once it drains to the low-water mark, before anything read later.
    pub(super) backlog: VecDeque<Frame<L>>,
    /// Mirror of what the reader was last told.
    pub(super) read_paused: bool,
    /// The writability the listener was last told of (see `on_writability`).
    pub(super) told_writable: bool,
    /// Bytes were written since the last `poll_flush` (TLS buffers them).
    pub(super) needs_flush: bool,
    /// Since when queued bytes made no progress (0: they do, or none are queued).
    pub(super) stalled_ms: u64,
    /// Messages the transport rejected since the last report to `on_error`.
    pub(super) rejected: Vec<Error>,
    /// The session's place in its endpoint.
    pub(super) slot: SessionSlot,
    /// The session's tracing span.
    pub(super) span: tracing::Span,
}

impl<L: EventListener, W: AsyncWrite + Unpin + 'static> LogicActor<L, W> {
    /// The session's shared state.
    pub(super) fn shared(&self) -> &Arc<SessionShared> {
        self.session.shared()
    }

    /// Runs one listener callback with a context onto this session. A panic in it becomes
    /// [`ErrorKind::ListenerPanic`](crate::ErrorKind::ListenerPanic).
    pub(super) fn callback<R>(
        &mut self,
        f: impl FnOnce(&mut L, &mut SessionContext<'_, L>) -> R,
    ) -> Result<R, Error> {
        let _entered = self.span.enter();
        let mut cx = SessionContext {
            session: &self.session,
            out: &mut self.out,
            close_requested: self.close.close_flag(),
        };
        let listener = &mut self.listener;
        catch_unwind(AssertUnwindSafe(|| f(listener, &mut cx)))
            .map_err(|p| panic_error(&*p, self.session.id()))
    }

    /// After a callback: close if it panicked or asked to.
    #[inline]
    pub(super) fn after_callback(&mut self, result: Result<(), Error>, ctx: &mut Context<Self>) {
        let decision = self.close.callback_returned(result);
        self.carry_out(decision, ctx);
    }

    /// Does what the close machine decided.
    #[inline]
    pub(super) fn carry_out(&mut self, decision: Decision, ctx: &mut Context<Self>) {
        match decision {
            Decision::Continue => {}
            Decision::Close => self.begin_close(ctx),
            Decision::CloseThenAbort => {
                self.begin_close(ctx);
                if let Decision::End { on_close } = self.close.abort() {
                    self.end(on_close, ctx);
                }
            }
            // The write loop shuts the writer down itself (see `poll_io`).
            Decision::ShutDownWriter => {}
            Decision::End { on_close } => self.end(on_close, ctx),
        }
    }

    /// Frames from the reader, which end at byte `upto` of what it read. While the write
    /// queue is full they wait in the backlog, so `on_message` always starts with room
    /// to reply.
    fn deliver(&mut self, mut batch: Vec<Frame<L>>, upto: u64, ctx: &mut Context<Self>) {
        if !self.close.is_open() {
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
    pub(super) fn run_frames<I>(&mut self, frames: I, ctx: &mut Context<Self>)
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
            let decision = self.close.backlog_drained();
            self.carry_out(decision, ctx);
        }
    }

    /// Begins the graceful close the close machine decided on ([`Decision::Close`]).
    /// Stops reading, reports the cause through `on_error`, then lets the write queue
    /// drain for at most the wait time (see [`CloseMachine::deadline_passed`]).
    fn begin_close(&mut self, ctx: &mut Context<Self>) {
        // Writes already handed over are owed: encode what fits, then take no more (what
        // does not fit fails with the session, and its writers hear it).
        while let Err(err) = self.drain_handoff() {
            self.close.owed_write_failed(err);
        }
        self.session.handoff().close();
        self.shared().set_phase(Phase::Closing);
        self.out.stop_accepting();
        self.backlog.clear();
        if let Some(reader) = self.reader.take() {
            reader.do_send(StopReading);
        }
        if let Some(err) = self.close.cause() {
            let _entered = self.span.enter();
            tracing::debug!(%err, "session ending on error");
            let (listener, session) = (&mut self.listener, &self.session);
            if catch_unwind(AssertUnwindSafe(|| listener.on_error(session, err))).is_err() {
                tracing::error!("on_error panicked");
            }
        }
        ctx.run_later(self.shared().config.wait_time, |act, ctx| {
            if act.close.phase() == Phase::Closing {
                tracing::debug!(parent: &act.span, queued = act.out.len(), "wait time over; closing with bytes unsent");
            }
            let end = act.close.deadline_passed();
            act.carry_out(end, ctx);
        });
    }

    /// Ends the session ([`Decision::End`]): fails what is still queued, drops the
    /// writer, runs `on_close` (if `on_close`: `on_open` ran), and releases the
    /// endpoint slot.
    fn end(&mut self, on_close: bool, ctx: &mut Context<Self>) {
        let id = self.session.id();
        let err = self
            .close
            .cause()
            .cloned()
            .unwrap_or_else(|| Error::closed(id));
        self.session.handoff().close();
        self.out.fail(&err);
        self.io = None;
        if let Some(reader) = self.reader.take() {
            reader.do_send(StopReading);
        }
        if on_close {
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
        self.slot.release(if on_close {
            Outcome::Closed(self.close.closed_by())
        } else {
            Outcome::Refused
        });
        ctx.stop();
    }

    /// A datagram went wrong but the session goes on: tell `on_error` and count it.
    pub(super) fn soft_error(&mut self, err: Error, ctx: &mut Context<Self>) {
        let err = err.with_session(self.session.id());
        self.shared().stats.add_soft_error();
        if !self.close.is_open() {
            return; // nothing after on_close, and nothing before on_open
        }
        let _entered = self.span.enter();
        tracing::debug!(%err, "datagram error; session goes on");
        let (listener, session) = (&mut self.listener, &self.session);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| listener.on_error(session, &err))) {
            // Like any other callback that panics: the session ends.
            let panic = panic_error(&*panic, self.session.id());
            drop(_entered);
            let decision = self.close.failed(panic);
            self.carry_out(decision, ctx);
        }
    }

    /// A write to the socket failed: nothing more can leave, so close at once.
    pub(super) fn write_failed(&mut self, err: Error, ctx: &mut Context<Self>) {
        let err = err.with_session(self.session.id());
        let decision = self.close.write_failed(err);
        self.carry_out(decision, ctx);
    }

    /// Handles what the reader queued, at most [`MAX_ITEMS_PER_POLL`] items per poll.
    pub(super) fn poll_inbox(
        &mut self,
        ctx: &mut Context<Self>,
        task: &mut std::task::Context<'_>,
    ) {
        for _ in 0..MAX_ITEMS_PER_POLL {
            let Some(inbox) = self.inbox.as_mut() else {
                return;
            };
            match Pin::new(inbox).poll_next(task) {
                Poll::Ready(Some(item)) => self.handle_inbound(item, ctx),
                Poll::Ready(None) => {
                    self.inbox = None;
                    // The reader is gone: its EOF, if it did not say so itself.
                    let decision = self.close.reader_gone(self.backlog.is_empty());
                    self.carry_out(decision, ctx);
                }
                Poll::Pending => return,
            }
            if self.close.is_closed() {
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
            Inbound::Eof => {
                let decision = self.close.peer_eof(self.backlog.is_empty());
                self.carry_out(decision, ctx);
            }
            Inbound::Stopped => {
                let decision = self.close.source_stopped(self.backlog.is_empty());
                self.carry_out(decision, ctx);
            }
            Inbound::Failed(err) => {
                let err = err.with_session(self.session.id());
                let decision = self.close.read_failed(err, self.backlog.is_empty());
                self.carry_out(decision, ctx);
            }
            Inbound::Warn(err) => self.soft_error(err, ctx),
        }
    }

    /// `on_open` succeeded: publishes the session to its endpoint and starts the pump.
    fn open(&mut self, ctx: &mut Context<Self>) {
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

/// Most read-queue items handled per poll before the writes and other sessions get a turn.
const MAX_ITEMS_PER_POLL: usize = 16;

impl<L: EventListener, W: AsyncWrite + Unpin + 'static> Actor for LogicActor<L, W> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match self.callback(|listener, cx| listener.on_open(cx)) {
            Ok(Ok(())) => {
                let decision = self.close.opened();
                self.open(ctx);
                self.carry_out(decision, ctx);
            }
            Ok(Err(err)) => {
                tracing::debug!(parent: &self.span, %err, "on_open refused the session");
                let decision = self.close.refused();
                self.carry_out(decision, ctx);
            }
            Err(err) => {
                tracing::error!(parent: &self.span, %err, "on_open panicked; session refused");
                let decision = self.close.refused();
                self.carry_out(decision, ctx);
            }
        }
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        // Only reached after `end`, which already ran; kept as a safety net.
        let decision = self.close.stopped();
        self.carry_out(decision, ctx);
    }
}

// Nothing in the actor is ever pinned in place (actix only needs to move it), so it is
// Unpin whatever the listener and frame types are; users need not make theirs Unpin.
impl<L: EventListener, W> Unpin for LogicActor<L, W> {}

impl<L: EventListener, W> Drop for LogicActor<L, W> {
    fn drop(&mut self) {
        // Dropped without `end` (its arbiter stopped): make handles see it closed.
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
        let decision = self.close.stop();
        self.carry_out(decision, ctx);
    }
}

impl<L: EventListener, W: AsyncWrite + Unpin + 'static> Handler<Control> for LogicActor<L, W> {
    type Result = ();

    fn handle(&mut self, msg: Control, ctx: &mut Context<Self>) {
        let id = self.session.id();
        let config = &self.shared().config;
        match msg {
            Control::Cron if self.close.is_open() => {
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
                    let err = Error::read_timeout(after).with_session(id);
                    let decision = self.close.failed(err);
                    self.carry_out(decision, ctx);
                }
            }
            Control::WriteTimeout => {
                let after = config.write_timeout.unwrap_or_default();
                let stalled = self.stalled_ms != 0
                    && u128::from(clock::now_ms().saturating_sub(self.stalled_ms))
                        >= after.as_millis();
                if stalled {
                    // The peer takes nothing: waiting out the wait time would not help.
                    let err = Error::write_timeout(after).with_session(id);
                    let decision = self.close.write_timed_out(err);
                    self.carry_out(decision, ctx);
                }
            }
            Control::Shutdown => {
                let decision = self.close.stop();
                self.carry_out(decision, ctx);
            }
            Control::Drain if self.close.is_open() => {
                let result = self.callback(|listener, cx| listener.on_drain(cx));
                self.after_callback(result, ctx);
            }
            Control::Drain => {}
            // Handling any message polls the actor's write loop (`Pump`) after it,
            // which reports to the budget and applies its new verdict.
            Control::Recheck => {}
        }
    }
}
