//! UDP endpoints, in the same session model as TCP: the same [`EventListener`], the same
//! reader and logic actors, the same supervisor (cron, timeouts, graceful stop).
//!
//! - [`UdpClient`]: a **connected** socket per session, bound to one server address.
//!   Frames and writes are those of the listener's codec, as over TCP.
//! - [`UdpServer::start_shared`]: one **unconnected** socket, one session for every peer.
//!   The listener's codec is a [`Datagrams`] adapter, so each frame arrives as a
//!   [`Datagram`] with its source address, and each write says where it goes (a peer or
//!   a multicast group).
//! - [`UdpServer::start_per_peer`]: one socket, and a session of its own for each peer
//!   address, made on the peer's first datagram by the `new_session` hook (which may
//!   refuse it), with its own listener, cron, `last_active` and idle expiry.
//!
//! ## Datagrams and frames
//! Each datagram is decoded as exactly one frame: the codec sees the whole datagram and
//! its end is the end of the input (`decode_eof`), so a partial frame or bytes left over
//! are an [`ErrorKind::Decode`](crate::ErrorKind::Decode) for that datagram. A datagram
//! longer than the max datagram size is an
//! [`ErrorKind::FrameTooLong`](crate::ErrorKind::FrameTooLong). Either way `on_error`
//! reports it, [`SessionStats::soft_errors`](crate::SessionStats) counts it, and the
//! session goes on: one bad peer never closes a socket that serves others. Each written
//! frame is one datagram; one longer than the max datagram size is refused at the write
//! with `ErrorKind::FrameTooLong`.
//!
//! ## Errors that do not end a session
//! UDP has no connection to lose. An ICMP "port unreachable" (`ConnectionRefused` on a
//! connected socket), a receive error, or a datagram the OS refuses to send (to an
//! unreachable address, say) goes to `on_error` and the session goes on; the write that
//! queued a refused datagram fails with that error ([`Session::write`](crate::Session::write)
//! returns it). A full send buffer is not an error: the session waits for room, bounded
//! by the write queue and the write timeout like any session. Only
//! [`MAX_ERRORS_IN_A_ROW`] receive errors with no datagram between them end a session.
//! Such an error is reported when it happens: frames read earlier that still wait for
//! room in a full write queue are delivered after it.
//!
//! ## Lossy by nature
//! Nothing is retried or acknowledged on the wire. A per-peer session whose queue is
//! full (its listener is slower than its peer) loses the datagrams that do not fit,
//! counted in [`UdpStats::dropped`]: the shared socket never waits for one slow peer. A
//! session that stops reading (its write queue is full) leaves datagrams to the kernel's
//! receive buffer, which drops what it cannot hold.
//!
//! ## Multicast
//! [`UdpServer`] joins groups at bind time ([`UdpServer::join_multicast_v4`], `_v6`) or
//! later ([`ServerHandle::join_multicast_v4`](crate::ServerHandle::join_multicast_v4), `leave_…`), and sets the multicast
//! interface, TTL and loopback. Group datagrams arrive as frames with their source
//! address; writing a [`Datagram`] to the group address sends to the group. Several
//! receivers on one port need [`UdpServer::reuse_address`].
//!
//! All sockets and sessions of a UDP endpoint live on the arbiter that starts it.
//!
//! [`EventListener`]: crate::EventListener

mod client;
mod codec;
mod datagram_reader;
mod demux;
mod handle;
mod server;
mod socket;

pub use client::UdpClient;
pub use codec::{Datagram, Datagrams};
pub use datagram_reader::MAX_ERRORS_IN_A_ROW;
pub use handle::UdpStats;
pub use server::UdpServer;
pub use socket::{UdpSocketBuilder, UdpSocketOptions};
