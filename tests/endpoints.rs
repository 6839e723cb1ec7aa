//! One endpoint model over every transport: one `ServerHandle` whatever the server, an
//! option a transport cannot honour refused when the endpoint starts (never ignored), and
//! a server that stops accepting while its open sessions go on.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::tls::Ca;
use common::*;
use futures::SinkExt;
use getty::prelude::*;
use getty::transport::tls::{TlsClientConfig, TlsServerConfig};
use getty::transport::ws::{WsClient, WsServer};
use getty::{
    Datagram, Datagrams, Error, ErrorKind, LengthDelimited, Session, SessionConfig, SessionContext,
    TcpServer, UdpServer, UnixServer,
};

/// A UDP listener that does nothing: these tests never send it a datagram.
struct Quiet;

impl EventListener for Quiet {
    type Codec = Datagrams<LengthDelimited>;
    type Out = Datagram<Bytes>;
    fn on_message(&mut self, _: &mut SessionContext<'_, Self>, _: Datagram<bytes::BytesMut>) {}
}

/// A hook whose sessions echo every frame, recording into a log nobody reads.
fn echo_hook() -> impl Fn(&mut getty::SessionSetup) -> getty::Result<(Probe, LengthDelimited)>
       + Clone
       + Send
       + Sync
       + 'static {
    let hook = Probe::hook(Arc::default(), Arc::new(Behaviour::echo()));
    let hook = Arc::new(hook);
    move |setup: &mut getty::SessionSetup| hook(setup)
}

/// The reason of an `ErrorKind::Config`, or a failure naming what came instead.
fn config_reason(result: getty::Result<getty::ServerHandle>) -> String {
    match result {
        Err(err) => match err.kind() {
            ErrorKind::Config { reason, .. } => reason.to_string(),
            _ => panic!("expected ErrorKind::Config, got {err:?}"),
        },
        Ok(server) => panic!(
            "expected ErrorKind::Config, got a server at {}",
            server.local_addr()
        ),
    }
}

#[actix::test]
async fn udp_servers_refuse_the_server_options_they_cannot_honour() {
    let quiet = |_: &mut getty::SessionSetup| Ok((Quiet, Datagrams::new(LengthDelimited::new())));
    let server = || UdpServer::new("127.0.0.1:0");

    let reason = config_reason(server().workers(2).start_shared(quiet).await);
    assert!(reason.contains("`workers`"), "{reason}");
    let reason = config_reason(server().max_connections(5).start_shared(quiet).await);
    assert!(reason.contains("`max_connections`"), "{reason}");
    let reason = config_reason(
        server()
            .on_establish_error(|_| {})
            .start_per_peer(quiet)
            .await,
    );
    assert!(reason.contains("`on_establish_error`"), "{reason}");

    // What it can honour starts: the shared server with its session, the per-peer one
    // with max_connections as its peer limit.
    let shared = server().start_shared(quiet).await.expect("a shared server");
    let session: Session<Datagram<Bytes>> = shared.shared_session().expect("its session");
    assert_eq!(session.local_addr(), shared.local_addr());
    assert!(
        shared.shared_session::<Bytes>().is_none(),
        "typed by the listener's Out"
    );
    let per_peer = server()
        .max_connections(5)
        .start_per_peer(echo_hook())
        .await
        .expect("a per-peer server");
    assert!(per_peer.shared_session::<Bytes>().is_none());
    shared.stop().await;
    per_peer.stop().await;
}

#[actix::test]
async fn websocket_endpoints_refuse_tls_options_actix_does_its_own_way() {
    let ca = Ca::new("test ca");
    let leaf = ca.server();
    let tls = || {
        TlsServerConfig::from_pem(leaf.cert.as_bytes(), leaf.key.as_bytes())
            .unwrap()
            .build()
            .unwrap()
    };
    let hook = echo_hook();

    let timed = tls().handshake_timeout(Duration::from_millis(500));
    let reason = config_reason(
        WsServer::new("127.0.0.1:0")
            .tls(timed)
            .start(hook.clone())
            .await,
    );
    assert!(reason.contains("handshake timeout"), "{reason}");
    let alpn = TlsServerConfig::from_pem(leaf.cert.as_bytes(), leaf.key.as_bytes())
        .unwrap()
        .alpn_protocols(["my-proto/1"])
        .build()
        .unwrap();
    let reason = config_reason(
        WsServer::new("127.0.0.1:0")
            .tls(alpn)
            .start(hook.clone())
            .await,
    );
    assert!(reason.contains("ALPN"), "{reason}");
    let reason = config_reason(
        WsServer::new("127.0.0.1:0")
            .on_establish_error(|_| {})
            .start(hook.clone())
            .await,
    );
    assert!(reason.contains("`on_establish_error`"), "{reason}");

    let named = TlsClientConfig::builder()
        .root_certificates_pem(ca.pem().as_bytes())
        .unwrap()
        .build()
        .unwrap()
        .server_name("localhost")
        .unwrap();
    let refused = WsClient::new("wss://127.0.0.1:1/ws").tls(named);
    match refused.as_ref().map_err(Error::kind) {
        Err(ErrorKind::Config { reason, .. }) => {
            assert!(reason.contains("server name"), "{reason}")
        }
        _ => panic!(
            "expected ErrorKind::Config, got {:?}",
            refused.map(|_| "a client")
        ),
    }

    // The plain config is served.
    let server = WsServer::new("127.0.0.1:0")
        .tls(tls())
        .start(hook.clone())
        .await
        .expect("wss server");
    server.stop().await;
}

