//! The TCP server endpoint: accepts connections and runs a session for each.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr, ArbiterHandle};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::arbiters::{self, ArbiterPool};
use crate::endpoint::{
    open_session, EndpointShared, EndpointStats, NewSession, SessionFactory, SessionSlot,
};
use crate::error::{Error, Result};
use crate::listener::EventListener;
use crate::supervisor::{Shutdown, Supervisor};
use crate::tls::handshake::{HandshakeHook, TlsAccepted};
use crate::tls::TlsServerConfig;
use crate::SessionConfig;

/// Pause after an accept error that is not about one connection (e.g. out of file
/// descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Builds and starts a TCP server (getty's `NewTCPServer`).
///
/// ```no_run
/// # async fn run() -> getty::Result<()> {
/// use bytes::{Bytes, BytesMut};
/// use getty::{EventListener, LengthDelimited, SessionContext, TcpServer};
///
/// struct Echo;
/// impl EventListener for Echo {
///     type Codec = LengthDelimited;
///     type Out = Bytes;
///     fn on_message(&mut self, s: &mut SessionContext<'_, Self>, frame: BytesMut) {
///         let _ = s.write(frame.freeze());
///     }
/// }
///
/// let server = TcpServer::new("127.0.0.1:7000")
///     .workers(2)
///     .max_connections(10_000)
///     .start(|setup| {
///         let max = setup.config().max_frame_length;
///         Ok((Echo, LengthDelimited::with_max_frame_length(max)))
///     })
///     .await?;
/// println!("listening on {}", server.local_addr());
/// server.stop().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TcpServer {
    addr: String,
    workers: usize,
    max_connections: usize,
    nodelay: bool,
    config: SessionConfig,
    tls: Option<TlsServerConfig>,
    on_handshake_error: Option<HandshakeHook>,
}

impl TcpServer {
    /// A server that will listen on `addr` (getty's `WithLocalAddress`), e.g.
    /// `"127.0.0.1:7000"`; port 0 picks a free port (see [`TcpServerHandle::local_addr`]).
    pub fn new(addr: impl Into<String>) -> Self {
        TcpServer {
            addr: addr.into(),
            workers: arbiters::default_size(),
            max_connections: usize::MAX,
            nodelay: true,
            config: SessionConfig::default(),
            tls: None,
            on_handshake_error: None,
        }
    }

