//! The UDP server endpoint: one socket, served as one session (every peer) or as one
//! session per peer address.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use actix::{Actor, Addr};
use socket2::SockRef;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::codec::Decoder;

use super::codec::{Datagrams, Plain, ENVELOPE_LEN};
use super::datagram_reader::{
    is_retry, received, DatagramReader, Incoming, QueueSource, SocketSource,
};
use super::socket::{self, DatagramWriter, Destination, SocketOptions};
use crate::defaults::{DEFAULT_MAX_DATAGRAM_SIZE, DEFAULT_PEER_QUEUE};
use crate::endpoint::supervisor::{Shutdown, Supervisor};
use crate::endpoint::{
    prepare_session, run_new_session, EndpointShared, EndpointStats, NewSession, SessionFactory,
    SessionSlot,
};
use crate::error::{BoxError, Error, Result};
use crate::listener::EventListener;
use crate::session::{
    start_session_with, MessageLimit, Session, SessionSetup, SessionShared, SessionWriter,
};
use crate::transport::Address;
use crate::SessionConfig;

/// How often the demultiplexer forgets peers whose session has ended.
const SWEEP_PERIOD: Duration = Duration::from_secs(1);
/// Pause after a receive error that is not about one datagram, so the loop cannot spin.
const RECV_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Builds and starts a UDP server: one socket, served either as one session for every
/// peer ([`start`](Self::start)) or as one session per peer address
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
///     let (server, _session) = UdpServer::new("127.0.0.1:0")
///         .start(|_| Ok((Echo, Datagrams::new(LengthDelimited::new()))))
///         .await?;
///     let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
///     peer.send_to(b"\0\0\0\x02hi", server.local_addr()).await?;
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
    config: SessionConfig,
    memory_budget: usize,
    socket: SocketOptions,
    max_peers: usize,
    peer_queue: usize,
    peer_idle_timeout: Option<Duration>,
}

impl UdpServer {
    /// A server that will bind `addr`, e.g. `"127.0.0.1:7000"`; port 0 picks a free port
    /// (see [`UdpServerHandle::local_addr`]).
    pub fn new(addr: impl Into<String>) -> Self {
        UdpServer {
            addr: addr.into(),
            max_datagram_size: DEFAULT_MAX_DATAGRAM_SIZE,
            config: SessionConfig::default(),
            memory_budget: crate::defaults::DEFAULT_MEMORY_BUDGET,
            socket: SocketOptions::default(),
            max_peers: usize::MAX,
            peer_queue: DEFAULT_PEER_QUEUE,
            peer_idle_timeout: None,
        }
    }

    /// Longest datagram read or written, in bytes. Default
    /// [`DEFAULT_MAX_DATAGRAM_SIZE`](crate::defaults::DEFAULT_MAX_DATAGRAM_SIZE) (65,507);
    /// at least 1. A longer datagram received is reported and dropped; a longer frame
    /// written is refused with [`Error::FrameTooLong`].
    pub fn max_datagram_size(mut self, n: usize) -> Self {
        self.max_datagram_size = n.max(1);
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

    /// Sets SO_REUSEADDR before binding, so several sockets (in this process or others)
    /// can bind the same port, e.g. to receive the same multicast group. Default: off.
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.socket.reuse_address = on;
        self
    }

    /// The socket's receive buffer size (SO_RCVBUF). Default: the OS's.
    pub fn recv_buffer_size(mut self, bytes: usize) -> Self {
        self.socket.recv_buffer = Some(bytes);
        self
    }

    /// The socket's send buffer size (SO_SNDBUF). Default: the OS's.
    pub fn send_buffer_size(mut self, bytes: usize) -> Self {
        self.socket.send_buffer = Some(bytes);
        self
    }

    /// Joins the IPv4 multicast `group` on the interface with address `interface`
    /// (`Ipv4Addr::UNSPECIFIED`: the OS picks) once bound. May be given several times.
    pub fn join_multicast_v4(mut self, group: Ipv4Addr, interface: Ipv4Addr) -> Self {
        self.socket.multicast.join_v4.push((group, interface));
        self
    }

    /// Joins the IPv6 multicast `group` on the interface with index `interface` (0: the
    /// OS picks) once bound. May be given several times.
    pub fn join_multicast_v6(mut self, group: Ipv6Addr, interface: u32) -> Self {
        self.socket.multicast.join_v6.push((group, interface));
        self
    }

