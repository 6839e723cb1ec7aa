//! What every endpoint (server or client, any transport) shares: session counting (in
//! its own counters and its metrics), the `new_session` hook, and the slot that ties a
//! session to its endpoint.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix::{Addr, Recipient};
use tokio::sync::Notify;

use crate::endpoint::budget::Budget;
use crate::endpoint::supervisor::{DialFailed, Gone, Register, Supervisor};
use crate::error::{Error, Result};
use crate::listener::EventListener;
use crate::metrics::{CloseCause, EndpointMetrics};
use crate::session::{
    next_session_id, start_session, AnySession, ByteReader, Control, SessionId, SessionSetup,
    SessionShared, SessionWriter,
};
use crate::transport::{Address, Transport};
use crate::SessionConfig;

/// The `new_session` hook of an endpoint: called on the session's own arbiter for every
/// new connection, it names the session, adjusts its [`SessionConfig`] through the
/// [`SessionSetup`], and returns the listener and codec that serve it, or an error to
/// refuse the connection (which is then closed, and counted as refused).
///
/// Implemented by every matching closure.
pub trait NewSession<L: EventListener>:
    Fn(&mut SessionSetup) -> Result<(L, L::Codec)> + Send + Sync + 'static
{
}

impl<L, F> NewSession<L> for F
where
    L: EventListener,
    F: Fn(&mut SessionSetup) -> Result<(L, L::Codec)> + Send + Sync + 'static,
{
}

/// A `new_session` hook behind a pointer, as endpoints keep it.
pub(crate) type SessionFactory<L> =
    dyn Fn(&mut SessionSetup) -> Result<(L, <L as EventListener>::Codec)> + Send + Sync;

/// Counters of one endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// Connections accepted (or being dialed) and not yet fully closed, refused ones
    /// included until they are gone. A client never has more than its connection number.
    pub live_sessions: usize,
    /// Sessions open right now (their `on_open` succeeded and `on_close` has not run).
    pub open_sessions: usize,
    /// Dials started (clients only).
    pub connect_attempts: u64,
    /// Dials that failed to connect or timed out (clients only); refusals by `on_open`
    /// are counted in `refused`.
    pub connect_failures: u64,
    /// Sessions whose `on_open` succeeded.
    pub opened: u64,
    /// Connections refused: by the max-connections limit, the `new_session` hook or
    /// `on_open`.
    pub refused: u64,
    /// Opened sessions that have closed since.
    pub closed: u64,
    /// Accepted connections whose [`Accepted::establish`](crate::transport::Accepted::establish)
    /// failed (a failed or timed-out handshake, say), and requests to a WebSocket
    /// server's path that were no valid WebSocket upgrade; servers only.
    pub establish_failures: u64,
    /// Bytes the sessions hold buffered (write queues, frames read and not yet handled,
    /// datagrams queued for per-peer sessions), as they last reported them; the endpoint's
    /// memory budget bounds it.
    pub buffered_bytes: usize,
    /// The endpoint's memory budget in bytes (see `memory_budget` on its builder).
    pub memory_budget: usize,
    /// The client gave up dialing (clients with `max_reconnect_attempts` only).
    pub gave_up: bool,
}

/// Shared counters of one endpoint.
#[derive(Debug)]
pub(crate) struct EndpointShared {
    live: AtomicUsize,
    open: AtomicUsize,
    opened: AtomicU64,
    refused: AtomicU64,
    closed: AtomicU64,
    connect_attempts: AtomicU64,
    connect_failures: AtomicU64,
    establish_failures: AtomicU64,
    stopping: AtomicBool,
    gave_up: AtomicBool,
    stop: Notify,
    /// The open sessions, for [`ClientHandle::sessions`](crate::ClientHandle::sessions)
    /// and the client's `SessionUp` events; kept by clients only (`None` on servers,
    /// whose many sessions need not pay for it). Locked only when a session opens or
    /// closes and when the list is read, never across a callback.
    sessions: Option<Mutex<BTreeMap<SessionId, AnySession>>>,
    /// The memory budget its sessions' buffered bytes count against.
    budget: Arc<Budget>,
    /// Its metric handles, registered when it started.
    metrics: EndpointMetrics,
}

impl EndpointShared {
    /// An endpoint whose sessions may hold `memory_budget` bytes buffered between them;
    /// with `lists_sessions`, it keeps a list of its open sessions (clients do). It
    /// records to `metrics`.
    pub(crate) fn new(
        memory_budget: usize,
        lists_sessions: bool,
        metrics: EndpointMetrics,
    ) -> Self {
        EndpointShared {
            live: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            opened: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            connect_attempts: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            establish_failures: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            gave_up: AtomicBool::new(false),
            stop: Notify::new(),
            sessions: lists_sessions.then(|| Mutex::new(BTreeMap::new())),
            budget: Budget::new(memory_budget),
            metrics,
        }
    }

