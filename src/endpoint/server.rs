//! The server endpoint over any transport: accepts connections from a stream and runs a
//! session for each.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr};
use futures::{Stream, StreamExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::endpoint::arbiters::ArbiterPool;
use crate::endpoint::supervisor::{Shutdown, Supervisor};
use crate::endpoint::{
    open_session, EndpointShared, EndpointStats, NewSession, SessionFactory, SessionSlot,
};
use crate::error::Error;
use crate::listener::EventListener;
use crate::transport::Accepted;
use crate::SessionConfig;

/// Pause after an accept error that is not about one connection (e.g. out of file
/// descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A hook told about connections whose [`Accepted::establish`] failed.
type EstablishHook = Arc<dyn Fn(&Error) + Send + Sync>;

/// Builds a server over any transport: it takes a stream of accepted connections (see
/// [`transport`](crate::transport) for how to write one) and runs a session for each.
/// [`TcpServer`](crate::TcpServer) and [`UnixServer`](crate::UnixServer) are built on it.
///
/// See the [`transport`](crate::transport) module for an example over in-memory pipes.
#[derive(Clone)]
pub struct Server {
    kind: Arc<str>,
    workers: usize,
    max_connections: usize,
    config: SessionConfig,
    memory_budget: usize,
    on_establish_error: Option<EstablishHook>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("kind", &self.kind)
            .field("workers", &self.workers)
            .field("max_connections", &self.max_connections)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

impl Server {
    /// A server with one arbiter per core, no connection limit and the default session
    /// config.
    pub fn new() -> Self {
        Server {
            kind: Arc::from("server"),
            workers: crate::defaults::server_workers(),
            max_connections: usize::MAX,
            config: SessionConfig::default(),
            memory_budget: crate::defaults::DEFAULT_MEMORY_BUDGET,
            on_establish_error: None,
        }
    }

    /// The transport's name, used in default session names (`kind:peer`). Default
    /// `"server"`.
    pub fn kind(mut self, kind: impl AsRef<str>) -> Self {
        self.kind = Arc::from(kind.as_ref());
        self
    }

    /// Number of arbiters (threads) sessions are spread over, round-robin. Default: one
    /// per core. The arbiter that calls [`serve`](Self::serve) is the first of them, so
    /// `workers(1)` runs everything on it.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Most sessions alive at once (including those still establishing); connections
    /// past it are dropped at once and counted as refused. Default: unlimited.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// The config each session starts with, before the `new_session` hook changes it.
    /// Default: [`SessionConfig::default`].
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

    /// Calls `hook`, on the session's arbiter, for every connection whose
    /// [`Accepted::establish`] failed (a TLS handshake, say); such connections never
    /// open a session and are counted in
    /// [`EndpointStats::establish_failures`]. It must return quickly.
    pub fn on_establish_error(mut self, hook: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.on_establish_error = Some(Arc::new(hook));
        self
    }

    /// The config sessions start with.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Accepts from `incoming` until it ends or the server is stopped, running
    /// `new_session` for each connection on the arbiter it is assigned to. Errors from
    /// `incoming` that concern one connection (reset, aborted) are skipped; others are
    /// logged and accepting pauses for 100 ms. Call from within an actix system.
    pub fn serve<A, S, L, F>(self, incoming: S, new_session: F) -> ServerHandle
    where
        A: Accepted,
        S: Stream<Item = io::Result<A>> + Unpin + 'static,
        L: EventListener,
        F: NewSession<L>,
    {
        let endpoint = Arc::new(EndpointShared::new(self.memory_budget, false));
        let supervisor = Supervisor::new(endpoint.clone(), &self.config).start();
        let pool = Arc::new(ArbiterPool::start(self.workers));
        let acceptor = Acceptor {
            hook: Arc::new(new_session),
            kind: self.kind,
            config: self.config,
            max_connections: self.max_connections,
            on_establish_error: self.on_establish_error,
            endpoint: endpoint.clone(),
            supervisor: supervisor.clone(),
            pool: pool.clone(),
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = actix_rt::spawn(acceptor.run(incoming, stop_rx));
        ServerHandle {
            inner: Arc::new(HandleInner {
                endpoint,
                supervisor,
                pool,
                acceptor: Mutex::new(Some((stop_tx, task))),
            }),
        }
    }
}

struct Acceptor<L: EventListener> {
    hook: Arc<SessionFactory<L>>,
    kind: Arc<str>,
    config: SessionConfig,
    max_connections: usize,
    on_establish_error: Option<EstablishHook>,
    endpoint: Arc<EndpointShared>,
    supervisor: Addr<Supervisor>,
    pool: Arc<ArbiterPool>,
}

impl<L: EventListener> Acceptor<L> {
    async fn run<A, S>(self, mut incoming: S, mut stop: oneshot::Receiver<()>)
    where
        A: Accepted,
        S: Stream<Item = io::Result<A>> + Unpin,
    {
        loop {
            let accepted = tokio::select! {
                biased;
                _ = &mut stop => return,
                accepted = incoming.next() => accepted,
            };
            match accepted {
                None => return,
                Some(Ok(conn)) => self.dispatch(conn),
                Some(Err(err)) if is_per_connection(&err) => {}
                Some(Err(err)) => {
                    tracing::warn!(%err, "accept failed; pausing");
                    tokio::select! {
                        _ = &mut stop => return,
                        _ = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                    }
                }
            }
        }
    }

    fn dispatch<A: Accepted>(&self, conn: A) {
        if self.endpoint.live() >= self.max_connections {
            self.endpoint.count_refused();
            tracing::debug!("max connections reached; connection refused");
            return; // dropping the connection closes it
        }
        let slot = SessionSlot::new(self.endpoint.clone(), self.supervisor.clone());
        let start = Establish {
            hook: self.hook.clone(),
            kind: self.kind.clone(),
            config: self.config.clone(),
            on_error: self.on_establish_error.clone(),
            endpoint: self.endpoint.clone(),
        };
        let (index, arbiter) = self.pool.next();
        if index == 0 {
            actix_rt::spawn(start.run(conn, slot));
        } else {
            // The closure runs on that arbiter, so the establishing future is made and
            // polled there (it need not be `Send`). If the arbiter is gone the closure is
            // dropped, and with it the connection and the slot.
            arbiter.spawn_fn(move || {
                actix_rt::spawn(start.run(conn, slot));
            });
        }
    }
}

/// What a connection needs, on its session's arbiter, to become a session.
struct Establish<L: EventListener> {
    hook: Arc<SessionFactory<L>>,
    kind: Arc<str>,
    config: SessionConfig,
    on_error: Option<EstablishHook>,
    endpoint: Arc<EndpointShared>,
}

impl<L: EventListener> Establish<L> {
    async fn run<A: Accepted>(self, conn: A, slot: SessionSlot) {
        let established = tokio::select! {
            established = conn.establish() => established,
            _ = self.endpoint.stopped() => return slot.abandon(),
        };
        match established {
            Ok(transport) => open_session(transport, &self.kind, self.config, &*self.hook, slot),
            Err(err) => {
                // The error concerns the session this connection would have become.
                let err = err.with_session(slot.id());
                tracing::debug!(%err, kind = %self.kind, "connection failed to establish");
                if let Some(hook) = &self.on_error {
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(&err)))
                        .is_err()
                    {
                        tracing::error!("on_establish_error hook panicked");
                    }
                }
                slot.establish_failed();
            }
        }
    }
}

/// Accept errors that concern one connection only: skip it and go on.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

struct HandleInner {
    endpoint: Arc<EndpointShared>,
    supervisor: Addr<Supervisor>,
    pool: Arc<ArbiterPool>,
    acceptor: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

/// A running server. Cheap to clone; the server runs until [`stop`](Self::stop) (or
/// until the actix system stops, which drops its sessions without `on_close`).
#[derive(Clone)]
pub struct ServerHandle {
    inner: Arc<HandleInner>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("stats", &self.stats())
            .finish()
    }
}

impl ServerHandle {
    /// Session counters of the server.
    pub fn stats(&self) -> EndpointStats {
        self.inner.endpoint.stats()
    }

    /// Stops gracefully: stops accepting (dropping the incoming stream), abandons
    /// connections still establishing, closes every session (each flushes what it has
    /// queued for at most its wait time, then `on_close` runs), and resolves once all are
    /// gone, or at the latest one second after the longest wait time. Calling it again,
    /// or from several clones, waits for the same stop.
    pub async fn stop(&self) {
        let acceptor = self
            .inner
            .acceptor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some((stop, task)) = acceptor {
            let _ = stop.send(());
            let _ = task.await;
        }
        // Fails only when an earlier stop already finished.
        let _ = self.inner.supervisor.send(Shutdown).await;
        self.inner.pool.stop();
    }
}

/// For transport writers: adds the options every server builder shares (`workers`,
/// `max_connections`, `session_config`, `memory_budget`, `on_establish_error`) to a builder that keeps
/// its `Server` in the field named `$field`, forwarding to it. The
/// crate's own TCP and Unix servers use it; see the
/// `transport` module's guide.
///
/// ```
/// use getty::Server;
///
/// /// A server builder for some transport of yours.
/// pub struct PipeServer {
///     server: Server,
/// }
///
/// impl PipeServer {
///     getty::forward_server_options!(server);
/// }
///
/// let built = PipeServer { server: Server::new() }.workers(2).max_connections(10);
/// # let _ = built.server;
/// ```
#[macro_export]
macro_rules! forward_server_options {
    ($field:ident) => {
        /// Number of arbiters (threads) sessions are spread over, round-robin. Default:
        /// one per core. The arbiter that calls `start` is the first of them, so
        /// `workers(1)` runs everything on it.
        pub fn workers(mut self, n: usize) -> Self {
            self.$field = self.$field.workers(n);
            self
        }

        /// Most sessions alive at once; connections past it are closed at once and
        /// counted as refused. Default: unlimited.
        pub fn max_connections(mut self, n: usize) -> Self {
            self.$field = self.$field.max_connections(n);
            self
        }

        /// The config each session starts with, before the `new_session` hook changes
        /// it. Default: `SessionConfig::default`.
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

        /// Calls `hook` for every accepted connection that failed to establish; see
        /// `Server::on_establish_error`.
        pub fn on_establish_error(
            mut self,
            hook: impl Fn(&$crate::Error) + Send + Sync + 'static,
        ) -> Self {
            self.$field = self.$field.on_establish_error(hook);
            self
        }
    };
}
