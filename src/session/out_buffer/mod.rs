//! The write queue of one session: encoded bytes waiting for the socket, bounded by a
//! high-water mark, with the writes waiting to hear that their bytes left.
//!
//! Socket-free, so its rules are unit-tested here; the logic actor moves its bytes.

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};
use tokio::sync::oneshot;
use tokio_util::codec::Encoder;

use crate::error::{BoxError, Error, Result};
use crate::session::SessionId;
use pool::{give_buffer, take_buffer};

mod pool;

/// The bound on each message of a message transport (a datagram): `max` bytes of
/// payload, plus `overhead` bytes of the transport's own envelope that the codec adapter
/// put in front of it (not counted against `max`, nor in the session's byte stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MessageLimit {
    /// Most payload bytes in one message.
    pub(crate) max: usize,
    /// Envelope bytes in front of each message's payload.
    pub(crate) overhead: usize,
}

/// What the endpoint's memory budget lets a write queue hold: writes are refused once
/// it holds `cap` bytes. `share` and `budget` explain a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BudgetGate {
    /// Bytes the queue may hold.
    pub(crate) cap: usize,
    /// The session's fair share of the budget.
    pub(crate) share: usize,
    /// The endpoint's whole budget.
    pub(crate) budget: usize,
}

impl BudgetGate {
    /// No limit from the budget.
    pub(crate) const OPEN: BudgetGate = BudgetGate {
        cap: usize::MAX,
        share: usize::MAX,
        budget: usize::MAX,
    };
}

/// A writer waiting to hear that its bytes left.
struct Waiting {
    /// Its write queued the bytes from `from` up to `upto`.
    from: u64,
    upto: u64,
    ack: oneshot::Sender<Result<()>>,
    /// Set when the transport rejected one of its messages.
    error: Option<Error>,
}

/// The write queue of one session (see the module docs): frames encoded with `C`.
pub(crate) struct OutBuffer<C> {
    codec: C,
    buf: BytesMut,
    /// Part of `buf` was written and taken off its front (see [`consume`](Self::consume)).
    start_moved: bool,
    high_water: usize,
    low_water: usize,
    writable: bool,
    accepting: bool,
    /// Bytes ever queued and ever written; their difference is `buf.len()`.
    queued_total: u64,
    written_total: u64,
    /// Writers waiting for every byte up to a position to be written.
    acks: VecDeque<Waiting>,
    /// Where the latest write began, as a position in `queued_total`.
    last_write_start: u64,
    /// For a message transport (datagrams, WebSocket messages): where each queued
    /// message ends, as a position in `queued_total`. `None` for a byte stream, whose
    /// frames may share a write.
    message_ends: Option<VecDeque<u64>>,
    /// For a message transport with a size limit: the bound on each message.
    limit: Option<MessageLimit>,
    /// What the endpoint's memory budget lets this queue hold until the logic actor
    /// reports again (see `crate::endpoint::budget`); set once per batch.
    gate: BudgetGate,
    id: SessionId,
}

impl<C> OutBuffer<C> {
    /// An empty queue that refuses writes from `high_water` queued bytes until it
    /// drained to `low_water`.
    pub(crate) fn new(codec: C, id: SessionId, high_water: usize, low_water: usize) -> Self {
        OutBuffer {
            codec,
            buf: BytesMut::new(),
            start_moved: false,
            high_water,
            low_water,
            writable: true,
            accepting: true,
            queued_total: 0,
            written_total: 0,
            acks: VecDeque::new(),
            last_write_start: 0,
            message_ends: None,
            limit: None,
            gate: BudgetGate::OPEN,
            id,
        }
    }

    /// Sets what the endpoint's memory budget lets the queue hold from now on.
    pub(crate) fn set_budget_gate(&mut self, gate: BudgetGate) {
        self.gate = gate;
    }

    /// Whether the budget holds the queue back now.
    fn budget_closed(&self) -> bool {
        self.buf.len() >= self.gate.cap
    }

    /// Refuses any message longer than `limit` with
    /// [`ErrorKind::FrameTooLong`](crate::ErrorKind::FrameTooLong), queueing nothing of it
    /// (message mode only: a byte stream has no message to bound).
    pub(crate) fn limit_messages(mut self, limit: Option<MessageLimit>) -> Self {
        self.limit = limit;
        self
    }

    /// Envelope bytes in each message that are not payload (see [`MessageLimit`]).
    pub(crate) fn message_overhead(&self) -> usize {
        self.limit.map_or(0, |l| l.overhead)
    }

    /// Checks the message queued from `start` against the limit; on failure drops it.
    fn check_message(&mut self, start: usize) -> Result<()> {
        let (Some(limit), Some(_)) = (self.limit, &self.message_ends) else {
            return Ok(());
        };
        let len = (self.buf.len() - start).saturating_sub(limit.overhead);
        if len > limit.max {
            self.buf.truncate(start);
            self.release_if_empty();
            return Err(Error::frame_too_long(len, limit.max).with_session(self.id));
        }
        Ok(())
    }

