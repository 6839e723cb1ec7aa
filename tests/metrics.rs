//! Metrics through the `metrics` facade, checked with exact counts against a recorder
//! installed for this whole test binary (a global recorder, since sessions run on
//! arbiter threads of their own). Each test gives its endpoints labels of their own, so
//! the tests can run side by side. Traffic reaches the metrics through the endpoint's
//! supervisor (every 200 ms, and as each session goes), so the checks of traffic come
//! after a stop (which waits until every session is gone) or wait for the count.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use futures::{SinkExt, StreamExt};
use getty::metrics::*;
use getty::prelude::*;
use getty::transport::ws::WsServer;
use getty::{
    ErrorKind, EventListener, LengthDelimited, SessionConfig, SessionContext, TcpClient, TcpServer,
    UdpServer,
};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A recorder that keeps every value in metrics-util's atomic registry and is read
/// without being reset (`DebuggingRecorder`'s snapshots reset every counter and gauge,
/// so tests running side by side would take each other's counts).
struct Books(Arc<Registry<Key, AtomicStorage>>);

impl Recorder for Books {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.0
            .get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.0
            .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop() // getty records none
    }
}

/// The registry behind the process's recorder, installed on first use: every test calls
/// this before it starts an endpoint (which registers its handles at start).
fn books() -> &'static Registry<Key, AtomicStorage> {
    static BOOKS: OnceLock<Arc<Registry<Key, AtomicStorage>>> = OnceLock::new();
    BOOKS.get_or_init(|| {
        let registry = Arc::new(Registry::atomic());
        metrics::set_global_recorder(Books(registry.clone())).expect("the only recorder");
        registry
    })
}

/// Whether `key` carries `endpoint` and, if given, `cause`.
fn labelled(key: &Key, endpoint: &str, cause: Option<&str>) -> bool {
    let has = |name: &str, value: &str| key.labels().any(|l| l.key() == name && l.value() == value);
    has(ENDPOINT, endpoint) && cause.is_none_or(|cause| has(CAUSE, cause))
}

/// Counter `name` of `endpoint` (with `cause`, for the closes), `None` if not registered.
fn counter_of(name: &str, endpoint: &str, cause: Option<&str>) -> Option<u64> {
    let mut found = None;
    books().visit_counters(|key, value| {
        if key.name() == name && labelled(key, endpoint, cause) {
            *found.get_or_insert(0) += value.load(Ordering::Relaxed);
        }
    });
    found
}

/// Counter `name` of `endpoint`, which must be registered.
fn counter(name: &str, endpoint: &str) -> u64 {
    counter_of(name, endpoint, None).unwrap_or_else(|| panic!("{name}{{{endpoint}}} registered"))
}

/// Sessions of `endpoint` closed for `cause`.
fn closed(endpoint: &str, cause: &str) -> u64 {
    counter_of(SESSIONS_CLOSED, endpoint, Some(cause)).expect("every cause is registered")
}

/// Gauge `name` of `endpoint`, which must be registered.
fn gauge(name: &str, endpoint: &str) -> f64 {
    let mut found = None;
    books().visit_gauges(|key, value| {
        if key.name() == name && labelled(key, endpoint, None) {
            found = Some(f64::from_bits(value.load(Ordering::Relaxed)));
        }
    });
    found.unwrap_or_else(|| panic!("{name}{{{endpoint}}} registered"))
}

/// Echoes every frame.
struct Echo;

impl EventListener for Echo {
    type Codec = LengthDelimited;
    type Out = Bytes;
    fn on_message(&mut self, s: &mut SessionContext<'_, Self>, frame: BytesMut) {
        let _ = s.write(frame.freeze());
    }
}

