//! The transport seam: what a session needs from a connection, and how endpoints get
//! connections. Everything here is public, so a transport written outside this crate
//! runs the full session model (reader and logic actors, supervisor, cron, timeouts,
//! backpressure, the close path, stats) just like TCP does.
//!
//! - [`Transport`]: a connected byte stream (or message stream) that splits into a read
//!   half and a write half, and knows its two [`Address`]es.
//! - [`Accepted`]: a connection a server accepted, still free to move to the arbiter
//!   that will host its session, where [`establish`](Accepted::establish) registers it
//!   and finishes any handshake. [`Server::serve`](crate::Server::serve) takes a stream
//!   of them.
//! - A dial function for [`Client::start`](crate::Client::start): called on the
//!   session's arbiter for every (re)connection.
//! - [`Connection`]: wraps any `AsyncRead + AsyncWrite` value (a duplex pipe, a serial
//!   port, a QUIC stream) with its addresses, as both a `Transport` and an `Accepted`.
//!
//! One module per transport, each with its server and client builders; every server
//! returns the one [`ServerHandle`](crate::ServerHandle), every client the one
//! [`ClientHandle`](crate::ClientHandle):
//!
//! - `tcp` ([`TcpServer`], [`TcpClient`]) and `unix` ([`UnixServer`], [`UnixClient`]):
//!   byte streams, built on this seam alone.
//! - [`tls`]: the rustls configs and the TLS stream that TCP (and WebSocket) speak.
//! - [`udp`]: datagram sockets, one session per peer or one shared by every peer; no
//!   byte stream, so its sessions read datagrams through their own reader.
//! - [`quic`] ([`QuicServer`](quic::QuicServer), [`QuicClient`](quic::QuicClient)): QUIC
//!   with quinn, a session per connection over its first bidirectional stream; built on
//!   this seam alone (its connections are [`Transport`]s, its handshakes [`Accepted`]).
//! - [`ws`]: WebSocket over actix-web (server) and awc (client); one binary message per
//!   frame.
//!
//! # Writing a transport
//! The Unix socket transport (`src/transport/unix.rs`) is the model; it uses nothing
//! that is not public. Four steps:
//!
//! 1. **The connection** implements [`Transport`]: `into_split` gives the reader actor
//!    an `AsyncRead` and the logic actor an `AsyncWrite`, each owned on its own (tokio's
//!    `UnixStream::into_split`; for a type without an owned split, wrap it in
//!    [`Connection`], which splits any stream with `tokio::io::split`). Addresses become
//!    [`Address::Unix`]. A message transport (datagrams) sets
//!    [`PRESERVES_MESSAGES`](Transport::PRESERVES_MESSAGES).
//! 2. **The accepted connection** implements [`Accepted`]. Sockets belong to the
//!    reactor of the thread that registered them, and sessions are spread over several
//!    arbiters, so the accept loop hands over a `std::os::unix::net::UnixStream` (which
//!    is `Send` and not registered anywhere) and `establish` registers it with
//!    `UnixStream::from_std` on the session's own arbiter. A TLS transport would run its
//!    handshake there too, under a timeout, so a slow handshake never holds up the
//!    accept loop.
//! 3. **The server** turns a listener into a `Stream` of `io::Result<Accepted>` and hands
//!    it to [`Server::serve`](crate::Server::serve) with the user's `new_session` hook;
//!    `Server` does the rest (max connections, arbiters, supervisor, graceful stop).
//!    Errors from the stream are logged and the loop pauses briefly; the stream ending
//!    stops accepting.
//! 4. **The client** passes [`Client::start`](crate::Client::start) a dial closure that
//!    connects and returns the `Transport`; the client's supervisor calls it again,
//!    with backoff, whenever a session is lost.
//!
//! The builders `UnixServer` and `UnixClient` keep a [`Server`](crate::Server) and a
//! [`Client`](crate::Client) and add only what is particular to Unix sockets (the path,
//! stale-file handling). They get the shared options (`workers`, `session_config`,
//! `connections`, ...) by implementing [`ServerBuilder`](crate::ServerBuilder) and
//! [`ClientBuilder`](crate::ClientBuilder), one method each that hands over the
//! options they keep. An option your transport cannot honour should make its `start`
//! fail with [`ErrorKind::Config`](crate::ErrorKind::Config), never be ignored.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use futures::{SinkExt, StreamExt};
//! use getty::transport::{Address, Connection};
//! use getty::{EventListener, LengthDelimited, Server, SessionContext};
//! use tokio_util::codec::Framed;
//!
//! struct Echo;
//! impl EventListener for Echo {
//!     type Codec = LengthDelimited;
//!     type Out = Bytes;
//!     fn on_message(&mut self, s: &mut SessionContext<'_, Self>, frame: BytesMut) {
//!         let _ = s.write(frame.freeze());
//!     }
//! }
//!
//! #[actix::main]
//! async fn main() -> getty::Result<()> {
//!     // An in-memory transport: each connection is a tokio duplex pipe.
//!     let (connect, accepted) = futures::channel::mpsc::unbounded();
//!     let server = Server::new()
//!         .kind("pipe")
//!         .serve(accepted.map(Ok), |_| Ok((Echo, LengthDelimited::new())))?;
//!     let (ours, theirs) = tokio::io::duplex(64 * 1024);
//!     let conn = Connection::new(theirs, Address::other("server"), Address::other("client"));
//!     connect.unbounded_send(conn).expect("server is running");
//!     let mut client = Framed::new(ours, LengthDelimited::new());
//!     client.send(Bytes::from_static(b"through a pipe")).await?;
//!     assert_eq!(&client.next().await.expect("an echo")?[..], b"through a pipe");
//!     server.stop().await;
//!     Ok(())
//! }
//! ```