    /// Number of arbiters (threads) sessions are spread over, round-robin. Default: one
    /// per core. The arbiter that calls [`start`](Self::start) is the first of them, so
    /// `workers(1)` runs everything on it.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Most sessions open at once; connections past it are closed at once and counted as
    /// refused. Default: unlimited.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets TCP_NODELAY on accepted sockets. Default: on.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// The config each session starts with, before the `new_session` hook changes it.
    /// Default: [`SessionConfig::default`].
    pub fn session_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    /// Serves TLS: every accepted connection first completes a server handshake with
    /// `config` (on the arbiter that will host its session, within the config's
    /// handshake timeout), and its session then runs over the TLS stream. A connection
    /// whose handshake fails or times out is closed, counted in
    /// [`EndpointStats::handshake_failures`], and handed to
    /// [`on_handshake_error`](Self::on_handshake_error); it never reaches `new_session`.
    /// Default: plain TCP.
    pub fn tls(mut self, config: TlsServerConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// Calls `hook` with the [`Error::Tls`] of every failed TLS handshake (a bad or
    /// missing client certificate, a peer that does not speak TLS, a timeout), on the
    /// arbiter that ran the handshake. It must return quickly; a panic in it is caught
    /// and logged. Default: failures are only logged (at debug level) and counted.
    pub fn on_handshake_error(mut self, hook: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.on_handshake_error = Some(HandshakeHook(Arc::new(hook)));
        self
    }

    /// Binds, then accepts until stopped, running `new_session` for each connection on
    /// the arbiter it is assigned to. Call from within an actix system.
    pub async fn start<L, F>(self, new_session: F) -> Result<TcpServerHandle>
    where
        L: EventListener,
        F: NewSession<L>,
    {
        let listener = TcpListener::bind(&self.addr).await?;
        let local_addr = listener.local_addr()?;
        let endpoint = Arc::new(EndpointShared::default());
        let supervisor = Supervisor::new(endpoint.clone(), &self.config).start();
        let pool = Arc::new(ArbiterPool::start(self.workers));
        let acceptor = Acceptor {
            listener,
            hook: Arc::new(new_session),
            config: self.config,
            nodelay: self.nodelay,
            tls: self.tls,
            on_handshake_error: self.on_handshake_error,
            max_connections: self.max_connections,
            endpoint: endpoint.clone(),
            supervisor: supervisor.clone(),
            pool: pool.clone(),
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = actix_rt::spawn(acceptor.run(stop_rx));
        tracing::debug!(%local_addr, "tcp server listening");
        Ok(TcpServerHandle {
            inner: Arc::new(HandleInner {
                local_addr,
                endpoint,
                supervisor,
                pool,
                acceptor: Mutex::new(Some((stop_tx, task))),
            }),
        })
    }
}

struct Acceptor<L: EventListener> {
    listener: TcpListener,
    hook: Arc<SessionFactory<L>>,
    config: SessionConfig,
    nodelay: bool,
    tls: Option<TlsServerConfig>,
    on_handshake_error: Option<HandshakeHook>,
    max_connections: usize,
    endpoint: Arc<EndpointShared>,
    supervisor: Addr<Supervisor>,
    pool: Arc<ArbiterPool>,
}

impl<L: EventListener> Acceptor<L> {
    async fn run(self, mut stop: oneshot::Receiver<()>) {
        loop {
            let accepted = tokio::select! {
                biased;
                _ = &mut stop => return,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => self.dispatch(stream),
                Err(err) if is_per_connection(&err) => {}
                Err(err) => {
                    tracing::warn!(%err, "accept failed; pausing");
                    tokio::select! {
                        _ = &mut stop => return,
                        _ = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                    }
                }
            }
        }
    }

    fn dispatch(&self, stream: TcpStream) {
        if self.endpoint.live() >= self.max_connections {
            self.endpoint.count_refused();
            tracing::debug!("max connections reached; connection refused");
            return; // dropping the stream closes it
        }
        if let Err(err) = stream.set_nodelay(self.nodelay) {
            tracing::debug!(%err, "set_nodelay failed");
        }
        let slot = SessionSlot::new(self.endpoint.clone(), self.supervisor.clone());
        let (index, arbiter) = self.pool.next();
        if let Some(tls) = &self.tls {
            return self.dispatch_tls(stream, tls, arbiter, slot);
        }
        if index == 0 {
            open_session(stream, "tcp", self.config.clone(), &*self.hook, slot);
            return;
        }
        // Another arbiter has its own reactor: move the socket over as a std socket.
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(err) => {
                tracing::debug!(%err, "could not hand the connection to a worker");
                return; // the slot releases itself as refused
            }
        };
        let hook = self.hook.clone();
        let config = self.config.clone();
        // If the arbiter is gone the task is dropped, and with it the slot and socket.
        arbiter.spawn(async move {
            match TcpStream::from_std(std_stream) {
                Ok(stream) => open_session(stream, "tcp", config, &*hook, slot),
                Err(err) => tracing::debug!(%err, "could not register the connection"),
            }
        });
    }

    /// Hands a connection to its arbiter, which runs the TLS handshake and then the
    /// session, or counts and reports the failed handshake.
    fn dispatch_tls(
        &self,
        stream: TcpStream,
        tls: &TlsServerConfig,
        arbiter: &ArbiterHandle,
        slot: SessionSlot,
    ) {
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(err) => {
                tracing::debug!(%err, "could not hand the connection to a worker");
                return; // the slot releases itself as refused
            }
        };
        let accepted = TlsAccepted::new(std_stream, tls.clone());
        let hook = self.hook.clone();
        let config = self.config.clone();
        let endpoint = self.endpoint.clone();
        let on_error = self.on_handshake_error.clone();
        // If the arbiter is gone the task is dropped, and with it the slot and socket.
        arbiter.spawn(async move {
            let established = tokio::select! {
                established = accepted.establish() => established,
                // A stop does not wait for handshakes.
                _ = endpoint.stopped() => return slot.abandon(),
            };
            match established {
                Ok(stream) => open_session(stream, "tls", config, &*hook, slot),
                Err(err) => {
                    let err = err.with_session(slot.id());
                    tracing::debug!(%err, "TLS handshake failed");
                    if let Some(HandshakeHook(on_error)) = on_error {
                        let call = std::panic::AssertUnwindSafe(|| on_error(&err));
                        if std::panic::catch_unwind(call).is_err() {
                            tracing::error!("on_handshake_error panicked");
                        }
                    }
                    slot.handshake_failed();
                }
            }
        });
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
    local_addr: SocketAddr,
    endpoint: Arc<EndpointShared>,
    supervisor: Addr<Supervisor>,
    pool: Arc<ArbiterPool>,
    acceptor: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

/// A running TCP server. Cheap to clone; the server runs until [`stop`](Self::stop) (or
/// until the actix system stops, which drops its sessions without `on_close`).
#[derive(Clone)]
pub struct TcpServerHandle {
    inner: Arc<HandleInner>,
}

impl std::fmt::Debug for TcpServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpServerHandle")
            .field("local_addr", &self.inner.local_addr)
            .field("stats", &self.stats())
            .finish()
    }
}

impl TcpServerHandle {
    /// The address the server is bound to (the real port when it was given port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Session counters of the server.
    pub fn stats(&self) -> EndpointStats {
        self.inner.endpoint.stats()
    }

    /// Stops gracefully: stops accepting, closes every session (each flushes what it has
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