#[actix::test]
async fn one_handle_reports_each_transport_address_and_udp_calls_fail_elsewhere() {
    let (tcp, _, _) = start_probe_server(Behaviour::echo(), SessionConfig::default()).await;
    let inet = tcp.inet_addr().expect("a TCP server has an IP address");
    assert_eq!(tcp.local_addr(), &inet);
    assert_eq!(tcp.udp_stats(), Default::default());
    assert!(tcp.shared_session::<Bytes>().is_none());
    let err = tcp
        .join_multicast_v4(
            "239.255.0.1".parse().unwrap(),
            std::net::Ipv4Addr::LOCALHOST,
        )
        .expect_err("a TCP server has no UDP socket");
    assert!(err.to_string().contains("is not a UDP server"), "{err}");

    let path = common::rig::socket_path();
    let unix = UnixServer::new(&path)
        .workers(1)
        .start(echo_hook())
        .await
        .expect("unix server");
    assert_eq!(unix.local_addr().unix_path(), Some(path.as_path()));
    assert!(
        unix.inet_addr().is_err(),
        "a socket file is not an IP address"
    );
    unix.stop().await;
    assert!(!path.exists(), "the socket file is removed on stop");
    tcp.stop().await;
}

/// `stop_accepting` closes the door: a new connection is refused while the session
/// already open still echoes; `stop` then closes that session as usual.
#[actix::test]
async fn a_server_that_stops_accepting_keeps_serving_its_open_sessions() {
    let (server, log, _) = start_probe_server_with(
        TcpServer::new("127.0.0.1:0").workers(1),
        Behaviour::echo(),
        SessionConfig::default(),
    )
    .await;
    let addr = server.inet_addr().unwrap();
    let mut open = connect(&server).await;
    assert_eq!(&round_trip(&mut open, b"before").await[..], b"before");

    within(SECS5, server.stop_accepting()).await;
    let refused = within(SECS5, tokio::net::TcpStream::connect(addr)).await;
    assert!(refused.is_err(), "the listener is closed: {refused:?}");
    assert_eq!(&round_trip(&mut open, b"after").await[..], b"after");
    assert_eq!(server.stats().open_sessions, 1);

    within(SECS5, server.stop()).await;
    assert_eq!(log.count(&Event::Close), 1, "{:?}", log.events());
    // The closed session's socket ends: the client reads EOF.
    assert!(read_to_end(&mut open, SECS5).await.is_empty());
    let _ = open.close().await;
}

/// The same over WebSocket: after `stop_accepting` a new client's dial gets no session
/// (its upgrade is answered 503, or held unanswered by the paused accept loop until the
/// dial times out), while the session already open still echoes.
#[actix::test]
async fn a_websocket_server_that_stops_accepting_keeps_its_open_sessions() {
    let (server, log) = common::ws::echo_server(SessionConfig::default()).await;
    let (client, client_log) = common::ws::start_client(
        WsClient::new(common::ws::url(&server)),
        Behaviour::default(),
    );
    let session = client_log.first_session().await;
    within(SECS5, server.stop_accepting()).await;

    let (late, late_log) = common::ws::start_client(
        WsClient::new(common::ws::url(&server)).connect_timeout(Duration::from_millis(300)),
        Behaviour::default(),
    );
    wait_until(SECS5, "a failed dial", || {
        late.stats().connect_failures >= 1
    })
    .await;
    assert_eq!(late_log.count(&Event::Open), 0);

    let echoed = Event::Message(Bytes::from_static(b"still here"));
    session
        .write(Bytes::from_static(b"still here"))
        .await
        .expect("written");
    wait_until(SECS5, "the echo", || client_log.count(&echoed) == 1).await;
    assert_eq!(server.stats().opened, 1);
    within(SECS5, late.stop()).await;
    within(SECS5, server.stop()).await;
    assert_eq!(log.count(&Event::Close), 1);
    within(SECS5, client.stop()).await;
}

