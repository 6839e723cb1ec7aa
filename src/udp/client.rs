//! The UDP client endpoint: sessions over connected sockets, one server address.

use std::sync::Arc;
use std::time::Duration;

use actix::Actor;

use super::codec::Plain;
use super::reader::{DatagramReader, SocketSource};
use super::socket::{self, any_of_family, DatagramWriter, Destination, SocketOptions};
use super::{run_hook, DEFAULT_MAX_DATAGRAM_SIZE};
use crate::arbiters::ArbiterPool;
use crate::client::{ClientEvent, ClientHandle, EventHook, DEFAULT_CONNECT_TIMEOUT};
use crate::endpoint::{EndpointShared, NewSession, Outcome, SessionFactory, SessionSlot};
use crate::error::{Error, Result};
use crate::listener::EventListener;
use crate::reconnect::{Backoff, DEFAULT_MAX_RECONNECT_INTERVAL, DEFAULT_RECONNECT_INTERVAL};
use crate::session::{start_session_with, MessageLimit, SessionSetup, SessionWriter};
use crate::supervisor::{Redial, Supervisor};
use crate::SessionConfig;

/// Builds and starts a UDP client: sessions over **connected** sockets to one server
/// address, with the same listener, options, events and [`ClientHandle`] as a
/// [`TcpClient`](crate::TcpClient).
///
/// A "dial" binds a local socket and connects it to the server (no packet is sent), so it
/// fails only when the address does not resolve or has no route. UDP has no connection
/// to lose: an ICMP "port unreachable" (nobody listens at the server address) reaches
/// `on_error` and the session stays open. A session ends only when it is closed, times
/// out (set a [`SessionConfig::read_timeout`] to notice a silent server) or its socket
/// breaks; the client then makes a new one after the reconnect backoff.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use getty::{EventListener, LengthDelimited, SessionContext, UdpClient};
///
/// struct Hello;
/// impl EventListener for Hello {
///     type Codec = LengthDelimited;
///     type Out = Bytes;
///     fn on_open(&mut self, s: &mut SessionContext<'_, Self>) -> getty::Result<()> {
///         s.write(Bytes::from_static(b"hello"))
///     }
///     fn on_message(&mut self, _: &mut SessionContext<'_, Self>, _: BytesMut) {}
/// }
///
/// #[actix::main]
/// async fn main() -> getty::Result<()> {
///     let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
///     let client = UdpClient::new(server.local_addr()?.to_string())
///         .start(|_| Ok((Hello, LengthDelimited::new())));
///     let mut buf = [0u8; 64];
///     let (n, _) = server.recv_from(&mut buf).await?;
///     assert_eq!(&buf[..n], b"\0\0\0\x05hello");
///     client.stop().await;
///     Ok(())
/// }
/// ```
pub struct UdpClient {
    addr: String,
    local_addr: Option<String>,
    connections: usize,
    reconnect_interval: Duration,
    max_reconnect_interval: Duration,
    max_datagram_size: usize,
    workers: usize,
    connect_timeout: Duration,
    socket: SocketOptions,
    config: SessionConfig,
    events: Option<EventHook>,
}

impl std::fmt::Debug for UdpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpClient")
            .field("addr", &self.addr)
            .field("local_addr", &self.local_addr)
            .field("connections", &self.connections)
            .field("max_datagram_size", &self.max_datagram_size)
            .finish_non_exhaustive()
    }
}

impl UdpClient {
    /// A client of the server at `addr`, e.g. `"127.0.0.1:7000"`; resolved at every dial.
    pub fn new(addr: impl Into<String>) -> Self {
        UdpClient {
            addr: addr.into(),
            local_addr: None,
            connections: 1,
            reconnect_interval: DEFAULT_RECONNECT_INTERVAL,
            max_reconnect_interval: DEFAULT_MAX_RECONNECT_INTERVAL,
            max_datagram_size: DEFAULT_MAX_DATAGRAM_SIZE,
            workers: 1,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            socket: SocketOptions::default(),
            config: SessionConfig::default(),
            events: None,
        }
    }

    /// The local address each session's socket binds, e.g. `"127.0.0.1:0"`. Default: the
    /// unspecified address of the server's family, port 0.
    pub fn local_addr(mut self, addr: impl Into<String>) -> Self {
        self.local_addr = Some(addr.into());
        self
    }