#[actix::test]
async fn tcp_sessions_frames_bytes_and_closes_by_cause_are_counted_exactly() {
    books();
    let label = "m-tcp";
    let config = SessionConfig::default().max_frame_length(1024);
    let server = TcpServer::new("127.0.0.1:0")
        .workers(1)
        .session_config(config)
        .metrics_label(label)
        .start(|_| Ok((Echo, LengthDelimited::new())))
        .await
        .expect("server starts");
    assert_eq!(gauge(SESSIONS_OPEN, label), 0.0);

    // Three peers echo 20 frames of 10 bytes each, then hang up: peer EOF.
    for _ in 0..3 {
        let mut client = connect(&server).await;
        for i in 0..20u8 {
            assert_eq!(round_trip(&mut client, &[i; 10]).await, &[i; 10][..]);
        }
    }
    wait_until(SECS5, "three closes", || server.stats().closed == 3).await;
    assert_eq!(closed(label, "peer_eof"), 3);
    assert_eq!(gauge(SESSIONS_OPEN, label), 0.0);

    // One announces a frame over the max: its close is the error's.
    let mut offender = connect(&server).await;
    offender
        .get_mut()
        .write_all(&[0, 0x10, 0, 0])
        .await
        .unwrap();
    let mut rest = Vec::new();
    within(SECS5, offender.get_mut().read_to_end(&mut rest))
        .await
        .ok();
    wait_until(SECS5, "the offender's close", || server.stats().closed == 4).await;
    assert_eq!(closed(label, "frame_too_long"), 1);

    // One is open when the server stops: a stop on this side.
    let mut last = connect(&server).await;
    round_trip(&mut last, b"last").await;
    assert_eq!(gauge(SESSIONS_OPEN, label), 1.0);
    server.stop().await;

    let stats = server.stats();
    assert_eq!((stats.opened, stats.closed), (5, 5));
    assert_eq!(counter(SESSIONS_OPENED, label), 5);
    assert_eq!(closed(label, "stop"), 1);
    assert_eq!(gauge(SESSIONS_OPEN, label), 0.0);
    // 61 frames came in and went back: 3 x 20 of 14 bytes on the wire, and one of 8;
    // the offender's 4 header bytes were read too.
    assert_eq!(counter(FRAMES_RECEIVED, label), 61);
    assert_eq!(counter(FRAMES_SENT, label), 61);
    assert_eq!(counter(RECEIVED_BYTES, label), 3 * 20 * 14 + 8 + 4);
    assert_eq!(counter(SENT_BYTES, label), 3 * 20 * 14 + 8);
    assert_eq!(counter(WRITES_REFUSED, label), 0);
    // A plain TCP server has no client or UDP metrics.
    assert_eq!(counter_of(DIALS, label, None), None);
    assert_eq!(counter_of(UDP_DROPPED, label, None), None);
}

/// Answers each frame with a burst of 64 frames of 1 KiB, counting the writes refused.
struct Burst(Arc<AtomicU64>);

