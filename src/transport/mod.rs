//! The transport seam: what a session needs from a connection.
//!
//! A session runs over anything that gives it a byte stream to read, a byte sink to
//! write, and two addresses. The reader actor owns the read half and the logic actor the
//! write half, so a transport must split into two independently owned halves.
//! TCP implements it here; TLS wraps it, and other transports fit the same seam.

mod tcp;
mod tls;

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// A connected byte stream that a session can run over.
pub trait Transport: Sized + 'static {
    /// The half the reader actor reads from.
    type Reader: AsyncRead + Unpin + 'static;
    /// The half the logic actor writes to. Its `poll_shutdown` ends the session's
    /// outgoing direction after a graceful close has flushed everything.
    type Writer: AsyncWrite + Unpin + 'static;

    /// The local address of the connection.
    fn local_addr(&self) -> io::Result<SocketAddr>;
    /// The peer's address.
    fn peer_addr(&self) -> io::Result<SocketAddr>;
    /// Splits into independently owned read and write halves.
    fn into_split(self) -> (Self::Reader, Self::Writer);
}