    /// The interface multicast datagrams are sent from, by address (IPv4 sockets).
    /// Default: the OS's choice, by its routes.
    pub fn multicast_interface_v4(mut self, interface: Ipv4Addr) -> Self {
        self.socket.multicast.interface_v4 = Some(interface);
        self
    }

    /// The interface multicast datagrams are sent from, by index (IPv6 sockets).
    /// Default: the OS's choice.
    pub fn multicast_interface_v6(mut self, interface: u32) -> Self {
        self.socket.multicast.interface_v6 = Some(interface);
        self
    }

    /// Whether multicast datagrams this socket sends are looped back to receivers on
    /// this host (IP_MULTICAST_LOOP or IPV6_MULTICAST_LOOP, by the socket's family).
    /// Default: the OS's (on).
    pub fn multicast_loop(mut self, on: bool) -> Self {
        self.socket.multicast.loopback = Some(on);
        self
    }

    /// TTL (IPv4) or hop limit (IPv6) of multicast datagrams sent. Default: the OS's (1).
    pub fn multicast_ttl(mut self, ttl: u32) -> Self {
        self.socket.multicast.ttl = Some(ttl);
        self
    }

    /// Per-peer mode: most peer sessions at once. The first datagram of a new peer past
    /// it is dropped and counted in [`EndpointStats::refused`]. Default: unlimited.
    pub fn max_peers(mut self, n: usize) -> Self {
        self.max_peers = n;
        self
    }

    /// Per-peer mode: datagrams that may wait for one peer's session (at least 1).
    /// Default [`DEFAULT_PEER_QUEUE`](crate::defaults::DEFAULT_PEER_QUEUE). Past it that peer's datagrams are dropped and
    /// counted in [`UdpStats::dropped`]; other peers are not held up.
    pub fn peer_queue(mut self, n: usize) -> Self {
        self.peer_queue = n.max(1);
        self
    }

    /// Per-peer mode: close a peer's session once no frame came from it for this long
    /// (it ends with [`Error::ReadTimeout`], then `on_close`; the peer's next datagram
    /// opens a new session). Sets the sessions' [`SessionConfig::read_timeout`].
    /// Default: none (set one, or peer sessions live until the server stops).
    pub fn peer_idle_timeout(mut self, timeout: Duration) -> Self {
        self.peer_idle_timeout = Some(timeout);
        self
    }

    async fn bind(&self) -> Result<(Arc<UdpSocket>, SocketAddr)> {
        let addr = socket::resolve(&self.addr).await?;
        let socket = socket::bind(addr, &self.socket)?;
        let local_addr = socket.local_addr()?;
        Ok((Arc::new(socket), local_addr))
    }

    /// Binds, then serves every peer with **one** session over the unconnected socket.
    /// Its listener's codec is a [`Datagrams`] adapter: frames arrive as
    /// [`Datagram`](crate::Datagram)s with their source address, and writes name their
    /// destination. Returns the server and that session. The `new_session` hook runs
    /// once, here (its refusal is returned); the session's peer address is
    /// `Address::Other("*")`. If the session closes, the server serves no more.
    pub async fn start<L, C, F>(self, new_session: F) -> Result<(UdpServerHandle, Session<L::Out>)>
    where
        L: EventListener<Codec = Datagrams<C>>,
        C: Decoder<Item: Send + 'static, Error: Into<BoxError>> + Clone + 'static,
        F: NewSession<L>,
    {
        let (socket, local_addr) = self.bind().await?;
        let (endpoint, supervisor) = start_supervisor(&self.config, self.memory_budget);
        let slot = SessionSlot::new(endpoint.clone(), supervisor.clone());
        // One session serves every peer: its frames carry their own addresses.
        let peer = Address::other("*");
        let mut setup = SessionSetup::new(slot.id(), "udp", local_addr.into(), peer, self.config);
        let (listener, codec) = match run_new_session(&new_session, &mut setup) {
            Ok(made) => made,
            Err(err) => {
                drop(slot); // released as refused
                supervisor.do_send(Shutdown);
                return Err(err);
            }
        };
        let max = self.max_datagram_size;
        let writer = SessionWriter {
            io: DatagramWriter::new(socket.clone(), Destination::Envelope),
            preserves_messages: true,
            limit: Some(MessageLimit {
                max,
                overhead: ENVELOPE_LEN,
            }),
        };
        let source = SocketSource::new(socket.clone(), max);
        let session = start_session_with(
            setup,
            listener,
            codec,
            slot,
            writer,
            |codec, shared, batches| DatagramReader::new(source, codec, shared, batches),
        );
        tracing::debug!(%local_addr, "udp server bound");
        let handle = UdpServerHandle::new(local_addr, socket, endpoint, supervisor, None);
        Ok((handle, session))
    }

