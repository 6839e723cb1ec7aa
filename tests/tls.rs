//! TLS over TCP, over loopback: echo, mutual TLS, refused certificates, hostile peers,
//! handshake timeouts, leaks, and a client that is not this crate's `TlsClient` (a plain
//! `tokio_rustls::TlsConnector`). `openssl s_client` as the peer is in `tests/interop.rs`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::process::TempDir;
use common::tls::{Ca, Leaf};
use common::*;
use getty::prelude::*;
use getty::transport::tls::{TlsClientConfig, TlsServerConfig};
use getty::{ClientEvent, Error, ErrorKind, ServerHandle, SessionConfig, TcpClient, TcpServer};
use rcgen::ExtendedKeyUsagePurpose;
use tokio::io::AsyncWriteExt;

/// A TLS server config builder serving `leaf`.
fn server_config(leaf: &Leaf) -> getty::transport::tls::TlsServerBuilder {
    TlsServerConfig::from_pem(leaf.cert.as_bytes(), leaf.key.as_bytes()).unwrap()
}

/// A TLS client config builder that trusts `ca` alone.
fn client_trusting(ca: &Ca) -> getty::transport::tls::TlsClientBuilder {
    TlsClientConfig::builder()
        .root_certificates_pem(ca.pem().as_bytes())
        .unwrap()
}

/// What a TLS server saw of failed handshakes.
type Failures = Arc<Mutex<Vec<Error>>>;

/// An echoing probe server over TLS on a free loopback port.
async fn tls_server(tls: TlsServerConfig, workers: usize) -> (ServerHandle, Arc<Log>, Failures) {
    let failures = Failures::default();
    let f = failures.clone();
    let server = TcpServer::new("127.0.0.1:0")
        .workers(workers)
        .tls(tls)
        .on_establish_error(move |err| f.lock().unwrap().push(err.clone()));
    let behaviour = Behaviour::echo();
    let (handle, log, _) =
        start_probe_server_with(server, behaviour, SessionConfig::default()).await;
    (handle, log, failures)
}

/// A TLS probe client of `server` (re-dialing every 50 ms) that records its dial failures.
fn tls_client(
    server: &ServerHandle,
    tls: TlsClientConfig,
) -> (getty::TcpClientHandle, Arc<Log>, Failures) {
    tls_client_of(
        server.inet_addr().unwrap().to_string(),
        tls,
        Duration::from_millis(50),
    )
}

/// A TLS probe client of `addr`, re-dialing every `reconnect`, that records its dial
/// failures.
fn tls_client_of(
    addr: String,
    tls: TlsClientConfig,
    reconnect: Duration,
) -> (getty::TcpClientHandle, Arc<Log>, Failures) {
    let failures = Failures::default();
    let f = failures.clone();
    let client = TcpClient::new(addr)
        .tls(tls)
        .reconnect_interval(reconnect)
        .on_event(move |event| {
            if let ClientEvent::DialFailed { error } = event {
                f.lock().unwrap().push(error);
            }
        });
    let (handle, log) = start_probe_client(client, Behaviour::default());
    (handle, log, failures)
}

/// The reasons of the TLS errors recorded so far; panics on any other kind of error.
fn reasons(failures: &Failures) -> Vec<String> {
    failures
        .lock()
        .unwrap()
        .iter()
        .map(|err| match err.tls_reason() {
            Some(reason) => reason.to_owned(),
            None => panic!("expected only TLS errors, got {err:?}"),
        })
        .collect()
}

/// Waits until a TLS error has been recorded, then returns the first one's reason.
async fn first_reason(failures: &Failures, what: &str) -> String {
    wait_until(SECS5, what, || !failures.lock().unwrap().is_empty()).await;
    reasons(failures).remove(0)
}

/// Sends one frame from the first session of the client's log and waits for its echo.
async fn client_round_trip(log: &Log, payload: &'static [u8]) {
    log.wait_for(SECS5, "the TLS client session to open", |events| {
        events.iter().any(|(_, e)| *e == Event::Open)
    })
    .await;
    let session = log.sessions().remove(0);
    session.write(Bytes::from_static(payload)).await.unwrap();
    let want = Event::Message(Bytes::from_static(payload));
    log.wait_for(SECS5, "the echo", |events| {
        events.iter().any(|(_, e)| *e == want)
    })
    .await;
}

