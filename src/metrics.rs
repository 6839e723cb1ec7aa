//! Metrics an operator can scrape, through the [`metrics`] facade: getty
//! records, the application picks the exporter by installing a recorder (for Prometheus,
//! `metrics-exporter-prometheus`). With no recorder installed nothing is recorded, and
//! every update costs a test of an empty handle.
//!
//! Each endpoint registers its metric handles once, when it starts, with the label
//! `endpoint` set to its [`metrics_label`](crate::ServerBuilder::metrics_label) (servers)
//! or [`metrics_label`](crate::ClientBuilder::metrics_label) (clients). By default that
//! is the transport kind: `tcp`, `tls`, `unix`, `udp`, `ws` or `quic` for servers,
//! `tcp-client`, `tls-client`, `unix-client`, `udp-client`, `ws-client` or `quic-client`
//! for clients, and the kind
//! given to [`Server::kind`](crate::Server::kind) or [`Client::kind`](crate::Client::kind)
//! for a transport of your own. So install the recorder **before** starting endpoints:
//! one started earlier keeps the no-op handles it got. Endpoints with the same label add
//! up into the same series (the client gauges, which are set rather than added to, then
//! show whichever client set them last).
//!
//! The sessions' hot path (read, decode, dispatch, encode, write) does no metric work at
//! all: frames, bytes, refused writes and soft errors are added from each session's own
//! counters ([`SessionStats`]) by its endpoint's supervisor, on its tick at most every
//! 200 ms and once more when the session is gone. So a scrape may lag a session's
//! traffic by a fraction of a second, and a session that never opened (refused) adds
//! none. Sessions opening and closing are recorded as they happen.
//!
//! | name | type | labels | what it counts |
//! |---|---|---|---|
//! | `getty_sessions_open` | gauge | `endpoint` | Sessions open now: `on_open` succeeded and `on_close` has not run |
//! | `getty_sessions_opened_total` | counter | `endpoint` | Sessions whose `on_open` succeeded |
//! | `getty_sessions_closed_total` | counter | `endpoint`, `cause` | Opened sessions that closed since, by what began the close (the causes below) |
//! | `getty_sessions_refused_total` | counter | `endpoint` | Connections refused: by `max_connections`, the `new_session` hook or `on_open` (also WebSocket upgrades answered 503) |
//! | `getty_establish_failures_total` | counter | `endpoint` | Servers: accepted connections that failed to establish (a failed or timed-out TLS handshake), and requests to a WebSocket server's path that were no valid WebSocket handshake |
//! | `getty_frames_received_total` | counter | `endpoint` | Frames decoded from what the peers sent |
//! | `getty_frames_sent_total` | counter | `endpoint` | Frames encoded into the write queues (a raw byte write counts one); each leaves unless its session ends first |
//! | `getty_received_bytes_total` | counter | `endpoint` | Bytes read from the connections |
//! | `getty_sent_bytes_total` | counter | `endpoint` | Bytes the connections took (socket writes that succeeded) |
//! | `getty_writes_refused_total` | counter | `endpoint` | Writes refused for room: a full write queue or hand-over queue, or the memory budget |
//! | `getty_soft_errors_total` | counter | `endpoint` | Errors a session went on after (a bad or oversized datagram, an ICMP report) |
//! | `getty_dials_total` | counter | `endpoint` | Clients: dials started |
//! | `getty_dial_failures_total` | counter | `endpoint` | Clients: dials that failed to connect or timed out (a failed TLS or WebSocket handshake included) |
//! | `getty_reconnects_total` | counter | `endpoint` | Clients: dials after the first round, to replace a session lost or a dial failed |
//! | `getty_reconnect_backoff_seconds` | gauge | `endpoint` | Clients: the backoff before the dial round now scheduled; 0 when none waits |
//! | `getty_client_gave_up` | gauge | `endpoint` | Clients: 1 once the client met its `max_reconnect_attempts` and dials no more, else 0 |
//! | `getty_udp_dropped_total` | counter | `endpoint` | Per-peer UDP servers: datagrams dropped because their peer's queue was full or its share of the memory budget spent |
//! | `getty_udp_receive_errors_total` | counter | `endpoint` | Per-peer UDP servers: receive errors on the socket |
//!
//! A metric that does not apply to an endpoint (a client's dials on a server) is not
//! registered for it. The `cause` of a close is what began it:
//!
//! | `cause` | the close began because |
//! |---|---|
//! | `peer_eof` | the peer closed its side (EOF, a WebSocket close) |
//! | `stop` | this side closed it: `close()` from a callback or a handle, the endpoint's stop or drain |
//! | `read_timeout`, `write_timeout` | nothing was read, or no queued byte could be written, for the session's timeout (a UDP peer's idle timeout is a `read_timeout`) |
//! | `io`, `decode`, `encode`, `frame_too_long`, `websocket`, `tls`, `quic`, `listener_panic` | an error of that [`ErrorKind`] |
//! | `other` | an error of another kind |
//!
//! Serving them to Prometheus with `metrics-exporter-prometheus` (built without its
//! default features: its recorder renders the text format, and the application's own
//! HTTP server answers the scrape; `examples/echo_server.rs --metrics-addr` does it with
//! an actix-web route):
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use futures::{SinkExt, StreamExt};
//! use getty::prelude::*;
//! use getty::{EventListener, LengthDelimited, SessionContext, TcpServer};
//! use metrics_exporter_prometheus::PrometheusBuilder;
//!
//! struct Echo;
//! impl EventListener for Echo {
//!     type Codec = LengthDelimited;
//!     type Out = Bytes;
//!     fn on_message(&mut self, s: &mut SessionContext<'_, Self>, frame: BytesMut) {
//!         let _ = s.write(frame.freeze());
//!     }
//! }
//!
//! #[actix::main]
//! async fn main() -> getty::Result<()> {
//!     // First the recorder, then the endpoints.
//!     let recorder = PrometheusBuilder::new().build_recorder();
//!     let prometheus = recorder.handle();
//!     metrics::set_global_recorder(recorder).expect("the first recorder");
//!
//!     let server = TcpServer::new("127.0.0.1:0")
//!         .metrics_label("echo")
//!         .start(|_| Ok((Echo, LengthDelimited::new())))
//!         .await?;
//!     let stream = tokio::net::TcpStream::connect(server.inet_addr()?).await?;
//!     let mut client = tokio_util::codec::Framed::new(stream, LengthDelimited::new());
//!     client.send(Bytes::from_static(b"hello")).await?;
//!     client.next().await.expect("an echo")?;
//!     drop(client);
//!     server.stop().await;
//!
//!     // What a GET /metrics would answer:
//!     let page = prometheus.render();
//!     assert!(page.contains(r#"getty_sessions_opened_total{endpoint="echo"} 1"#));
//!     assert!(page.contains(r#"getty_frames_received_total{endpoint="echo"} 1"#));
//!     assert!(page.contains(r#"getty_sessions_open{endpoint="echo"} 0"#));
//!     Ok(())
//! }
//! ```