    /// Binds, then gives each peer address a session of its own, made on its first
    /// datagram by `new_session` (on this arbiter), which may refuse it (the datagram is
    /// dropped and counted in [`EndpointStats::refused`]; the peer's next datagram asks
    /// again). The listener's codec is a plain one, as over TCP: each peer session
    /// writes to its peer. See [`max_peers`](Self::max_peers),
    /// [`peer_queue`](Self::peer_queue) and [`peer_idle_timeout`](Self::peer_idle_timeout).
    pub async fn start_per_peer<L, F>(self, new_session: F) -> Result<UdpServerHandle>
    where
        L: EventListener,
        F: NewSession<L>,
    {
        let (socket, local_addr) = self.bind().await?;
        let mut config = self.config;
        if let Some(idle) = self.peer_idle_timeout {
            config.read_timeout = Some(idle);
        }
        let (endpoint, supervisor) = start_supervisor(&config, self.memory_budget);
        let counters = Arc::new(Counters::default());
        let demux = Demux {
            socket: socket.clone(),
            local_addr,
            hook: Arc::new(new_session),
            config,
            max_datagram: self.max_datagram_size,
            max_peers: self.max_peers,
            peer_queue: self.peer_queue,
            peers: HashMap::new(),
            endpoint: endpoint.clone(),
            supervisor: supervisor.clone(),
            counters: counters.clone(),
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = actix_rt::spawn(demux.run(stop_rx));
        tracing::debug!(%local_addr, "udp per-peer server bound");
        let demux = Some((stop_tx, task, counters));
        Ok(UdpServerHandle::new(
            local_addr, socket, endpoint, supervisor, demux,
        ))
    }
}

fn start_supervisor(
    config: &SessionConfig,
    memory_budget: usize,
) -> (Arc<EndpointShared>, Addr<Supervisor>) {
    let endpoint = Arc::new(EndpointShared::new(memory_budget, false));
    let supervisor = Supervisor::new(endpoint.clone(), config).start();
    (endpoint, supervisor)
}

/// Counters of the per-peer demultiplexer.
#[derive(Debug, Default)]
struct Counters {
    datagrams: AtomicU64,
    bytes: AtomicU64,
    dropped: AtomicU64,
    recv_errors: AtomicU64,
}

/// Traffic of a per-peer UDP server's socket, before it reaches the peer sessions (each
/// session's own [`SessionStats`](crate::SessionStats) counts what it decoded). All zero
/// for a server started with [`UdpServer::start`], whose one session counts everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UdpStats {
    /// Datagrams received on the socket.
    pub datagrams: u64,
    /// Bytes of those datagrams.
    pub bytes: u64,
    /// Datagrams dropped because their peer's session queue was full.
    pub dropped: u64,
    /// Receive errors on the socket.
    pub recv_errors: u64,
}

/// Owns the per-peer server's socket: reads every datagram and routes it to its peer's
/// session, making sessions for new peers. It never waits for a session: a full queue
/// drops the datagram.
struct Demux<L: EventListener> {
    socket: Arc<UdpSocket>,
    local_addr: SocketAddr,
    hook: Arc<SessionFactory<L>>,
    config: SessionConfig,
    max_datagram: usize,
    max_peers: usize,
    peer_queue: usize,
    /// Each peer's queue, and its session's shared state (for the memory budget).
    peers: HashMap<SocketAddr, (mpsc::Sender<Incoming>, Arc<SessionShared>)>,
    endpoint: Arc<EndpointShared>,
    supervisor: Addr<Supervisor>,
    counters: Arc<Counters>,
}

