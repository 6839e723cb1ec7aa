//! The UDP server endpoint: one socket, served as one session (every peer) or as one
//! session per peer address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio_util::codec::Decoder;

use super::codec::Datagrams;
use super::datagram_reader::{DatagramReader, SocketSource};
use super::demux::Demux;
use super::handle::{Counters, UdpServerSocket};
use super::socket::{self, DatagramWriter, Destination, UdpSocketBuilder, UdpSocketOptions};
use crate::defaults::{DEFAULT_MAX_DATAGRAM_SIZE, DEFAULT_PEER_QUEUE};
use crate::endpoint::options::{ServerBuilder, ServerOption, ServerOptions};
use crate::endpoint::server::{stop_task, ServerHandle, ServerParts};
use crate::endpoint::supervisor::{Shutdown, Supervisor};
use crate::endpoint::{run_new_session, EndpointShared, NewSession, SessionSlot};
use crate::error::{BoxError, Result};
use crate::listener::EventListener;
use crate::metrics::{EndpointMetrics, Role};
use crate::session::{start_session, AnySession, ItemReader, SessionSetup};
use crate::transport::Address;
use crate::SessionConfig;

/// Builds and starts a UDP server: one socket, served either as one session for every
/// peer ([`start_shared`](Self::start_shared)) or as one session per peer address
/// ([`start_per_peer`](Self::start_per_peer)). See the [`udp`](crate::transport::udp) module.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use getty::{Datagram, Datagrams, EventListener, LengthDelimited, SessionContext, UdpServer};
///
/// struct Echo;
/// impl EventListener for Echo {
///     type Codec = Datagrams<LengthDelimited>;
///     type Out = Datagram<Bytes>;
///     fn on_message(&mut self, s: &mut SessionContext<'_, Self>, d: Datagram<BytesMut>) {
///         let _ = s.write(Datagram::new(d.peer, d.frame.freeze()));
///     }
/// }
///
/// #[actix::main]
/// async fn main() -> getty::Result<()> {
///     let server = UdpServer::new("127.0.0.1:0")
///         .start_shared(|_| Ok((Echo, Datagrams::new(LengthDelimited::new()))))
///         .await?;
///     let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
///     peer.send_to(b"\0\0\0\x02hi", server.inet_addr()?).await?;
///     let mut buf = [0u8; 64];
///     let (n, _) = peer.recv_from(&mut buf).await?;
///     assert_eq!(&buf[..n], b"\0\0\0\x02hi");
///     server.stop().await;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct UdpServer {
    addr: String,
    max_datagram_size: usize,
    options: ServerOptions,
    socket: UdpSocketOptions,
    peer_queue: usize,
    peer_idle_timeout: Option<Duration>,
}

/// The shared server options. `workers` and `on_establish_error` do not apply to UDP (one
/// socket is read on the arbiter that starts the server, and nothing is established):
/// `start_shared` and `start_per_peer` fail with
/// [`ErrorKind::Config`](crate::ErrorKind::Config) when they are set. `max_connections`
/// bounds the peer sessions of a per-peer server (the first datagram of a new peer past it
/// is dropped and counted in [`EndpointStats::refused`](crate::EndpointStats::refused)); a
/// shared server, with its one session, refuses it too.
impl ServerBuilder for UdpServer {
    fn server_options(&mut self) -> &mut ServerOptions {
        &mut self.options
    }
}

impl UdpSocketBuilder for UdpServer {
    fn udp_socket_options(&mut self) -> &mut UdpSocketOptions {
        &mut self.socket
    }
}

/// Why a UDP server cannot honour these server options.
const NO_WORKERS: (ServerOption, &str) = (
    ServerOption::Workers,
    "one socket is read on the arbiter that starts the server",
);
const NOTHING_TO_ESTABLISH: (ServerOption, &str) = (
    ServerOption::OnEstablishError,
    "a datagram needs no establishing",
);

