//! The UDP client endpoint: sessions over connected sockets, to one server address or several.

use std::sync::Arc;

use super::codec::Plain;
use super::datagram_reader::{DatagramReader, SocketSource};
use super::socket::{
    self, any_of_family, DatagramWriter, Destination, UdpSocketBuilder, UdpSocketOptions,
};
use crate::defaults::DEFAULT_MAX_DATAGRAM_SIZE;
use crate::endpoint::client::{Client, ClientHandle};
use crate::endpoint::options::{ClientBuilder, ClientOptions};
use crate::endpoint::servers::{ServerList, ServerListBuilder};
use crate::endpoint::{prepare_session, NewSession, SessionFactory, SessionSlot};
use crate::error::Result;
use crate::listener::EventListener;
use crate::session::{start_session, ItemReader};

/// Builds and starts a UDP client: sessions over **connected** sockets to one server
/// address, with the same listener, options, events and [`ClientHandle`] as a
/// [`TcpClient`](crate::TcpClient).
///
/// A "dial" binds a local socket and connects it to the server (no packet is sent), so it
/// fails only when the address does not resolve or has no route. UDP has no connection
/// to lose: an ICMP "port unreachable" (nobody listens at the server address) reaches
/// `on_error` and the session stays open. A session ends only when it is closed, times
/// out (set a [`SessionConfig::read_timeout`](crate::SessionConfig::read_timeout) to notice a silent server) or its socket
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
    servers: ServerList,
    local_addr: Option<Arc<str>>,
    max_datagram_size: usize,
    socket: UdpSocketOptions,
    client: Client,
}

impl std::fmt::Debug for UdpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpClient")
            .field("servers", &self.servers)
            .field("local_addr", &self.local_addr)
            .field("max_datagram_size", &self.max_datagram_size)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// The shared client options; a "dial" here resolves the addresses, binds the socket
/// and connects it.
impl ClientBuilder for UdpClient {
    fn client_options(&mut self) -> &mut ClientOptions {
        self.client.client_options()
    }
}

impl UdpSocketBuilder for UdpClient {
    fn udp_socket_options(&mut self) -> &mut UdpSocketOptions {
        &mut self.socket
    }
}

/// Several servers: each "dial" connects its socket to one as
/// [`Spread`](crate::Spread) says (UDP cannot tell a live server from a dead one at
/// connect time; an unreachable one shows as ICMP errors on the session).
impl ServerListBuilder for UdpClient {
    fn server_list(&mut self) -> &mut ServerList {
        &mut self.servers
    }
}

impl UdpClient {
    /// A client of the server at `addr`, e.g. `"127.0.0.1:7000"`; resolved at every dial.
    pub fn new(addr: impl AsRef<str>) -> Self {
        UdpClient {
            servers: ServerList::new(addr.as_ref()),
            local_addr: None,
            max_datagram_size: DEFAULT_MAX_DATAGRAM_SIZE,
            socket: UdpSocketOptions::default(),
            client: Client::new().kind("udp-client"),
        }
    }

    /// The local address each session's socket binds, e.g. `"127.0.0.1:0"`. Default: the
    /// unspecified address of the server's family, port 0.
    pub fn local_addr(mut self, addr: impl AsRef<str>) -> Self {
        self.local_addr = Some(Arc::from(addr.as_ref()));
        self
    }

    /// Longest datagram read or written, in bytes. Default
    /// [`DEFAULT_MAX_DATAGRAM_SIZE`](crate::defaults::DEFAULT_MAX_DATAGRAM_SIZE) (65,507).
    pub fn max_datagram_size(mut self, n: usize) -> Self {
        self.max_datagram_size = n.max(1);
        self
    }

    /// Starts. Call from within an actix system. The client runs until
    /// [`ClientHandle::stop`] or until every handle is dropped.
    pub fn start<L, F>(self, new_session: F) -> ClientHandle
    where
        L: EventListener,
        F: NewSession<L>,
    {
        let dialer = Arc::new(Dialer {
            servers: self.servers,
            local_addr: self.local_addr,
            socket: self.socket,
        });
        let opener = Opener {
            max_datagram: self.max_datagram_size,
            config: self.client.options().session_config.clone(),
            hook: Arc::new(new_session),
        };
        self.client.start_with(
            move || {
                let dialer = dialer.clone();
                async move { dialer.connect().await }
            },
            move |udp, slot| opener.open(udp, slot),
        )
    }
}

/// Makes one connected socket.
struct Dialer {
    servers: ServerList,
    local_addr: Option<Arc<str>>,
    socket: UdpSocketOptions,
}

impl Dialer {
    /// Connects a socket to the first of the servers that resolves and routes.
    async fn connect(&self) -> Result<tokio::net::UdpSocket> {
        self.servers.dial(|addr| self.connect_to(addr)).await
    }

    async fn connect_to(&self, addr: Arc<str>) -> Result<tokio::net::UdpSocket> {
        let server = socket::resolve(&addr).await?;
        let local = match &self.local_addr {
            Some(local) => socket::resolve(local).await?,
            None => any_of_family(&server),
        };
        let udp = socket::bind(local, &self.socket)?;
        udp.connect(server).await?;
        Ok(udp)
    }
}

/// Starts a session on a connected socket.
struct Opener<L: EventListener> {
    max_datagram: usize,
    config: crate::SessionConfig,
    hook: Arc<SessionFactory<L>>,
}

impl<L: EventListener> Opener<L> {
    fn open(&self, udp: tokio::net::UdpSocket, slot: SessionSlot) {
        let addrs = udp.local_addr().and_then(|l| Ok((l, udp.peer_addr()?)));
        let (local, peer) = match addrs {
            Ok(addrs) => addrs,
            Err(err) => return slot.dial_failed(err.into()),
        };
        let Some((setup, listener, codec, slot)) = prepare_session(
            &*self.hook,
            "udp-client",
            local.into(),
            peer.into(),
            self.config.clone(),
            slot,
        ) else {
            return;
        };
        let socket = Arc::new(udp);
        let writer =
            DatagramWriter::for_session(socket.clone(), Destination::Connected, self.max_datagram);
        let source = SocketSource::new(socket, self.max_datagram);
        let _ = start_session(
            setup,
            listener,
            codec,
            slot,
            writer,
            ItemReader(|codec, shared, batches| {
                DatagramReader::new(source, Plain(codec), shared, batches)
            }),
        );
    }
}