impl<L: EventListener> Demux<L> {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut scratch = vec![0u8; self.max_datagram.saturating_add(1)];
        let mut sweep = tokio::time::interval(SWEEP_PERIOD);
        loop {
            let got = tokio::select! {
                biased;
                _ = &mut stop => return,
                _ = sweep.tick() => {
                    self.peers.retain(|_, (queue, _)| !queue.is_closed());
                    continue;
                }
                got = self.socket.recv_from(&mut scratch) => got,
            };
            match got {
                Ok((n, peer)) => {
                    self.counters.datagrams.fetch_add(1, Relaxed);
                    self.counters.bytes.fetch_add(n as u64, Relaxed);
                    self.route(peer, received(peer, &scratch[..n], self.max_datagram));
                }
                Err(err) if is_retry(&err) => {}
                Err(err) => {
                    // An unconnected socket reports no ICMP errors; anything here is
                    // about the socket, not one peer.
                    self.counters.recv_errors.fetch_add(1, Relaxed);
                    tracing::warn!(%err, "udp receive failed; pausing");
                    tokio::select! {
                        _ = &mut stop => return,
                        _ = tokio::time::sleep(RECV_ERROR_PAUSE) => {}
                    }
                }
            }
        }
    }

    fn route(&mut self, peer: SocketAddr, incoming: Incoming) {
        let incoming = match self.peers.get(&peer) {
            None => incoming,
            Some((queue, shared)) => {
                let len = incoming.datagram_len();
                let pending = shared.pending_in.load(Relaxed);
                // The endpoint's memory budget is spent and this peer holds its share:
                // UDP may lose datagrams, and this one goes, as for a full queue.
                if len > 0 && shared.charge.over_share(shared.charge.held().max(pending)) {
                    self.counters.dropped.fetch_add(1, Relaxed);
                    tracing::debug!(%peer, "memory budget spent; datagram dropped");
                    return;
                }
                shared.pending_in.fetch_add(len, Relaxed);
                match queue.try_send(incoming) {
                    Ok(()) => return,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        shared.pending_in.fetch_sub(len, Relaxed);
                        self.counters.dropped.fetch_add(1, Relaxed);
                        tracing::debug!(%peer, "peer session queue full; datagram dropped");
                        return;
                    }
                    // Its session ended (idle, closed, refused by on_open): start over.
                    Err(mpsc::error::TrySendError::Closed(incoming)) => {
                        shared.pending_in.fetch_sub(len, Relaxed);
                        self.peers.remove(&peer);
                        incoming
                    }
                }
            }
        };
        self.open(peer, incoming);
    }

    /// Makes a session for a new peer, with `first` as its first datagram.
    fn open(&mut self, peer: SocketAddr, first: Incoming) {
        if self.endpoint.live() >= self.max_peers {
            self.endpoint.count_refused();
            tracing::debug!(%peer, max = self.max_peers, "max peers reached; datagram dropped");
            return;
        }
        let slot = SessionSlot::new(self.endpoint.clone(), self.supervisor.clone());
        let Some((setup, listener, codec, slot)) = prepare_session(
            &*self.hook,
            "udp-peer",
            self.local_addr.into(),
            peer.into(),
            self.config.clone(),
            slot,
        ) else {
            return;
        };
        let first_len = first.datagram_len();
        let (queue, datagrams) = mpsc::channel(self.peer_queue);
        if queue.try_send(first).is_err() {
            // Cannot happen (a fresh queue has room); the datagram would be lost.
            self.counters.dropped.fetch_add(1, Relaxed);
        }
        let writer = SessionWriter {
            io: DatagramWriter::new(self.socket.clone(), Destination::Peer(peer)),
            preserves_messages: true,
            limit: Some(MessageLimit {
                max: self.max_datagram,
                overhead: 0,
            }),
        };
        let session = start_session_with(
            setup,
            listener,
            codec,
            slot,
            writer,
            |codec, shared, batches| {
                let source = QueueSource {
                    queue: datagrams,
                    shared: shared.clone(),
                };
                DatagramReader::new(source, Plain(codec), shared, batches)
            },
        );
        // Counted now that the session exists; its reader has not run yet (it starts on
        // this thread once this returns), so it cannot have taken the datagram off.
        session.shared().pending_in.fetch_add(first_len, Relaxed);
        self.peers.insert(peer, (queue, session.shared().clone()));
    }
}

