//! Options of TCP sockets, the same for a server's accepted sockets and a client's dialed
//! ones: Nagle, keepalive, and the user timeout that bounds unacknowledged data.

use std::io;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use tokio::net::TcpStream;

/// TCP keepalive: after `idle` without traffic the kernel probes the peer every
/// `interval`, and after `retries` unanswered probes it ends the connection, which the
/// session sees as an I/O error (`TimedOut`, then `on_error` and `on_close`). A peer that
/// vanished (powered off, cut off behind a NAT) is so found within
/// `idle + interval × retries`, while an idle peer whose host answers is never bothered
/// at the application level. The kernel counts in whole seconds: each time is rounded up
/// to one (and at least 1 s) when it is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Time without traffic before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes that end the connection (at least 1).
    pub retries: u32,
}

impl Keepalive {
    /// The longest a dead peer goes unnoticed on an idle connection, with the times
    /// rounded as the kernel takes them.
    pub fn detection_bound(&self) -> Duration {
        whole_seconds(self.idle) + whole_seconds(self.interval) * self.retries.max(1)
    }
}

/// Binds a listening socket at the first address `addr` resolves to, with SO_REUSEADDR
/// (as tokio's own bind) and, if asked, SO_REUSEPORT, ready to register with a runtime.
pub(crate) async fn listen(addr: &str, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let Some(addr) = tokio::net::lookup_host(addr).await?.next() else {
        let msg = format!("{addr} resolves to no address");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Connections the kernel holds for a listener before it accepts them (tokio's and
/// actix-web's default).
const LISTEN_BACKLOG: i32 = 1024;

/// `d` rounded up to whole seconds, at least one: keepalive times as the kernel takes
/// them (it would refuse 0 and truncate the rest).
fn whole_seconds(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

/// How a TCP endpoint sets up its sockets; set through [`TcpSocketBuilder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSocketOptions {
    pub(crate) nodelay: bool,
    pub(crate) keepalive: Option<Keepalive>,
    pub(crate) user_timeout: Option<Duration>,
}

impl Default for TcpSocketOptions {
    fn default() -> Self {
        TcpSocketOptions {
            nodelay: true,
            keepalive: None,
            user_timeout: None,
        }
    }
}

impl TcpSocketOptions {
    /// Applies the options to a connected socket. A failure is logged and the socket used
    /// as it is: these options tune a connection, they are no reason to refuse it.
    pub(crate) fn apply(&self, stream: &TcpStream) {
        if let Err(err) = stream.set_nodelay(self.nodelay) {
            tracing::debug!(%err, "set_nodelay failed");
        }
        let socket = SockRef::from(stream);
        if let Some(k) = &self.keepalive {
            let params = TcpKeepalive::new()
                .with_time(whole_seconds(k.idle))
                .with_interval(whole_seconds(k.interval))
                .with_retries(k.retries.max(1));
            if let Err(err) = socket.set_tcp_keepalive(&params) {
                tracing::warn!(%err, "TCP keepalive not set");
            }
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(timeout) = self.user_timeout {
            if let Err(err) = socket.set_tcp_user_timeout(Some(timeout)) {
                tracing::warn!(%err, "TCP_USER_TIMEOUT not set");
            }
        }
    }
}

/// The socket options every TCP endpoint has, server (on each accepted socket) and
/// client (on each dialed one), TLS or not. Default: Nagle off, no keepalive, no user
/// timeout (the kernel's, about 15 minutes of retransmissions).
pub trait TcpSocketBuilder: Sized {
    /// The socket options this builder keeps.
    fn tcp_socket_options(&mut self) -> &mut TcpSocketOptions;

    /// Sets TCP_NODELAY. Default: on (frames go out at once; the session already
    /// gathers what one batch writes).
    fn nodelay(mut self, on: bool) -> Self {
        self.tcp_socket_options().nodelay = on;
        self
    }

    /// Turns TCP keepalive on with these timings: the way to find a peer that vanished
    /// while the connection is idle. Default: off (getty leaves heartbeats to the
    /// application; see `on_cron`).
    fn keepalive(mut self, keepalive: Keepalive) -> Self {
        self.tcp_socket_options().keepalive = Some(keepalive);
        self
    }

    /// Sets TCP_USER_TIMEOUT (Linux): how long sent data may stay unacknowledged before
    /// the kernel ends the connection, so a peer that vanished while data was in flight
    /// is found within it rather than after minutes of retransmission. Pair it with
    /// keepalive (at least `keepalive.detection_bound()`), as the kernel applies it to
    /// keepalive probes too. Default: the kernel's. Elsewhere it is accepted and not set.
    fn user_timeout(mut self, timeout: Duration) -> Self {
        self.tcp_socket_options().user_timeout = Some(timeout);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_times_are_whole_seconds_as_the_kernel_takes_them() {
        let k = Keepalive {
            idle: Duration::from_millis(600),
            interval: Duration::from_millis(1500),
            retries: 0,
        };
        assert_eq!(whole_seconds(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            whole_seconds(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
        assert_eq!(k.detection_bound(), Duration::from_secs(1 + 2));
    }
}
