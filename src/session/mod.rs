//! Sessions: the [`Session`] handle, and the reader and logic actors behind it.
//!
//! One session is one connection. Its **reader actor** owns the read half and the
//! decoder and forwards decoded frames in batches; its **logic actor** owns the
//! [`EventListener`](crate::EventListener), the encoder and the write half. Both run on
//! the same arbiter, so a frame never crosses a thread. Any number of [`Session`]
//! handles, on any thread, hand their writes to the logic actor through the session's
//! hand-over queue, bounded like the writes inside callbacks.

mod any;
mod attributes;
mod close;
mod context;
mod frame_reader;
mod handoff;
mod inbox;
mod logic;
mod messages;
mod out_buffer;
mod reader_actor;
mod setup;
mod start;
mod stats;
mod write_loop;

pub use any::AnySession;
pub use context::SessionContext;
pub use setup::SessionSetup;
pub use stats::SessionStats;

pub(crate) use close::Phase;
pub(crate) use frame_reader::decode_available;
pub(crate) use inbox::{BatchPool, InboxSender};
pub(crate) use messages::{Control, Inbound, MessageRejected, StopReading};
pub(crate) use out_buffer::MessageLimit;
pub(crate) use reader_actor::forward;
pub(crate) use start::{
    start_session, ActorReader, ByteReader, ItemReader, ReaderSeat, SessionWriter,
};

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use bytes::Bytes;
use futures::task::AtomicWaker;
use std::time::Instant;
use tokio::sync::{oneshot, Notify};

use crate::clock;
use crate::config::SessionConfig;
use crate::endpoint::budget::{Budget, Charge};
use crate::error::{Error, Result, SessionId};
use crate::transport::Address;
use attributes::Attributes;
use handoff::{Entry, Handoff, Refused};
use messages::{CloseSession, Payload};
use stats::Counters;

/// Bytes a reader may hand over without reporting them to the memory budget itself
/// (its logic actor reports once per batch), while the budget is far from spent.
const UNREPORTED_READ_AHEAD: usize = 16 * 1024;

/// State of one session shared by its actors, its handles and the endpoint supervisor.
pub(crate) struct SessionShared {
    pub(crate) id: SessionId,
    pub(crate) name: Arc<str>,
    pub(crate) local_addr: Address,
    pub(crate) peer_addr: Address,
    pub(crate) config: SessionConfig,
    pub(crate) stats: Counters,
    last_read_ms: AtomicU64,
    last_active_ms: AtomicU64,
    /// Encoded bytes waiting to be written.
    queued: AtomicUsize,
    /// Memory the write queue's buffer takes (its capacity), as last reported.
    write_memory: AtomicUsize,
    writable: AtomicBool,
    /// The reader must not read: the write queue is full or frames wait for it to drain.
    read_paused: AtomicBool,
    /// The application asked the reader to pause (flow control toward its own consumer).
    read_paused_by_user: AtomicBool,
    /// The reader's task while it waits for `read_paused` to clear.
    read_waker: AtomicWaker,
    /// When the writer last had bytes queued and could not make progress (0: it can).
    write_stalled_ms: AtomicU64,
    phase: AtomicU8,
    close_requested: AtomicBool,
    /// A run of refused writes is under way (one warning per run, see `note_refused`).
    refusing: AtomicBool,
    /// This session's account in its endpoint's memory budget.
    pub(crate) charge: Charge,
    /// The budget holds the write queue back (see `crate::endpoint::budget`); handles check it.
    budget_blocked: AtomicBool,
    /// Bytes of datagrams queued for this (per-peer UDP) session before its reader took
    /// them: added by the demultiplexer, taken off by the reader.
    pub(crate) pending_in: AtomicUsize,
    /// Bytes read whose frames the reader handed to the logic actor (the reader's count).
    forwarded_upto: AtomicU64,
    /// Bytes read whose frames the listener has had (the logic actor's count).
    delivered_upto: AtomicU64,
    /// The reader waits for the budget (see `poll_read_allowed`); the logic actor wakes it.
    budget_parked: AtomicBool,
    /// Capacity of the reader's own buffers (the reader's count).
    reader_buffers: AtomicUsize,
    closed: Notify,
    attributes: Attributes,
}

