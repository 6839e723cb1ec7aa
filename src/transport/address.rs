//! Where a session's ends are: an internet socket address, a Unix socket path, or
//! whatever a user transport names itself.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// The address of one end of a connection.
///
/// Cheap to clone. Compares equal to a [`SocketAddr`] when it is that internet address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// An IPv4 or IPv6 socket address (TCP, UDP, WebSocket).
    Inet(SocketAddr),
    /// A Unix domain socket: its path, or `None` for an unnamed socket (a client that did
    /// not bind one).
    Unix(Option<Arc<Path>>),
    /// A transport with its own kind of address (a pipe, a serial port), named by text.
    Other(Arc<str>),
}

impl Address {
    /// The internet address, if this is one.
    pub fn inet(&self) -> Option<SocketAddr> {
        match self {
            Address::Inet(addr) => Some(*addr),
            _ => None,
        }
    }

    /// The socket path, if this is a named Unix socket.
    pub fn unix_path(&self) -> Option<&Path> {
        match self {
            Address::Unix(Some(path)) => Some(path),
            _ => None,
        }
    }

    /// An address named by `text`, for transports that are neither internet nor Unix.
    pub fn other(text: impl AsRef<str>) -> Self {
        Address::Other(Arc::from(text.as_ref()))
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Address::Inet(addr)
    }
}

impl PartialEq<SocketAddr> for Address {
    fn eq(&self, other: &SocketAddr) -> bool {
        self.inet() == Some(*other)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Inet(addr) => addr.fmt(f),
            Address::Unix(Some(path)) => write!(f, "{}", path.display()),
            Address::Unix(None) => f.write_str("(unnamed)"),
            Address::Other(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_and_compares() {
        let inet: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        assert_eq!(Address::from(inet), inet);
        assert_eq!(Address::from(inet).to_string(), "127.0.0.1:7000");
        let unix = Address::Unix(Some(Arc::from(Path::new("/tmp/g.sock"))));
        assert_eq!(unix.to_string(), "/tmp/g.sock");
        assert_eq!(unix.unix_path(), Some(Path::new("/tmp/g.sock")));
        assert_ne!(unix, inet);
        assert_eq!(Address::Unix(None).to_string(), "(unnamed)");
        assert_eq!(Address::other("pipe-1").to_string(), "pipe-1");
    }
}

/// The peer's address as it is now, for a transport whose peer can move while connected
/// (a QUIC peer that migrates to a new address): a function the session calls each time
/// [`Session::remote_addr`](crate::Session::remote_addr) is asked. Cheap to clone.
///
/// A transport hands one over through [`Transport::live_peer`](super::Transport::live_peer);
/// transports whose peer cannot move have none, and their sessions report the address
/// they started with.
#[derive(Clone)]
pub struct LivePeer(Arc<dyn Fn() -> Address + Send + Sync>);

impl LivePeer {
    /// A live address that `now` reports; it must be cheap and must not block.
    pub fn new(now: impl Fn() -> Address + Send + Sync + 'static) -> Self {
        LivePeer(Arc::new(now))
    }

    /// The peer's address now.
    pub fn get(&self) -> Address {
        (self.0)()
    }
}

impl fmt::Debug for LivePeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LivePeer").field(&self.get()).finish()
    }
}
