//! The logic actor's write loop: handles' writes encoded from the hand-over queue, the
//! write queue moved to the socket, frames that waited in the backlog delivered once it
//! drained, the listener told of writability, and the memory budget's verdict applied.
//! [`Pump`] drives it, after the read queue, as one item of the actor's context.

use std::pin::Pin;
use std::task::Poll;

use actix::fut::ActorFuture;
use actix::prelude::*;
use tokio::io::AsyncWrite;

use super::close::Decision;
use super::handoff::Entry;
use super::logic::LogicActor;
use super::messages::{MessageRejected, Payload};
use super::out_buffer::BudgetGate;
use crate::clock;
use crate::error::Error;
use crate::listener::EventListener;

impl<L: EventListener, W: AsyncWrite + Unpin + 'static> LogicActor<L, W> {
    /// Delivers the frames that waited in the backlog, if the session is open and its
    /// write queue drained to the low-water mark; says whether it did. Frames that find
    /// the queue full again go back to the backlog, so a loop calling this ends.
    fn deliver_backlog(&mut self, ctx: &mut Context<Self>) -> bool {
        if !self.close.is_open() || self.backlog.is_empty() || !self.out.is_writable() {
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
        if writable == self.told_writable || !self.close.is_open() {
            return;
        }
        self.told_writable = writable;
        let result = self.callback(|listener, cx| listener.on_writability(cx, writable));
        self.after_callback(result, ctx);
        // What the listener wrote (or a close it asked for) is the write loop's to do.
        task.waker().wake_by_ref();
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
    /// queue has room below its high-water mark; the rest keep their place. Fails with
    /// the error of a write nobody waits for that could not be encoded, the writes after
    /// it put back: the session must end with that error.
    pub(super) fn drain_handoff(&mut self) -> Result<(), Error> {
        if self.session.handoff().is_empty() {
            return Ok(());
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
                    return Err(err);
                }
            }
        }
        self.session.handoff().put_back(encoded, entries);
        Ok(())
    }

    /// Moves queued bytes to the socket; shuts it once a close has drained the queue.
    /// Polled after every batch of messages, so the writes of one batch share syscalls.
    pub(super) fn poll_io(
        &mut self,
        ctx: &mut Context<Self>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        let mut progressed = false;
        let blocked = loop {
            // The emptiness check is repeated here so the common case (no handle wrote)
            // costs no call.
            if self.close.is_open() && !self.session.handoff().is_empty() {
                if let Err(err) = self.drain_handoff() {
                    let decision = self.close.failed(err);
                    self.carry_out(decision, ctx);
                    if self.io.is_none() {
                        return Poll::Ready(());
                    }
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
            if self.close.is_open() && !self.session.handoff().is_empty() && self.out.has_room() {
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
        let paused = self.close.is_open() && (!self.out.is_writable() || !self.backlog.is_empty());
        if paused != self.read_paused {
            self.read_paused = paused;
            shared.pause_reading(paused);
        }
        self.tell_writability(ctx, task);
        if blocked || self.close.flushed() != Decision::ShutDownWriter {
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
                let end = self.close.writer_shut();
                self.carry_out(end, ctx);
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

/// Drives the session as one item of the logic actor's context: handles what the reader
/// queued ([`LogicActor::poll_inbox`]), then moves the write queue to the socket
/// ([`LogicActor::poll_io`]), so the replies to a batch share one write. One item
/// instead of a stream for the queue plus a flusher saves a poll of each per batch.
pub(super) struct Pump;

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