impl SessionShared {
    /// Shared state for a session outside any endpoint's budget (an unbounded one).
    #[cfg(test)]
    pub(crate) fn new(setup: SessionSetup) -> Arc<Self> {
        Self::with_budget(setup, Budget::new(usize::MAX))
    }

    /// Shared state for a session whose buffered bytes count against `budget`.
    pub(crate) fn with_budget(setup: SessionSetup, budget: Arc<Budget>) -> Arc<Self> {
        let now = clock::now_ms();
        Arc::new(SessionShared {
            id: setup.id,
            name: Arc::from(setup.name),
            local_addr: setup.local_addr,
            peer_addr: setup.peer_addr,
            config: setup.config.normalized(),
            stats: Counters::default(),
            last_read_ms: AtomicU64::new(now),
            last_active_ms: AtomicU64::new(now),
            queued: AtomicUsize::new(0),
            write_memory: AtomicUsize::new(0),
            writable: AtomicBool::new(true),
            read_paused: AtomicBool::new(false),
            read_paused_by_user: AtomicBool::new(false),
            read_waker: AtomicWaker::new(),
            write_stalled_ms: AtomicU64::new(0),
            phase: AtomicU8::new(Phase::Opening as u8),
            close_requested: AtomicBool::new(false),
            refusing: AtomicBool::new(false),
            charge: Charge::new(budget),
            budget_blocked: AtomicBool::new(false),
            pending_in: AtomicUsize::new(0),
            forwarded_upto: AtomicU64::new(0),
            delivered_upto: AtomicU64::new(0),
            budget_parked: AtomicBool::new(false),
            reader_buffers: AtomicUsize::new(0),
            closed: Notify::new(),
            attributes: Attributes::default(),
        })
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Opening,
            1 => Phase::Open,
            2 => Phase::Closing,
            _ => Phase::Closed,
        }
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
        if phase == Phase::Closed {
            self.closed.notify_waiters();
        }
    }

    /// Records `n` bytes read.
    pub(crate) fn note_read(&self, n: usize) {
        self.stats.add_bytes_read(n);
    }

    /// Records `frames` whole frames decoded just now: the session is active. Bytes alone
    /// do not count, so a peer that trickles a frame a byte at a time (slow loris) still
    /// meets the read timeout.
    pub(crate) fn note_frames(&self, frames: usize) {
        self.stats.add_frames_read(frames);
        let now = clock::now_ms();
        self.last_read_ms.store(now, Ordering::Relaxed);
        self.last_active_ms.store(now, Ordering::Relaxed);
    }

    /// Records traffic that carries no frame (a WebSocket ping or pong): the peer is
    /// alive, for the read timeout and for `last_active`.
    pub(crate) fn note_alive(&self) {
        let now = clock::now_ms();
        self.last_read_ms.store(now, Ordering::Relaxed);
        self.last_active_ms.store(now, Ordering::Relaxed);
    }

    pub(crate) fn last_read_ms(&self) -> u64 {
        self.last_read_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn write_stalled_ms(&self) -> u64 {
        self.write_stalled_ms.load(Ordering::Relaxed)
    }

    /// Publishes the write queue's state after it changed.
    pub(crate) fn note_queue(&self, queued: usize, writable: bool, stalled_ms: u64) {
        self.queued.store(queued, Ordering::Relaxed);
        self.writable.store(writable, Ordering::Relaxed);
        self.write_stalled_ms.store(stalled_ms, Ordering::Relaxed);
        if writable && self.refusing.load(Ordering::Relaxed) {
            self.refusing.store(false, Ordering::Relaxed);
        }
    }

    /// Publishes whether the endpoint's budget holds the write queue back.
    pub(crate) fn note_budget_blocked(&self, blocked: bool) {
        if self.budget_blocked.load(Ordering::Relaxed) != blocked {
            self.budget_blocked.store(blocked, Ordering::Relaxed);
        }
    }

    /// Counts a write refused for room, and makes it visible: the first refusal of a run
    /// (until the session is writable again) logs a warning with the session; the rest
    /// are counted in [`SessionStats::writes_refused`]. The writer got `err` itself.
    pub(crate) fn note_refused(&self, err: &Error) {
        let before = self.stats.add_write_refused();
        if !self.refusing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                session = self.id.get(),
                name = %self.name,
                refused_before = before,
                %err,
                "write refused for room; until the session is writable again, further \
                 refusals are only counted (SessionStats::writes_refused)"
            );
        }
    }

    /// Pauses or resumes the reader for the write queue (resuming wakes it).
    pub(crate) fn pause_reading(&self, paused: bool) {
        Self::set_pause(&self.read_paused, paused, &self.read_waker);
    }

    /// Pauses or resumes the reader for the application (resuming wakes it).
    pub(crate) fn pause_reading_by_user(&self, paused: bool) {
        Self::set_pause(&self.read_paused_by_user, paused, &self.read_waker);
    }

    fn set_pause(flag: &AtomicBool, paused: bool, waker: &AtomicWaker) {
        let was = flag.swap(paused, Ordering::AcqRel);
        if was && !paused {
            waker.wake();
        }
    }

    fn reading_paused(&self) -> bool {
        self.read_paused.load(Ordering::Acquire) || self.read_paused_by_user.load(Ordering::Acquire)
    }

    /// For the reader: the frames it handed over so far leave `undecoded` bytes of what
    /// it read in its buffer.
    pub(crate) fn note_forwarded(&self, undecoded: usize) {
        let upto = self.stats.bytes_read().saturating_sub(undecoded as u64);
        self.forwarded_upto.store(upto, Ordering::Relaxed);
    }

    /// For the reader: its buffers now take `bytes` of memory.
    pub(crate) fn note_reader_buffers(&self, bytes: usize) {
        self.reader_buffers.store(bytes, Ordering::Relaxed);
    }

    /// Where the frames the reader handed over so far end in the bytes it read.
    pub(crate) fn forwarded_upto(&self) -> u64 {
        self.forwarded_upto.load(Ordering::Relaxed)
    }

    /// For the logic actor: the frames read up to byte `upto` have been delivered.
    pub(crate) fn note_delivered(&self, upto: u64) {
        self.delivered_upto.store(upto, Ordering::Relaxed);
    }

    /// Bytes of frames the reader handed over that the listener has not had yet (in
    /// the read queue or the backlog).
    fn handed_over(&self) -> usize {
        let forwarded = self.forwarded_upto.load(Ordering::Relaxed);
        let delivered = self.delivered_upto.load(Ordering::Relaxed);
        usize::try_from(forwarded.saturating_sub(delivered)).unwrap_or(usize::MAX)
    }

    /// Bytes waiting on the logic actor: its write queue, and frames handed over and not
    /// yet delivered. The logic actor is bound to act on them (deliver, write, or meet
    /// the write timeout), so a reader held back for them is woken.
    fn waiting_on_logic(&self) -> usize {
        self.write_memory
            .load(Ordering::Relaxed)
            .saturating_add(self.handed_over())
    }

    /// Reports what the session holds buffered to its endpoint's memory budget, as
    /// memory taken rather than bytes queued: its write queue's buffer (`write_memory`
    /// bytes), the reader's buffers, frames read and not yet delivered, datagrams queued
    /// for it. The reader and the logic actor share an arbiter, so reports never race.
    pub(crate) fn report_held(&self, write_memory: usize) -> usize {
        self.write_memory.store(write_memory, Ordering::Relaxed);
        let held = write_memory
            .saturating_add(self.reader_buffers.load(Ordering::Relaxed))
            .saturating_add(self.handed_over())
            .saturating_add(self.pending_in.load(Ordering::Relaxed));
        self.charge.set(held);
        held
    }

    /// Whether the budget holds reading back: it is spent, and what waits on the logic
    /// actor is at least the fair share. A partial frame in the reader's buffer does not
    /// count (only reading can complete it; the max frame length bounds it), nor do
    /// datagrams queued for the session (only reading drains them).
    fn budget_holds_reading(&self) -> bool {
        // While the budget is far from spent and the logic actor keeps up, nothing to do
        // (the common case, kept to a few loads per read). Otherwise report first, so
        // that many sessions reading at once are seen before their logic actors report.
        if self.charge.relaxed() && self.handed_over() < UNREPORTED_READ_AHEAD {
            return false;
        }
        self.report_held(self.write_memory.load(Ordering::Relaxed));
        if self.charge.relaxed() {
            return false;
        }
        self.charge.over_share(self.waiting_on_logic())
    }

    /// For the logic actor, after it acted: wakes a reader held back by the budget once
    /// the budget lets it read.
    pub(crate) fn release_budget_parked_reader(&self) {
        if self.budget_parked.load(Ordering::Relaxed) && !self.budget_holds_reading() {
            self.budget_parked.store(false, Ordering::Relaxed);
            self.read_waker.wake();
        }
    }

    /// For the reader: `Pending` while reading is paused (by the write queue, the
    /// application, or the endpoint's memory budget), after arranging to be woken.
    pub(crate) fn poll_read_allowed(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if !self.reading_paused() && !self.budget_holds_reading() {
            return std::task::Poll::Ready(());
        }
        self.read_waker.register(cx.waker());
        // Checked again: a resume between the load and the register would be missed.
        if self.reading_paused() {
            return std::task::Poll::Pending;
        }
        if self.budget_holds_reading() {
            self.budget_parked.store(true, Ordering::Relaxed);
            return std::task::Poll::Pending;
        }
        std::task::Poll::Ready(())
    }

    /// The largest read chunk (or batch) a reader may take, between `min` and `max`: a
    /// quarter of the session's fair share of the endpoint's memory budget, so that with
    /// many sessions one batch and its replies cannot take a session far past its share.
    pub(crate) fn max_read_chunk(&self, min: usize, max: usize) -> usize {
        (self.charge.share() / 4).clamp(min, max)
    }

    /// Whether the endpoint's memory budget is spent (readers then read in small chunks).
    pub(crate) fn budget_spent(&self) -> bool {
        self.charge.spent()
    }
}

