//! The client endpoint over any transport: keeps N sessions and re-dials the ones it loses.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use futures::future::LocalBoxFuture;
use futures::FutureExt;

use crate::defaults::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RECONNECT_INTERVAL, DEFAULT_RECONNECT_INTERVAL,
};
use crate::endpoint::arbiters::ArbiterPool;
use crate::endpoint::reconnect::Backoff;
use crate::endpoint::supervisor::{Redial, Shutdown, Supervisor};
use crate::endpoint::{
    open_session, EndpointShared, EndpointStats, NewSession, SessionFactory, SessionSlot,
};
use crate::error::{Error, Result, SessionId};
use crate::listener::EventListener;
use crate::session::AnySession;
use crate::transport::Address;
use crate::transport::Transport;
use crate::SessionConfig;

/// What a client tells the application about its connections, so it can decide what to
/// resend: the client never resends anything by itself.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A session opened (its `on_open` succeeded). Re-subscribe or resend here what the
    /// application wants the new connection to carry (or in the listener's `on_open`,
    /// which runs first, on the session's own arbiter).
    SessionUp {
        /// The new session.
        id: SessionId,
        /// The address it is connected to.
        peer: Address,
        /// A handle to it ([`AnySession::downcast`] gives the typed [`Session`](crate::Session)).
        session: AnySession,
    },
    /// An opened session closed (its `on_close` has run). A re-dial follows after the
    /// backoff, unless the client is stopping (a stop closes every session, and each
    /// reports this event too).
    SessionDown {
        /// The session that closed.
        id: SessionId,
    },
    /// A dial failed to connect; another follows after the backoff.
    DialFailed {
        /// Why.
        error: Error,
    },
}

pub(crate) type EventHook = Box<dyn Fn(ClientEvent)>;

/// A dial function behind a pointer, as clients keep it.
type DialFn<T> = dyn Fn() -> LocalBoxFuture<'static, Result<T>> + Send + Sync;

/// Builds a client over any transport: it keeps a number of sessions, each made by a
/// dial function, and re-dials the ones it loses (getty's client, for any transport).
/// [`TcpClient`](crate::TcpClient) and [`UnixClient`](crate::UnixClient) are built on it.
///
/// The client's supervisor dials the connection number at start, and whenever a session
/// closes (EOF, reset, timeout, error, refusal) or a dial fails it dials again, after a
/// backoff that starts at the reconnect interval, doubles with each failed round (with
/// jitter) up to a cap, and resets once a session stayed up for ten intervals (at most
/// the cap). A dial counts toward the connection number from the moment it starts, so
/// the client never holds more. It never resends frames: use
/// [`on_event`](Self::on_event) to learn when sessions come and go.
pub struct Client {
    kind: Arc<str>,
    connections: usize,
    reconnect_interval: Duration,
    max_reconnect_interval: Duration,
    workers: usize,
    connect_timeout: Duration,
    config: SessionConfig,
    memory_budget: usize,
    events: Option<EventHook>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("kind", &self.kind)
            .field("connections", &self.connections)
            .field("reconnect_interval", &self.reconnect_interval)
            .field("max_reconnect_interval", &self.max_reconnect_interval)
            .field("workers", &self.workers)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    /// A client with getty's defaults: one connection, 300 ms reconnect interval, 3 s
    /// connect timeout, one arbiter.
    pub fn new() -> Self {
        Client {
            kind: Arc::from("client"),
            connections: 1,
            reconnect_interval: DEFAULT_RECONNECT_INTERVAL,
            max_reconnect_interval: DEFAULT_MAX_RECONNECT_INTERVAL,
            workers: 1,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            config: SessionConfig::default(),
            memory_budget: crate::defaults::DEFAULT_MEMORY_BUDGET,
            events: None,
        }
    }

    /// The transport's name, used in default session names (`kind:peer`). Default
    /// `"client"`.
    pub fn kind(mut self, kind: impl AsRef<str>) -> Self {
        self.kind = Arc::from(kind.as_ref());
        self
    }

