//! QUIC as a transport, with [quinn]: [`QuicServer`] and [`QuicClient`], built on the
//! public [transport seam](super#writing-a-transport) like the Unix transport.
//!
//! # The model: one connection, one stream, one session
//! A session is one QUIC connection carrying one bidirectional stream of codec frames:
//! the stream the client opens first. The session's reader reads that stream's
//! receiving side and its writer writes the sending side, so a QUIC session has the same
//! reader and logic actors, [`EventListener`](crate::EventListener), limits, cron,
//! timeouts and close path as a TCP one, and its endpoints the same
//! [`ServerHandle`](crate::ServerHandle), [`ClientHandle`](crate::ClientHandle),
//! supervisor and graceful stop.
//!
//! A server learns of a stream from its first bytes (QUIC announces nothing before),
//! so a server session starts when the handshake completes and its halves wait for the
//! stream: what the server writes before then is queued, and a silent client meets the
//! read timeout as on TCP. A protocol in which the server speaks first needs its client
//! to send something first.
//!
//! **Further streams.** The session type has one byte stream per session, and a
//! listener has no callback through which a second stream could arrive, so further
//! streams are not sessions: they would need a session type with a stream per
//! message or per channel (and a callback for streams the peer opens), which this
//! module does not add. What fits without one: a connection made with quinn directly
//! can still carry a session on its first stream through [`QuicConnection`] (with
//! [`Server::serve`](crate::Server::serve) or [`Client::start`](crate::Client::start)),
//! and the application keeps the [`quinn::Connection`] to open other streams beside it.
//!
//! # TLS and ALPN
//! QUIC always runs TLS 1.3. A server takes the same [`TlsServerConfig`] as
//! [`TcpServer::tls`](crate::TcpServer::tls) and a client the same [`TlsClientConfig`]
//! as [`TcpClient::tls`](crate::TcpClient::tls) (certificates, client certificates,
//! server name); their rustls configs become quinn's. QUIC requires ALPN: the protocols
//! set with `alpn` on the QUIC builder, else those of the TLS config, else
//! [`DEFAULT_ALPN`] (`getty`) on both sides. A handshake that fails or outlasts the
//! TLS config's handshake timeout is an [`ErrorKind::Tls`](crate::ErrorKind::Tls): a
//! server counts it in [`EndpointStats::establish_failures`](crate::EndpointStats::establish_failures)
//! and hands it to `on_establish_error`, a client reports a failed dial and re-dials.
//! 0-RTT is not offered.
//!
//! [`TlsServerConfig`]: crate::TlsServerConfig
//! [`TlsClientConfig`]: crate::TlsClientConfig
//!
//! # What QUIC's own events become
//! - **Connection close.** A peer that closes the connection with application error
//!   code 0 ends the session like an EOF (no error). Any other code ends it with an
//!   [`ErrorKind::Quic`](crate::ErrorKind::Quic) that carries the code and the peer's
//!   reason ([`Error::quic_code`](crate::Error::quic_code)), reported by `on_error` just
//!   before `on_close`; so do a reset or stopped stream and a transport-level close.
//!   A getty session that ends gracefully finishes its stream, waits until the peer has
//!   acknowledged every byte, and closes the connection with [`CLOSE_DONE`] (0); one
//!   that ends otherwise (aborted at the wait time, its peer gone) with
//!   [`CLOSE_ABORTED`] (1).
//! - **Idle timeout.** The connection's idle timeout is the session's read timeout
//!   (the endpoint's [`SessionConfig::read_timeout`](crate::SessionConfig::read_timeout);
//!   none without one): when it expires the session ends with
//!   [`ErrorKind::ReadTimeout`](crate::ErrorKind::ReadTimeout), as when nothing is
//!   read. A read timeout the `new_session` hook sets for one session changes the
//!   session's own check, not the connection's idle timeout, which was agreed in the
//!   handshake.
//! - **Migration.** A peer that changes address (rebinds its UDP socket, moves to
//!   another network) keeps its connection and its session;
//!   [`Session::remote_addr`](crate::Session::remote_addr) reports where it is now,
//!   while `peer_addr` (and the session's default name) keep the address it started
//!   from. A client dials from an endpoint you made with
//!   [`QuicClient::endpoint`] when it should be able to rebind.
//! - **Flow control is the backpressure.** A session that stops reading (its listener
//!   is slow, its write queue is full) stops taking from its stream; quinn's stream and
//!   connection windows then fill and the peer's writes wait. Nothing is dropped.
//!
//! # Threads
//! A server's quinn endpoint (its UDP socket and the task that reads it) lives on the
//! arbiter that started the server; each connection's handshake and driver run on the
//! arbiter of its session, so `workers(n)` spreads QUIC sessions like TCP ones. The two
//! talk through quinn's shared state and wakers, which work across tokio runtimes; the
//! socket stays registered with the starting arbiter, which must keep running (it does
//! until the actix system stops).

mod client;
mod config;
mod errors;
mod server;
mod stream;

pub use client::QuicClient;
pub use server::QuicServer;
pub use stream::{QuicConnection, QuicReader, QuicWriter};

/// The quinn crate this transport is built on, for [`QuicClient::endpoint`] and
/// [`QuicConnection`].
pub use quinn;

/// The ALPN protocol QUIC endpoints speak when neither the QUIC builder nor the TLS
/// config names one: `getty`.
pub const DEFAULT_ALPN: &[u8] = b"getty";

/// The application error code a session closes its connection with after a graceful
/// close (everything it sent was acknowledged): 0, which a getty peer reads as EOF.
pub const CLOSE_DONE: u32 = 0;

/// The application error code a session closes its connection with when it ended
/// without a graceful close (aborted, or its peer was gone): 1.
pub const CLOSE_ABORTED: u32 = 1;
