//! [`SessionShared`]: the state of one session that its reader and logic actors, its
//! handles on any thread and its endpoint's supervisor share, in atomics: its identity
//! and config, traffic counters, activity times, the write queue's published state, the
//! read pause, its phase, and its account in the endpoint's memory budget.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use futures::task::AtomicWaker;
use tokio::sync::Notify;

use super::attributes::Attributes;
use super::close::Phase;
use super::setup::SessionSetup;
use super::stats::Counters;
use crate::clock;
use crate::config::SessionConfig;
use crate::endpoint::budget::{Budget, Charge};
use crate::error::Error;
use crate::session::SessionId;
use crate::transport::{Address, LivePeer};

/// Bytes a reader may hand over without reporting them to the memory budget itself
/// (its logic actor reports once per batch), while the budget is far from spent.
const UNREPORTED_READ_AHEAD: usize = 16 * 1024;

/// State of one session shared by its actors, its handles and the endpoint supervisor.
pub(crate) struct SessionShared {
    /// The session's process-unique id.
    pub(crate) id: SessionId,
    /// The name the `new_session` hook gave it.
    pub(crate) name: Arc<str>,
    /// The local address of the connection.
    pub(crate) local_addr: Address,
    /// The peer's address when the session started.
    pub(crate) peer_addr: Address,
    /// Where the peer's address is now, for a transport whose peer can move.
    live_peer: Option<LivePeer>,
    /// The session's limits and timers, normalized.
    pub(crate) config: SessionConfig,
    /// Traffic counters.
    pub(crate) stats: Counters,
    /// When a whole frame (or a sign of life) was last read, for the read timeout.
    last_read_ms: AtomicU64,
    /// When a whole frame was last decoded, or the application marked the session active.
    pub(super) last_active_ms: AtomicU64,
    /// Encoded bytes waiting to be written.
    pub(super) queued: AtomicUsize,
    /// Memory the write queue's buffer takes (its capacity), as last reported.
    write_memory: AtomicUsize,
    /// The write queue is below its high-water mark (see `Session::is_writable`).
    pub(super) writable: AtomicBool,
    /// The reader must not read: the write queue is full or frames wait for it to drain.
    read_paused: AtomicBool,
    /// The application asked the reader to pause (flow control toward its own consumer).
    read_paused_by_user: AtomicBool,
    /// The reader's task while it waits for `read_paused` to clear.
    read_waker: AtomicWaker,
    /// When the writer last had bytes queued and could not make progress (0: it can).
    write_stalled_ms: AtomicU64,
    /// The session's [`Phase`], as a `u8`.
    phase: AtomicU8,
    /// A handle asked to close (the close message is sent once).
    pub(super) close_requested: AtomicBool,
    /// A run of refused writes is under way (one warning per run, see `note_refused`).
    refusing: AtomicBool,
    /// This session's account in its endpoint's memory budget.
    pub(crate) charge: Charge,
    /// The budget holds the write queue back (see `crate::endpoint::budget`); handles check it.
    pub(super) budget_blocked: AtomicBool,
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
    /// Notified once the session is closed.
    pub(super) closed: Notify,
    /// The application's values stored on the session.
    pub(super) attributes: Attributes,
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
            live_peer: setup.live_peer,
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

    /// The peer's address now: where a moving peer is (QUIC), else `peer_addr`.
    pub(crate) fn remote_addr(&self) -> Address {
        match &self.live_peer {
            Some(live) => live.get(),
            None => self.peer_addr.clone(),
        }
    }

    /// The session's phase as last published by its logic actor.
    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Opening,
            1 => Phase::Open,
            2 => Phase::Closing,
            _ => Phase::Closed,
        }
    }

    /// Publishes the session's phase; `Closed` wakes those waiting for the close.
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

    /// When a whole frame (or a sign of life) was last read, in [`clock`] milliseconds.
    pub(crate) fn last_read_ms(&self) -> u64 {
        self.last_read_ms.load(Ordering::Relaxed)
    }

    /// Since when queued bytes made no progress, in [`clock`] milliseconds (0: they do).
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
    /// Whether the session is held back: the budget held its writes back at its last
    /// report, or its reader is paused for its write queue or its backlog.
    pub(crate) fn held_back(&self) -> bool {
        self.budget_blocked.load(Ordering::Relaxed) || self.read_paused.load(Ordering::Acquire)
    }

    pub(crate) fn note_budget_blocked(&self, blocked: bool) {
        if self.budget_blocked.load(Ordering::Relaxed) != blocked {
            self.budget_blocked.store(blocked, Ordering::Relaxed);
        }
    }

    /// Counts a write refused for room, and makes it visible: the first refusal of a run
    /// (until the session is writable again) logs a warning with the session; the rest
    /// are counted in [`SessionStats::writes_refused`](super::SessionStats::writes_refused). The writer got `err` itself.
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