type DemuxTask = (oneshot::Sender<()>, JoinHandle<()>, Arc<Counters>);

struct HandleInner {
    local_addr: SocketAddr,
    /// Weak, so the socket closes once its sessions (and demultiplexer) are gone.
    socket: Weak<UdpSocket>,
    endpoint: Arc<EndpointShared>,
    supervisor: Addr<Supervisor>,
    counters: Option<Arc<Counters>>,
    demux: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

/// A running UDP server. Cheap to clone; the server runs until [`stop`](Self::stop).
#[derive(Clone)]
pub struct UdpServerHandle {
    inner: Arc<HandleInner>,
}

impl std::fmt::Debug for UdpServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpServerHandle")
            .field("local_addr", &self.inner.local_addr)
            .field("stats", &self.stats())
            .finish()
    }
}

impl UdpServerHandle {
    fn new(
        local_addr: SocketAddr,
        socket: Arc<UdpSocket>,
        endpoint: Arc<EndpointShared>,
        supervisor: Addr<Supervisor>,
        demux: Option<DemuxTask>,
    ) -> Self {
        let (demux, counters) = match demux {
            Some((stop, task, counters)) => (Some((stop, task)), Some(counters)),
            None => (None, None),
        };
        UdpServerHandle {
            inner: Arc::new(HandleInner {
                local_addr,
                socket: Arc::downgrade(&socket),
                endpoint,
                supervisor,
                counters,
                demux: Mutex::new(demux),
            }),
        }
    }

    /// The address the socket is bound to (the real port when it was given port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Session counters: open, opened, closed, and refused peers (per-peer mode).
    pub fn stats(&self) -> EndpointStats {
        self.inner.endpoint.stats()
    }

    /// Socket traffic of a per-peer server (see [`UdpStats`]).
    pub fn udp_stats(&self) -> UdpStats {
        let Some(c) = &self.inner.counters else {
            return UdpStats::default();
        };
        UdpStats {
            datagrams: c.datagrams.load(Relaxed),
            bytes: c.bytes.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            recv_errors: c.recv_errors.load(Relaxed),
        }
    }

    /// The socket, while the server serves.
    fn socket(&self) -> Result<Arc<UdpSocket>> {
        self.inner.socket.upgrade().ok_or_else(|| {
            let msg = "the server's socket is closed";
            Error::from(std::io::Error::new(std::io::ErrorKind::NotConnected, msg))
        })
    }

    /// Joins an IPv4 multicast group now, on the interface with address `interface`
    /// (`Ipv4Addr::UNSPECIFIED`: the OS picks).
    pub fn join_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> Result<()> {
        let socket = self.socket()?;
        socket::only_joined_groups(&SockRef::from(&*socket), true)?;
        Ok(socket.join_multicast_v4(group, interface)?)
    }

    /// Leaves an IPv4 multicast group joined on `interface`: its datagrams stop coming.
    pub fn leave_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> Result<()> {
        Ok(self.socket()?.leave_multicast_v4(group, interface)?)
    }

    /// Joins an IPv6 multicast group now, on the interface with index `interface`
    /// (0: the OS picks).
    pub fn join_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> Result<()> {
        let socket = self.socket()?;
        socket::only_joined_groups(&SockRef::from(&*socket), false)?;
        Ok(socket.join_multicast_v6(&group, interface)?)
    }

    /// Leaves an IPv6 multicast group joined on `interface`.
    pub fn leave_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> Result<()> {
        Ok(self.socket()?.leave_multicast_v6(&group, interface)?)
    }

    /// Stops gracefully: stops reading the socket, closes every session (each flushes
    /// what it has queued for at most its wait time, then `on_close` runs), and resolves
    /// once all are gone, or at the latest one second after the longest wait time. The
    /// socket closes when the last session lets go of it. Calling it again waits for the
    /// same stop.
    pub async fn stop(&self) {
        let demux = self
            .inner
            .demux
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some((stop, task)) = demux {
            let _ = stop.send(());
            let _ = task.await;
        }
        // Fails only when an earlier stop already finished.
        let _ = self.inner.supervisor.send(Shutdown).await;
    }
}
