//! TLS over TCP as a [`Transport`], server and client side.
//!
//! A TLS stream cannot be split into owned halves the way a `TcpStream` can (both
//! directions share one rustls state), so it is split with [`tokio::io::split`]. The
//! reader and logic actors of a session share an arbiter, so the halves' lock is never
//! contended.

use std::io;
use std::net::SocketAddr;

use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::{client, server};

use super::Transport;

/// What a transport reports as its addresses.
type Addr = SocketAddr;

impl Transport for server::TlsStream<TcpStream> {
    type Reader = ReadHalf<Self>;
    type Writer = WriteHalf<Self>;

    fn local_addr(&self) -> io::Result<Addr> {
        Transport::local_addr(self.get_ref().0)
    }

    fn peer_addr(&self) -> io::Result<Addr> {
        Transport::peer_addr(self.get_ref().0)
    }

    fn into_split(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self)
    }
}

impl Transport for client::TlsStream<TcpStream> {
    type Reader = ReadHalf<Self>;
    type Writer = WriteHalf<Self>;

    fn local_addr(&self) -> io::Result<Addr> {
        Transport::local_addr(self.get_ref().0)
    }

    fn peer_addr(&self) -> io::Result<Addr> {
        Transport::peer_addr(self.get_ref().0)
    }

    fn into_split(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self)
    }
}
