//! UDP sockets: binding with options (address reuse, multicast), and the write side of a
//! session, where each `poll_write` sends exactly one datagram.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWrite;
use tokio::net::UdpSocket;

use super::codec::{parse_envelope, ENVELOPE_LEN};
use crate::error::Error;
use crate::session::{MessageLimit, MessageRejected, SessionWriter};

/// Multicast settings of a UDP endpoint, applied when its socket is bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Multicast {
    pub(crate) join_v4: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub(crate) join_v6: Vec<(Ipv6Addr, u32)>,
    pub(crate) interface_v4: Option<Ipv4Addr>,
    pub(crate) interface_v6: Option<u32>,
    pub(crate) loopback: Option<bool>,
    pub(crate) ttl: Option<u32>,
}

/// How a UDP endpoint makes its socket; set through [`UdpSocketBuilder`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdpSocketOptions {
    pub(crate) reuse_address: bool,
    /// SO_REUSEPORT (servers: from `reuse_port` on the builder).
    pub(crate) reuse_port: bool,
    pub(crate) recv_buffer: Option<usize>,
    pub(crate) send_buffer: Option<usize>,
    pub(crate) multicast: Multicast,
}

/// The socket options every UDP endpoint has, server and client, kept in its
/// [`UdpSocketOptions`] and applied when its socket is bound.
pub trait UdpSocketBuilder: Sized {
    /// The socket options this builder keeps.
    fn udp_socket_options(&mut self) -> &mut UdpSocketOptions;

    /// Sets SO_REUSEADDR before binding, so several sockets (in this process or others)
    /// can bind the same port, e.g. to receive the same multicast group. Default: off.
    fn reuse_address(mut self, on: bool) -> Self {
        self.udp_socket_options().reuse_address = on;
        self
    }

    /// The socket's receive buffer size (SO_RCVBUF). Default: the OS's.
    fn recv_buffer_size(mut self, bytes: usize) -> Self {
        self.udp_socket_options().recv_buffer = Some(bytes);
        self
    }

    /// The socket's send buffer size (SO_SNDBUF). Default: the OS's.
    fn send_buffer_size(mut self, bytes: usize) -> Self {
        self.udp_socket_options().send_buffer = Some(bytes);
        self
    }

    /// Joins the IPv4 multicast `group` on the interface with address `interface`
    /// (`Ipv4Addr::UNSPECIFIED`: the OS picks) once bound. May be given several times.
    fn join_multicast_v4(mut self, group: Ipv4Addr, interface: Ipv4Addr) -> Self {
        let multicast = &mut self.udp_socket_options().multicast;
        multicast.join_v4.push((group, interface));
        self
    }

    /// Joins the IPv6 multicast `group` on the interface with index `interface` (0: the
    /// OS picks) once bound. May be given several times.
    fn join_multicast_v6(mut self, group: Ipv6Addr, interface: u32) -> Self {
        let multicast = &mut self.udp_socket_options().multicast;
        multicast.join_v6.push((group, interface));
        self
    }

    /// The interface multicast datagrams are sent from, by address (IPv4 sockets).
    /// Default: the OS's choice, by its routes.
    fn multicast_interface_v4(mut self, interface: Ipv4Addr) -> Self {
        self.udp_socket_options().multicast.interface_v4 = Some(interface);
        self
    }

    /// The interface multicast datagrams are sent from, by index (IPv6 sockets).
    /// Default: the OS's choice.
    fn multicast_interface_v6(mut self, interface: u32) -> Self {
        self.udp_socket_options().multicast.interface_v6 = Some(interface);
        self
    }

    /// Whether multicast datagrams this socket sends are looped back to receivers on
    /// this host (IP_MULTICAST_LOOP or IPV6_MULTICAST_LOOP, by the socket's family).
    /// Default: the OS's (on).
    fn multicast_loop(mut self, on: bool) -> Self {
        self.udp_socket_options().multicast.loopback = Some(on);
        self
    }

    /// TTL (IPv4) or hop limit (IPv6) of multicast datagrams sent. Default: the OS's (1).
    fn multicast_ttl(mut self, ttl: u32) -> Self {
        self.udp_socket_options().multicast.ttl = Some(ttl);
        self
    }
}

/// Resolves `addr` (`host:port`) to its first address.
pub(crate) async fn resolve(addr: &str) -> io::Result<SocketAddr> {
    let mut addrs = tokio::net::lookup_host(addr).await?;
    addrs.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr} resolves to no address"),
        )
    })
}