    /// How many sessions to keep (getty's `WithConnectionNumber`). Default 1.
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n;
        self
    }

    /// First delay before re-dialing (getty's `WithReconnectInterval`). Default 300 ms.
    pub fn reconnect_interval(mut self, interval: Duration) -> Self {
        self.reconnect_interval = interval;
        self
    }

    /// Cap on the delay between dial rounds. Default 10 s; at least the reconnect
    /// interval. A session that stays up for ten intervals (at most the cap) resets the
    /// backoff to the interval.
    pub fn max_reconnect_interval(mut self, cap: Duration) -> Self {
        self.max_reconnect_interval = cap;
        self
    }

    /// Arbiters (threads) the sessions are spread over, round-robin; the calling arbiter
    /// is the first. Default 1: a client's sessions are few.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// How long one dial may take, handshakes included. Default 3 s (getty's).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The config each session starts with, before the `new_session` hook changes it.
    pub fn session_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    /// The memory budget of the endpoint: how many bytes all its sessions together may
    /// hold buffered (write queues, frames read and not yet handled, datagrams queued
    /// for per-peer sessions). Once they hold it, a session at its fair share (the
    /// budget over the number of sessions) is held back: its writes fail with
    /// [`Error::MemoryBudget`](crate::Error::MemoryBudget) and its reading pauses, while
    /// the others go on. Default [`DEFAULT_MEMORY_BUDGET`](crate::defaults::DEFAULT_MEMORY_BUDGET)
    /// (256 MiB).
    pub fn memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// The config sessions start with.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Calls `hook` on the client's supervisor (the arbiter that called
    /// [`start`](Self::start)) each time a session comes up or goes down or a dial fails.
    /// It must return quickly.
    pub fn on_event(mut self, hook: impl Fn(ClientEvent) + 'static) -> Self {
        self.events = Some(Box::new(hook));
        self
    }

    /// Starts dialing: `dial` is called on the arbiter that will host the session, once
    /// per connection and again for every re-dial, under the connect timeout; an error
    /// (or the timeout) counts as a failed dial. Call from within an actix system; the
    /// client runs until [`ClientHandle::stop`] or until every handle is dropped.
    pub fn start<T, D, Fut, L, F>(self, dial: D, new_session: F) -> ClientHandle
    where
        T: Transport,
        D: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T>> + 'static,
        L: EventListener,
        F: NewSession<L>,
    {
        let kind = self.kind.clone();
        let config = self.config.clone();
        let hook: Arc<SessionFactory<L>> = Arc::new(new_session);
        self.start_with(dial, move |transport: T, slot| {
            open_session(transport, &kind, config.clone(), &*hook, slot);
        })
    }

    /// [`start`](Self::start) for transports whose connections are not a [`Transport`]
    /// (datagram sockets, WebSocket framing): `dial` makes a connection of any kind and
    /// `open` starts its session on the slot, both on the session's arbiter. Reconnection,
    /// the connect timeout and the stop work as for every client.
    pub(crate) fn start_with<C, D, Fut, O>(self, dial: D, open: O) -> ClientHandle
    where
        C: 'static,
        D: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C>> + 'static,
        O: Fn(C, SessionSlot) + Send + Sync + 'static,
    {
        let endpoint = Arc::new(EndpointShared::new(self.memory_budget, true));
        let pool = Arc::new(ArbiterPool::start(self.workers));
        let dialer = Dialer {
            dial: Arc::new(move || dial().boxed_local()),
            open: Arc::new(open),
            kind: self.kind,
            connect_timeout: self.connect_timeout,
            endpoint: endpoint.clone(),
        };
        let seed = crate::clock::now_ms() ^ (Arc::as_ptr(&endpoint) as u64);
        let redial = Redial {
            wanted: self.connections,
            dial: Box::new({
                let pool = pool.clone();
                move |slot| {
                    let (index, arbiter) = pool.next();
                    let dialer = dialer.clone();
                    if index == 0 {
                        actix_rt::spawn(dialer.dial(slot));
                    } else {
                        // Made and polled on that arbiter (the dial future need not be
                        // `Send`, and its sockets belong to that arbiter's reactor); if the
                        // arbiter is gone the closure is dropped with its slot, which
                        // counts as a failed dial.
                        arbiter.spawn_fn(move || {
                            actix_rt::spawn(dialer.dial(slot));
                        });
                    }
                }
            }),
            backoff: Backoff::new(self.reconnect_interval, self.max_reconnect_interval, seed),
            events: self.events,
            timer: None,
        };
        let supervisor = Supervisor::new(endpoint.clone(), &self.config)
            .with_redial(redial)
            .on_stopped(move || pool.stop())
            .start();
        ClientHandle::new(endpoint, supervisor)
    }

    /// How long one dial may take, for transports whose own connector wants it too.
    pub(crate) fn dial_timeout(&self) -> Duration {
        self.connect_timeout
    }
}

