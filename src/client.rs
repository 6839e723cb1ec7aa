//! The TCP client endpoint: keeps N sessions to one server and re-dials the ones it loses.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use tokio::net::TcpStream;

use crate::arbiters::ArbiterPool;
use crate::endpoint::{
    open_session, EndpointShared, EndpointStats, NewSession, SessionFactory, SessionSlot,
};
use crate::error::{Error, SessionId};
use crate::listener::EventListener;
use crate::reconnect::{Backoff, DEFAULT_MAX_RECONNECT_INTERVAL, DEFAULT_RECONNECT_INTERVAL};
use crate::supervisor::{Redial, Shutdown, Supervisor};
use crate::tls::{handshake, TlsClientConfig};
use crate::SessionConfig;

/// getty's default connect timeout: 3 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What a client tells the application about its connections, so it can decide what to
/// resend: the client never resends anything by itself.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A session opened (its `on_open` succeeded).
    SessionUp {
        /// The new session.
        id: SessionId,
    },
    /// An opened session closed (its `on_close` has run); a re-dial follows.
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

/// Builds and starts a TCP client that keeps a number of sessions to one server
/// (getty's `NewTCPClient`).
///
/// The client's supervisor dials the connection number at start, and whenever a session
/// closes (EOF, reset, timeout, error, refusal) or a dial fails it dials again, after a
/// backoff that starts at the reconnect interval, doubles with each failed round (with
/// jitter) up to a cap, and resets once a session stayed up for ten intervals (at most
/// the cap). A dial counts
/// toward the connection number from the moment it starts, so the client never holds
/// more. It never resends frames: use [`on_event`](Self::on_event) to learn when
/// sessions come and go.
///
/// ```
/// use std::time::Duration;
/// use bytes::{Bytes, BytesMut};
/// use getty::{EventListener, LengthDelimited, SessionContext, TcpClient, TcpServer};
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
/// /// Says hello once connected, and prints what comes back.
/// struct Hello;
/// impl EventListener for Hello {
///     type Codec = LengthDelimited;
///     type Out = Bytes;
///     fn on_open(&mut self, s: &mut SessionContext<'_, Self>) -> getty::Result<()> {
///         s.write(Bytes::from_static(b"hello"))
///     }
///     fn on_message(&mut self, s: &mut SessionContext<'_, Self>, frame: BytesMut) {
///         assert_eq!(&frame[..], b"hello");
///         s.set_attribute("answered", true);
///     }
/// }
///
/// #[actix::main]
/// async fn main() -> getty::Result<()> {
///     let server = TcpServer::new("127.0.0.1:0")
///         .start(|_| Ok((Echo, LengthDelimited::new())))
///         .await?;
///     let client = TcpClient::new(server.local_addr().to_string())
///         .connections(2)
///         .reconnect_interval(Duration::from_millis(100))
///         .start(|_| Ok((Hello, LengthDelimited::new())));
///     while client.stats().open_sessions < 2 {
///         tokio::time::sleep(Duration::from_millis(10)).await;
///     }
///     client.stop().await; // no re-dial; every session flushes and closes
///     server.stop().await;
///     Ok(())
/// }
/// ```
pub struct TcpClient {
    addr: String,
    connections: usize,
    reconnect_interval: Duration,
    max_reconnect_interval: Duration,
    workers: usize,
    nodelay: bool,
    connect_timeout: Duration,
    config: SessionConfig,
    tls: Option<TlsClientConfig>,
    events: Option<EventHook>,
}