    /// Keeps every frame (and every raw write) a message of its own: [`chunk`](Self::chunk)
    /// then yields one message at a time, for transports whose writes are messages.
    pub(crate) fn preserve_messages(mut self, on: bool) -> Self {
        self.message_ends = on.then(VecDeque::new);
        self
    }

    /// Whether each [`chunk`](Self::chunk) is one whole message to be written at once.
    pub(crate) fn preserves_messages(&self) -> bool {
        self.message_ends.is_some()
    }

    /// Marks the end of a message at the current end of the queue.
    fn end_message(&mut self, start: usize) {
        if let Some(ends) = &mut self.message_ends {
            ends.push_back(self.queued_total + (self.buf.len() - start) as u64);
        }
    }

    fn check_room(&mut self) -> Result<()> {
        self.last_write_start = self.queued_total;
        if !self.accepting {
            return Err(Error::closed(self.id));
        }
        if self.budget_closed() {
            return Err(
                Error::memory_budget(self.buf.len(), self.gate.share, self.gate.budget)
                    .with_session(self.id),
            );
        }
        if self.buf.len() >= self.high_water {
            return Err(Error::queue_full(self.buf.len(), self.high_water).with_session(self.id));
        }
        Ok(())
    }

    fn queued_since(&mut self, start: usize) {
        self.queued_total += (self.buf.len() - start) as u64;
        if self.buf.len() >= self.high_water {
            self.writable = false;
        }
    }

    /// Encodes one frame onto the queue, or queues nothing and says why.
    pub(crate) fn encode<Out>(&mut self, frame: Out) -> Result<()>
    where
        C: Encoder<Out, Error: Into<BoxError>>,
    {
        self.check_room()?;
        self.ensure_buffer();
        let (start, capacity) = (self.buf.len(), self.buf.capacity());
        if let Err(err) = self.codec.encode(frame, &mut self.buf) {
            self.buf.truncate(start);
            self.release_if_empty();
            return Err(Error::from_encode(err).with_session(self.id));
        }
        self.check_message(start)?;
        self.end_message(start);
        self.queued_since(start);
        self.fit_allocation(capacity);
        Ok(())
    }

    /// Encodes every frame, or none of them; returns how many.
    pub(crate) fn encode_all<Out>(&mut self, frames: impl IntoIterator<Item = Out>) -> Result<usize>
    where
        C: Encoder<Out, Error: Into<BoxError>>,
    {
        self.check_room()?;
        self.ensure_buffer();
        let (start, capacity) = (self.buf.len(), self.buf.capacity());
        let ends_before = self.message_ends.as_ref().map_or(0, VecDeque::len);
        let mut count = 0;
        for frame in frames {
            let at = self.buf.len();
            let encoded = match self.codec.encode(frame, &mut self.buf) {
                Ok(()) => self.check_message(at),
                Err(err) => Err(Error::from_encode(err).with_session(self.id)),
            };
            if let Err(err) = encoded {
                self.buf.truncate(start);
                self.release_if_empty();
                if let Some(ends) = &mut self.message_ends {
                    ends.truncate(ends_before);
                }
                return Err(err);
            }
            self.end_message(start);
            count += 1;
        }
        self.queued_since(start);
        self.fit_allocation(capacity);
        Ok(count)
    }

