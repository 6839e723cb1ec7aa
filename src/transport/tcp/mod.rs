//! TCP as a transport, and its server and client builders, built on the public seam;
//! `socket` holds the socket options both share.

mod socket;

pub(crate) use socket::listen;
pub use socket::{Keepalive, TcpSocketBuilder, TcpSocketOptions};

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use super::tls::TlsAccepted;
use super::{Accepted, Address, Transport};
use crate::endpoint::client::{Client, ClientHandle};
use crate::endpoint::options::{ClientBuilder, ClientOptions, ServerBuilder, ServerOptions};
use crate::endpoint::server::{Server, ServerHandle};
use crate::endpoint::servers::{ServerList, ServerListBuilder};
use crate::endpoint::NewSession;
use crate::error::Result;
use crate::listener::EventListener;
use crate::transport::tls::{handshake, TlsClientConfig, TlsServerConfig};

impl Transport for TcpStream {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;

    fn local_addr(&self) -> io::Result<Address> {
        TcpStream::local_addr(self).map(Address::Inet)
    }

    fn peer_addr(&self) -> io::Result<Address> {
        TcpStream::peer_addr(self).map(Address::Inet)
    }

    fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        TcpStream::into_split(self)
    }
}

/// An accepted TCP connection travels to its arbiter as a std socket, which belongs to
/// no reactor, and is registered with that arbiter's reactor there.
impl Accepted for std::net::TcpStream {
    type Transport = TcpStream;

    fn establish(self) -> impl Future<Output = Result<TcpStream>> + 'static {
        let registered = self
            .set_nonblocking(true)
            .and_then(|()| TcpStream::from_std(self));
        std::future::ready(registered.map_err(Into::into))
    }
}

/// Accepted connections of a TCP listener, as std sockets ready to move to an arbiter.
struct TcpIncoming {
    listener: TcpListener,
    socket: TcpSocketOptions,
}

impl Stream for TcpIncoming {
    type Item = io::Result<std::net::TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let (stream, _) = match self.listener.poll_accept(cx) {
            Poll::Ready(Ok(accepted)) => accepted,
            Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err))),
            Poll::Pending => return Poll::Pending,
        };
        self.socket.apply(&stream);
        Poll::Ready(Some(stream.into_std()))
    }
}

/// Builds and starts a TCP server (getty's `NewTCPServer`).
///
/// ```no_run
/// # async fn run() -> getty::Result<()> {
/// use bytes::{Bytes, BytesMut};
/// use getty::{EventListener, LengthDelimited, ServerBuilder, SessionContext, TcpServer};
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
    socket: TcpSocketOptions,
    tls: Option<TlsServerConfig>,
    server: Server,
}

impl ServerBuilder for TcpServer {
    fn server_options(&mut self) -> &mut ServerOptions {
        self.server.server_options()
    }
}

impl TcpSocketBuilder for TcpServer {
    fn tcp_socket_options(&mut self) -> &mut TcpSocketOptions {
        &mut self.socket
    }
}

impl TcpServer {
    /// A server that will listen on `addr` (getty's `WithLocalAddress`), e.g.
    /// `"127.0.0.1:7000"`; port 0 picks a free port (see [`ServerHandle::local_addr`]).
    pub fn new(addr: impl Into<String>) -> Self {
        TcpServer {
            addr: addr.into(),
            socket: TcpSocketOptions::default(),
            tls: None,
            server: Server::new().kind("tcp"),
        }
    }

    /// Serves TLS: every accepted connection first completes a server handshake with
    /// `config` (on the arbiter that will host its session, within the config's
    /// handshake timeout), and its session then runs over the TLS stream. A connection
    /// whose handshake fails or times out is closed, counted in
    /// [`EndpointStats::establish_failures`](crate::EndpointStats::establish_failures), and handed to
    /// [`on_establish_error`](ServerBuilder::on_establish_error) as an
    /// [`ErrorKind::Tls`](crate::ErrorKind::Tls); it never reaches `new_session`. Sessions
    /// are named `tls:<peer>`. Default: plain TCP.
    pub fn tls(mut self, config: TlsServerConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// Binds, then accepts until stopped, running `new_session` for each connection on
    /// the arbiter it is assigned to. Call from within an actix system.
    pub async fn start<L, F>(mut self, new_session: F) -> Result<ServerHandle>
    where
        L: EventListener,
        F: NewSession<L>,
    {
        // The listener honours reuse_port; what serves its connections need not.
        let reuse_port = std::mem::take(&mut self.server.server_options().reuse_port);
        let listener = TcpListener::from_std(socket::listen(&self.addr, reuse_port).await?)?;
        let local_addr = listener.local_addr()?;
        let incoming = TcpIncoming {
            listener,
            socket: self.socket,
        };
        let server = self.server.local_addr(local_addr);
        let server = match self.tls {
            None => server.serve(incoming, new_session)?,
            Some(tls) => {
                let incoming = incoming.map(move |accepted| {
                    accepted.map(|stream| TlsAccepted::new(stream, tls.clone()))
                });
                server.kind("tls").serve(incoming, new_session)?
            }
        };
        tracing::debug!(%local_addr, "tcp server listening");
        Ok(server)
    }
}

/// Builds and starts a TCP client that keeps a number of sessions to one server
/// (getty's `NewTCPClient`).
///
/// Its supervisor re-dials lost sessions with a capped, jittered exponential backoff
/// and never resends frames; see [`Client`] for the rules, which every transport's client
/// shares.
///
/// ```
/// use std::time::Duration;
/// use bytes::{Bytes, BytesMut};
/// use getty::{ClientBuilder, EventListener, LengthDelimited, SessionContext, TcpClient, TcpServer};
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
    servers: ServerList,
    socket: TcpSocketOptions,
    local: Option<SocketAddr>,
    tls: Option<TlsClientConfig>,
    client: Client,
}