    /// How many sessions (sockets) to keep. Default 1.
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n;
        self
    }

    /// First delay before making a lost session again. Default 300 ms.
    pub fn reconnect_interval(mut self, interval: Duration) -> Self {
        self.reconnect_interval = interval;
        self
    }

    /// Cap on the delay between rounds. Default 10 s.
    pub fn max_reconnect_interval(mut self, cap: Duration) -> Self {
        self.max_reconnect_interval = cap;
        self
    }

    /// Longest datagram read or written, in bytes. Default
    /// [`DEFAULT_MAX_DATAGRAM_SIZE`](crate::udp::DEFAULT_MAX_DATAGRAM_SIZE) (65,507).
    pub fn max_datagram_size(mut self, n: usize) -> Self {
        self.max_datagram_size = n.max(1);
        self
    }

    /// The sockets' receive buffer size (SO_RCVBUF). Default: the OS's.
    pub fn recv_buffer_size(mut self, bytes: usize) -> Self {
        self.socket.recv_buffer = Some(bytes);
        self
    }

    /// The sockets' send buffer size (SO_SNDBUF). Default: the OS's.
    pub fn send_buffer_size(mut self, bytes: usize) -> Self {
        self.socket.send_buffer = Some(bytes);
        self
    }

    /// Arbiters (threads) the sessions are spread over, round-robin; the calling arbiter
    /// is the first. Default 1.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// How long one dial (resolving the addresses, binding and connecting the socket)
    /// may take. Default 3 s, as for TCP.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The config each session starts with, before the `new_session` hook changes it.
    pub fn session_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    /// Calls `hook` on the client's arbiter each time a session comes up or goes down
    /// or a dial fails. It must return quickly.
    pub fn on_event(mut self, hook: impl Fn(ClientEvent) + 'static) -> Self {
        self.events = Some(Box::new(hook));
        self
    }

    /// Starts. Call from within an actix system. The client runs until
    /// [`ClientHandle::stop`] or until every handle is dropped.
    pub fn start<L, F>(self, new_session: F) -> ClientHandle
    where
        L: EventListener,
        F: NewSession<L>,
    {
        let endpoint = Arc::new(EndpointShared::default());
        let dialer = Dialer {
            addr: Arc::from(self.addr),
            local_addr: self.local_addr.map(Arc::from),
            max_datagram: self.max_datagram_size,
            connect_timeout: self.connect_timeout,
            socket: Arc::new(self.socket),
            config: self.config.clone(),
            hook: Arc::new(new_session),
            endpoint: endpoint.clone(),
        };
        let seed = crate::clock::now_ms() ^ (Arc::as_ptr(&endpoint) as u64);
        let pool = Arc::new(ArbiterPool::start(self.workers));
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
                        // The socket is made on that arbiter, so it belongs to its
                        // reactor; if the arbiter is gone the slot is dropped, which
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
}

/// Everything one dial needs.
struct Dialer<L: EventListener> {
    addr: Arc<str>,
    local_addr: Option<Arc<str>>,
    max_datagram: usize,
    connect_timeout: Duration,
    socket: Arc<SocketOptions>,
    config: SessionConfig,
    hook: Arc<SessionFactory<L>>,
    endpoint: Arc<EndpointShared>,
}

impl<L: EventListener> Clone for Dialer<L> {
    fn clone(&self) -> Self {
        Dialer {
            addr: self.addr.clone(),
            local_addr: self.local_addr.clone(),
            max_datagram: self.max_datagram,
            connect_timeout: self.connect_timeout,
            socket: self.socket.clone(),
            config: self.config.clone(),
            hook: self.hook.clone(),
            endpoint: self.endpoint.clone(),
        }
    }
}

impl<L: EventListener> Dialer<L> {
    async fn connect(&self) -> Result<tokio::net::UdpSocket> {
        let server = socket::resolve(&self.addr).await?;
        let local = match &self.local_addr {
            Some(local) => socket::resolve(local).await?,
            None => any_of_family(&server),
        };
        let udp = socket::bind(local, &self.socket)?;
        udp.connect(server).await?;
        Ok(udp)
    }

    async fn dial(self, mut slot: SessionSlot) {
        let connect = tokio::time::timeout(self.connect_timeout, self.connect());
        let connected = tokio::select! {
            connected = connect => connected,
            _ = self.endpoint.stopped() => return slot.abandon(),
        };
        let udp = match connected {
            Ok(Ok(udp)) => udp,
            Ok(Err(err)) => return slot.dial_failed(err),
            Err(_) => {
                let msg = format!(
                    "udp dial of {} timed out after {:?}",
                    self.addr, self.connect_timeout
                );
                let err = std::io::Error::new(std::io::ErrorKind::TimedOut, msg);
                return slot.dial_failed(Error::from(err));
            }
        };
        if self.endpoint.is_stopping() {
            return slot.abandon();
        }
        let addrs = udp.local_addr().and_then(|l| Ok((l, udp.peer_addr()?)));
        let (local, peer) = match addrs {
            Ok(addrs) => addrs,
            Err(err) => return slot.dial_failed(Error::from(err)),
        };
        let mut setup = SessionSetup::new(
            slot.id(),
            "udp-client",
            local.into(),
            peer.into(),
            self.config,
        );
        let (listener, codec) = match run_hook(&*self.hook, &mut setup) {
            Ok(made) => made,
            Err(err) => {
                tracing::debug!(%peer, %err, "new_session refused the session");
                return slot.release(Outcome::Refused);
            }
        };
        let socket = Arc::new(udp);
        let writer = SessionWriter {
            io: DatagramWriter::new(socket.clone(), Destination::Connected),
            preserves_messages: true,
            limit: Some(MessageLimit {
                max: self.max_datagram,
                overhead: 0,
            }),
        };
        let source = SocketSource::new(socket, self.max_datagram);
        let _ = start_session_with(setup, listener, codec, slot, writer, |codec, shared| {
            DatagramReader::new(source, Plain(codec), shared)
        });
    }
}
