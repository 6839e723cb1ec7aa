//! QUIC's own behaviour: getty's client and server together over several arbiters, the
//! close cause of an application error code, handshake failures counted as TLS errors,
//! a client that re-dials until the server is up, options QUIC cannot honour, and a
//! client that migrates to a new UDP port mid-session. (The core's echo, close-cause
//! and backpressure bodies run over QUIC in tests/transports.rs.)

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::quic::{Certs, QuicPeer};
use common::*;
use futures::{SinkExt, StreamExt};
use getty::prelude::*;
use getty::transport::quic::quinn;
use getty::{Address, Error, ErrorKind, QuicClient, QuicServer};
use tokio_util::codec::Framed;

/// A QUIC echo server of probes recording into a new log.
async fn echo_server(certs: &Certs, server: QuicServer) -> (getty::ServerHandle, Arc<Log>) {
    let log = Arc::new(Log::default());
    let _ = certs;
    let handle = server
        .start(Probe::hook(log.clone(), Arc::new(Behaviour::echo())))
        .await
        .expect("quic server starts");
    (handle, log)
}

/// Sends `payload` on a client session and waits for its echo to be recorded in `log`.
async fn echo_through(session: &getty::Session<Bytes>, log: &Log, payload: &'static [u8]) {
    session.try_write(Bytes::from_static(payload)).unwrap();
    let want = Event::Message(Bytes::from_static(payload));
    log.wait_for(SECS5, "the echo", |e| e.iter().any(|(_, ev)| *ev == want))
        .await;
}

#[actix::test]
async fn getty_client_and_server_echo_over_two_arbiters_each() {
    const SESSIONS: usize = 6;
    let certs = Certs::new();
    let server = QuicServer::new("127.0.0.1:0", certs.server_tls()).workers(2);
    let (server, server_log) = echo_server(&certs, server).await;
    let (client_log, hook) = probe_client_hook(Behaviour::default());
    let client = QuicClient::new(server.local_addr().to_string(), certs.client_tls())
        .connections(SESSIONS)
        .workers(2)
        .start(hook)
        .unwrap();
    wait_until(SECS5 * 2, "every client session up", || {
        client.stats().open_sessions == SESSIONS
    })
    .await;
    let sessions = client_log.sessions();
    assert_eq!(sessions.len(), SESSIONS);
    for (i, session) in sessions.iter().enumerate() {
        assert!(
            session.name().starts_with("quic-client:"),
            "{}",
            session.name()
        );
        let payload = Bytes::from(format!("hello {i}"));
        session.try_write(payload.clone()).unwrap();
        let want = Event::Message(payload);
        client_log
            .wait_for(SECS5, "the echo", |e| e.iter().any(|(_, ev)| *ev == want))
            .await;
    }
    assert_eq!(server.stats().open_sessions, SESSIONS);
    for session in server_log.sessions() {
        assert!(session.name().starts_with("quic:"), "{}", session.name());
        assert_eq!(session.stats().frames_read, 1);
        assert_eq!(session.stats().frames_written, 1);
    }
    // A graceful stop of the client: every session flushes and closes, and the server's
    // sessions see a clean end (application code 0), no error.
    within(SECS5 * 2, client.stop()).await;
    wait_until(SECS5, "the server's sessions closed", || {
        server.stats().open_sessions == 0
    })
    .await;
    assert_eq!(server_log.count(&Event::Close), SESSIONS);
    assert!(
        server_log
            .events()
            .iter()
            .all(|(_, e)| !matches!(e, Event::Error(_))),
        "{:?}",
        server_log.events()
    );
    within(SECS5 * 2, server.stop()).await;
}

#[actix::test]
async fn an_application_error_code_is_the_close_cause() {
    let certs = Certs::new();
    let server = QuicServer::new("127.0.0.1:0", certs.server_tls());
    let (server, log) = echo_server(&certs, server).await;
    let addr = server.inet_addr().unwrap();
    let peer = QuicPeer::connect(addr, certs.peer_config(b"getty")).await;
    let connection = peer.connection.clone();
    let mut framed = Framed::new(peer, getty::LengthDelimited::new());
    framed.send(Bytes::from_static(b"ping")).await.unwrap();
    assert_eq!(
        within(SECS5, framed.next()).await.unwrap().unwrap(),
        &b"ping"[..]
    );
    connection.close(quinn::VarInt::from_u32(42), b"going away");
    let events = closed_events(&log).await;
    assert_closed_once(&events, Some(|k| matches!(k, ErrorKind::Quic { .. })));
    let Some(Event::Error(cause)) = events.iter().find(|e| matches!(e, Event::Error(_))) else {
        panic!("no cause: {events:?}");
    };
    assert_eq!(cause.quic_code(), Some(42), "{cause}");
    assert!(cause.to_string().contains("going away"), "{cause}");
    within(SECS5, server.stop()).await;
}