#[actix::test]
async fn tls_echo_round_trips_frames_between_server_and_client() {
    let ca = Ca::new("test ca");
    let (server, server_log, failures) =
        tls_server(server_config(&ca.server()).build().unwrap(), 2).await;
    let (client, log, dial_failures) = tls_client(&server, client_trusting(&ca).build().unwrap());
    client_round_trip(&log, b"hello over tls").await;
    let session = log.sessions().remove(0);
    for i in 0..100u32 {
        let frame = Bytes::from(vec![(i % 251) as u8; 1 + i as usize * 40]);
        session.write(frame).await.unwrap();
    }
    log.wait_for(SECS5, "100 more echoes", |events| {
        events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Message(_)))
            .count()
            == 101
    })
    .await;
    let echoed: Vec<Bytes> = log
        .events()
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::Message(b) => Some(b),
            _ => None,
        })
        .collect();
    for (i, frame) in echoed[1..].iter().enumerate() {
        assert_eq!(frame.len(), 1 + i * 40, "frame {i} intact and in order");
        assert!(frame.iter().all(|&b| b == (i % 251) as u8));
    }
    assert_eq!(server_log.count(&Event::Open), 1);
    assert!(failures.lock().unwrap().is_empty());
    assert!(dial_failures.lock().unwrap().is_empty());
    assert_eq!(server.stats().establish_failures, 0);
    client.stop().await;
    server.stop().await;
}

