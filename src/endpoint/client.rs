//! The client endpoint over any transport: keeps N sessions and re-dials the ones it loses.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use futures::future::LocalBoxFuture;
use futures::FutureExt;

use crate::endpoint::arbiters::ArbiterPool;
use crate::endpoint::options::{ClientBuilder, ClientOptions};
use crate::endpoint::reconnect::Backoff;
use crate::endpoint::supervisor::{Redial, Shutdown, Supervisor};
use crate::endpoint::{
    open_session, EndpointShared, EndpointStats, NewSession, SessionFactory, SessionSlot,
};
use crate::error::{Error, Result};
use crate::listener::EventListener;
use crate::metrics::{EndpointMetrics, Role};
use crate::session::{AnySession, SessionId};
use crate::transport::Address;
use crate::transport::Transport;

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
    /// A dial failed to connect; another follows after the backoff (unless it was the
    /// last one [`max_reconnect_attempts`](ClientBuilder::max_reconnect_attempts)
    /// allows, when [`GaveUp`](Self::GaveUp) follows).
    DialFailed {
        /// Why.
        error: Error,
    },
    /// The client met its [`max_reconnect_attempts`](ClientBuilder::max_reconnect_attempts):
    /// that many dials in a row failed, and it dials no more. Sessions still open stay
    /// open; [`EndpointStats::gave_up`] says so from now on. Stop the client (or drop
    /// its handles) and start a new one to try again.
    GaveUp {
        /// The failed dials in a row.
        failed_dials: u32,
        /// The last dial's error.
        error: Error,
    },
}

pub(crate) use crate::endpoint::options::EventHook;

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
/// [`on_event`](ClientBuilder::on_event) to learn when sessions come and go.
pub struct Client {
    kind: Arc<str>,
    options: ClientOptions,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("kind", &self.kind)
            .field("options", &self.options)
            .finish()
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientBuilder for Client {
    fn client_options(&mut self) -> &mut ClientOptions {
        &mut self.options
    }
}

impl Client {
    /// A client with every option at its default (see [`ClientBuilder`]): one
    /// connection, 300 ms reconnect interval, 3 s connect timeout, one arbiter.
    pub fn new() -> Self {
        Client {
            kind: Arc::from("client"),
            options: ClientOptions::default(),
        }
    }

    /// The options as set so far.
    pub(crate) fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The transport's name, used in default session names (`kind:peer`). Default
    /// `"client"`.
    pub fn kind(mut self, kind: impl AsRef<str>) -> Self {
        self.kind = Arc::from(kind.as_ref());
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
        let config = self.options.session_config.clone();
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
        let options = self.options;
        let label = options.metrics_label.as_ref();
        let metrics = EndpointMetrics::register(label, &self.kind, Role::Client);
        let endpoint = Arc::new(EndpointShared::new(options.memory_budget, true, metrics));
        let pool = Arc::new(ArbiterPool::start(options.workers));
        let dialer = Dialer {
            dial: Arc::new(move || dial().boxed_local()),
            open: Arc::new(open),
            kind: self.kind,
            connect_timeout: options.connect_timeout,
            endpoint: endpoint.clone(),
        };
        let seed = crate::clock::now_ms() ^ (Arc::as_ptr(&endpoint) as u64);
        let redial = Redial {
            wanted: options.connections,
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
            backoff: Backoff::new(
                options.reconnect_interval,
                options.max_reconnect_interval,
                seed,
            ),
            events: options.on_event,
            timer: None,
            max_failed_dials: options.max_reconnect_attempts,
            failed_in_a_row: 0,
            gave_up: false,
            dialed: false,
        };
        let supervisor = Supervisor::new(endpoint.clone(), &options.session_config)
            .with_redial(redial)
            .on_stopped(move || pool.stop())
            .start();
        ClientHandle::new(endpoint, supervisor)
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