use std::sync::Arc;

use ::metrics::{describe_counter, describe_gauge, Counter, Gauge, SharedString, Unit};

use crate::error::ErrorKind;
use crate::session::SessionStats;

/// The label every getty metric carries: the endpoint's metrics label.
pub const ENDPOINT: &str = "endpoint";
/// The label of [`SESSIONS_CLOSED`]: what began the close.
pub const CAUSE: &str = "cause";

/// Gauge: sessions open now.
pub const SESSIONS_OPEN: &str = "getty_sessions_open";
/// Counter: sessions whose `on_open` succeeded.
pub const SESSIONS_OPENED: &str = "getty_sessions_opened_total";
/// Counter: opened sessions that closed since, labelled with their [`CAUSE`].
pub const SESSIONS_CLOSED: &str = "getty_sessions_closed_total";
/// Counter: connections refused (a limit, the `new_session` hook, `on_open`).
pub const SESSIONS_REFUSED: &str = "getty_sessions_refused_total";
/// Counter: accepted connections that failed to establish (servers).
pub const ESTABLISH_FAILURES: &str = "getty_establish_failures_total";
/// Counter: frames decoded.
pub const FRAMES_RECEIVED: &str = "getty_frames_received_total";
/// Counter: frames encoded into the write queues.
pub const FRAMES_SENT: &str = "getty_frames_sent_total";
/// Counter: bytes read.
pub const RECEIVED_BYTES: &str = "getty_received_bytes_total";
/// Counter: bytes written.
pub const SENT_BYTES: &str = "getty_sent_bytes_total";
/// Counter: writes refused for room.
pub const WRITES_REFUSED: &str = "getty_writes_refused_total";
/// Counter: errors a session went on after.
pub const SOFT_ERRORS: &str = "getty_soft_errors_total";
/// Counter: dials started (clients).
pub const DIALS: &str = "getty_dials_total";
/// Counter: dials that failed (clients).
pub const DIAL_FAILURES: &str = "getty_dial_failures_total";
/// Counter: dials after the first round (clients).
pub const RECONNECTS: &str = "getty_reconnects_total";
/// Gauge: the backoff before the scheduled dial round, in seconds (clients).
pub const RECONNECT_BACKOFF: &str = "getty_reconnect_backoff_seconds";
/// Gauge: 1 once the client gave up dialing (clients).
pub const CLIENT_GAVE_UP: &str = "getty_client_gave_up";
/// Counter: datagrams dropped by a per-peer UDP server.
pub const UDP_DROPPED: &str = "getty_udp_dropped_total";
/// Counter: receive errors on a per-peer UDP server's socket.
pub const UDP_RECEIVE_ERRORS: &str = "getty_udp_receive_errors_total";

