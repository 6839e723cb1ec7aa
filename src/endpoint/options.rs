//! The options every server and every client shares, kept by value in one type per side
//! ([`ServerOptions`], [`ClientOptions`]) and set through one trait per side
//! ([`ServerBuilder`], [`ClientBuilder`]). A builder of any transport, the crate's or
//! yours, gets them all by implementing one method, so adding an option touches this
//! file alone.
//!
//! An option a transport cannot honour is not ignored: the endpoint's `start` fails with
//! [`ErrorKind::Config`](crate::ErrorKind::Config) naming it.

use std::sync::Arc;
use std::time::Duration;

use crate::config::SessionConfig;
use crate::defaults;
use crate::endpoint::client::ClientEvent;
use crate::error::{Error, Result};

/// A hook told about accepted connections that failed to establish.
pub(crate) type EstablishHook = Arc<dyn Fn(&Error) + Send + Sync>;

/// A hook told about a client's sessions and dials.
pub(crate) type EventHook = Box<dyn Fn(ClientEvent)>;

/// The options every server shares; see [`ServerBuilder`] for each one and its default.
#[derive(Clone)]
pub struct ServerOptions {
    pub(crate) workers: Option<usize>,
    pub(crate) max_connections: Option<usize>,
    pub(crate) session_config: SessionConfig,
    pub(crate) memory_budget: usize,
    pub(crate) on_establish_error: Option<EstablishHook>,
    pub(crate) reuse_port: bool,
    pub(crate) metrics_label: Option<Arc<str>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            workers: None,
            max_connections: None,
            session_config: SessionConfig::default(),
            memory_budget: defaults::DEFAULT_MEMORY_BUDGET,
            on_establish_error: None,
            reuse_port: false,
            metrics_label: None,
        }
    }
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("workers", &self.workers())
            .field("max_connections", &self.max_connections())
            .field("session_config", &self.session_config)
            .field("memory_budget", &self.memory_budget)
            .field("on_establish_error", &self.on_establish_error.is_some())
            .field("reuse_port", &self.reuse_port)
            .field("metrics_label", &self.metrics_label)
            .finish()
    }
}

impl ServerOptions {
    /// Arbiters sessions are spread over: as set, or one per core.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(defaults::server_workers)
    }

    /// Most sessions alive at once: as set, or unlimited.
    pub fn max_connections(&self) -> usize {
        self.max_connections.unwrap_or(usize::MAX)
    }

    /// The config each session starts with.
    pub fn session_config(&self) -> &SessionConfig {
        &self.session_config
    }

    /// The endpoint's memory budget in bytes.
    pub fn memory_budget(&self) -> usize {
        self.memory_budget
    }

    /// The `endpoint` label of the server's metrics, if one was set (otherwise its
    /// transport kind; see [`ServerBuilder::metrics_label`]).
    pub fn metrics_label(&self) -> Option<&str> {
        self.metrics_label.as_deref()
    }

    /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) for each option in
    /// `unsupported` that was set: `endpoint` cannot honour it, for the reason given beside
    /// it.
    pub(crate) fn refuse(
        &self,
        endpoint: &str,
        unsupported: &[(ServerOption, &str)],
    ) -> Result<()> {
        for (option, why) in unsupported {
            let set = match option {
                ServerOption::Workers => self.workers.is_some(),
                ServerOption::MaxConnections => self.max_connections.is_some(),
                ServerOption::OnEstablishError => self.on_establish_error.is_some(),
                ServerOption::ReusePort => self.reuse_port,
            };
            if set {
                return Err(Error::config(format!(
                    "{endpoint} cannot honour `{}`: {why}",
                    option.name()
                )));
            }
        }
        Ok(())
    }
}

/// A server option that some transport cannot honour.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ServerOption {
    Workers,
    MaxConnections,
    OnEstablishError,
    ReusePort,
}

impl ServerOption {
    fn name(self) -> &'static str {
        match self {
            ServerOption::Workers => "workers",
            ServerOption::MaxConnections => "max_connections",
            ServerOption::OnEstablishError => "on_establish_error",
            ServerOption::ReusePort => "reuse_port",
        }
    }
}