    /// The endpoint's metric handles.
    pub(crate) fn metrics(&self) -> &EndpointMetrics {
        &self.metrics
    }

    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    pub(crate) fn count_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.metrics.refused.increment(1);
    }

    /// A dial starts; `redial`: it is not of the client's first round.
    pub(crate) fn count_attempt(&self, redial: bool) {
        self.connect_attempts.fetch_add(1, Ordering::Relaxed);
        self.metrics.dials.increment(1);
        if redial {
            self.metrics.reconnects.increment(1);
        }
    }

    /// A connection failed to establish before it had a slot (a WebSocket request that
    /// was no valid upgrade).
    pub(crate) fn count_establish_failure(&self) {
        self.establish_failures.fetch_add(1, Ordering::Relaxed);
        self.metrics.establish_failures.increment(1);
    }

    /// Marks the endpoint stopping and wakes whatever waits in [`stopped`](Self::stopped).
    pub(crate) fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stop.notify_waiters();
    }

    /// The client gave up dialing.
    pub(crate) fn give_up(&self) {
        self.gave_up.store(true, Ordering::Release);
        self.metrics.gave_up.set(1.0);
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Resolves once the endpoint is stopping (at once if it already is).
    pub(crate) async fn stopped(&self) {
        let notified = self.stop.notified();
        if !self.is_stopping() {
            notified.await;
        }
    }

    fn listed(&self) -> Option<std::sync::MutexGuard<'_, BTreeMap<SessionId, AnySession>>> {
        // No user code runs under the lock, so a poisoned one still holds a sound map.
        let list = self.sessions.as_ref()?;
        Some(list.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn unlist(&self, id: SessionId) {
        // Dropped after the lock is released: the last handle may run a drop of its own.
        let gone = self.listed().and_then(|mut list| list.remove(&id));
        drop(gone);
    }

    /// The open sessions, in the order they were made (none on an endpoint that keeps
    /// no list).
    pub(crate) fn sessions(&self) -> Vec<AnySession> {
        self.listed()
            .map(|list| list.values().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn stats(&self) -> EndpointStats {
        EndpointStats {
            live_sessions: self.live(),
            open_sessions: self.open.load(Ordering::Relaxed),
            connect_attempts: self.connect_attempts.load(Ordering::Relaxed),
            connect_failures: self.connect_failures.load(Ordering::Relaxed),
            opened: self.opened.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed),
            establish_failures: self.establish_failures.load(Ordering::Relaxed),
            buffered_bytes: self.budget.used(),
            memory_budget: self.budget.limit(),
            gave_up: self.gave_up.load(Ordering::Acquire),
        }
    }
}

/// How a session slot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Refused by a limit, the `new_session` hook or `on_open`.
    Refused,
    /// A dial that never connected.
    NotConnected,
    /// Opened, then closed, for this cause.
    Closed(CloseCause),
}

/// A session's place in its endpoint, from accept (or dial) to gone. It counts toward
/// the endpoint's live sessions from the moment it exists, and is released exactly once:
/// explicitly, or on drop if its session vanished some other way (its arbiter stopped),
/// so the live count cannot leak and a stop cannot wait forever on a lost session.
pub(crate) struct SessionSlot {
    endpoint: Arc<EndpointShared>,
    supervisor: Addr<Supervisor>,
    id: SessionId,
    opened: bool,
    released: bool,
}

impl SessionSlot {
    pub(crate) fn new(endpoint: Arc<EndpointShared>, supervisor: Addr<Supervisor>) -> Self {
        endpoint.live.fetch_add(1, Ordering::AcqRel);
        SessionSlot {
            endpoint,
            supervisor,
            id: next_session_id(),
            opened: false,
            released: false,
        }
    }

    pub(crate) fn id(&self) -> SessionId {
        self.id
    }

    /// The memory budget of the slot's endpoint.
    pub(crate) fn budget(&self) -> Arc<Budget> {
        self.endpoint.budget.clone()
    }

    /// The session opened: count it, list it (where the endpoint keeps a list, with the
    /// handle `handle` makes), and let the supervisor watch it.
    pub(crate) fn opened(
        &mut self,
        shared: Arc<SessionShared>,
        control: Recipient<Control>,
        handle: impl FnOnce() -> AnySession,
    ) {
        self.opened = true;
        self.endpoint.opened.fetch_add(1, Ordering::Relaxed);
        self.endpoint.open.fetch_add(1, Ordering::Relaxed);
        self.endpoint.metrics.opened.increment(1);
        self.endpoint.metrics.sessions_open.increment(1.0);
        let session = self.endpoint.listed().map(|mut list| {
            let session = handle();
            list.insert(session.id(), session.clone());
            session
        });
        self.supervisor.do_send(Register {
            shared,
            session,
            control,
        });
    }

    /// A dial for this slot failed; the slot is released (as refused) right after.
    pub(crate) fn dial_failed(mut self, error: Error) {
        self.endpoint
            .connect_failures
            .fetch_add(1, Ordering::Relaxed);
        self.endpoint.metrics.dial_failures.increment(1);
        self.supervisor.do_send(DialFailed(error));
        self.release(Outcome::NotConnected);
    }

    /// An accepted connection failed to establish; the slot is released right after.
    pub(crate) fn establish_failed(mut self) {
        self.endpoint.count_establish_failure();
        self.release(Outcome::NotConnected);
    }

    /// The dial (or establishing) was given up because the endpoint is stopping.
    pub(crate) fn abandon(mut self) {
        self.release(Outcome::NotConnected);
    }

    pub(crate) fn release(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        match outcome {
            Outcome::Refused => self.endpoint.count_refused(),
            Outcome::NotConnected => {}
            Outcome::Closed(cause) => {
                self.endpoint.closed.fetch_add(1, Ordering::Relaxed);
                self.endpoint.metrics.closed(cause);
            }
        }
        if self.opened {
            self.endpoint.open.fetch_sub(1, Ordering::Relaxed);
            self.endpoint.metrics.sessions_open.decrement(1.0);
            self.endpoint.unlist(self.id);
        }
        self.endpoint.live.fetch_sub(1, Ordering::AcqRel);
        // One message per session: bounded, so the capacity check may be skipped.
        self.supervisor.do_send(Gone(self.id));
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        // Its session vanished with its arbiter: as a stop on this side.
        self.release(if self.opened {
            Outcome::Closed(CloseCause::Stop)
        } else {
            Outcome::Refused
        });
    }
}

/// Runs the `new_session` hook for a fresh connection and starts its session on the
/// current arbiter, or refuses it. A panicking hook refuses the connection too.
pub(crate) fn open_session<L, T>(
    io: T,
    kind: &str,
    config: SessionConfig,
    new_session: &SessionFactory<L>,
    mut slot: SessionSlot,
) where
    L: EventListener,
    T: Transport,
{
    let addrs = io
        .local_addr()
        .and_then(|local| Ok((local, io.peer_addr()?)));
    let (local, peer): (Address, Address) = match addrs {
        Ok(addrs) => addrs,
        Err(err) => {
            // The peer left before we looked; nothing was opened.
            tracing::debug!(%err, "connection gone before its session started");
            slot.release(Outcome::Refused);
            return;
        }
    };
    let live_peer = io.live_peer();
    if let Some((mut setup, listener, codec, slot)) =
        prepare_session(new_session, kind, local, peer, config, slot)
    {
        setup.live_peer = live_peer;
        let (read_half, write_half) = io.into_split();
        let writer = SessionWriter {
            io: write_half,
            preserves_messages: T::PRESERVES_MESSAGES,
            limit: None,
        };
        let _ = start_session(setup, listener, codec, slot, writer, ByteReader(read_half));
    }
}

/// Runs the `new_session` hook for a session about to start; a hook that panics refuses
/// it like one that returns an error.
pub(crate) fn run_new_session<L: EventListener>(
    new_session: &SessionFactory<L>,
    setup: &mut SessionSetup,
) -> Result<(L, L::Codec)> {
    match catch_unwind(AssertUnwindSafe(|| new_session(setup))) {
        Ok(made) => made,
        Err(_) => {
            tracing::error!(peer = %setup.peer_addr(), "new_session panicked; session refused");
            Err(Error::refused("new_session panicked"))
        }
    }
}

/// Describes a new session to the `new_session` hook and runs it: the setup, listener and
/// codec to start the session with, or `None` once the refused slot is released.
pub(crate) fn prepare_session<L: EventListener>(
    new_session: &SessionFactory<L>,
    kind: &str,
    local: Address,
    peer: Address,
    config: SessionConfig,
    mut slot: SessionSlot,
) -> Option<(SessionSetup, L, L::Codec, SessionSlot)> {
    let mut setup = SessionSetup::new(slot.id(), kind, local, peer, config);
    match run_new_session(new_session, &mut setup) {
        Ok((listener, codec)) => Some((setup, listener, codec, slot)),
        Err(err) => {
            tracing::debug!(peer = %setup.peer_addr(), %err, "new_session refused the session");
            slot.release(Outcome::Refused);
            None
        }
    }
}

/// The reason a panic carried, for
/// [`ErrorKind::ListenerPanic`](crate::ErrorKind::ListenerPanic).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> Arc<str> {
    if let Some(s) = payload.downcast_ref::<&str>() {
        Arc::from(*s)
    } else if let Some(s) = payload.downcast_ref::<String>() {
        Arc::from(s.as_str())
    } else {
        Arc::from("non-string panic payload")
    }
}

/// Makes the error for a listener panic on session `id`.
pub(crate) fn panic_error(payload: &(dyn std::any::Any + Send), id: SessionId) -> Error {
    Error::listener_panic(panic_message(payload)).with_session(id)
}