/// What began a session's close, the [`CAUSE`] label of [`SESSIONS_CLOSED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseCause {
    PeerEof,
    Stop,
    ReadTimeout,
    WriteTimeout,
    Io,
    Decode,
    Encode,
    FrameTooLong,
    WebSocket,
    Tls,
    Quic,
    ListenerPanic,
    Other,
}

impl CloseCause {
    /// Every cause, in the order of their counters.
    const ALL: [CloseCause; 13] = [
        CloseCause::PeerEof,
        CloseCause::Stop,
        CloseCause::ReadTimeout,
        CloseCause::WriteTimeout,
        CloseCause::Io,
        CloseCause::Decode,
        CloseCause::Encode,
        CloseCause::FrameTooLong,
        CloseCause::WebSocket,
        CloseCause::Tls,
        CloseCause::Quic,
        CloseCause::ListenerPanic,
        CloseCause::Other,
    ];

    /// The cause for a close that an error of `kind` began.
    pub(crate) fn of(kind: &ErrorKind) -> Self {
        match kind {
            ErrorKind::ReadTimeout { .. } => CloseCause::ReadTimeout,
            ErrorKind::WriteTimeout { .. } => CloseCause::WriteTimeout,
            ErrorKind::Io { .. } => CloseCause::Io,
            ErrorKind::Decode { .. } => CloseCause::Decode,
            ErrorKind::Encode { .. } => CloseCause::Encode,
            ErrorKind::FrameTooLong { .. } => CloseCause::FrameTooLong,
            ErrorKind::WebSocket { .. } => CloseCause::WebSocket,
            ErrorKind::Tls { .. } => CloseCause::Tls,
            ErrorKind::Quic { .. } => CloseCause::Quic,
            ErrorKind::ListenerPanic { .. } => CloseCause::ListenerPanic,
            _ => CloseCause::Other,
        }
    }

    /// The label value.
    fn label(self) -> &'static str {
        match self {
            CloseCause::PeerEof => "peer_eof",
            CloseCause::Stop => "stop",
            CloseCause::ReadTimeout => "read_timeout",
            CloseCause::WriteTimeout => "write_timeout",
            CloseCause::Io => "io",
            CloseCause::Decode => "decode",
            CloseCause::Encode => "encode",
            CloseCause::FrameTooLong => "frame_too_long",
            CloseCause::WebSocket => "websocket",
            CloseCause::Tls => "tls",
            CloseCause::Quic => "quic",
            CloseCause::ListenerPanic => "listener_panic",
            CloseCause::Other => "other",
        }
    }
}