#[actix::test]
async fn mutual_tls_accepts_a_client_with_a_trusted_certificate() {
    let ca = Ca::new("test ca");
    let client_ca = Ca::new("client ca");
    let tls = server_config(&ca.server())
        .client_ca_pem(client_ca.pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let (server, _, failures) = tls_server(tls, 1).await;
    let leaf = client_ca.client();
    let dir = TempDir::new("tls-mtls");
    let (cert, key) = (
        dir.write("client.pem", &leaf.cert),
        dir.write("client.key", &leaf.key),
    );
    let tls = client_trusting(&ca)
        .client_cert_files(&cert, &key)
        .unwrap()
        .build()
        .unwrap();
    let (client, log, _) = tls_client(&server, tls);
    client_round_trip(&log, b"with a client certificate").await;
    assert!(failures.lock().unwrap().is_empty());
    client.stop().await;
    server.stop().await;
}

#[actix::test]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let ca = Ca::new("test ca");
    let tls = server_config(&ca.server())
        .client_ca_pem(ca.pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let (server, server_log, failures) = tls_server(tls, 1).await;
    let (client, client_log, dial_failures) =
        tls_client(&server, client_trusting(&ca).build().unwrap());
    let reason = first_reason(&failures, "the server to refuse the handshake").await;
    assert!(reason.contains("no certificates"), "{reason}");
    let err = failures.lock().unwrap()[0].clone();
    assert!(err.session().is_some(), "the failure names its session");
    assert!(err.to_string().contains("TLS error"), "{err}");
    // The client learns it too: with TLS 1.3 its handshake ends before the server has
    // checked its certificate, so the refusal arrives as an alert on the open session.
    wait_until(SECS5, "the client to see the refusal", || {
        let alert_on_session = client_log
            .events()
            .iter()
            .any(|(_, e)| e.is_error(|k| matches!(k, ErrorKind::Tls { .. })));
        alert_on_session || !dial_failures.lock().unwrap().is_empty()
    })
    .await;
    // What a client without a certificate reads: the server's alert, as ErrorKind::Tls.
    let tls = client_trusting(&ca).build().unwrap();
    let connector = tokio_rustls::TlsConnector::from(tls.rustls_config().clone());
    let tcp = tokio::net::TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = within(SECS5, connector.connect(name, tcp)).await.unwrap();
    let mut buf = [0u8; 8];
    let read = within(SECS5, tokio::io::AsyncReadExt::read(&mut stream, &mut buf)).await;
    let err = Error::from(read.expect_err("the server refuses to talk"));
    assert_eq!(
        err.tls_reason(),
        Some("received fatal alert: CertificateRequired"),
        "{err:?}"
    );
    assert_eq!(
        server_log.count(&Event::Open),
        0,
        "no server session opened"
    );
    assert_eq!(server.stats().opened, 0);
    assert!(server.stats().establish_failures >= 1);
    client.stop().await;
    server.stop().await;
}

/// Dials `server` with `tls` and returns the reason of the first failed dial.
async fn refused_dial(
    server: &ServerHandle,
    tls: TlsClientConfig,
) -> (String, getty::EndpointStats) {
    let (client, log, failures) = tls_client(server, tls);
    let reason = first_reason(&failures, "the dial to fail").await;
    assert_eq!(
        log.count(&Event::Open),
        0,
        "no session over a refused handshake"
    );
    let stats = client.stats();
    client.stop().await;
    (reason, stats)
}

#[actix::test]
async fn a_server_signed_by_another_ca_is_refused() {
    let ca = Ca::new("test ca");
    let other = Ca::new("other ca");
    let (server, _, _) = tls_server(server_config(&ca.server()).build().unwrap(), 1).await;
    let (reason, stats) = refused_dial(&server, client_trusting(&other).build().unwrap()).await;
    assert!(
        reason.contains("invalid peer certificate: UnknownIssuer"),
        "{reason}"
    );
    assert!(
        stats.connect_failures >= 1 && stats.opened == 0,
        "{stats:?}"
    );
    assert_eq!(server.stats().opened, 0);
    server.stop().await;
}

#[actix::test]
async fn an_expired_server_certificate_is_refused() {
    let ca = Ca::new("test ca");
    let leaf = ca.leaf(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
        true,
    );
    let (server, _, _) = tls_server(server_config(&leaf).build().unwrap(), 1).await;
    let (reason, _) = refused_dial(&server, client_trusting(&ca).build().unwrap()).await;
    assert!(
        reason.contains("invalid peer certificate: certificate expired"),
        "{reason}"
    );
    server.stop().await;
}

#[actix::test]
async fn a_wrong_server_name_is_refused() {
    let ca = Ca::new("test ca");
    let (server, _, _) = tls_server(server_config(&ca.server()).build().unwrap(), 1).await;
    let tls = client_trusting(&ca)
        .build()
        .unwrap()
        .server_name("db.example.com")
        .unwrap();
    let (reason, _) = refused_dial(&server, tls).await;
    assert!(
        reason.contains("certificate not valid for name \"db.example.com\""),
        "{reason}"
    );
    // The same certificate is fine for the name it has.
    let tls = client_trusting(&ca)
        .build()
        .unwrap()
        .server_name("localhost")
        .unwrap();
    let (client, log, _) = tls_client(&server, tls);
    client_round_trip(&log, b"right name").await;
    client.stop().await;
    server.stop().await;
}

#[actix::test]
async fn a_plain_tcp_client_is_closed_while_a_tls_session_keeps_echoing() {
    let ca = Ca::new("test ca");
    let (server, _, failures) = tls_server(server_config(&ca.server()).build().unwrap(), 2).await;
    let (client, log, _) = tls_client(&server, client_trusting(&ca).build().unwrap());
    client_round_trip(&log, b"before").await;

    // A client that speaks the codec but not TLS.
    let mut plain = connect(&server).await;
    use futures::SinkExt;
    let _ = plain.send(Bytes::from_static(b"plain frame")).await;
    let frames = read_to_end(&mut plain, SECS5).await;
    assert!(
        frames.is_empty(),
        "nothing echoed to a plain client: {frames:?}"
    );
    let reason = first_reason(&failures, "the plain client's handshake to fail").await;
    assert!(reason.contains("corrupt message"), "{reason}");

    // Raw garbage, and a peer that hangs up mid-handshake.
    let mut garbage = tokio::net::TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3])
        .await
        .unwrap();
    drop(garbage);
    wait_until(SECS5, "the garbage handshake to fail too", || {
        server.stats().establish_failures >= 2
    })
    .await;

    let session = log.sessions().remove(0);
    session.write(Bytes::from_static(b"after")).await.unwrap();
    let want = Event::Message(Bytes::from_static(b"after"));
    log.wait_for(SECS5, "the TLS session still echoing", |events| {
        events.iter().any(|(_, e)| *e == want)
    })
    .await;
    assert_eq!(server.stats().open_sessions, 1);
    client.stop().await;
    server.stop().await;
}

