//! Every default of the crate, in one place: what an endpoint or session uses for an
//! option nobody set. Where the Go getty has a default, it is getty's.
//!
//! Session limits and timers are the fields of [`SessionConfig`](crate::SessionConfig)
//! (its `Default` uses the constants here); endpoint options are set on the builders
//! through [`ServerBuilder`](crate::ServerBuilder) and
//! [`ClientBuilder`](crate::ClientBuilder).

use std::time::Duration;

// ---- sessions (`SessionConfig`) ----

/// getty's default max message length: 4 KiB.
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 4 * 1024;
/// getty's default cron period: 60 s.
pub const DEFAULT_CRON_PERIOD: Duration = Duration::from_secs(60);
/// getty's default wait time for a graceful close: 3 s.
pub const DEFAULT_WAIT_TIME: Duration = Duration::from_secs(3);
/// Default write timeout: 5 s without write progress while bytes are queued.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default read queue: 16 batches of decoded frames between reader and logic actor.
pub const DEFAULT_READ_QUEUE: usize = 16;
/// Default hand-over queue: 1,024 frames written through `Session` handles that wait
/// to be encoded into the write queue.
pub const DEFAULT_HANDOFF_QUEUE: usize = 1024;
/// Default write high-water mark: 256 KiB of encoded, unwritten bytes. Measured with
/// the yardstick's bulk echo (16 connections × 4 frames of 16 KiB in flight): 256 KiB
/// ran as fast as 1 MiB did, and 64 KiB (netty's default) 10 % slower with a 26 %
/// higher p99; so a peer that stops reading holds a quarter of what it did.
pub const DEFAULT_WRITE_HIGH_WATER: usize = 256 * 1024;
/// Default write low-water mark: 64 KiB.
pub const DEFAULT_WRITE_LOW_WATER: usize = 64 * 1024;

// ---- every endpoint ----

/// Default memory budget of an endpoint: 256 MiB of buffered bytes across its sessions.
///
/// Enough that hundreds of sessions with full write queues, or a few bulk sessions,
/// never meet it; small enough that a crowd of peers that send and never read cannot
/// take more than a few hundred MiB of a server before their write timeouts end them.
pub const DEFAULT_MEMORY_BUDGET: usize = 256 * 1024 * 1024;

/// Default number of arbiters (threads) a server spreads its sessions over: one per
/// core, as the OS reports them (1 if it cannot tell).
pub fn server_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Default number of arbiters a client spreads its sessions over: 1, since a client's
/// sessions are few.
pub const DEFAULT_CLIENT_WORKERS: usize = 1;

// ---- clients ----

/// getty's default connection number of a client: 1.
pub const DEFAULT_CONNECTIONS: usize = 1;
/// getty's default connect timeout: 3 s, handshakes included.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// getty's default reconnect interval: 300 ms.
pub const DEFAULT_RECONNECT_INTERVAL: Duration = Duration::from_millis(300);
/// Default cap on the delay between dial rounds: 10 s. (getty grows linearly to 10×
/// its interval, 3 s by default; a longer cap keeps a server that is down for minutes
/// from costing more than a handful of dials per minute.)
pub const DEFAULT_MAX_RECONNECT_INTERVAL: Duration = Duration::from_secs(10);

// ---- transports ----

/// How long a TLS handshake may take, from the accepted (or connected) socket to the
/// finished handshake: 10 s. Long enough for a slow network, short enough that idle
/// connections cannot pile up.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default max datagram size: 65,507 bytes, the most an IPv4 UDP datagram can carry
/// (64 KiB less the IPv4 and UDP headers).
pub const DEFAULT_MAX_DATAGRAM_SIZE: usize = 65_507;
/// Default queue of one peer's session on a per-peer UDP server: 256 datagrams waiting
/// for its reader. Past it, that peer's datagrams are dropped (and counted) until it
/// drains.
pub const DEFAULT_PEER_QUEUE: usize = 256;
/// The path a WebSocket server accepts upgrades on: `/`.
pub const DEFAULT_WS_PATH: &str = "/";