/// Which metrics an endpoint has besides those of its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A server whose connections are established (TCP, TLS, Unix, WebSocket, yours).
    Server,
    /// A UDP server; `per_peer`: one whose demultiplexer may drop datagrams.
    UdpServer { per_peer: bool },
    /// A client: dials, failures, reconnects and backoff.
    Client,
}

/// The metric handles of one endpoint, registered once when it starts (see the module
/// docs); those its [`Role`] lacks are no-ops.
#[derive(Debug)]
pub(crate) struct EndpointMetrics {
    pub(crate) sessions_open: Gauge,
    pub(crate) opened: Counter,
    closed: [Counter; CloseCause::ALL.len()],
    pub(crate) refused: Counter,
    pub(crate) establish_failures: Counter,
    frames_received: Counter,
    frames_sent: Counter,
    received_bytes: Counter,
    sent_bytes: Counter,
    writes_refused: Counter,
    soft_errors: Counter,
    pub(crate) dials: Counter,
    pub(crate) dial_failures: Counter,
    pub(crate) reconnects: Counter,
    pub(crate) reconnect_backoff: Gauge,
    pub(crate) gave_up: Gauge,
    pub(crate) udp_dropped: Counter,
    pub(crate) udp_receive_errors: Counter,
}

impl EndpointMetrics {
    /// Registers the metrics of an endpoint of `role`, labelled `label` if the user set
    /// one, else `kind` (its transport's name), with the recorder installed now.
    pub(crate) fn register(label: Option<&Arc<str>>, kind: &str, role: Role) -> Self {
        describe();
        let label: SharedString = match label {
            Some(label) => SharedString::from(label.clone()),
            None => SharedString::from(kind.to_owned()),
        };
        let counter = |name: &'static str| ::metrics::counter!(name, ENDPOINT => label.clone());
        let gauge = |name: &'static str| ::metrics::gauge!(name, ENDPOINT => label.clone());
        let only = |applies: bool, name: &'static str| {
            if applies {
                counter(name)
            } else {
                Counter::noop()
            }
        };
        let client = role == Role::Client;
        let per_peer = role == Role::UdpServer { per_peer: true };
        EndpointMetrics {
            sessions_open: gauge(SESSIONS_OPEN),
            opened: counter(SESSIONS_OPENED),
            closed: CloseCause::ALL.map(|cause| {
                ::metrics::counter!(SESSIONS_CLOSED, ENDPOINT => label.clone(), CAUSE => cause.label())
            }),
            refused: counter(SESSIONS_REFUSED),
            establish_failures: only(role == Role::Server, ESTABLISH_FAILURES),
            frames_received: counter(FRAMES_RECEIVED),
            frames_sent: counter(FRAMES_SENT),
            received_bytes: counter(RECEIVED_BYTES),
            sent_bytes: counter(SENT_BYTES),
            writes_refused: counter(WRITES_REFUSED),
            soft_errors: counter(SOFT_ERRORS),
            dials: only(client, DIALS),
            dial_failures: only(client, DIAL_FAILURES),
            reconnects: only(client, RECONNECTS),
            reconnect_backoff: if client {
                gauge(RECONNECT_BACKOFF)
            } else {
                Gauge::noop()
            },
            gave_up: if client {
                gauge(CLIENT_GAVE_UP)
            } else {
                Gauge::noop()
            },
            udp_dropped: only(per_peer, UDP_DROPPED),
            udp_receive_errors: only(per_peer, UDP_RECEIVE_ERRORS),
        }
    }

    /// Counts a session closed by `cause`.
    pub(crate) fn closed(&self, cause: CloseCause) {
        // `ALL` lists the causes in declaration order, so the discriminant is the index.
        self.closed[cause as usize].increment(1);
    }

    /// Adds what a session's counters (`now`) gained since they were last added
    /// (`reported`, updated here).
    pub(crate) fn add_traffic(&self, now: SessionStats, reported: &mut SessionStats) {
        add(
            &self.frames_received,
            now.frames_read,
            &mut reported.frames_read,
        );
        add(
            &self.frames_sent,
            now.frames_written,
            &mut reported.frames_written,
        );
        add(
            &self.received_bytes,
            now.bytes_read,
            &mut reported.bytes_read,
        );
        add(
            &self.sent_bytes,
            now.bytes_written,
            &mut reported.bytes_written,
        );
        add(
            &self.writes_refused,
            now.writes_refused,
            &mut reported.writes_refused,
        );
        add(
            &self.soft_errors,
            now.soft_errors,
            &mut reported.soft_errors,
        );
    }
}