#[actix::test]
async fn a_silent_handshake_is_timed_out() {
    let ca = Ca::new("test ca");
    let tls = server_config(&ca.server())
        .build()
        .unwrap()
        .handshake_timeout(Duration::from_millis(200));
    let (server, _, failures) = tls_server(tls, 1).await;
    let started = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    let reason = first_reason(&failures, "the handshake to time out").await;
    assert_eq!(reason, "handshake timed out after 200ms");
    assert!(started.elapsed() >= Duration::from_millis(200));
    // The server dropped the connection: the silent peer reads EOF.
    let mut buf = [0u8; 16];
    let read = within(SECS5, tokio::io::AsyncReadExt::read(&mut silent, &mut buf)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let stats = server.stats();
    assert_eq!(
        (stats.establish_failures, stats.live_sessions, stats.refused),
        (1, 0, 0)
    );
    server.stop().await;
}

#[actix::test]
async fn a_client_handshake_that_gets_no_answer_times_out_and_is_retried() {
    // A TCP server that accepts and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    actix::spawn(async move {
        while let Ok((stream, _)) = silent.accept().await {
            h.lock().unwrap().push(stream);
        }
    });
    let ca = Ca::new("test ca");
    let tls = client_trusting(&ca)
        .build()
        .unwrap()
        .handshake_timeout(Duration::from_millis(100));
    let (client, log, failures) = tls_client_of(addr.to_string(), tls, Duration::from_millis(20));
    wait_until(SECS5, "two timed-out handshakes", || {
        failures.lock().unwrap().len() >= 2
    })
    .await;
    for reason in reasons(&failures) {
        assert_eq!(reason, "handshake timed out after 100ms");
    }
    let stats = client.stats();
    assert!(
        stats.connect_failures >= 2 && stats.opened == 0,
        "{stats:?}"
    );
    assert_eq!(log.count(&Event::Open), 0);
    within(SECS5, client.stop()).await;
}

#[actix::test]
async fn failed_handshakes_in_a_loop_leave_no_sockets_behind() {
    let ca = Ca::new("test ca");
    let tls = server_config(&ca.server())
        .client_ca_pem(ca.pem().as_bytes())
        .unwrap()
        .build()
        .unwrap()
        .handshake_timeout(Duration::from_millis(300));
    let (server, _, _) = tls_server(tls, 2).await;
    let client_tls = client_trusting(&ca).build().unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_tls.rustls_config().clone());
    let fds_before = open_fds();
    const ROUNDS: u64 = 200;
    for i in 0..ROUNDS {
        let mut tcp = within(
            SECS5,
            tokio::net::TcpStream::connect(server.inet_addr().unwrap()),
        )
        .await
        .unwrap();
        match i % 4 {
            // Garbage instead of a ClientHello.
            0 => {
                let _ = tcp.write_all(b"GET / HTTP/1.0\r\n\r\n").await;
            }
            // A TLS client without the required client certificate.
            1 => {
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                if let Ok(mut tls) = within(SECS5, connector.connect(name, tcp)).await {
                    let _ = tls.write_all(&[0, 0, 0, 1, 7]).await;
                    let mut buf = [0u8; 8];
                    let _ = within(SECS5, tokio::io::AsyncReadExt::read(&mut tls, &mut buf)).await;
                }
                continue;
            }
            // Hang up at once.
            2 => {}
            // Half a ClientHello, then hang up.
            _ => {
                let _ = tcp.write_all(&[0x16, 0x03, 0x01, 0x00, 0x80, 0x01]).await;
            }
        }
        drop(tcp);
    }
    wait_until(Duration::from_secs(10), "every handshake to fail", || {
        server.stats().establish_failures == ROUNDS
    })
    .await;
    wait_until(SECS5, "no live sessions", || {
        server.stats().live_sessions == 0
    })
    .await;
    // Closed sockets leave the table a moment after the last close.
    eventually(SECS5, || open_fds() <= fds_before).await;
    let stats = server.stats();
    assert_eq!(
        (stats.opened, stats.refused, stats.live_sessions),
        (0, 0, 0),
        "{stats:?}"
    );
    assert!(
        open_fds() <= fds_before,
        "fds before {fds_before}, after {ROUNDS} failed handshakes {}",
        open_fds()
    );
    server.stop().await;
}

