//! The server endpoint over any transport: accepts connections from a stream and runs a
//! session for each.

use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr};
use futures::future::LocalBoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::endpoint::arbiters::ArbiterPool;
use crate::endpoint::options::{EstablishHook, ServerBuilder, ServerOption, ServerOptions};
use crate::endpoint::supervisor::{Drain, Shutdown, Supervisor};
use crate::endpoint::{
    open_session, EndpointShared, EndpointStats, NewSession, SessionFactory, SessionSlot,
};
use crate::error::Result;
use crate::listener::EventListener;
use crate::metrics::{EndpointMetrics, Role};
use crate::transport::{Accepted, Address};
use crate::SessionConfig;

/// Pause after an accept error that is not about one connection (e.g. out of file
/// descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Builds a server over any transport: it takes a stream of accepted connections (see
/// [`transport`](crate::transport) for how to write one) and runs a session for each.
/// [`TcpServer`](crate::TcpServer) and [`UnixServer`](crate::UnixServer) are built on it.
/// Its shared options (`workers`, `max_connections`, ...) come from [`ServerBuilder`].
///
/// See the [`transport`](crate::transport) module for an example over in-memory pipes.
#[derive(Clone)]
pub struct Server {
    kind: Arc<str>,
    local_addr: Option<Address>,
    options: ServerOptions,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("kind", &self.kind)
            .field("local_addr", &self.local_addr)
            .field("options", &self.options)
            .finish()
    }
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerBuilder for Server {
    fn server_options(&mut self) -> &mut ServerOptions {
        &mut self.options
    }
}

impl Server {
    /// A server with every option at its default (see [`ServerBuilder`]).
    pub fn new() -> Self {
        Server {
            kind: Arc::from("server"),
            local_addr: None,
            options: ServerOptions::default(),
        }
    }

    /// The transport's name, used in default session names (`kind:peer`). Default
    /// `"server"`.
    pub fn kind(mut self, kind: impl AsRef<str>) -> Self {
        self.kind = Arc::from(kind.as_ref());
        self
    }

    /// The address connections are accepted at, as [`ServerHandle::local_addr`] reports
    /// it. Default: `Address::Other(kind)`.
    pub fn local_addr(mut self, addr: impl Into<Address>) -> Self {
        self.local_addr = Some(addr.into());
        self
    }