fn add(counter: &Counter, now: u64, reported: &mut u64) {
    if now != *reported {
        counter.increment(now.wrapping_sub(*reported));
        *reported = now;
    }
}

/// Tells the recorder what each metric means (the HELP lines of a Prometheus page).
/// Once per endpoint start: a recorder takes the same description again at no harm.
fn describe() {
    describe_gauge!(
        SESSIONS_OPEN,
        "Sessions open now (on_open succeeded, on_close has not run)."
    );
    describe_counter!(SESSIONS_OPENED, "Sessions whose on_open succeeded.");
    describe_counter!(
        SESSIONS_CLOSED,
        "Opened sessions that closed, by what began the close."
    );
    describe_counter!(
        SESSIONS_REFUSED,
        "Connections refused by a limit, new_session or on_open."
    );
    describe_counter!(
        ESTABLISH_FAILURES,
        "Accepted connections that failed to establish (TLS or WebSocket handshake)."
    );
    describe_counter!(FRAMES_RECEIVED, "Frames decoded from the peers.");
    describe_counter!(FRAMES_SENT, "Frames encoded into the write queues.");
    describe_counter!(
        RECEIVED_BYTES,
        Unit::Bytes,
        "Bytes read from the connections."
    );
    describe_counter!(SENT_BYTES, Unit::Bytes, "Bytes written to the connections.");
    describe_counter!(
        WRITES_REFUSED,
        "Writes refused for room (write queue, hand-over queue, memory budget)."
    );
    describe_counter!(
        SOFT_ERRORS,
        "Errors a session went on after (bad datagrams, ICMP reports)."
    );
    describe_counter!(DIALS, "Dials started.");
    describe_counter!(DIAL_FAILURES, "Dials that failed to connect or timed out.");
    describe_counter!(RECONNECTS, "Dials after the first round.");
    describe_gauge!(
        RECONNECT_BACKOFF,
        Unit::Seconds,
        "Backoff before the scheduled dial round; 0 when none waits."
    );
    describe_gauge!(CLIENT_GAVE_UP, "1 once the client gave up dialing.");
    describe_counter!(
        UDP_DROPPED,
        "Datagrams dropped for a full peer queue or a spent memory budget."
    );
    describe_counter!(UDP_RECEIVE_ERRORS, "Receive errors on the UDP socket.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_listed_in_declaration_order_with_distinct_labels() {
        for (i, cause) in CloseCause::ALL.iter().enumerate() {
            assert_eq!(*cause as usize, i, "{cause:?}");
        }
        let mut labels: Vec<_> = CloseCause::ALL.iter().map(|c| c.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), CloseCause::ALL.len());
    }

    #[test]
    fn traffic_adds_only_what_is_new() {
        // No recorder: the handles are no-ops, and the bookkeeping still advances.
        let metrics = EndpointMetrics::register(None, "tcp", Role::Server);
        let mut reported = SessionStats::default();
        let now = SessionStats {
            frames_read: 3,
            bytes_read: 30,
            ..SessionStats::default()
        };
        metrics.add_traffic(now, &mut reported);
        assert_eq!(reported, now);
    }
}
