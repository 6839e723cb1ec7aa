//! What a UDP server adds to its [`ServerHandle`]: the socket's traffic counters, its
//! multicast groups, and the one session of a shared server.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};

use socket2::SockRef;
use tokio::net::UdpSocket;

use super::socket;
use crate::endpoint::server::ServerHandle;
use crate::error::{Error, Result};
use crate::session::{AnySession, Session};

/// Counters of the per-peer demultiplexer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) datagrams: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) recv_errors: AtomicU64,
}

/// Traffic of a per-peer UDP server's socket, before it reaches the peer sessions (each
/// session's own [`SessionStats`](crate::SessionStats) counts what it decoded). All zero
/// for a server started with [`UdpServer::start_shared`](super::UdpServer::start_shared),
/// whose one session counts everything.
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

/// The part of a UDP server its [`ServerHandle`] keeps.
pub(crate) struct UdpServerSocket {
    /// Weak, so the socket closes once its sessions (and demultiplexer) are gone.
    pub(crate) socket: Weak<UdpSocket>,
    /// The demultiplexer's counters (per-peer servers).
    pub(crate) counters: Option<Arc<Counters>>,
    /// The one session (shared servers).
    pub(crate) shared: Option<AnySession>,
}

/// UDP servers: what their handle adds. On a handle of another transport these find no
/// UDP socket: the stats read zero, the session is `None` and the multicast calls fail.
impl ServerHandle {
    fn udp(&self) -> Option<&UdpServerSocket> {
        self.transport::<UdpServerSocket>()
    }

    /// Socket traffic of a per-peer UDP server (see [`UdpStats`]); zero for others.
    pub fn udp_stats(&self) -> UdpStats {
        let Some(c) = self.udp().and_then(|udp| udp.counters.as_ref()) else {
            return UdpStats::default();
        };
        UdpStats {
            datagrams: c.datagrams.load(Relaxed),
            bytes: c.bytes.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            recv_errors: c.recv_errors.load(Relaxed),
        }
    }

    /// The one session of a UDP server started with
    /// [`start_shared`](super::UdpServer::start_shared), typed by its listener's
    /// [`Out`](crate::EventListener::Out) (a [`Datagram`](super::Datagram)): `None` for
    /// any other server, or when `Out` is not that listener's.
    pub fn shared_session<Out: Send + 'static>(&self) -> Option<Session<Out>> {
        self.udp()?.shared.as_ref()?.downcast()
    }

    /// The UDP socket, while the server serves.
    fn udp_socket(&self) -> Result<Arc<UdpSocket>> {
        let Some(udp) = self.udp() else {
            let msg = format!("{} is not a UDP server", self.local_addr());
            return Err(Error::from(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                msg,
            )));
        };
        udp.socket.upgrade().ok_or_else(|| {
            let msg = "the server's socket is closed";
            Error::from(std::io::Error::new(std::io::ErrorKind::NotConnected, msg))
        })
    }

    /// Joins an IPv4 multicast group now, on the interface with address `interface`
    /// (`Ipv4Addr::UNSPECIFIED`: the OS picks). UDP servers only.
    pub fn join_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> Result<()> {
        let socket = self.udp_socket()?;
        socket::only_joined_groups(&SockRef::from(&*socket), true)?;
        Ok(socket.join_multicast_v4(group, interface)?)
    }

    /// Leaves an IPv4 multicast group joined on `interface`: its datagrams stop coming.
    /// UDP servers only.
    pub fn leave_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> Result<()> {
        Ok(self.udp_socket()?.leave_multicast_v4(group, interface)?)
    }

    /// Joins an IPv6 multicast group now, on the interface with index `interface`
    /// (0: the OS picks). UDP servers only.
    pub fn join_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> Result<()> {
        let socket = self.udp_socket()?;
        socket::only_joined_groups(&SockRef::from(&*socket), false)?;
        Ok(socket.join_multicast_v6(&group, interface)?)
    }

    /// Leaves an IPv6 multicast group joined on `interface`. UDP servers only.
    pub fn leave_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> Result<()> {
        Ok(self.udp_socket()?.leave_multicast_v6(&group, interface)?)
    }
}