/// The unspecified address of `addr`'s family, port 0.
pub(crate) fn any_of_family(addr: &SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// Binds a UDP socket to `addr` with `options`, on the current runtime.
pub(crate) fn bind(addr: SocketAddr, options: &UdpSocketOptions) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if options.reuse_address {
        socket.set_reuse_address(true)?;
    }
    if options.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if let Some(n) = options.recv_buffer {
        socket.set_recv_buffer_size(n)?;
    }
    if let Some(n) = options.send_buffer {
        socket.set_send_buffer_size(n)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    apply_multicast(&socket, addr.is_ipv4(), &options.multicast)?;
    UdpSocket::from_std(socket.into())
}

fn apply_multicast(socket: &Socket, v4: bool, m: &Multicast) -> io::Result<()> {
    if !m.join_v4.is_empty() || !m.join_v6.is_empty() {
        only_joined_groups(socket, v4)?;
    }
    for (group, interface) in &m.join_v4 {
        socket.join_multicast_v4(group, interface)?;
    }
    for (group, interface) in &m.join_v6 {
        socket.join_multicast_v6(group, *interface)?;
    }
    if let Some(interface) = &m.interface_v4 {
        socket.set_multicast_if_v4(interface)?;
    }
    if let Some(interface) = m.interface_v6 {
        socket.set_multicast_if_v6(interface)?;
    }
    match (v4, m.loopback) {
        (true, Some(on)) => socket.set_multicast_loop_v4(on)?,
        (false, Some(on)) => socket.set_multicast_loop_v6(on)?,
        (_, None) => {}
    }
    match (v4, m.ttl) {
        (true, Some(ttl)) => socket.set_multicast_ttl_v4(ttl)?,
        (false, Some(hops)) => socket.set_multicast_hops_v6(hops)?,
        (_, None) => {}
    }
    Ok(())
}

/// Makes the socket receive only the groups it joined itself. Linux by default hands a
/// socket every group that any socket of the host joined on its port (IP_MULTICAST_ALL),
/// so leaving a group would not stop its datagrams while a neighbour stays in it.
pub(crate) fn only_joined_groups(socket: &Socket, v4: bool) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        if v4 {
            socket.set_multicast_all_v4(false)?;
        } else {
            socket.set_multicast_all_v6(false)?;
        }
    }
    let _ = (socket, v4);
    Ok(())
}

type Writable = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// Sends whole datagrams on a socket that other tasks may send on too. It waits for the
/// socket through its own readiness future (tokio's `poll_send*` keep only the latest
/// task's waker, which would strand the others of a shared socket).
pub(crate) struct DatagramSender {
    socket: Arc<UdpSocket>,
    writable: Option<Writable>,
}

impl DatagramSender {
    pub(crate) fn new(socket: Arc<UdpSocket>) -> Self {
        DatagramSender {
            socket,
            writable: None,
        }
    }

    /// Sends `datagram` (to `to`, or to the connected peer): `Ready(Ok(n))` once sent,
    /// `Pending` while the send buffer is full, and a [`MessageRejected`] error when the
    /// OS refuses this datagram (the session drops it, tells its writer, and goes on).
    pub(crate) fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        datagram: &[u8],
        to: Option<SocketAddr>,
    ) -> Poll<io::Result<usize>> {
        loop {
            if let Some(writable) = self.writable.as_mut() {
                match writable.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(result) => {
                        self.writable = None;
                        if let Err(err) = result {
                            return Poll::Ready(Err(err));
                        }
                    }
                }
            }
            let sent = match to {
                Some(addr) => self.socket.try_send_to(datagram, addr),
                None => self.socket.try_send(datagram),
            };
            match sent {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    let socket = self.socket.clone();
                    self.writable = Some(Box::pin(async move { socket.writable().await }));
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    let err = match to {
                        Some(addr) => io::Error::new(err.kind(), format!("send to {addr}: {err}")),
                        None => err,
                    };
                    return Poll::Ready(Err(MessageRejected::into_io(Error::from(err))));
                }
            }
        }
    }
}

/// Where a session's datagrams go.
pub(crate) enum Destination {
    /// The socket's connected peer.
    Connected,
    /// One fixed peer (a per-peer session on the server's socket).
    Peer(SocketAddr),
    /// The address in each message's envelope (an unconnected session).
    Envelope,
}

/// The write half of a UDP session: each `poll_write` is one datagram.
pub(crate) struct DatagramWriter {
    sender: DatagramSender,
    destination: Destination,
}

impl DatagramWriter {
    pub(crate) fn new(socket: Arc<UdpSocket>, destination: Destination) -> Self {
        DatagramWriter {
            sender: DatagramSender::new(socket),
            destination,
        }
    }

    /// The writer of a UDP session sending to `destination`, each encoded frame one
    /// datagram of at most `max_datagram` bytes (an envelope's address header aside).
    pub(crate) fn for_session(
        socket: Arc<UdpSocket>,
        destination: Destination,
        max_datagram: usize,
    ) -> SessionWriter<DatagramWriter> {
        let overhead = match destination {
            Destination::Envelope => ENVELOPE_LEN,
            Destination::Connected | Destination::Peer(_) => 0,
        };
        SessionWriter {
            io: DatagramWriter::new(socket, destination),
            preserves_messages: true,
            limit: Some(MessageLimit {
                max: max_datagram,
                overhead,
            }),
        }
    }
}

impl AsyncWrite for DatagramWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let (to, payload) = match this.destination {
            Destination::Connected => (None, buf),
            Destination::Peer(peer) => (Some(peer), buf),
            Destination::Envelope => match parse_envelope(buf) {
                Some(peer) => (Some(peer), &buf[ENVELOPE_LEN..]),
                None => {
                    let msg = "a message without its address envelope";
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, msg)));
                }
            },
        };
        match this.sender.poll_send(cx, payload, to) {
            // The whole message was taken (the envelope never goes on the wire).
            Poll::Ready(Ok(n)) if n == payload.len() => Poll::Ready(Ok(buf.len())),
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