/// `reuse_port` lets a second server bind the address a first one serves (the next
/// version of a process, during a rolling restart), over TCP, WebSocket and UDP; without
/// it the second bind fails; a Unix server refuses the option.
#[actix::test]
async fn reuse_port_lets_a_second_server_bind_a_served_address() {
    let first = TcpServer::new("127.0.0.1:0")
        .workers(1)
        .reuse_port(true)
        .start(echo_hook())
        .await
        .expect("first tcp server");
    let addr = first.inet_addr().unwrap().to_string();
    let taken = TcpServer::new(addr.clone())
        .workers(1)
        .start(echo_hook())
        .await;
    assert!(taken.is_err(), "without reuse_port the address is taken");
    let second = TcpServer::new(addr)
        .workers(1)
        .reuse_port(true)
        .start(echo_hook())
        .await
        .expect("second tcp server on the same port");
    // Both accept: a connection reaches one of them and is echoed.
    let mut client = connect(&second).await;
    assert_eq!(&round_trip(&mut client, b"either").await[..], b"either");
    drop(client);

    let ws = WsServer::new("127.0.0.1:0")
        .workers(1)
        .reuse_port(true)
        .start(echo_hook())
        .await
        .expect("first ws server");
    let ws_addr = ws.inet_addr().unwrap().to_string();
    let ws2 = WsServer::new(ws_addr)
        .workers(1)
        .reuse_port(true)
        .start(echo_hook())
        .await
        .expect("second ws server on the same port");

    let quiet = |_: &mut getty::SessionSetup| Ok((Quiet, Datagrams::new(LengthDelimited::new())));
    let udp = UdpServer::new("127.0.0.1:0")
        .reuse_port(true)
        .start_shared(quiet)
        .await
        .expect("first udp server");
    let udp2 = UdpServer::new(udp.inet_addr().unwrap().to_string())
        .reuse_port(true)
        .start_shared(quiet)
        .await
        .expect("second udp server on the same port");

    let path = common::rig::socket_path();
    let unix = UnixServer::new(&path)
        .reuse_port(true)
        .start(echo_hook())
        .await;
    assert!(
        matches!(&unix, Err(e) if matches!(e.kind(), ErrorKind::Config { .. })),
        "{:?}",
        unix.map(|_| ())
    );
    assert!(!path.exists(), "refused before binding");

    for server in [first, second, ws, ws2, udp, udp2] {
        within(SECS5, server.stop()).await;
    }
}

/// Says goodbye when told the server drains, then closes, unless told to stay.
struct Leaving {
    stay: bool,
    log: Arc<Log>,
}

impl EventListener for Leaving {
    type Codec = LengthDelimited;
    type Out = Bytes;
    fn on_message(&mut self, s: &mut SessionContext<'_, Self>, frame: bytes::BytesMut) {
        s.write(frame.freeze()).expect("echo");
    }
    fn on_drain(&mut self, s: &mut SessionContext<'_, Self>) {
        self.log
            .push(s.id(), Event::Message(Bytes::from_static(b"drain")));
        if !self.stay {
            s.write(Bytes::from_static(b"go away"))
                .expect("goodbye queued");
            s.close();
        }
    }
    fn on_close(&mut self, s: &getty::Session<Bytes>) {
        self.log.push(s.id(), Event::Close);
    }
}

async fn leaving_server(stay: bool) -> (getty::ServerHandle, Arc<Log>) {
    let log = Arc::new(Log::default());
    let l = log.clone();
    let server = TcpServer::new("127.0.0.1:0")
        .workers(1)
        .start(move |_| {
            let listener = Leaving {
                stay,
                log: l.clone(),
            };
            Ok((listener, LengthDelimited::new()))
        })
        .await
        .expect("server");
    (server, log)
}

/// A drain tells each session once; a session that says goodbye and closes gets its
/// goodbye and its owed echo to the peer before the close, and the drain resolves as soon
/// as the last session is gone, long before its deadline.
#[actix::test]
async fn drain_tells_each_session_and_ends_when_the_last_one_leaves() {
    let (server, log) = leaving_server(false).await;
    let addr = server.inet_addr().unwrap();
    let mut peers = Vec::new();
    for _ in 0..3 {
        let mut peer = connect(&server).await;
        assert_eq!(&round_trip(&mut peer, b"hi").await[..], b"hi");
        peers.push(peer);
    }
    let started = std::time::Instant::now();
    within(SECS5, server.drain(Duration::from_secs(60))).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "did not wait for the deadline"
    );
    for peer in &mut peers {
        let rest = read_to_end(peer, SECS5).await;
        assert_eq!(rest, [Bytes::from_static(b"go away")], "goodbye, then EOF");
    }
    let drains = log.count(&Event::Message(Bytes::from_static(b"drain")));
    assert_eq!(
        (drains, log.count(&Event::Close)),
        (3, 3),
        "{:?}",
        log.events()
    );
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "a drained server accepts nothing");
}

/// A session that stays after being told is closed by the drain's deadline, with the
/// same graceful stop as `stop`.
#[actix::test]
async fn drain_closes_what_stays_at_its_deadline() {
    let (server, log) = leaving_server(true).await;
    let mut peer = connect(&server).await;
    assert_eq!(&round_trip(&mut peer, b"hi").await[..], b"hi");
    within(SECS5, server.drain(Duration::from_millis(200))).await;
    assert_eq!(log.count(&Event::Close), 1, "{:?}", log.events());
    assert!(
        read_to_end(&mut peer, SECS5).await.is_empty(),
        "closed with nothing more"
    );
}