impl UdpServer {
    /// A server that will bind `addr`, e.g. `"127.0.0.1:7000"`; port 0 picks a free port
    /// (see [`ServerHandle::local_addr`]).
    pub fn new(addr: impl Into<String>) -> Self {
        UdpServer {
            addr: addr.into(),
            max_datagram_size: DEFAULT_MAX_DATAGRAM_SIZE,
            options: ServerOptions::default(),
            socket: UdpSocketOptions::default(),
            peer_queue: DEFAULT_PEER_QUEUE,
            peer_idle_timeout: None,
        }
    }

    /// Longest datagram read or written, in bytes. Default
    /// [`DEFAULT_MAX_DATAGRAM_SIZE`](crate::defaults::DEFAULT_MAX_DATAGRAM_SIZE) (65,507);
    /// at least 1. A longer datagram received is reported and dropped; a longer frame
    /// written is refused with [`ErrorKind::FrameTooLong`](crate::ErrorKind::FrameTooLong).
    pub fn max_datagram_size(mut self, n: usize) -> Self {
        self.max_datagram_size = n.max(1);
        self
    }

    /// Per-peer mode: datagrams that may wait for one peer's session (at least 1).
    /// Default [`DEFAULT_PEER_QUEUE`](crate::defaults::DEFAULT_PEER_QUEUE). Past it that
    /// peer's datagrams are dropped and counted in
    /// [`UdpStats::dropped`](super::UdpStats::dropped); other peers are not held up.
    pub fn peer_queue(mut self, n: usize) -> Self {
        self.peer_queue = n.max(1);
        self
    }

    /// Per-peer mode: close a peer's session once no frame came from it for this long
    /// (it ends with [`ErrorKind::ReadTimeout`](crate::ErrorKind::ReadTimeout), then
    /// `on_close`; the peer's next datagram opens a new session). Sets the sessions'
    /// [`SessionConfig::read_timeout`]. Default: none (set one, or peer sessions live until
    /// the server stops).
    pub fn peer_idle_timeout(mut self, timeout: Duration) -> Self {
        self.peer_idle_timeout = Some(timeout);
        self
    }

    async fn bind(&self) -> Result<(Arc<UdpSocket>, SocketAddr)> {
        let addr = socket::resolve(&self.addr).await?;
        let mut options = self.socket.clone();
        options.reuse_port = self.options.reuse_port;
        let socket = socket::bind(addr, &options)?;
        let local_addr = socket.local_addr()?;
        Ok((Arc::new(socket), local_addr))
    }

    /// Binds, then serves every peer with **one shared** session over the unconnected
    /// socket. Its listener's codec is a [`Datagrams`] adapter: frames arrive as
    /// [`Datagram`](crate::Datagram)s with their source address, and writes name their
    /// destination. The `new_session` hook runs once, here (its refusal is returned);
    /// the session's peer address is `Address::Other("*")`, and
    /// [`ServerHandle::shared_session`] gives its handle. If the session closes, the
    /// server serves no more.
    pub async fn start_shared<L, C, F>(self, new_session: F) -> Result<ServerHandle>
    where
        L: EventListener<Codec = Datagrams<C>>,
        C: Decoder<Item: Send + 'static, Error: Into<BoxError>> + Clone + 'static,
        F: NewSession<L>,
    {
        let one_session = (
            ServerOption::MaxConnections,
            "one session serves every peer (see start_per_peer)",
        );
        let unsupported = [NO_WORKERS, NOTHING_TO_ESTABLISH, one_session];
        self.options
            .refuse("UdpServer::start_shared", &unsupported)?;
        let (socket, local_addr) = self.bind().await?;
        let config = self.options.session_config.clone();
        let (endpoint, supervisor) = start_supervisor(&config, &self.options, false);
        let slot = SessionSlot::new(endpoint.clone(), supervisor.clone());
        // One session serves every peer: its frames carry their own addresses.
        let peer = Address::other("*");
        let mut setup = SessionSetup::new(slot.id(), "udp", local_addr.into(), peer, config);
        let (listener, codec) = match run_new_session(&new_session, &mut setup) {
            Ok(made) => made,
            Err(err) => {
                drop(slot); // released as refused
                supervisor.do_send(Shutdown);
                return Err(err);
            }
        };
        let max = self.max_datagram_size;
        let writer = DatagramWriter::for_session(socket.clone(), Destination::Envelope, max);
        let source = SocketSource::new(socket.clone(), max);
        let session = start_session(
            setup,
            listener,
            codec,
            slot,
            writer,
            ItemReader(|codec, shared, batches| {
                DatagramReader::new(source, codec, shared, batches)
            }),
        );
        tracing::debug!(%local_addr, "udp server bound");
        let udp = UdpServerSocket {
            socket: Arc::downgrade(&socket),
            counters: None,
            shared: Some(AnySession::new(session)),
        };
        Ok(ServerHandle::new(ServerParts {
            local_addr: local_addr.into(),
            endpoint,
            supervisor,
            stop_accepting: None,
            after_stop: None,
            transport: Some(Box::new(udp)),
        }))
    }