impl std::fmt::Debug for TcpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpClient")
            .field("servers", &self.servers)
            .field("socket", &self.socket)
            .field("local", &self.local)
            .field("tls", &self.tls)
            .field("client", &self.client)
            .finish()
    }
}

impl ClientBuilder for TcpClient {
    fn client_options(&mut self) -> &mut ClientOptions {
        self.client.client_options()
    }
}

/// Several servers: each dial tries them as [`Spread`](crate::Spread) says.
impl ServerListBuilder for TcpClient {
    fn server_list(&mut self) -> &mut ServerList {
        &mut self.servers
    }
}

impl TcpSocketBuilder for TcpClient {
    fn tcp_socket_options(&mut self) -> &mut TcpSocketOptions {
        &mut self.socket
    }
}

impl TcpClient {
    /// A client of the server at `addr` (getty's `WithServerAddress`), e.g.
    /// `"127.0.0.1:7000"`; resolved at every dial. More servers:
    /// [`add_server`](ServerListBuilder::add_server).
    pub fn new(addr: impl AsRef<str>) -> Self {
        TcpClient {
            servers: ServerList::new(addr.as_ref()),
            socket: TcpSocketOptions::default(),
            local: None,
            tls: None,
            client: Client::new().kind("tcp-client"),
        }
    }

    /// Binds each dialed socket to `addr` before it connects (getty's
    /// `WithLocalAddress`): a source address on a host with several, or a fixed source
    /// port (with a port other than 0, a client keeps one connection per server address,
    /// as TCP allows one connection per address pair). Only the server's addresses of
    /// the same family are dialed; none is a failed dial. Default: the OS picks.
    pub fn local_addr(mut self, addr: SocketAddr) -> Self {
        self.local = Some(addr);
        self
    }

    /// Speaks TLS: each dial connects, then runs a TLS handshake with `config` (within
    /// the config's handshake timeout, and the whole dial within the connect timeout),
    /// and the session runs over the TLS stream. A failed handshake is a failed dial:
    /// [`ClientEvent::DialFailed`](crate::ClientEvent::DialFailed) with an
    /// [`ErrorKind::Tls`](crate::ErrorKind::Tls) that says why, counted in
    /// `connect_failures`, and re-dialed after the backoff. Sessions are named
    /// `tls-client:<peer>`. Default: plain TCP.
    pub fn tls(mut self, config: TlsClientConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// Starts dialing. Call from within an actix system; the client runs until
    /// [`ClientHandle::stop`] or until every handle is dropped.
    pub fn start<L, F>(self, new_session: F) -> ClientHandle
    where
        L: EventListener,
        F: NewSession<L>,
    {
        let (servers, socket, local) = (self.servers, self.socket, self.local);
        let Some(tls) = self.tls else {
            let dial = move || {
                let servers = servers.clone();
                async move { servers.dial(|addr| connect(addr, socket, local)).await }
            };
            return self.client.start(dial, new_session);
        };
        let dial = move || {
            let (servers, tls) = (servers.clone(), tls.clone());
            async move {
                // The handshake belongs to the address: its host is the server name.
                let handshake = |addr: Arc<str>| {
                    let tls = tls.clone();
                    async move {
                        let stream = connect(addr.clone(), socket, local).await?;
                        handshake::connect(&tls, &addr, stream).await
                    }
                };
                servers.dial(handshake).await
            }
        };
        self.client.kind("tls-client").start(dial, new_session)
    }
}

/// Connects to the first of `addr`'s addresses of `local`'s family that answers, from a
/// socket bound to `local`.
async fn connect_from(addr: &str, local: SocketAddr) -> std::io::Result<TcpStream> {
    let mut last = None;
    for peer in tokio::net::lookup_host(addr).await? {
        if peer.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if local.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // A fixed local port must be reusable as soon as its last connection closed
        // (TIME_WAIT), or every re-dial after a loss would fail for minutes.
        socket.set_reuseaddr(true)?;
        socket.bind(local)?;
        match socket.connect(peer).await {
            Ok(stream) => return Ok(stream),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| {
        let msg = format!("{addr} has no address of the family of {local}");
        std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, msg)
    }))
}

/// Connects to `addr` (from `local`, if given), its socket set up as `socket` says.
async fn connect(
    addr: Arc<str>,
    socket: TcpSocketOptions,
    local: Option<SocketAddr>,
) -> Result<TcpStream> {
    let stream = match local {
        None => TcpStream::connect(&*addr).await?,
        Some(local) => connect_from(&addr, local).await?,
    };
    socket.apply(&stream);
    Ok(stream)
}
