//! [`Session`]: the handle to one session that application code keeps and clones,
//! usable from any thread: identity, limits, stats and attributes, and writes handed
//! over to the logic actor, bounded like the writes inside callbacks.

use std::any::Any;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Recipient;
use bytes::Bytes;
use tokio::sync::oneshot;

use super::close::Phase;
use super::handoff::{Entry, Handoff, Refused};
use super::messages::{CloseSession, Payload};
use super::{SessionShared, SessionStats};
use crate::clock;
use crate::config::SessionConfig;
use crate::error::{Error, Result};
use crate::session::SessionId;
use crate::transport::Address;

/// A handle to one session: cheap to clone, `Send + Sync`, usable from any thread or
/// actor, and safe to keep after the session is gone (writes then fail with
/// [`ErrorKind::Closed`](crate::ErrorKind::Closed)).
///
/// `Out` is the type of frames the session's codec encodes.
///
/// # Writing from anywhere
///
/// Writes through a handle are bounded the way writes inside callbacks are: a write that
/// finds the session's write queue at its high-water mark (`write_high_water` bytes
/// encoded and not yet sent) is refused with
/// [`ErrorKind::QueueFull`](crate::ErrorKind::QueueFull). Because only the session's logic
/// actor can encode, a handle's frame first waits in the session's hand-over queue
/// ([`SessionConfig::handoff_queue`] frames, default 1,024) until the logic actor encodes
/// it, in the order the writes were made. [`try_write`](Self::try_write) fails at once when
/// either bound is reached ([`ErrorKind::QueueFull`](crate::ErrorKind::QueueFull) or
/// [`ErrorKind::HandoffFull`](crate::ErrorKind::HandoffFull), each saying how full) or the
/// endpoint's memory budget holds the session back
/// ([`ErrorKind::MemoryBudget`](crate::ErrorKind::MemoryBudget)); [`write`](Self::write)
/// waits for room. Every refusal is returned to its writer, counted in
/// [`SessionStats::writes_refused`] and logged (once per run of refusals); nothing is
/// dropped silently. Inside a listener callback, [`SessionContext`](super::SessionContext)
/// writes straight into the write queue instead.
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
    /// A handle onto the session with state `shared`, whose logic actor takes the close
    /// request at `close`.
    pub(crate) fn new(shared: Arc<SessionShared>, close: Recipient<CloseSession>) -> Self {
        let handoff = Handoff::new(shared.config.handoff_queue);
        Session {
            shared,
            link: Arc::new(Link { handoff, close }),
        }
    }

    /// The session's shared state.
    pub(crate) fn shared(&self) -> &Arc<SessionShared> {
        &self.shared
    }

    /// The hand-over queue: writes waiting for the logic actor to encode them.
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

    /// The peer's address when the session started (it is in the session's default
    /// name too). See [`remote_addr`](Self::remote_addr) for where the peer is now.
    pub fn peer_addr(&self) -> &Address {
        &self.shared.peer_addr
    }

    /// The peer's address now. The same as [`peer_addr`](Self::peer_addr) on every
    /// transport but QUIC, whose peer may migrate (rebind its UDP socket, change
    /// network) and keep its session: this then reports the address it moved to.
    pub fn remote_addr(&self) -> Address {
        self.shared.remote_addr()
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

    /// True once the session is closing or closed: writes fail with
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed).
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
    /// that stopped them: [`ErrorKind::Closed`](crate::ErrorKind::Closed) if the session
    /// closed first, [`ErrorKind::WriteTimeout`](crate::ErrorKind::WriteTimeout) if it
    /// waited for room longer than the session's write timeout,
    /// [`ErrorKind::Encode`](crate::ErrorKind::Encode), or the socket's
    /// [`ErrorKind::Io`](crate::ErrorKind::Io). While the write queue is at its high-water
    /// mark or the hand-over queue is full, it waits for room (see [Writing from
    /// anywhere](Self#writing-from-anywhere)). Never retried by the library.
    pub async fn write(&self, frame: Out) -> Result<()> {
        self.submit(Payload::One(frame), self.shared.config.write_timeout)
            .await
    }

    /// Writes one frame like [`write`](Self::write), but waits for room for at most
    /// `wait` instead of the session's write timeout (getty's `WritePkg(pkg, timeout)`):
    /// with no room by then it fails with
    /// [`ErrorKind::WriteTimeout`](crate::ErrorKind::WriteTimeout) (its `after` is `wait`),
    /// queueing nothing, and the session goes on. `Duration::ZERO` fails at once when there
    /// is no room, like [`try_write`](Self::try_write) but with the outcome of the write
    /// itself once it is queued.
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
            let err = Error::memory_budget(queued, share, budget).with_session(id);
            return HandOver::NoRoom(entry, err);
        }
        let limit = self.shared.config.write_high_water;
        if queued >= limit {
            let err = Error::queue_full(queued, limit).with_session(id);
            return HandOver::NoRoom(entry, err);
        }
        match self.link.handoff.push(entry) {
            Ok(()) => HandOver::Accepted,
            Err(Refused::Closed) => HandOver::Closed,
            Err(Refused::Full { entry, frames }) => {
                let err =
                    Error::handoff_full(frames, self.link.handoff.capacity()).with_session(id);
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
                        return Err(Error::write_timeout(after).with_session(id));
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
    /// [`ErrorKind::QueueFull`](crate::ErrorKind::QueueFull) when the write queue is at its
    /// high-water mark, with [`ErrorKind::HandoffFull`](crate::ErrorKind::HandoffFull) when
    /// the hand-over queue is full (see [Writing from
    /// anywhere](Self#writing-from-anywhere)), or with
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed). Once queued, the frame is written
    /// in order after this caller's earlier writes, or the session ends with `on_error` and
    /// `on_close` before it could be (its encoder failed on it, or the socket did); use
    /// [`write`](Self::write) to learn the outcome of this very frame.
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
