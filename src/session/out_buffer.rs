//! The write queue of one session: encoded bytes waiting for the socket, bounded by a
//! high-water mark, with the writes waiting to hear that their bytes left.
//!
//! Socket-free, so its rules are unit-tested here; the logic actor moves its bytes.

use std::cell::RefCell;
use std::collections::VecDeque;

use bytes::{Buf, BytesMut};
use tokio::sync::oneshot;
use tokio_util::codec::Encoder;

use crate::error::{BoxError, Error, Result, SessionId};

/// The bound on each message of a message transport (a datagram): `max` bytes of
/// payload, plus `overhead` bytes of the transport's own envelope that the codec adapter
/// put in front of it (not counted against `max`, nor in the session's byte stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MessageLimit {
    pub(crate) max: usize,
    pub(crate) overhead: usize,
}

/// Emptied write buffers kept per thread (at most this many, each at most
/// [`POOLED_BUFFER_MAX`] bytes) for the next session on the thread that has bytes to queue.
const POOLED_BUFFERS: usize = 4;
const POOLED_BUFFER_MAX: usize = 256 * 1024;

thread_local! {
    /// A session gives its write buffer back here as soon as everything in it is written,
    /// and takes the most recently given one when it queues again. So a session with
    /// nothing to write holds no buffer, and the sessions of one arbiter take turns with
    /// a few buffers that stay in the core's cache instead of each keeping its own: under
    /// bulk load, 16 sessions' 64 KiB buffers had been more than the cache holds.
    static IDLE_BUFFERS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A write buffer from this thread's pool, or a new empty one.
fn take_buffer() -> BytesMut {
    let pooled = IDLE_BUFFERS.try_with(|pool| pool.borrow_mut().pop());
    pooled.ok().flatten().unwrap_or_default()
}

/// Gives an empty write buffer back to this thread's pool (or frees it).
/// `start_moved`: bytes were taken off the buffer's front, so its start is no longer
/// the start of its allocation.
fn give_buffer(mut buf: BytesMut, start_moved: bool) {
    buf.clear();
    if start_moved {
        // Written bytes left their room before the start; this takes it back, so the
        // capacity shows the whole allocation. It moves no bytes: the buffer is empty.
        let _whole = buf.try_reclaim(1);
    }
    if buf.capacity() == 0 || buf.capacity() > POOLED_BUFFER_MAX {
        return;
    }
    let _ = IDLE_BUFFERS.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOLED_BUFFERS {
            pool.push(buf);
        }
    });
}