#[actix::test]
async fn failed_handshakes_are_tls_errors_counted_by_the_server() {
    let certs = Certs::new();
    let seen: Arc<Mutex<Vec<Error>>> = Arc::default();
    let hook_seen = seen.clone();
    let server = QuicServer::new("127.0.0.1:0", certs.server_tls())
        .on_establish_error(move |err| hook_seen.lock().unwrap().push(err.clone()));
    let (server, log) = echo_server(&certs, server).await;
    let addr = server.inet_addr().unwrap();
    // A client that trusts another CA rejects the server's certificate...
    let stranger = Certs::new();
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let connecting = endpoint
        .connect_with(stranger.peer_config(b"getty"), addr, "localhost")
        .unwrap();
    assert!(within(SECS5, connecting).await.is_err());
    // ...and one that offers another protocol is refused by the server.
    let connecting = endpoint
        .connect_with(certs.peer_config(b"not-getty"), addr, "localhost")
        .unwrap();
    assert!(within(SECS5, connecting).await.is_err());
    wait_until(SECS5, "both failures counted", || {
        server.stats().establish_failures == 2
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(Error::is_tls), "{seen:?}");
    assert!(
        log.sessions().is_empty(),
        "no session for a failed handshake"
    );
    within(SECS5, server.stop()).await;
}

#[actix::test]
async fn a_client_redials_until_the_server_is_up() {
    let certs = Certs::new();
    // A free UDP port on loopback, for the server that starts later.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let events = ClientEvents::default();
    let (_client_log, hook) = probe_client_hook(Behaviour::default());
    let client = QuicClient::new(&addr, certs.client_tls())
        .connect_timeout(Duration::from_millis(300))
        .reconnect_interval(Duration::from_millis(50))
        .on_event(events.hook())
        .start(hook)
        .unwrap();
    wait_until(SECS5, "a failed dial", || events.dial_failures() >= 1).await;
    let server = QuicServer::new(&addr, certs.server_tls());
    let (server, _log) = echo_server(&certs, server).await;
    wait_until(SECS5 * 2, "the session up", || events.ups() == 1).await;
    assert_eq!(client.stats().open_sessions, 1);
    within(SECS5, client.stop()).await;
    within(SECS5, server.stop()).await;
}

#[actix::test]
async fn options_quic_cannot_honour_fail_at_start() {
    let certs = Certs::new();
    let is_config = |err: &Error| matches!(err.kind(), ErrorKind::Config { .. });
    let err = QuicServer::new("127.0.0.1:0", certs.server_tls())
        .reuse_port(true)
        .start(Probe::hook(Arc::default(), Arc::default()))
        .await
        .unwrap_err();
    assert!(is_config(&err), "{err}");
    let err = QuicServer::new("127.0.0.1:0", certs.server_tls())
        .alpn(Vec::<Vec<u8>>::new())
        .start(Probe::hook(Arc::default(), Arc::default()))
        .await
        .unwrap_err();
    assert!(is_config(&err), "{err}");
    let (_, hook) = probe_client_hook(Behaviour::default());
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let err = QuicClient::new("127.0.0.1:9", certs.client_tls())
        .local_addr("127.0.0.1:0".parse().unwrap())
        .endpoint(endpoint)
        .start(hook)
        .unwrap_err();
    assert!(is_config(&err), "{err}");
}

#[actix::test]
async fn a_client_that_rebinds_its_socket_keeps_its_session() {
    let certs = Certs::new();
    let server = QuicServer::new("127.0.0.1:0", certs.server_tls());
    let (server, server_log) = echo_server(&certs, server).await;
    // The client dials from an endpoint of ours, so that it can rebind.
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let before = endpoint.local_addr().unwrap();
    let (client_log, hook) = probe_client_hook(Behaviour::default());
    let client = QuicClient::new(server.local_addr().to_string(), certs.client_tls())
        .endpoint(endpoint.clone())
        .start(hook)
        .unwrap();
    let session = client_log.first_session().await;
    echo_through(&session, &client_log, b"before").await;
    let served = server_log.first_session().await;
    assert_eq!(served.remote_addr(), Address::Inet(before));

    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let after = socket.local_addr().unwrap();
    assert_ne!(before.port(), after.port());
    endpoint.rebind(socket).unwrap();
    echo_through(&session, &client_log, b"after").await;
    wait_until(SECS5, "the server sees the new address", || {
        served.remote_addr() == Address::Inet(after)
    })
    .await;
    echo_through(&session, &client_log, b"still").await;

    // One session all along, on both sides; it started from the old address.
    assert_eq!(served.peer_addr(), &Address::Inet(before));
    assert_eq!(server_log.sessions().len(), 1);
    assert_eq!(client_log.sessions().len(), 1);
    assert_eq!(server.stats().open_sessions, 1);
    assert_eq!(served.stats().frames_read, 3);
    assert!(!served.is_closed());
    within(SECS5, client.stop()).await;
    within(SECS5, server.stop()).await;
}