mod address;
pub mod quic;
pub(crate) mod tcp;
pub mod tls;
pub mod udp;
mod unix;
pub mod ws;

pub use address::{Address, LivePeer};
pub use tcp::{Keepalive, TcpClient, TcpServer, TcpSocketBuilder, TcpSocketOptions};
pub use unix::{UnixClient, UnixServer};

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};

/// A connected byte stream that a session can run over.
pub trait Transport: Sized + 'static {
    /// The half the reader actor reads from.
    type Reader: AsyncRead + Unpin + 'static;
    /// The half the logic actor writes to. Its `poll_shutdown` ends the session's
    /// outgoing direction after a graceful close has flushed everything.
    type Writer: AsyncWrite + Unpin + 'static;

    /// True for a message transport (datagrams, WebSocket messages): the session then
    /// hands the writer one whole encoded frame per `poll_write`, and the writer must
    /// send it as one message, taking all of it or failing; frames never share a write.
    /// False (the default) for a byte stream, where pipelined frames share writes.
    const PRESERVES_MESSAGES: bool = false;

    /// The local address of the connection.
    fn local_addr(&self) -> io::Result<Address>;
    /// The peer's address.
    fn peer_addr(&self) -> io::Result<Address>;
    /// Splits into independently owned read and write halves.
    fn into_split(self) -> (Self::Reader, Self::Writer);

    /// For a connection whose peer can change address while it lasts (QUIC connection
    /// migration): where the session asks for the peer's address now, which
    /// [`Session::remote_addr`](crate::Session::remote_addr) reports. Default `None`:
    /// the peer stays at [`peer_addr`](Self::peer_addr).
    fn live_peer(&self) -> Option<LivePeer> {
        None
    }
}

/// A connection a server accepted, not yet tied to an arbiter.
///
/// The server's accept loop runs on one arbiter and sessions on many; values of this
/// type travel from the first to the second, so they are `Send`, and
/// [`establish`](Self::establish) then runs on the session's arbiter.
pub trait Accepted: Send + 'static {
    /// The connection a session runs over.
    type Transport: Transport;

    /// Registers the connection with the current arbiter's reactor and finishes any
    /// handshake. An error drops the connection; the server counts it in
    /// [`EndpointStats::establish_failures`](crate::EndpointStats::establish_failures)
    /// and reports it to its [`on_establish_error`](crate::ServerBuilder::on_establish_error)
    /// hook. Anything that may take long (a handshake) must be bounded by a timeout.
    fn establish(self) -> impl Future<Output = crate::Result<Self::Transport>> + 'static;
}

/// Any `AsyncRead + AsyncWrite` stream with the addresses of its two ends: the way to run
/// sessions over a stream type this crate does not know (a duplex pipe, a serial port, a
/// QUIC stream).
///
/// It is a [`Transport`] (split with `tokio::io::split`, which shares the stream between
/// the halves behind a light lock) and, when the stream is `Send`, an [`Accepted`] that
/// needs no further setup. A stream bound to one thread's reactor should instead be
/// handed over in a `Send` form and registered in its own [`Accepted::establish`], as
/// the TCP and Unix transports do.
#[derive(Debug)]
pub struct Connection<S> {
    io: S,
    local: Address,
    peer: Address,
}

impl<S> Connection<S> {
    /// Wraps `io`, whose ends are `local` and `peer`.
    pub fn new(io: S, local: Address, peer: Address) -> Self {
        Connection { io, local, peer }
    }

    /// The wrapped stream.
    pub fn into_inner(self) -> S {
        self.io
    }
}

impl<S: AsyncRead + AsyncWrite + 'static> Transport for Connection<S> {
    type Reader = ReadHalf<S>;
    type Writer = WriteHalf<S>;

    fn local_addr(&self) -> io::Result<Address> {
        Ok(self.local.clone())
    }

    fn peer_addr(&self) -> io::Result<Address> {
        Ok(self.peer.clone())
    }

    fn into_split(self) -> (ReadHalf<S>, WriteHalf<S>) {
        tokio::io::split(self.io)
    }
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> Accepted for Connection<S> {
    type Transport = Self;

    fn establish(self) -> impl Future<Output = crate::Result<Self>> + 'static {
        std::future::ready(Ok(self))
    }
}