/// The options every server builder has, by value in its [`ServerOptions`]. Implemented
/// by [`Server`](crate::Server) and every transport's server builder; a transport of
/// your own gets them all by implementing [`server_options`](Self::server_options).
///
/// ```
/// use getty::{Server, ServerBuilder, ServerOptions};
///
/// /// A server builder for some transport of yours.
/// pub struct PipeServer {
///     server: Server,
/// }
///
/// impl ServerBuilder for PipeServer {
///     fn server_options(&mut self) -> &mut ServerOptions {
///         self.server.server_options()
///     }
/// }
///
/// let mut built = PipeServer { server: Server::new() }.workers(2).max_connections(10);
/// assert_eq!(built.server_options().max_connections(), 10);
/// ```
pub trait ServerBuilder: Sized {
    /// The options this builder keeps.
    fn server_options(&mut self) -> &mut ServerOptions;

    /// Number of arbiters (threads) sessions are spread over, round-robin. Default: one
    /// per core ([`server_workers`](crate::defaults::server_workers)). The arbiter that
    /// calls `start` is the first of them, so `workers(1)` runs everything on it.
    fn workers(mut self, n: usize) -> Self {
        self.server_options().workers = Some(n.max(1));
        self
    }

    /// Most sessions alive at once (including those still establishing); connections
    /// past it are closed at once and counted as refused. Default: unlimited.
    fn max_connections(mut self, n: usize) -> Self {
        self.server_options().max_connections = Some(n);
        self
    }

    /// The config each session starts with, before the `new_session` hook changes it.
    /// Default: [`SessionConfig::default`].
    fn session_config(mut self, config: SessionConfig) -> Self {
        self.server_options().session_config = config;
        self
    }

    /// The memory budget of the endpoint: how many bytes all its sessions together may
    /// hold buffered (write queues, frames read and not yet handled, datagrams queued
    /// for per-peer sessions). Once they hold it, a session at its fair share (the
    /// budget over the number of sessions) is held back: its writes fail with
    /// [`ErrorKind::MemoryBudget`](crate::ErrorKind::MemoryBudget) and its reading pauses,
    /// while the others go on. Default
    /// [`DEFAULT_MEMORY_BUDGET`](crate::defaults::DEFAULT_MEMORY_BUDGET) (256 MiB).
    fn memory_budget(mut self, bytes: usize) -> Self {
        self.server_options().memory_budget = bytes;
        self
    }

    /// Sets SO_REUSEPORT on the listening socket, so that another process (the next
    /// version of this one) can bind the same address while this one still serves: the
    /// way to a rolling restart, with [`ServerHandle::drain`](crate::ServerHandle::drain)
    /// on the old process. TCP, TLS, WebSocket and UDP servers; others refuse it with
    /// [`ErrorKind::Config`](crate::ErrorKind::Config). Default: off.
    fn reuse_port(mut self, on: bool) -> Self {
        self.server_options().reuse_port = on;
        self
    }

    /// The value of the `endpoint` label on this server's metrics (see
    /// [`crate::metrics`] for the metrics and how to export them), so that an operator
    /// tells apart the servers of one process: `.metrics_label("chat")`. Recorded only
    /// once the application installed a `metrics` recorder, before `start`. Default:
    /// the transport kind, `tcp`, `tls`, `unix`, `udp` or `ws` (servers with the same
    /// label add up into the same series).
    fn metrics_label(mut self, label: impl Into<String>) -> Self {
        self.server_options().metrics_label = Some(Arc::from(label.into()));
        self
    }

    /// Calls `hook`, on the session's arbiter, for every accepted connection whose
    /// establishing failed (a TLS handshake, say); such connections never open a session
    /// and are counted in
    /// [`EndpointStats::establish_failures`](crate::EndpointStats::establish_failures).
    /// It must return quickly. Default: none.
    fn on_establish_error(mut self, hook: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.server_options().on_establish_error = Some(Arc::new(hook));
        self
    }
}