impl EventListener for Burst {
    type Codec = LengthDelimited;
    type Out = Bytes;
    fn on_message(&mut self, s: &mut SessionContext<'_, Self>, _: BytesMut) {
        for _ in 0..64 {
            if let Err(err) = s.write(Bytes::from(vec![0u8; 1024])) {
                assert!(matches!(err.kind(), ErrorKind::QueueFull { .. }), "{err}");
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[actix::test]
async fn writes_refused_for_room_are_counted_as_the_writers_saw_them() {
    books();
    let label = "m-refused";
    let refused = Arc::new(AtomicU64::new(0));
    let seen = refused.clone();
    let config = SessionConfig::default().write_water_marks(4096, 1024);
    let server = TcpServer::new("127.0.0.1:0")
        .workers(1)
        .session_config(config)
        .metrics_label(label)
        .start(move |_| Ok((Burst(seen.clone()), LengthDelimited::new())))
        .await
        .expect("server starts");
    let mut client = connect(&server).await;
    client.send(Bytes::from_static(b"go")).await.unwrap();
    // Every frame the burst got queued comes back; then the peer hangs up.
    let refused_now = || refused.load(Ordering::Relaxed);
    wait_until(SECS5, "the burst", || refused_now() > 0).await;
    for _ in 0..64 - refused_now() {
        within(SECS5, client.next())
            .await
            .expect("a frame")
            .expect("valid");
    }
    drop(client);
    wait_until(SECS5, "the close", || server.stats().closed == 1).await;
    server.stop().await;
    let refused = refused_now();
    assert!(refused > 0 && refused < 64, "{refused} of 64 refused");
    assert_eq!(counter(WRITES_REFUSED, label), refused);
    assert_eq!(counter(FRAMES_SENT, label), 64 - refused);
}

/// Where the gated listener says it is waiting, and where it waits to be told go.
type Gate = (std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>);

/// Echoes; the first session's first frame waits (blocking its arbiter, and with it the
/// UDP server's demultiplexer) until the test says go, so datagrams pile up meanwhile.
struct Gated {
    gate: Arc<Mutex<Option<Gate>>>,
}

impl EventListener for Gated {
    type Codec = LengthDelimited;
    type Out = Bytes;
    fn on_message(&mut self, s: &mut SessionContext<'_, Self>, frame: BytesMut) {
        let gate = self.gate.lock().unwrap().take();
        if let Some((waiting, go)) = gate {
            waiting.send(()).unwrap();
            go.recv_timeout(Duration::from_secs(10)).expect("go");
        }
        let _ = s.write(frame.freeze());
    }
}

#[actix::test]
async fn udp_drops_and_traffic_are_counted_under_the_udp_label() {
    books();
    let label = "udp"; // the default: the transport kind
    let (waiting_tx, waiting_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel();
    let gate = Arc::new(Mutex::new(Some((waiting_tx, go_rx))));
    let server = UdpServer::new("127.0.0.1:0")
        .peer_queue(1)
        .start_per_peer(move |_| {
            let gate = gate.clone();
            Ok((Gated { gate }, LengthDelimited::new()))
        })
        .await
        .expect("server starts");
    let addr = server.inet_addr().unwrap();
    // The peer runs on a thread of its own: the gated listener blocks this one.
    let peer = std::thread::spawn(move || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.send_to(b"\0\0\0\x01a", addr).unwrap();
        waiting_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("gated");
        for _ in 0..9 {
            socket.send_to(b"\0\0\0\x01b", addr).unwrap();
        }
        go_tx.send(()).unwrap();
    });
    wait_until(SECS5, "ten datagrams read", || {
        server.udp_stats().datagrams == 10
    })
    .await;
    peer.join().unwrap();
    let dropped = server.udp_stats().dropped;
    assert!(
        dropped > 0,
        "a one-datagram queue behind a blocked session drops"
    );
    let delivered = 10 - dropped;
    wait_until(SECS5, "the echoes", || {
        counter(FRAMES_SENT, label) == delivered
    })
    .await;
    assert_eq!(counter(UDP_DROPPED, label), dropped);
    assert_eq!(counter(FRAMES_RECEIVED, label), delivered);
    assert_eq!(counter(RECEIVED_BYTES, label), 5 * delivered);
    assert_eq!(counter(SESSIONS_OPENED, label), 1);
    assert_eq!(gauge(SESSIONS_OPEN, label), 1.0);
    server.stop().await;
    assert_eq!(closed(label, "stop"), 1);
    assert_eq!(gauge(SESSIONS_OPEN, label), 0.0);
    assert_eq!(counter(UDP_RECEIVE_ERRORS, label), 0);
}

#[actix::test]
async fn ws_sessions_and_failed_upgrades_are_counted_under_the_ws_label() {
    use tokio_tungstenite::tungstenite::Message;
    books();
    let label = "ws"; // the default: the transport kind
    let server = WsServer::new("127.0.0.1:0")
        .path(ws::PATH)
        .workers(1)
        .start(|_| Ok((Echo, LengthDelimited::new())))
        .await
        .expect("server starts");
    let addr = server.inet_addr().unwrap();

    // A request for the path that is no valid upgrade (a version no server speaks).
    let mut http = within(SECS5, tokio::net::TcpStream::connect(addr))
        .await
        .unwrap();
    let request = ws::upgrade_request(ws::PATH, &addr.to_string(), 12);
    http.write_all(request.as_bytes()).await.unwrap();
    let mut answer = [0u8; 12];
    within(SECS5, http.read_exact(&mut answer)).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 4"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(counter(ESTABLISH_FAILURES, label), 1);

    // A WebSocket echoes two frames in one message, then closes: the peer's end.
    let tcp = within(SECS5, tokio::net::TcpStream::connect(addr))
        .await
        .unwrap();
    let url = ws::url(&server);
    let (mut peer, _) = within(SECS5, tokio_tungstenite::client_async(url, tcp))
        .await
        .unwrap();
    let two = b"\0\0\0\x02hi\0\0\0\x03hey".to_vec();
    peer.send(Message::binary(two)).await.unwrap();
    for _ in 0..2 {
        let echo = within(SECS5, peer.next())
            .await
            .expect("an echo")
            .expect("valid");
        assert!(echo.is_binary(), "{echo:?}");
    }
    within(SECS5, peer.close(None)).await.unwrap();
    wait_until(SECS5, "the close", || server.stats().closed == 1).await;
    server.stop().await;
    assert_eq!(counter(SESSIONS_OPENED, label), 1);
    assert_eq!(closed(label, "peer_eof"), 1);
    assert_eq!(gauge(SESSIONS_OPEN, label), 0.0);
    assert_eq!(counter(FRAMES_RECEIVED, label), 2);
    assert_eq!(counter(FRAMES_SENT, label), 2);
    assert_eq!(counter(RECEIVED_BYTES, label), 13);
}

#[actix::test]
async fn a_client_counts_dials_failures_reconnects_its_backoff_and_giving_up() {
    books();
    // An address nobody listens on: every dial is refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap().to_string();
    drop(dead);

    let label = "m-client";
    let client = TcpClient::new(&addr)
        .reconnect_interval(Duration::from_millis(10))
        .max_reconnect_attempts(3)
        .metrics_label(label)
        .start(|_| Ok((Echo, LengthDelimited::new())));
    wait_until(SECS5, "giving up", || client.stats().gave_up).await;
    assert_eq!(counter(DIALS, label), 3);
    assert_eq!(counter(DIAL_FAILURES, label), 3);
    assert_eq!(
        counter(RECONNECTS, label),
        2,
        "the first dial is no reconnect"
    );
    assert_eq!(gauge(CLIENT_GAVE_UP, label), 1.0);
    assert_eq!(gauge(RECONNECT_BACKOFF, label), 0.0, "no dial round waits");
    assert_eq!(counter(SESSIONS_OPENED, label), 0);
    assert_eq!(counter_of(ESTABLISH_FAILURES, label, None), None);
    client.stop().await;

    // With a long interval, the backoff before the next round shows until the stop.
    let label = "m-backoff";
    let client = TcpClient::new(&addr)
        .reconnect_interval(Duration::from_secs(60))
        .metrics_label(label)
        .start(|_| Ok((Echo, LengthDelimited::new())));
    wait_until(SECS5, "a backoff", || gauge(RECONNECT_BACKOFF, label) > 0.0).await;
    // Drawn from [3/4, 1] of the interval.
    let backoff = gauge(RECONNECT_BACKOFF, label);
    assert!((45.0..=60.0).contains(&backoff), "{backoff}");
    assert_eq!(gauge(CLIENT_GAVE_UP, label), 0.0);
    client.stop().await;
    assert_eq!(gauge(RECONNECT_BACKOFF, label), 0.0);
    assert_eq!((counter(DIALS, label), counter(RECONNECTS, label)), (1, 0));
}