/// What the endpoint's memory budget lets a write queue hold: writes are refused once
/// it holds `cap` bytes. `share` and `budget` explain a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BudgetGate {
    pub(crate) cap: usize,
    pub(crate) share: usize,
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

    /// Refuses any message longer than `limit` with [`Error::FrameTooLong`], queueing
    /// nothing of it (message mode only: a byte stream has no message to bound).
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
            return Err(Error::FrameTooLong {
                session: Some(self.id),
                len,
                max: limit.max,
            });
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
            return Err(Error::MemoryBudget {
                session: Some(self.id),
                queued: self.buf.len(),
                share: self.gate.share,
                budget: self.gate.budget,
            });
        }
        if self.buf.len() >= self.high_water {
            return Err(Error::QueueFull {
                session: Some(self.id),
                queued: self.buf.len(),
                limit: self.high_water,
            });
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

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Memory the queue's buffer takes, for the endpoint's budget: its capacity (of an
    /// allocation whose front was written, what is left past that front).
    pub(crate) fn memory(&self) -> usize {
        self.buf.capacity()
    }

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
mod tests {
    use super::*;
    use crate::codec::LengthDelimited;
    use bytes::Bytes;

    fn queue(high: usize, low: usize) -> OutBuffer<LengthDelimited> {
        OutBuffer::new(LengthDelimited::new(), SessionId(1), high, low)
    }

    #[test]
    fn refuses_past_high_water_and_recovers_at_low_water() {
        let mut q = queue(10, 4);
        q.encode(Bytes::from_static(b"123456")).unwrap(); // 10 bytes on the wire
        assert!(!q.is_writable());
        let err = q.encode(Bytes::from_static(b"x")).unwrap_err();
        assert!(matches!(
            err,
            Error::QueueFull {
                queued: 10,
                limit: 10,
                ..
            }
        ));
        q.consume(5);
        assert!(!q.is_writable(), "above low water");
        q.consume(1);
        assert!(q.is_writable());
        q.encode(Bytes::from_static(b"x")).unwrap();
    }

    /// Fills a queue with 1,000-byte frames until it refuses one; returns what it holds.
    fn fill(q: &mut OutBuffer<LengthDelimited>) -> usize {
        for _ in 0..10_000 {
            if q.encode(Bytes::from(vec![7; 1000])).is_err() {
                return q.len();
            }
        }
        panic!("the queue never refused a write");
    }

    #[test]
    fn a_full_queue_takes_no_more_memory_than_its_limit_and_one_frame() {
        let limit = 300_000; // not a power of two: doubling would overshoot to 512 KiB
        let mut q = queue(limit, limit / 2);
        let held = fill(&mut q);
        assert!(held >= limit && held < limit + 1004);
        assert!(q.memory() < limit + 1004, "{} bytes for {held}", q.memory());
        // What was queued is intact: drained in order, every frame whole.
        let mut seen = 0;
        while !q.is_empty() {
            let chunk = q.chunk();
            assert_eq!(&chunk[..4], &1000u32.to_be_bytes());
            q.consume(1004);
            seen += 1;
        }
        assert_eq!(seen * 1004, held);
    }

    #[test]
    fn the_budget_cap_bounds_the_allocation_too() {
        let mut q = queue(1 << 20, 1 << 19);
        let cap = 100_000;
        q.set_budget_gate(BudgetGate {
            cap,
            share: cap,
            budget: 10 * cap,
        });
        let held = fill(&mut q);
        assert!(held >= cap && held < cap + 1004);
        assert!(q.memory() < cap + 1004, "{} bytes for {held}", q.memory());
    }

    fn pooled() -> usize {
        IDLE_BUFFERS.with(|pool| pool.borrow().len())
    }

    // Each test runs on a thread of its own, so each sees its own pool.
    #[test]
    fn an_emptied_queue_gives_its_buffer_to_the_next_queue_on_the_thread() {
        let mut first = queue(1 << 20, 1 << 19);
        first.encode(Bytes::from(vec![1; 1000])).unwrap();
        let allocation = first.chunk().as_ptr();
        first.consume(500);
        assert_eq!(pooled(), 0, "a queue with bytes left keeps its buffer");
        first.consume(504);
        assert_eq!(first.buf.capacity(), 0, "an empty queue holds no buffer");
        assert_eq!(pooled(), 1);
        let mut second = queue(1 << 20, 1 << 19);
        second.encode(Bytes::from_static(b"next")).unwrap();
        assert_eq!(second.chunk().as_ptr(), allocation);
        assert_eq!(second.chunk(), b"\0\0\0\x04next");
        assert_eq!(pooled(), 0);
    }

    #[test]
    fn a_refused_write_to_an_empty_queue_leaves_no_buffer_held() {
        let mut q = queue(1 << 20, 1 << 19);
        q.encode(Bytes::from_static(b"x")).unwrap();
        q.consume(5);
        let too_long = Bytes::from(vec![0; LengthDelimited::new().max_frame_length() + 1]);
        assert!(q.encode(too_long).is_err());
        assert_eq!(q.buf.capacity(), 0);
        assert_eq!(pooled(), 1);
        let mut m = queue(1 << 20, 1 << 19)
            .preserve_messages(true)
            .limit_messages(Some(MessageLimit {
                max: 2,
                overhead: 0,
            }));
        assert!(m.encode(Bytes::from_static(b"long")).is_err());
        assert_eq!(m.buf.capacity(), 0);
        assert_eq!(
            pooled(),
            1,
            "the message queue took the pooled buffer and gave it back"
        );
    }

    #[test]
    fn a_buffer_written_whole_goes_back_with_its_start_in_place() {
        let mut first = queue(1 << 20, 1 << 19);
        first.encode(Bytes::from(vec![1; 1000])).unwrap();
        let allocation = first.chunk().as_ptr();
        first.consume(1004);
        assert!(!first.start_moved, "one whole write moves no start");
        let mut second = queue(1 << 20, 1 << 19);
        second.encode(Bytes::from(vec![2; 1000])).unwrap();
        assert_eq!(second.chunk().as_ptr(), allocation);
        second.consume(4);
        second.consume(1000);
        assert!(!second.start_moved, "released with the buffer");
        let mut third = queue(1 << 20, 1 << 19);
        third.encode(Bytes::from_static(b"x")).unwrap();
        assert_eq!(
            third.chunk().as_ptr(),
            allocation,
            "after a partial write the pool took the room before the start back"
        );
    }

    #[test]
    fn the_pool_keeps_a_few_buffers_of_bounded_size() {
        let mut queues: Vec<_> = (0..POOLED_BUFFERS + 2)
            .map(|_| queue(1 << 20, 1 << 19))
            .collect();
        for q in &mut queues {
            q.encode(Bytes::from(vec![2; 100])).unwrap();
        }
        for q in &mut queues {
            q.consume(104);
        }
        assert_eq!(pooled(), POOLED_BUFFERS);
        give_buffer(BytesMut::with_capacity(POOLED_BUFFER_MAX + 1), false);
        assert_eq!(pooled(), POOLED_BUFFERS);
        IDLE_BUFFERS.with(|pool| pool.borrow_mut().clear());
        give_buffer(BytesMut::with_capacity(POOLED_BUFFER_MAX + 1), false);
        assert_eq!(pooled(), 0, "a buffer past the size bound is freed");
    }

    #[test]
    fn acks_resolve_when_their_bytes_are_written() {
        let mut q = queue(100, 50);
        q.encode(Bytes::from_static(b"ab")).unwrap(); // 6 bytes
        let (tx1, mut rx1) = oneshot::channel();
        q.ack_when_written(tx1);
        q.encode(Bytes::from_static(b"cd")).unwrap(); // 6 more
        let (tx2, mut rx2) = oneshot::channel();
        q.ack_when_written(tx2);
        q.consume(5);
        assert!(rx1.try_recv().is_err());
        q.consume(1);
        assert!(matches!(rx1.try_recv(), Ok(Ok(()))));
        assert!(rx2.try_recv().is_err());
        q.fail(&Error::closed(SessionId(1)));
        assert!(matches!(rx2.try_recv(), Ok(Err(Error::Closed { .. }))));
        assert!(q.encode(Bytes::from_static(b"x")).unwrap_err().is_closed());
    }

    #[test]
    fn message_mode_yields_one_message_per_chunk() {
        let mut q = queue(1000, 500).preserve_messages(true);
        q.encode(Bytes::from_static(b"ab")).unwrap();
        q.encode_all(vec![Bytes::from_static(b"c"), Bytes::from_static(b"def")])
            .unwrap();
        assert!(q.encode_all(vec![Bytes::from(vec![0; 200])]).is_ok());
        q.push_raw(b"raw").unwrap();
        let mut sizes = Vec::new();
        while !q.is_empty() {
            let n = q.chunk().len();
            sizes.push(n);
            q.consume(n);
        }
        assert_eq!(sizes, [6, 5, 7, 204, 3]);
        assert_eq!(q.chunk(), b"");
    }

    #[test]
    fn message_mode_failed_batch_leaves_no_boundary() {
        let mut q = OutBuffer::new(
            LengthDelimited::with_max_frame_length(2),
            SessionId(1),
            100,
            50,
        )
        .preserve_messages(true);
        q.encode(Bytes::from_static(b"ok")).unwrap();
        let bad = vec![Bytes::from_static(b"a"), Bytes::from_static(b"too long")];
        assert!(q.encode_all(bad).is_err());
        q.encode(Bytes::from_static(b"z")).unwrap();
        assert_eq!(q.chunk(), b"\0\0\0\x02ok");
        q.consume(6);
        assert_eq!(q.chunk(), b"\0\0\0\x01z");
    }

    #[test]
    fn message_limit_refuses_long_messages_and_queues_nothing() {
        let limit = MessageLimit {
            max: 6,
            overhead: 2,
        };
        let mut q = queue(1000, 500)
            .preserve_messages(true)
            .limit_messages(Some(limit));
        q.encode(Bytes::from_static(b"ab")).unwrap(); // 6 bytes past the envelope
        let err = q.encode(Bytes::from_static(b"abcde")).unwrap_err();
        assert!(matches!(err, Error::FrameTooLong { len: 7, max: 6, .. }));
        let many = vec![Bytes::from_static(b"a"), Bytes::from_static(b"abcdefgh")];
        assert!(q.encode_all(many).is_err());
        assert_eq!(q.message_overhead(), 2);
        let mut sizes = Vec::new();
        while !q.is_empty() {
            sizes.push(q.chunk().len());
            q.consume(q.chunk().len());
        }
        assert_eq!(sizes, [6]);
        let mut plain = queue(1000, 500)
            .preserve_messages(true)
            .limit_messages(Some(MessageLimit {
                max: 4,
                overhead: 0,
            }));
        assert!(plain.push_raw(&[0; 5]).is_err());
        plain.push_raw(&[0; 4]).unwrap();
    }

    #[test]
    fn a_rejected_message_fails_only_the_write_that_queued_it() {
        let mut q = queue(1000, 500).preserve_messages(true);
        q.encode(Bytes::from_static(b"a")).unwrap(); // no ack: from a callback
        q.encode(Bytes::from_static(b"b")).unwrap();
        let (tx_b, mut rx_b) = oneshot::channel();
        q.ack_when_written(tx_b);
        q.encode_all(vec![Bytes::from_static(b"c"), Bytes::from_static(b"d")])
            .unwrap();
        let (tx_cd, mut rx_cd) = oneshot::channel();
        q.ack_when_written(tx_cd);
        let refused = Error::closed(SessionId(1));
        q.reject_message(&refused); // "a": nobody waits for it
        q.consume(5); // "b"
        assert!(matches!(rx_b.try_recv(), Ok(Ok(()))));
        q.reject_message(&refused); // "c"
        assert!(rx_cd.try_recv().is_err(), "waits for d");
        q.consume(5);
        assert!(matches!(rx_cd.try_recv(), Ok(Err(Error::Closed { .. }))));
        assert!(q.is_empty());
    }

    #[test]
    fn raw_writes_are_refused_when_messages_need_an_envelope() {
        let limit = MessageLimit {
            max: 100,
            overhead: 3,
        };
        let mut q = queue(1000, 500)
            .preserve_messages(true)
            .limit_messages(Some(limit));
        assert!(matches!(q.push_raw(b"x"), Err(Error::Encode { .. })));
        assert!(q.is_empty());
    }

    #[test]
    fn encode_all_is_all_or_nothing() {
        let mut q = OutBuffer::new(
            LengthDelimited::with_max_frame_length(2),
            SessionId(1),
            100,
            50,
        );
        let err = q
            .encode_all(vec![
                Bytes::from_static(b"ok"),
                Bytes::from_static(b"too long"),
            ])
            .unwrap_err();
        assert!(matches!(err, Error::FrameTooLong { .. }));
        assert!(q.is_empty());
        assert_eq!(q.encode_all(vec![Bytes::from_static(b"a"); 3]).unwrap(), 3);
        assert_eq!(q.len(), 15);
    }
}