/// The options every client shares; see [`ClientBuilder`] for each one and its default.
pub struct ClientOptions {
    pub(crate) connections: usize,
    pub(crate) reconnect_interval: Duration,
    pub(crate) max_reconnect_interval: Duration,
    pub(crate) workers: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) session_config: SessionConfig,
    pub(crate) memory_budget: usize,
    pub(crate) on_event: Option<EventHook>,
    pub(crate) max_reconnect_attempts: Option<u32>,
    pub(crate) metrics_label: Option<Arc<str>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connections: defaults::DEFAULT_CONNECTIONS,
            reconnect_interval: defaults::DEFAULT_RECONNECT_INTERVAL,
            max_reconnect_interval: defaults::DEFAULT_MAX_RECONNECT_INTERVAL,
            workers: defaults::DEFAULT_CLIENT_WORKERS,
            connect_timeout: defaults::DEFAULT_CONNECT_TIMEOUT,
            session_config: SessionConfig::default(),
            memory_budget: defaults::DEFAULT_MEMORY_BUDGET,
            on_event: None,
            max_reconnect_attempts: None,
            metrics_label: None,
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("connections", &self.connections)
            .field("reconnect_interval", &self.reconnect_interval)
            .field("max_reconnect_interval", &self.max_reconnect_interval)
            .field("workers", &self.workers)
            .field("connect_timeout", &self.connect_timeout)
            .field("session_config", &self.session_config)
            .field("memory_budget", &self.memory_budget)
            .field("on_event", &self.on_event.is_some())
            .field("max_reconnect_attempts", &self.max_reconnect_attempts)
            .field("metrics_label", &self.metrics_label)
            .finish()
    }
}

impl ClientOptions {
    /// How many sessions the client keeps.
    pub fn connections(&self) -> usize {
        self.connections
    }

    /// How long one dial may take, handshakes included.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The config each session starts with.
    pub fn session_config(&self) -> &SessionConfig {
        &self.session_config
    }

    /// The `endpoint` label of the client's metrics, if one was set (otherwise its
    /// transport kind; see [`ClientBuilder::metrics_label`]).
    pub fn metrics_label(&self) -> Option<&str> {
        self.metrics_label.as_deref()
    }
}

/// The options every client builder has, by value in its [`ClientOptions`]. Implemented
/// by [`Client`](crate::Client) and every transport's client builder; a transport of your
/// own gets them all by implementing [`client_options`](Self::client_options).
///
/// ```
/// use getty::{Client, ClientBuilder, ClientOptions};
///
/// /// A client builder for some transport of yours.
/// pub struct PipeClient {
///     client: Client,
/// }
///
/// impl ClientBuilder for PipeClient {
///     fn client_options(&mut self) -> &mut ClientOptions {
///         self.client.client_options()
///     }
/// }
///
/// let mut built = PipeClient { client: Client::new() }.connections(4);
/// assert_eq!(built.client_options().connections(), 4);
/// ```
pub trait ClientBuilder: Sized {
    /// The options this builder keeps.
    fn client_options(&mut self) -> &mut ClientOptions;

    /// How many sessions to keep (getty's `WithConnectionNumber`). Default
    /// [`DEFAULT_CONNECTIONS`](crate::defaults::DEFAULT_CONNECTIONS) (1).
    fn connections(mut self, n: usize) -> Self {
        self.client_options().connections = n;
        self
    }

    /// First delay before re-dialing (getty's `WithReconnectInterval`). Default
    /// [`DEFAULT_RECONNECT_INTERVAL`](crate::defaults::DEFAULT_RECONNECT_INTERVAL)
    /// (300 ms).
    fn reconnect_interval(mut self, interval: Duration) -> Self {
        self.client_options().reconnect_interval = interval;
        self
    }

    /// Cap on the delay between dial rounds; at least the reconnect interval. A session
    /// that stays up for ten intervals (at most the cap) resets the backoff to the
    /// interval. Default
    /// [`DEFAULT_MAX_RECONNECT_INTERVAL`](crate::defaults::DEFAULT_MAX_RECONNECT_INTERVAL)
    /// (10 s).
    fn max_reconnect_interval(mut self, cap: Duration) -> Self {
        self.client_options().max_reconnect_interval = cap;
        self
    }