    /// Binds, then gives each peer address a session of its own, made on its first
    /// datagram by `new_session` (on this arbiter), which may refuse it (the datagram is
    /// dropped and counted in [`EndpointStats::refused`](crate::EndpointStats::refused);
    /// the peer's next datagram asks again). The listener's codec is a plain one, as
    /// over TCP: each peer session writes to its peer. See
    /// [`max_connections`](ServerBuilder::max_connections),
    /// [`peer_queue`](Self::peer_queue) and [`peer_idle_timeout`](Self::peer_idle_timeout).
    pub async fn start_per_peer<L, F>(self, new_session: F) -> Result<ServerHandle>
    where
        L: EventListener,
        F: NewSession<L>,
    {
        let unsupported = [NO_WORKERS, NOTHING_TO_ESTABLISH];
        self.options
            .refuse("UdpServer::start_per_peer", &unsupported)?;
        let (socket, local_addr) = self.bind().await?;
        let max_peers = self.options.max_connections();
        let mut config = self.options.session_config.clone();
        if let Some(idle) = self.peer_idle_timeout {
            config.read_timeout = Some(idle);
        }
        let (endpoint, supervisor) = start_supervisor(&config, &self.options, true);
        let counters = Arc::new(Counters::default());
        let demux = Demux {
            socket: socket.clone(),
            local_addr,
            hook: Arc::new(new_session),
            config,
            max_datagram: self.max_datagram_size,
            max_peers,
            peer_queue: self.peer_queue,
            peers: HashMap::new(),
            endpoint: endpoint.clone(),
            supervisor: supervisor.clone(),
            counters: counters.clone(),
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = actix_rt::spawn(demux.run(stop_rx));
        tracing::debug!(%local_addr, "udp per-peer server bound");
        let udp = UdpServerSocket {
            socket: Arc::downgrade(&socket),
            counters: Some(counters),
            shared: None,
        };
        Ok(ServerHandle::new(ServerParts {
            local_addr: local_addr.into(),
            endpoint,
            supervisor,
            stop_accepting: Some(stop_task(stop_tx, task)),
            after_stop: None,
            transport: Some(Box::new(udp)),
        }))
    }
}

/// The endpoint and supervisor of a UDP server whose sessions start with `config`;
/// `per_peer`: one that demultiplexes (and may drop datagrams).
fn start_supervisor(
    config: &SessionConfig,
    options: &ServerOptions,
    per_peer: bool,
) -> (Arc<EndpointShared>, Addr<Supervisor>) {
    let label = options.metrics_label.as_ref();
    let metrics = EndpointMetrics::register(label, "udp", Role::UdpServer { per_peer });
    let endpoint = Arc::new(EndpointShared::new(options.memory_budget, false, metrics));
    let supervisor = Supervisor::new(endpoint.clone(), config).start();
    (endpoint, supervisor)
}