/// Opens a session on a dialed connection, as clients keep it.
type OpenFn<C> = dyn Fn(C, SessionSlot) + Send + Sync;

/// Everything one dial needs, cheap to clone into each dial task.
struct Dialer<C> {
    dial: Arc<DialFn<C>>,
    open: Arc<OpenFn<C>>,
    kind: Arc<str>,
    connect_timeout: Duration,
    endpoint: Arc<EndpointShared>,
}

impl<C> Clone for Dialer<C> {
    fn clone(&self) -> Self {
        Dialer {
            dial: self.dial.clone(),
            open: self.open.clone(),
            kind: self.kind.clone(),
            connect_timeout: self.connect_timeout,
            endpoint: self.endpoint.clone(),
        }
    }
}

impl<C> Dialer<C> {
    async fn dial(self, slot: SessionSlot) {
        let connect = tokio::time::timeout(self.connect_timeout, (self.dial)());
        let connected = tokio::select! {
            connected = connect => connected,
            _ = self.endpoint.stopped() => return slot.abandon(),
        };
        let connection = match connected {
            Ok(Ok(connection)) => connection,
            Ok(Err(err)) => return slot.dial_failed(err),
            Err(_) => {
                let msg = format!(
                    "{} dial timed out after {:?}",
                    self.kind, self.connect_timeout
                );
                return slot.dial_failed(Error::from(io::Error::new(io::ErrorKind::TimedOut, msg)));
            }
        };
        if self.endpoint.is_stopping() {
            return slot.abandon();
        }
        (self.open)(connection, slot);
    }
}

struct HandleInner {
    endpoint: Arc<EndpointShared>,
    supervisor: Addr<Supervisor>,
}

impl Drop for HandleInner {
    fn drop(&mut self) {
        // The last handle is gone: nobody can stop the client any more, so stop it now
        // (gracefully, in the background) rather than leave it dialing forever.
        self.supervisor.do_send(Shutdown);
    }
}

/// A running client. Cheap to clone; when the last clone is dropped the client
/// stops (gracefully, in the background).
#[derive(Clone)]
pub struct ClientHandle {
    inner: Arc<HandleInner>,
}

impl std::fmt::Debug for ClientHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandle")
            .field("stats", &self.stats())
            .finish()
    }
}

impl ClientHandle {
    /// The handle of a client whose supervisor keeps its sessions (for transports that
    /// dial without [`Client::start`], such as UDP).
    pub(crate) fn new(endpoint: Arc<EndpointShared>, supervisor: Addr<Supervisor>) -> Self {
        ClientHandle {
            inner: Arc::new(HandleInner {
                endpoint,
                supervisor,
            }),
        }
    }

    /// Sessions held, dials and failures so far.
    pub fn stats(&self) -> EndpointStats {
        self.inner.endpoint.stats()
    }

