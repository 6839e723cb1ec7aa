//! TLS over TCP as a transport: the server and client streams of tokio-rustls as
//! [`Transport`]s, and the accepted connection whose [`establish`](Accepted::establish)
//! runs the server handshake on the session's arbiter.
//!
//! A TLS stream cannot be split into owned halves the way a `TcpStream` can (both
//! directions share one rustls state), so it is split with [`tokio::io::split`]. The
//! reader and logic actors of a session share an arbiter, so the halves' lock is never
//! contended.

use std::io;

use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::{client, server};

use super::{handshake, TlsServerConfig};
use crate::error::Result;
use crate::transport::{Accepted, Address, Transport};

/// A TLS stream over TCP, either side, is a transport: its addresses are the TCP
/// socket's, and it splits into halves that share the TLS state.
macro_rules! tls_over_tcp_transport {
    ($($stream:ty),+) => {$(
        impl Transport for $stream {
            type Reader = ReadHalf<Self>;
            type Writer = WriteHalf<Self>;

            fn local_addr(&self) -> io::Result<Address> {
                Transport::local_addr(self.get_ref().0)
            }

            fn peer_addr(&self) -> io::Result<Address> {
                Transport::peer_addr(self.get_ref().0)
            }

            fn into_split(self) -> (Self::Reader, Self::Writer) {
                tokio::io::split(self)
            }
        }
    )+};
}

tls_over_tcp_transport!(server::TlsStream<TcpStream>, client::TlsStream<TcpStream>);

/// A connection a TLS server accepted: a std socket, registered with no reactor yet, and
/// the config to run the handshake with.
pub(crate) struct TlsAccepted {
    stream: std::net::TcpStream,
    config: TlsServerConfig,
}

impl TlsAccepted {
    pub(crate) fn new(stream: std::net::TcpStream, config: TlsServerConfig) -> Self {
        TlsAccepted { stream, config }
    }
}

impl Accepted for TlsAccepted {
    type Transport = server::TlsStream<TcpStream>;

    /// Registers the socket with this arbiter's reactor and runs the server handshake
    /// under the config's handshake timeout; every failure is an
    /// [`ErrorKind::Tls`](crate::ErrorKind::Tls).
    async fn establish(self) -> Result<Self::Transport> {
        let registered = self
            .stream
            .set_nonblocking(true)
            .and_then(|()| TcpStream::from_std(self.stream));
        let stream = registered.map_err(|err| {
            crate::Error::tls(format!("could not register the connection: {err}"))
        })?;
        handshake::accept(&self.config, stream).await
    }
}