/// A handle to one session: cheap to clone, `Send + Sync`, usable from any thread or
/// actor, and safe to keep after the session is gone (writes then fail with
/// [`Error::Closed`]).
///
/// `Out` is the type of frames the session's codec encodes.
///
/// # Writing from anywhere
///
/// Writes through a handle are bounded the way writes inside callbacks are: a write that
/// finds the session's write queue at its high-water mark (`write_high_water` bytes
/// encoded and not yet sent) is refused with [`Error::QueueFull`]. Because only the
/// session's logic actor can encode, a handle's frame first waits in the session's
/// hand-over queue ([`SessionConfig::handoff_queue`] frames, default 1,024) until the
/// logic actor encodes it, in the order the writes were made. [`try_write`](Self::try_write)
/// fails at once when either bound is reached ([`Error::QueueFull`] or
/// [`Error::HandoffFull`], each saying how full) or the endpoint's memory budget holds
/// the session back ([`Error::MemoryBudget`]); [`write`](Self::write) waits for room.
/// Every refusal is returned to its writer, counted in
/// [`SessionStats::writes_refused`] and logged (once per run of refusals); nothing is
/// dropped silently. Inside a listener callback, [`SessionContext`] writes straight into
/// the write queue instead.
pub struct Session<Out: Send + 'static> {
    shared: Arc<SessionShared>,
    /// Behind one `Arc` so a clone costs two reference counts, not an allocation: the
    /// actor adapter hands a clone to every event.
    link: Arc<Link<Out>>,
}