    /// Arbiters (threads) the sessions are spread over, round-robin; the calling arbiter
    /// is the first. Default
    /// [`DEFAULT_CLIENT_WORKERS`](crate::defaults::DEFAULT_CLIENT_WORKERS) (1): a
    /// client's sessions are few.
    fn workers(mut self, n: usize) -> Self {
        self.client_options().workers = n.max(1);
        self
    }

    /// How long one dial may take, handshakes included. Default
    /// [`DEFAULT_CONNECT_TIMEOUT`](crate::defaults::DEFAULT_CONNECT_TIMEOUT) (3 s,
    /// getty's).
    fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.client_options().connect_timeout = timeout;
        self
    }

    /// The config each session starts with, before the `new_session` hook changes it.
    /// Default: [`SessionConfig::default`].
    fn session_config(mut self, config: SessionConfig) -> Self {
        self.client_options().session_config = config;
        self
    }

    /// The memory budget of the endpoint, as for servers (see
    /// [`ServerBuilder::memory_budget`]). Default
    /// [`DEFAULT_MEMORY_BUDGET`](crate::defaults::DEFAULT_MEMORY_BUDGET) (256 MiB).
    fn memory_budget(mut self, bytes: usize) -> Self {
        self.client_options().memory_budget = bytes;
        self
    }

    /// Gives up after `n` dials in a row failed to connect (getty's bounded reconnect):
    /// the client dials no more, tells [`ClientEvent::GaveUp`] with the last error, and
    /// its [`EndpointStats::gave_up`](crate::EndpointStats::gave_up) is set. A dial that
    /// opens a session starts the count over; with `connections(k)`, a round of dials
    /// counts `k`. 0, or not set: never give up (the default, as getty).
    fn max_reconnect_attempts(mut self, n: u32) -> Self {
        self.client_options().max_reconnect_attempts = (n > 0).then_some(n);
        self
    }

    /// The value of the `endpoint` label on this client's metrics (see
    /// [`crate::metrics`]): sessions, traffic, dials, reconnects and the backoff, e.g.
    /// `.metrics_label("backend")`. Recorded only once the application installed a
    /// `metrics` recorder, before `start`. Default: the transport kind, `tcp-client`,
    /// `tls-client`, `unix-client`, `udp-client` or `ws-client`.
    fn metrics_label(mut self, label: impl Into<String>) -> Self {
        self.client_options().metrics_label = Some(Arc::from(label.into()));
        self
    }

    /// Calls `hook` on the client's supervisor (the arbiter that called `start`) each
    /// time a session comes up or goes down or a dial fails. It must return quickly.
    /// Default: none.
    fn on_event(mut self, hook: impl Fn(ClientEvent) + 'static) -> Self {
        self.client_options().on_event = Some(Box::new(hook));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    struct Builder(ServerOptions);

    impl ServerBuilder for Builder {
        fn server_options(&mut self) -> &mut ServerOptions {
            &mut self.0
        }
    }

    #[test]
    fn an_option_set_where_it_cannot_be_honoured_is_an_error_naming_it() {
        let why = [(ServerOption::Workers, "one socket")];
        let unset = Builder(ServerOptions::default());
        assert!(unset.0.refuse("UdpServer", &why).is_ok());
        let set = Builder(ServerOptions::default()).workers(2);
        let err = set.0.refuse("UdpServer", &why).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Config { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "invalid options: UdpServer cannot honour `workers`: one socket"
        );
    }

    #[test]
    fn unset_options_read_as_their_defaults() {
        let options = ServerOptions::default();
        assert_eq!(options.workers(), defaults::server_workers());
        assert_eq!(options.max_connections(), usize::MAX);
        let options = Builder(options).workers(0).max_connections(5).0;
        assert_eq!((options.workers(), options.max_connections()), (1, 5));
        assert_eq!(options.metrics_label(), None);
        let options = Builder(options).metrics_label("chat").0;
        assert_eq!(options.metrics_label(), Some("chat"));
    }
}