#[actix::test]
async fn stop_does_not_wait_for_pending_handshakes() {
    let ca = Ca::new("test ca");
    let (server, _, _) = tls_server(server_config(&ca.server()).build().unwrap(), 1).await;
    let _silent: Vec<_> = futures::future::join_all(
        (0..5).map(|_| tokio::net::TcpStream::connect(server.inet_addr().unwrap())),
    )
    .await;
    wait_until(SECS5, "five pending handshakes", || {
        server.stats().live_sessions == 5
    })
    .await;
    within(Duration::from_secs(2), server.stop()).await;
    assert_eq!(server.stats().live_sessions, 0);
}

#[test]
fn config_errors_are_tls_errors_that_say_what_is_wrong() {
    let missing = TlsServerConfig::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem")
        .expect_err("no such file");
    let reason = missing.tls_reason().expect("a TLS error").to_owned();
    assert!(reason.contains("/nonexistent/cert.pem"), "{reason}");

    let empty = TlsServerConfig::from_pem(b"", b"").expect_err("no certificate");
    assert!(
        empty.tls_reason().unwrap().contains("no certificate found"),
        "{empty}"
    );

    let ca = Ca::new("test ca");
    let leaf = ca.server();
    let no_key = TlsServerConfig::from_pem(leaf.cert.as_bytes(), leaf.cert.as_bytes())
        .expect_err("a certificate is not a key");
    assert!(
        no_key.tls_reason().unwrap().contains("private key"),
        "{no_key}"
    );

    let no_roots = TlsClientConfig::builder()
        .build()
        .expect_err("trusts nothing");
    assert!(
        no_roots
            .tls_reason()
            .unwrap()
            .contains("no root certificates"),
        "{no_roots}"
    );

    let bad_name = client_trusting(&ca)
        .build()
        .unwrap()
        .server_name("not a host name!")
        .expect_err("not a name");
    assert!(
        bad_name
            .tls_reason()
            .unwrap()
            .contains("invalid server name"),
        "{bad_name}"
    );

    // The bundled Mozilla roots are a root store of their own.
    #[cfg(feature = "webpki-roots")]
    {
        let webpki = TlsClientConfig::builder().webpki_roots().build();
        assert!(webpki.is_ok(), "{webpki:?}");
    }
}

/// The independent-client proof of the default suite: a plain `tokio_rustls::TlsConnector`
/// (not getty's `TlsClient`, whose dial, handshake timeout and session plumbing it
/// bypasses) negotiates ALPN with the server and gets its frame echoed.
#[actix::test]
async fn alpn_is_negotiated_and_the_session_runs_over_it() {
    let ca = Ca::new("test ca");
    let tls = server_config(&ca.server())
        .alpn_protocols(["getty/1", "h2"])
        .build()
        .unwrap();
    let (server, _, _) = tls_server(tls, 1).await;
    let client_tls = client_trusting(&ca)
        .alpn_protocols(["getty/1"])
        .build()
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_tls.rustls_config().clone());
    let tcp = tokio::net::TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = within(SECS5, connector.connect(name, tcp)).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"getty/1"[..]));
    let mut framed = tokio_util::codec::Framed::new(stream, getty::LengthDelimited::new());
    use futures::{SinkExt, StreamExt};
    framed.send(Bytes::from_static(b"over alpn")).await.unwrap();
    let echo = within(SECS5, framed.next()).await.unwrap().unwrap();
    assert_eq!(&echo[..], b"over alpn");
    server.stop().await;
}