/// How handles reach the session's logic actor.
struct Link<Out: Send + 'static> {
    /// Writes, encoded by the logic actor in order.
    handoff: Handoff<Out>,
    /// The close request (one message per session at most).
    close: Recipient<CloseSession>,
}

impl<Out: Send + 'static> Clone for Session<Out> {
    fn clone(&self) -> Self {
        Session {
            shared: self.shared.clone(),
            link: self.link.clone(),
        }
    }
}

/// What became of an attempt to hand a write over.
enum HandOver<Out> {
    Accepted,
    /// No room in one of the bounds; the entry comes back with the error that says which.
    NoRoom(Entry<Out>, Error),
    Closed,
}

impl<Out: Send + 'static> std::fmt::Debug for Session<Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.shared.id)
            .field("name", &self.shared.name)
            .field("peer_addr", &self.shared.peer_addr)
            .field("phase", &self.shared.phase())
            .finish()
    }
}

impl<Out: Send + 'static> Session<Out> {
    pub(crate) fn new(shared: Arc<SessionShared>, close: Recipient<CloseSession>) -> Self {
        let handoff = Handoff::new(shared.config.handoff_queue);
        Session {
            shared,
            link: Arc::new(Link { handoff, close }),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<SessionShared> {
        &self.shared
    }

    pub(crate) fn handoff(&self) -> &Handoff<Out> {
        &self.link.handoff
    }

    /// The session's process-unique id.
    pub fn id(&self) -> SessionId {
        self.shared.id
    }

    /// The name the `new_session` hook gave it (default: the endpoint's kind and the peer).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> &Address {
        &self.shared.local_addr
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> &Address {
        &self.shared.peer_addr
    }

    /// The limits and timers in force for this session.
    pub fn config(&self) -> &SessionConfig {
        &self.shared.config
    }

    /// Longest frame the session reads, in bytes (see [`SessionConfig::max_frame_length`]).
    pub fn max_frame_length(&self) -> usize {
        self.shared.config.max_frame_length
    }

    /// Read timeout, if any (see [`SessionConfig::read_timeout`]).
    pub fn read_timeout(&self) -> Option<Duration> {
        self.shared.config.read_timeout
    }

    /// Write timeout, if any (see [`SessionConfig::write_timeout`]).
    pub fn write_timeout(&self) -> Option<Duration> {
        self.shared.config.write_timeout
    }

    /// Period of `on_cron` (see [`SessionConfig::cron_period`]).
    pub fn cron_period(&self) -> Duration {
        self.shared.config.cron_period
    }

    /// Longest wait for queued bytes on a graceful close (see [`SessionConfig::wait_time`]).
    pub fn wait_time(&self) -> Duration {
        self.shared.config.wait_time
    }

    /// Traffic counters so far.
    pub fn stats(&self) -> SessionStats {
        self.shared.stats.snapshot()
    }

    /// When the session last decoded a whole frame, or [`update_active`](Self::update_active)
    /// was called (getty's `GetActive`). Check it in `on_cron` to find dead peers.
    pub fn last_active(&self) -> Instant {
        clock::to_instant(self.shared.last_active_ms.load(Ordering::Relaxed))
    }

    /// Marks the session active now, e.g. when a heartbeat reply arrives (getty's
    /// `UpdateActive`). Reads do this by themselves.
    pub fn update_active(&self) {
        self.shared
            .last_active_ms
            .store(clock::now_ms(), Ordering::Relaxed);
    }

    /// Encoded bytes waiting to be written to the socket.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// False once the write queue reached its high-water mark, true again once it fell
    /// to the low-water mark (and false when the session is closing or closed).
    pub fn is_writable(&self) -> bool {
        self.shared.phase() == Phase::Open && self.shared.writable.load(Ordering::Relaxed)
    }

    /// True once the session is closing or closed: writes fail with [`Error::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self.shared.phase(), Phase::Closing | Phase::Closed)
    }

    /// Stores `value` under `key`, replacing (and returning) what was there.
    pub fn set_attribute<T: Any + Send + Sync>(
        &self,
        key: &str,
        value: T,
    ) -> Option<Box<dyn Any + Send + Sync>> {
        self.shared.attributes.set(key, value)
    }

    /// A clone of the value under `key`, if there is one of type `T`.
    pub fn attribute<T: Any + Clone>(&self, key: &str) -> Option<T> {
        self.shared.attributes.get(key)
    }

    /// True if any value is stored under `key`.
    pub fn has_attribute(&self, key: &str) -> bool {
        self.shared.attributes.contains(key)
    }

    /// Removes and returns the value under `key`.
    pub fn remove_attribute(&self, key: &str) -> Option<Box<dyn Any + Send + Sync>> {
        self.shared.attributes.remove(key)
    }

    /// Writes one frame. Resolves once its bytes were handed to the OS, or with the error
    /// that stopped them: [`Error::Closed`] if the session closed first,
    /// [`Error::WriteTimeout`] if it waited for room longer than the session's write
    /// timeout, [`Error::Encode`], or the socket's [`Error::Io`]. While the write queue
    /// is at its high-water mark or the hand-over queue is full, it waits for room (see
    /// [Writing from anywhere](Self#writing-from-anywhere)). Never retried by the library.
    pub async fn write(&self, frame: Out) -> Result<()> {
        self.submit(Payload::One(frame), self.shared.config.write_timeout)
            .await
    }

    /// Writes one frame like [`write`](Self::write), but waits for room for at most
    /// `wait` instead of the session's write timeout (getty's `WritePkg(pkg, timeout)`):
    /// with no room by then it fails with [`Error::WriteTimeout`] (its `after` is
    /// `wait`), queueing nothing, and the session goes on. `Duration::ZERO` fails at once
    /// when there is no room, like [`try_write`](Self::try_write) but with the outcome
    /// of the write itself once it is queued.
    pub async fn write_within(&self, frame: Out, wait: Duration) -> Result<()> {
        self.submit(Payload::One(frame), Some(wait)).await
    }

    /// Writes several frames at once: all are queued together (or none, on error) and
    /// leave in as few socket writes as they fit. A batch larger than the hand-over
    /// queue waits until that queue is empty, then goes in whole.
    pub async fn write_all(&self, frames: Vec<Out>) -> Result<()> {
        self.submit(Payload::Many(frames), self.shared.config.write_timeout)
            .await
    }

    /// Writes bytes as they are, bypassing the codec.
    pub async fn write_bytes(&self, bytes: Bytes) -> Result<()> {
        self.submit(Payload::Raw(bytes), self.shared.config.write_timeout)
            .await
    }

    /// Hands `entry` to the logic actor if both bounds have room: the write queue below
    /// its high-water mark (in bytes, as for a callback's write), and the hand-over queue
    /// below its capacity (in frames).
    fn hand_over(&self, entry: Entry<Out>) -> HandOver<Out> {
        let id = self.shared.id;
        if self.is_closed() {
            return HandOver::Closed;
        }
        let queued = self.queued_bytes();
        if self.shared.budget_blocked.load(Ordering::Relaxed) {
            let terms = self.shared.charge.terms();
            let (share, budget) = (terms.share, terms.limit);
            let err = Error::MemoryBudget {
                session: Some(id),
                queued,
                share,
                budget,
            };
            return HandOver::NoRoom(entry, err);
        }
        let limit = self.shared.config.write_high_water;
        if queued >= limit {
            let err = Error::QueueFull {
                session: Some(id),
                queued,
                limit,
            };
            return HandOver::NoRoom(entry, err);
        }
        match self.link.handoff.push(entry) {
            Ok(()) => HandOver::Accepted,
            Err(Refused::Closed) => HandOver::Closed,
            Err(Refused::Full { entry, frames }) => {
                let err = Error::HandoffFull {
                    session: Some(id),
                    frames,
                    limit: self.link.handoff.capacity(),
                };
                HandOver::NoRoom(entry, err)
            }
        }
    }

    /// Hands `payload` over, waiting for room for at most `timeout` (`None`: as long as
    /// it takes), then for its bytes to leave.
    async fn submit(&self, payload: Payload<Out>, timeout: Option<Duration>) -> Result<()> {
        let id = self.shared.id;
        let (ack, done) = oneshot::channel();
        let entry = Entry {
            payload,
            ack: Some(ack),
        };
        let mut entry = match self.hand_over(entry) {
            HandOver::Accepted => return done.await.unwrap_or_else(|_| Err(Error::closed(id))),
            HandOver::Closed => return Err(Error::closed(id)),
            HandOver::NoRoom(entry, _) => entry,
        };
        // No room: wait for the logic actor to make some, for at most `timeout`. The
        // timer needs a tokio runtime; without one (`write_blocking` on a plain thread)
        // the session's own write timeout still ends a wait on a peer that takes
        // nothing, by closing the session.
        let deadline = timeout
            .filter(|_| tokio::runtime::Handle::try_current().is_ok())
            .map(|after| tokio::time::Instant::now() + after);
        loop {
            let (room, _waiting) = self.link.handoff.waiter();
            match self.hand_over(entry) {
                HandOver::Accepted => break,
                HandOver::Closed => return Err(Error::closed(id)),
                HandOver::NoRoom(back, err) => {
                    entry = back;
                    let waited = match deadline {
                        Some(deadline) => tokio::time::timeout_at(deadline, room).await.is_ok(),
                        None => {
                            room.await;
                            true
                        }
                    };
                    if !waited {
                        self.shared.note_refused(&err);
                        let after = timeout.unwrap_or_default();
                        return Err(Error::WriteTimeout {
                            session: Some(id),
                            after,
                        });
                    }
                }
            }
        }
        done.await.unwrap_or_else(|_| Err(Error::closed(id)))
    }

    /// Writes one frame from a thread that is not running async code (a `SyncArbiter`
    /// worker, a plain `std::thread`), blocking it until [`write`](Self::write) resolves.
    ///
    /// Never call it on an actix arbiter or inside a tokio runtime: the session may live
    /// on that very thread, which would then wait for itself.
    pub fn write_blocking(&self, frame: Out) -> Result<()> {
        futures::executor::block_on(self.write(frame))
    }

    /// Queues one frame without waiting, for code that cannot await (an actor handler
    /// broadcasting to many sessions). Fails at once, queueing nothing, with
    /// [`Error::QueueFull`] when the write queue is at its high-water mark, with
    /// [`Error::HandoffFull`] when the hand-over queue is full (see
    /// [Writing from anywhere](Self#writing-from-anywhere)), or with [`Error::Closed`].
    /// Once queued, the frame is written in order after this caller's earlier writes, or
    /// the session ends with `on_error` and `on_close` before it could be (its encoder
    /// failed on it, or the socket did); use [`write`](Self::write) to learn the outcome
    /// of this very frame.
    pub fn try_write(&self, frame: Out) -> Result<()> {
        let entry = Entry {
            payload: Payload::One(frame),
            ack: None,
        };
        match self.hand_over(entry) {
            HandOver::Accepted => Ok(()),
            HandOver::Closed => Err(Error::closed(self.shared.id)),
            HandOver::NoRoom(_, err) => {
                self.shared.note_refused(&err);
                Err(err)
            }
        }
    }

    /// Stops reading from the peer until [`resume_reading`](Self::resume_reading), for
    /// flow control toward a consumer of the session's frames (another actor, a queue).
    /// Frames already read (at most the read queue's batches) are still delivered; then
    /// TCP flow control holds the peer back. Timeouts keep running.
    pub fn pause_reading(&self) {
        self.shared.pause_reading_by_user(true);
    }

    /// Resumes reading after [`pause_reading`](Self::pause_reading). Any thread.
    pub fn resume_reading(&self) {
        self.shared.pause_reading_by_user(false);
    }

    /// Closes the session gracefully: reading stops, queued bytes are flushed for at most
    /// the wait time, the socket is shut, then `on_close` runs. Returns at once; see
    /// [`closed`](Self::closed) to wait. Closing twice is harmless.
    pub fn close(&self) {
        if !self.shared.close_requested.swap(true, Ordering::AcqRel) {
            // One message per session at most, so skipping the capacity check is bounded.
            self.link.close.do_send(CloseSession);
        }
    }

    /// Resolves once the session is closed (its `on_close` has run, or it was refused).
    pub async fn closed(&self) {
        loop {
            let notified = self.shared.closed.notified();
            if self.shared.phase() == Phase::Closed {
                return;
            }
            notified.await;
        }
    }
}