    /// The client's open sessions right now (those whose `on_open` succeeded and whose
    /// `on_close` has not run), oldest first. Use [`AnySession::downcast`] to write:
    ///
    /// ```no_run
    /// # fn f(client: &getty::ClientHandle) {
    /// for session in client.sessions() {
    ///     if let Some(session) = session.downcast::<bytes::Bytes>() {
    ///         if let Err(err) = session.try_write(bytes::Bytes::from_static(b"ping")) {
    ///             eprintln!("{}: not sent: {err}", session.name());
    ///         }
    ///     }
    /// }
    /// # }
    /// ```
    pub fn sessions(&self) -> Vec<AnySession> {
        self.inner.endpoint.sessions()
    }

    /// Stops gracefully: no more dials (a pending backoff is cancelled at once, a dial in
    /// progress is abandoned), every session flushes what it has queued for at most its
    /// wait time and gets `on_close`, then this resolves. Calling it again, or from
    /// several clones, waits for the same stop.
    pub async fn stop(&self) {
        // Fails only when an earlier stop already finished.
        let _ = self.inner.supervisor.send(Shutdown).await;
    }
}

/// For transport writers: adds the options every client builder shares (`connections`,
/// `reconnect_interval`, `max_reconnect_interval`, `workers`, `connect_timeout`,
/// `session_config`, `memory_budget`, `on_event`) to a builder that keeps its `Client`
/// in the field named `$field`, forwarding to it. The crate's own TCP and Unix clients
/// use it; see the `transport` module's guide.
///
/// ```
/// use getty::Client;
///
/// /// A client builder for some transport of yours.
/// pub struct PipeClient {
///     client: Client,
/// }
///
/// impl PipeClient {
///     getty::forward_client_options!(client);
/// }
///
/// let built = PipeClient { client: Client::new() }.connections(4);
/// # let _ = built.client;
/// ```
#[macro_export]
macro_rules! forward_client_options {
    ($field:ident) => {
        /// How many sessions to keep (getty's `WithConnectionNumber`). Default 1.
        pub fn connections(mut self, n: usize) -> Self {
            self.$field = self.$field.connections(n);
            self
        }

        /// First delay before re-dialing (getty's `WithReconnectInterval`). Default
        /// 300 ms.
        pub fn reconnect_interval(mut self, interval: std::time::Duration) -> Self {
            self.$field = self.$field.reconnect_interval(interval);
            self
        }

        /// Cap on the delay between dial rounds; see
        /// `Client::max_reconnect_interval`.
        pub fn max_reconnect_interval(mut self, cap: std::time::Duration) -> Self {
            self.$field = self.$field.max_reconnect_interval(cap);
            self
        }

        /// Arbiters (threads) the sessions are spread over, round-robin; the calling
        /// arbiter is the first. Default 1: a client's sessions are few.
        pub fn workers(mut self, n: usize) -> Self {
            self.$field = self.$field.workers(n);
            self
        }

        /// How long one dial may take. Default 3 s (getty's).
        pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.$field = self.$field.connect_timeout(timeout);
            self
        }

        /// The config each session starts with, before the `new_session` hook changes
        /// it.
        pub fn session_config(mut self, config: $crate::SessionConfig) -> Self {
            self.$field = self.$field.session_config(config);
            self
        }

        /// The endpoint's memory budget in bytes across all its sessions; see
        /// `Server::memory_budget`. Default 256 MiB.
        pub fn memory_budget(mut self, bytes: usize) -> Self {
            self.$field = self.$field.memory_budget(bytes);
            self
        }

        /// Calls `hook` each time a session comes up or goes down or a dial fails; see
        /// `Client::on_event`.
        pub fn on_event(mut self, hook: impl Fn($crate::ClientEvent) + 'static) -> Self {
            self.$field = self.$field.on_event(hook);
            self
        }
    };
}