    /// Accepts from `incoming` until it ends or the server is stopped, running
    /// `new_session` for each connection on the arbiter it is assigned to. Errors from
    /// `incoming` that concern one connection (reset, aborted) are skipped; others are
    /// logged and accepting pauses for 100 ms. Call from within an actix system.
    ///
    /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) when `reuse_port` is set:
    /// the connections come already accepted, so the listening socket is the transport's to
    /// set up.
    pub fn serve<A, S, L, F>(self, incoming: S, new_session: F) -> Result<ServerHandle>
    where
        A: Accepted,
        S: Stream<Item = io::Result<A>> + Unpin + 'static,
        L: EventListener,
        F: NewSession<L>,
    {
        let listens_elsewhere = (
            ServerOption::ReusePort,
            "it takes connections already accepted",
        );
        self.options.refuse("Server::serve", &[listens_elsewhere])?;
        let options = self.options;
        let label = options.metrics_label.as_ref();
        let metrics = EndpointMetrics::register(label, &self.kind, Role::Server);
        let endpoint = Arc::new(EndpointShared::new(options.memory_budget, false, metrics));
        let supervisor = Supervisor::new(endpoint.clone(), &options.session_config).start();
        let pool = Arc::new(ArbiterPool::start(options.workers()));
        let acceptor = Acceptor {
            hook: Arc::new(new_session),
            kind: self.kind.clone(),
            max_connections: options.max_connections(),
            config: options.session_config,
            on_establish_error: options.on_establish_error,
            endpoint: endpoint.clone(),
            supervisor: supervisor.clone(),
            pool: pool.clone(),
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = actix_rt::spawn(acceptor.run(incoming, stop_rx));
        let local_addr = self
            .local_addr
            .unwrap_or_else(|| Address::other(&*self.kind));
        Ok(ServerHandle::new(ServerParts {
            local_addr,
            endpoint,
            supervisor,
            stop_accepting: Some(stop_task(stop_tx, task)),
            after_stop: Some(Box::new(move || {
                pool.stop();
                futures::future::ready(()).boxed_local()
            })),
            transport: None,
        }))
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

/// One step of a server's stop that its transport supplies.
pub(crate) type StopStep = Box<dyn FnOnce() -> LocalBoxFuture<'static, ()> + Send>;

/// What a transport hands over to make its server's [`ServerHandle`].
pub(crate) struct ServerParts {
    /// The address the server is bound to.
    pub(crate) local_addr: Address,
    pub(crate) endpoint: Arc<EndpointShared>,
    pub(crate) supervisor: Addr<Supervisor>,
    /// Stops whatever feeds the server new sessions (an accept loop, a datagram
    /// demultiplexer, an HTTP server's listener), leaving the open sessions be.
    pub(crate) stop_accepting: Option<StopStep>,
    /// Runs once every session is gone (stops worker arbiters, removes a socket file).
    pub(crate) after_stop: Option<StopStep>,
    /// What the transport adds to the handle (the UDP socket), for its own methods.
    pub(crate) transport: Option<Box<dyn Any + Send + Sync>>,
}

/// A stop step that tells a task (an accept loop, a demultiplexer) to end and waits
/// until it has.
pub(crate) fn stop_task(stop: oneshot::Sender<()>, task: JoinHandle<()>) -> StopStep {
    Box::new(move || {
        async move {
            let _ = stop.send(());
            let _ = task.await;
        }
        .boxed_local()
    })
}

struct HandleInner {
    local_addr: Address,
    endpoint: Arc<EndpointShared>,
    supervisor: Addr<Supervisor>,
    stop_accepting: Mutex<Option<StopStep>>,
    after_stop: Mutex<Vec<StopStep>>,
    transport: Option<Box<dyn Any + Send + Sync>>,
}

/// A running server of any transport: TCP, TLS, Unix, UDP, WebSocket, or one of your
/// own through [`Server`]. Cheap to clone; the server runs until [`stop`](Self::stop)
/// (or until the actix system stops, which drops its sessions without `on_close`).
///
/// What a transport adds is reachable here too, documented with that transport: the
/// socket file of a Unix server is its [`local_addr`](Self::local_addr), and a UDP
/// server's traffic counters, multicast groups and shared session are methods of this
/// type (see [`udp`](crate::transport::udp)).
#[derive(Clone)]
pub struct ServerHandle {
    inner: Arc<HandleInner>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.inner.local_addr)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Locks a mutex that no user code runs under, so a poisoned one still holds sound data.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ServerHandle {
    pub(crate) fn new(parts: ServerParts) -> Self {
        ServerHandle {
            inner: Arc::new(HandleInner {
                local_addr: parts.local_addr,
                endpoint: parts.endpoint,
                supervisor: parts.supervisor,
                stop_accepting: Mutex::new(parts.stop_accepting),
                after_stop: Mutex::new(parts.after_stop.into_iter().collect()),
                transport: parts.transport,
            }),
        }
    }

    /// Adds a step to run once every session is gone, after those already there.
    pub(crate) fn after_stop(self, step: StopStep) -> Self {
        lock(&self.inner.after_stop).push(step);
        self
    }

    /// What the transport added to this handle, if it is a `T`.
    pub(crate) fn transport<T: Any>(&self) -> Option<&T> {
        self.inner.transport.as_ref()?.downcast_ref()
    }

    /// The address the server is bound to (the real port when it was given port 0; the
    /// socket file of a Unix server).
    pub fn local_addr(&self) -> &Address {
        &self.inner.local_addr
    }

    /// The IP address and port the server is bound to: that of a TCP, TLS, UDP or
    /// WebSocket server, the address to dial. An error for a server bound to something
    /// else (a Unix socket file, a transport of your own).
    pub fn inet_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr.inet().ok_or_else(|| {
            let msg = format!("{} is not an IP address", self.inner.local_addr);
            io::Error::new(io::ErrorKind::AddrNotAvailable, msg)
        })
    }

    /// Session counters of the server.
    pub fn stats(&self) -> EndpointStats {
        self.inner.endpoint.stats()
    }

    /// Stops taking new sessions (closes the listener, stops reading a per-peer UDP
    /// server's socket, answers WebSocket upgrades no more) and leaves the open sessions
    /// running; [`stop`](Self::stop) closes them later. Resolves once nothing new can
    /// come in. Calling it again does nothing.
    pub async fn stop_accepting(&self) {
        let step = lock(&self.inner.stop_accepting).take();
        if let Some(step) = step {
            step().await;
        }
    }

    /// Drains, for a rolling restart: stops accepting (as
    /// [`stop_accepting`](Self::stop_accepting); with
    /// [`reuse_port`](crate::ServerBuilder::reuse_port) the next process, bound to the
    /// same address, takes the new connections from here on), tells every session
    /// through [`EventListener::on_drain`](crate::EventListener::on_drain) (by default
    /// it closes gracefully: the replies it owes are flushed, then its peer sees the
    /// close and re-dials, to the next process), waits for them to end, and at
    /// `deadline` stops what is left as [`stop`](Self::stop) does. Resolves once every
    /// session is gone; `on_close` runs once for each, as always.
    pub async fn drain(&self, deadline: Duration) {
        self.stop_accepting().await;
        let drained = self.inner.supervisor.send(Drain);
        if tokio::time::timeout(deadline, drained).await.is_err() {
            tracing::info!(
                ?deadline,
                "drain deadline passed; stopping the sessions left"
            );
        }
        self.stop().await;
    }

    /// Stops gracefully: stops accepting (as [`stop_accepting`](Self::stop_accepting)),
    /// abandons connections still establishing, closes every session (each flushes what
    /// it has queued for at most its wait time, then `on_close` runs), and resolves once
    /// all are gone, or at the latest one second after the longest wait time. Calling it
    /// again, or from several clones, waits for the same stop.
    pub async fn stop(&self) {
        self.stop_accepting().await;
        // Fails only when an earlier stop already finished.
        let _ = self.inner.supervisor.send(Shutdown).await;
        let steps = std::mem::take(&mut *lock(&self.inner.after_stop));
        for step in steps {
            step().await;
        }
    }
}