    /// Queues bytes as they are.
    pub(crate) fn push_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.check_room()?;
        if self.message_overhead() > 0 {
            // The envelope (a peer address) comes from the codec adapter; raw bytes
            // have none, so there is nowhere to send them.
            let msg = "raw bytes carry no peer address on this session; write a frame";
            let err = std::io::Error::new(std::io::ErrorKind::InvalidInput, msg);
            return Err(Error::from_encode(err).with_session(self.id));
        }
        self.ensure_buffer();
        let (start, capacity) = (self.buf.len(), self.buf.capacity());
        self.buf.extend_from_slice(bytes);
        self.check_message(start)?;
        self.end_message(start);
        self.queued_since(start);
        self.fit_allocation(capacity);
        Ok(())
    }

    /// Resolves `ack` once every byte queued so far has been written.
    /// Call right after the write it acknowledges.
    pub(crate) fn ack_when_written(&mut self, ack: oneshot::Sender<Result<()>>) {
        if self.queued_total == self.written_total {
            let _ = ack.send(Ok(()));
        } else {
            self.acks.push_back(Waiting {
                from: self.last_write_start,
                upto: self.queued_total,
                ack,
                error: None,
            });
        }
    }

    /// The transport rejected the message at the front (message mode: a datagram the OS
    /// refused to send): it is dropped, and the write that queued it, if someone waits
    /// for it, fails with `err` once the rest of its bytes are settled.
    pub(crate) fn reject_message(&mut self, err: &Error) {
        let start = self.written_total;
        let n = self.chunk().len();
        let end = start + n as u64;
        let owner = self
            .acks
            .iter_mut()
            .find(|w| w.from <= start && w.upto >= end);
        if let Some(waiting) = owner {
            waiting.error.get_or_insert_with(|| err.clone());
        }
        self.consume(n);
    }

    /// Bytes to hand to the socket next: everything queued for a byte stream, the next
    /// whole message for a message transport.
    pub(crate) fn chunk(&self) -> &[u8] {
        match self.message_ends.as_ref().and_then(VecDeque::front) {
            // The difference is at most `buf.len()`, so the cast cannot truncate.
            Some(end) => &self.buf[..(end - self.written_total) as usize],
            None => &self.buf,
        }
    }

    /// The socket took `n` bytes of [`chunk`](Self::chunk) (all of it, for a message).
    pub(crate) fn consume(&mut self, n: usize) {
        if n == self.buf.len() && !self.start_moved {
            // All written at once, the common case: `clear` keeps the start of the
            // allocation, so the buffer goes back to the pool as it is (after `advance`
            // the pool would first have to reclaim the room before the start).
            self.buf.clear();
        } else {
            self.buf.advance(n);
            self.start_moved = true;
        }
        self.written_total += n as u64;
        if let Some(ends) = &mut self.message_ends {
            while ends.front().is_some_and(|end| *end <= self.written_total) {
                ends.pop_front();
            }
        }
        while let Some(waiting) = self.acks.front() {
            if waiting.upto > self.written_total {
                break;
            }
            if let Some(waiting) = self.acks.pop_front() {
                // The writer may have stopped waiting; that is its choice.
                let _ = waiting.ack.send(waiting.error.map_or(Ok(()), Err));
            }
        }
        if self.buf.len() <= self.low_water {
            self.writable = true;
        }
        self.release_if_empty();
    }

    /// Keeps the allocation near what the queue may hold. Codecs grow the buffer by
    /// doubling, so a queue just past half its limit (the high-water mark, or the
    /// budget's cap when lower) would take up to twice the limit in memory, all of it
    /// counted against the endpoint's budget. When a write grows the buffer past the
    /// limit, the queued bytes move once to an allocation of the limit's size (or of
    /// what is queued, if more), which the writes up to the limit fill without growing.
    /// It costs one copy per fill past the limit, which only a peer that reads slower
    /// than it is written to ever causes.
    fn fit_allocation(&mut self, capacity_before: usize) {
        let capacity = self.buf.capacity();
        let fitted = self.high_water.min(self.gate.cap).max(self.buf.len());
        if capacity > capacity_before && capacity > fitted {
            let mut buf = BytesMut::with_capacity(fitted);
            buf.extend_from_slice(&self.buf);
            self.buf = buf;
            self.start_moved = false;
        }
    }

    /// Takes a buffer from the thread's pool if this queue gave its own back.
    fn ensure_buffer(&mut self) {
        // Only an empty buffer has no capacity, and an emptied one went back to the pool.
        if self.buf.capacity() == 0 {
            self.buf = take_buffer();
        }
    }

    /// Gives the buffer back to the thread's pool once nothing is left in it.
    fn release_if_empty(&mut self) {
        if self.buf.is_empty() {
            let start_moved = std::mem::take(&mut self.start_moved);
            give_buffer(std::mem::take(&mut self.buf), start_moved);
        }
    }

    /// Refuses new writes from now on (the session is closing).
    pub(crate) fn stop_accepting(&mut self) {
        self.accepting = false;
    }

    /// Drops what is queued and fails every waiting writer with `err`.
    pub(crate) fn fail(&mut self, err: &Error) {
        self.accepting = false;
        self.buf.clear();
        self.release_if_empty();
        self.written_total = self.queued_total;
        if let Some(ends) = &mut self.message_ends {
            ends.clear();
        }
        for waiting in self.acks.drain(..) {
            let _ = waiting
                .ack
                .send(Err(waiting.error.unwrap_or_else(|| err.clone())));
        }
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Bytes queued.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Memory the queue's buffer takes, for the endpoint's budget: its capacity (of an
    /// allocation whose front was written, what is left past that front).
    pub(crate) fn memory(&self) -> usize {
        self.buf.capacity()
    }

    /// Whether the queue is writable: accepting, not past the high-water mark since it
    /// last drained to the low-water mark, and not held back by the memory budget.
    pub(crate) fn is_writable(&self) -> bool {
        self.accepting && self.writable && !self.budget_closed()
    }

    /// Whether a write now would be taken: accepting, and below the high-water mark (the
    /// check each write makes; [`is_writable`](Self::is_writable) adds the low-water
    /// hysteresis).
    pub(crate) fn has_room(&self) -> bool {
        self.accepting && self.buf.len() < self.high_water && !self.budget_closed()
    }
}

#[cfg(test)]
mod tests;