impl std::fmt::Debug for TcpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpClient")
            .field("addr", &self.addr)
            .field("connections", &self.connections)
            .field("reconnect_interval", &self.reconnect_interval)
            .field("max_reconnect_interval", &self.max_reconnect_interval)
            .field("workers", &self.workers)
            .field("connect_timeout", &self.connect_timeout)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl TcpClient {
    /// A client of the server at `addr` (getty's `WithServerAddress`), e.g.
    /// `"127.0.0.1:7000"`; resolved at every dial.
    pub fn new(addr: impl Into<String>) -> Self {
        TcpClient {
            addr: addr.into(),
            connections: 1,
            reconnect_interval: DEFAULT_RECONNECT_INTERVAL,
            max_reconnect_interval: DEFAULT_MAX_RECONNECT_INTERVAL,
            workers: 1,
            nodelay: true,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            config: SessionConfig::default(),
            tls: None,
            events: None,
        }
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

    /// Sets TCP_NODELAY on dialed sockets. Default: on.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// How long one dial may take. Default 3 s (getty's).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The config each session starts with, before the `new_session` hook changes it.
    pub fn session_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    /// Speaks TLS: after each connect, the client runs a TLS handshake with `config`
    /// (within the config's handshake timeout) and the session runs over the TLS
    /// stream. A failed handshake is a failed dial: [`ClientEvent::DialFailed`] with an
    /// [`Error::Tls`] that says why, counted in both `connect_failures` and
    /// `handshake_failures`, and re-dialed after the backoff. Default: plain TCP.
    pub fn tls(mut self, config: TlsClientConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// Calls `hook` on the client's supervisor (the arbiter that called
    /// [`start`](Self::start)) each time a session comes up or goes down or a dial fails.
    /// It must return quickly.
    pub fn on_event(mut self, hook: impl Fn(ClientEvent) + 'static) -> Self {
        self.events = Some(Box::new(hook));
        self
    }

    /// Starts dialing. Call from within an actix system; the client runs until
    /// [`TcpClientHandle::stop`] or until every handle is dropped.
    pub fn start<L, F>(self, new_session: F) -> TcpClientHandle
    where
        L: EventListener,
        F: NewSession<L>,
    {
        let endpoint = Arc::new(EndpointShared::default());
        let pool = Arc::new(ArbiterPool::start(self.workers));
        let dialer = Dialer {
            addr: Arc::from(self.addr),
            connect_timeout: self.connect_timeout,
            nodelay: self.nodelay,
            config: self.config.clone(),
            tls: self.tls,
            hook: Arc::new(new_session),
            endpoint: endpoint.clone(),
        };
        let seed = crate::clock::now_ms() ^ (Arc::as_ptr(&endpoint) as u64);
        let redial = Redial {
            wanted: self.connections,
            dial: Box::new({
                let pool = pool.clone();
                move |slot| {
                    let (_, arbiter) = pool.next();
                    // If the arbiter is gone the future is dropped with its slot, which
                    // counts as a failed dial.
                    arbiter.spawn(dialer.clone().dial(slot));
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
        TcpClientHandle {
            inner: Arc::new(HandleInner {
                endpoint,
                supervisor,
            }),
        }
    }
}

/// Everything one dial needs, cheap to clone into each dial task.
struct Dialer<L: EventListener> {
    addr: Arc<str>,
    connect_timeout: Duration,
    nodelay: bool,
    config: SessionConfig,
    tls: Option<TlsClientConfig>,
    hook: Arc<SessionFactory<L>>,
    endpoint: Arc<EndpointShared>,
}

impl<L: EventListener> Clone for Dialer<L> {
    fn clone(&self) -> Self {
        Dialer {
            addr: self.addr.clone(),
            connect_timeout: self.connect_timeout,
            nodelay: self.nodelay,
            config: self.config.clone(),
            tls: self.tls.clone(),
            hook: self.hook.clone(),
            endpoint: self.endpoint.clone(),
        }
    }
}

impl<L: EventListener> Dialer<L> {
    async fn dial(self, slot: SessionSlot) {
        let connect = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&*self.addr));
        let connected = tokio::select! {
            connected = connect => connected,
            _ = self.endpoint.stopped() => return slot.abandon(),
        };
        let stream = match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return slot.dial_failed(Error::from(err)),
            Err(_) => {
                let msg = format!(
                    "connect to {} timed out after {:?}",
                    self.addr, self.connect_timeout
                );
                return slot.dial_failed(Error::from(io::Error::new(io::ErrorKind::TimedOut, msg)));
            }
        };
        if self.endpoint.is_stopping() {
            return slot.abandon();
        }
        if let Err(err) = stream.set_nodelay(self.nodelay) {
            tracing::debug!(%err, "set_nodelay failed");
        }
        match &self.tls {
            Some(tls) => self.handshake(stream, tls, slot).await,
            None => open_session(stream, "tcp-client", self.config, &*self.hook, slot),
        }
    }

    /// Runs the TLS handshake over a fresh connection, then the session; a failed
    /// handshake is a failed dial.
    async fn handshake(&self, stream: TcpStream, tls: &TlsClientConfig, slot: SessionSlot) {
        let established = tokio::select! {
            established = handshake::connect(tls, &self.addr, stream) => established,
            _ = self.endpoint.stopped() => return slot.abandon(),
        };
        match established {
            Ok(stream) => {
                open_session(stream, "tls-client", self.config.clone(), &*self.hook, slot)
            }
            Err(err) => {
                // Like every failed dial, it names no session: none was started.
                self.endpoint.count_handshake_failure();
                slot.dial_failed(err);
            }
        }
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

/// A running TCP client. Cheap to clone; when the last clone is dropped the client
/// stops (gracefully, in the background).
#[derive(Clone)]
pub struct TcpClientHandle {
    inner: Arc<HandleInner>,
}

impl std::fmt::Debug for TcpClientHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpClientHandle")
            .field("stats", &self.stats())
            .finish()
    }
}

impl TcpClientHandle {
    /// Sessions held, dials and failures so far.
    pub fn stats(&self) -> EndpointStats {
        self.inner.endpoint.stats()
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
