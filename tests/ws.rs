//! WebSocket endpoints over loopback: echo, framing across messages, text, ping/pong,
//! read timeout, close handshake, limits, hostile peers, reconnection, leaks.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_http::ws::{CloseCode, CloseReason, Codec, Frame, Item, Message};
use bytes::{BufMut, Bytes, BytesMut};
use common::ws::{
    echo_server, errors_of, length_prefixed, start_client, start_server, upgrade_request, url,
    wait_closed, PATH,
};
use common::{open_fds, within, Behaviour, Event, SECS5};
use futures::{SinkExt, StreamExt};
use getty::prelude::*;
use getty::transport::tls::{TlsClientConfig, TlsServerConfig};
use getty::transport::ws::{WsClient, WsServer};
use getty::{ClientEvent, ErrorKind, ServerHandle, SessionConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Completes a WebSocket upgrade by hand over a fresh TCP connection.
async fn upgrade_raw(addr: SocketAddr, path: &str) -> TcpStream {
    let mut stream = within(SECS5, TcpStream::connect(addr))
        .await
        .expect("connect");
    let request = upgrade_request(path, &addr.to_string(), 13);
    stream.write_all(request.as_bytes()).await.expect("send");
    let head = read_head(&mut stream).await;
    assert!(
        head.starts_with("HTTP/1.1 101"),
        "upgrade accepted, got {head}"
    );
    stream
}

/// Reads an HTTP response head (5 s at most).
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    within(SECS5, async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
            if stream.read(&mut byte).await.expect("read head") == 0 {
                break;
            }
            head.push(byte[0]);
        }
    })
    .await;
    String::from_utf8_lossy(&head).into_owned()
}

/// A WebSocket peer that is not this crate: actix-http's client codec over a raw socket.
type Peer = Framed<TcpStream, Codec>;

/// A peer upgraded by hand to `server`, speaking actix-http's client codec.
async fn raw_peer(server: &ServerHandle) -> Peer {
    let stream = upgrade_raw(server.inet_addr().unwrap(), PATH).await;
    Framed::new(stream, Codec::new().client_mode().max_size(1 << 24))
}

/// The next data or close frame (pings and pongs skipped), 5 s at most; `None` at EOF.
async fn next_frame(peer: &mut Peer) -> Option<Frame> {
    within(SECS5, async {
        loop {
            match peer.next().await {
                Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => continue,
                Some(Ok(frame)) => return Some(frame),
                _ => return None,
            }
        }
    })
    .await
}

/// Reads until EOF (answering nothing), 5 s at most; returns the close code seen, if any.
async fn read_to_close(peer: &mut Peer) -> Option<CloseCode> {
    let mut code = None;
    within(SECS5, async {
        while let Some(Ok(frame)) = peer.next().await {
            if let Frame::Close(reason) = frame {
                code = reason.map(|r| r.code);
                // Answer, as a well-behaved peer does; the server then drops the connection.
                let _ = peer.send(Message::Close(None)).await;
            }
        }
    })
    .await;
    code
}

/// One masked client frame, hand-made: `fin`, `opcode`, payload.
fn client_frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u8(if fin { 0x80 } else { 0 } | opcode);
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.put_u8(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.put_u8(mask_bit | 126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(mask_bit | 127);
            out.put_u64(n as u64);
        }
    }
    let key = [0x12u8, 0x34, 0x56, 0x78];
    if masked {
        out.put_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.put_slice(payload);
    }
    out.to_vec()
}

/// The payload of a binary frame; panics on anything else.
fn binary_payload(frame: Option<Frame>) -> Bytes {
    match frame {
        Some(Frame::Binary(bytes)) => bytes,
        other => panic!("expected a binary message, got {other:?}"),
    }
}

#[actix_rt::test]
async fn ws_client_and_server_echo_over_many_sessions() {
    let (server, server_log) = echo_server(SessionConfig::default()).await;
    let (client, log) = start_client(
        WsClient::new(url(&server)).connections(8),
        Behaviour::default(),
    );
    log.wait_for(SECS5, "8 sessions open", |e| {
        e.iter().filter(|(_, e)| *e == Event::Open).count() == 8
    })
    .await;
    for (i, session) in log.sessions().iter().enumerate() {
        for j in 0..10u8 {
            let payload = Bytes::from(vec![i as u8, j]);
            within(SECS5, session.write(payload)).await.expect("write");
        }
    }
    log.wait_for(SECS5, "80 echoes", |e| {
        e.iter()
            .filter(|(_, e)| matches!(e, Event::Message(_)))
            .count()
            == 80
    })
    .await;
    for session in log.sessions() {
        let echoes: Vec<Bytes> = log
            .of(session.id())
            .into_iter()
            .filter_map(|e| match e {
                Event::Message(b) => Some(b),
                _ => None,
            })
            .collect();
        assert_eq!(
            echoes.len(),
            10,
            "each session gets its own echoes in order"
        );
        assert!(echoes.windows(2).all(|w| w[0][1] < w[1][1]));
    }
    assert_eq!(server.stats().open_sessions, 8);
    within(SECS5, client.stop()).await;
    wait_closed(&server_log, 8).await;
    assert_eq!(
        server_log.count(&Event::Close),
        8,
        "on_close once per session"
    );
    assert!(
        errors_of(&server_log).is_empty(),
        "{:?}",
        server_log.events()
    );
    assert_eq!(client.stats().live_sessions, 0);
    within(SECS5, server.stop()).await;
    assert_eq!(server.stats().live_sessions, 0);
}

#[actix_rt::test]
async fn frames_span_messages_and_replies_are_one_message_each() {
    let (server, _log) = echo_server(SessionConfig::default()).await;
    let mut peer = raw_peer(&server).await;
    // Three frames over two messages: the second frame is split between them.
    let mut bytes = length_prefixed(b"one");
    bytes.extend(length_prefixed(b"two-two"));
    bytes.extend(length_prefixed(b"three"));
    let cut = length_prefixed(b"one").len() + 5;
    peer.send(Message::Binary(Bytes::copy_from_slice(&bytes[..cut])))
        .await
        .unwrap();
    peer.send(Message::Binary(Bytes::copy_from_slice(&bytes[cut..])))
        .await
        .unwrap();
    for want in [&b"one"[..], b"two-two", b"three"] {
        let got = binary_payload(next_frame(&mut peer).await);
        assert_eq!(
            &got[..],
            &length_prefixed(want)[..],
            "one frame per message"
        );
    }
    // A fragmented message is reassembled (and its frame may span fragments too).
    let whole = length_prefixed(b"fragmented frame");
    peer.send(Message::Continuation(Item::FirstBinary(
        Bytes::copy_from_slice(&whole[..3]),
    )))
    .await
    .unwrap();
    peer.send(Message::Continuation(Item::Continue(
        Bytes::copy_from_slice(&whole[3..9]),
    )))
    .await
    .unwrap();
    peer.send(Message::Continuation(Item::Last(Bytes::copy_from_slice(
        &whole[9..],
    ))))
    .await
    .unwrap();
    let got = binary_payload(next_frame(&mut peer).await);
    assert_eq!(&got[..], &whole[..]);
    within(SECS5, server.stop()).await;
}

#[actix_rt::test]
async fn text_is_refused_unless_allowed() {
    let (server, log) = echo_server(SessionConfig::default()).await;
    let mut peer = raw_peer(&server).await;
    let text = String::from_utf8(length_prefixed(b"hi")).unwrap();
    peer.send(Message::Text(text.clone().into())).await.unwrap();
    assert_eq!(read_to_close(&mut peer).await, Some(CloseCode::Unsupported));
    wait_closed(&log, 1).await;
    let errors = errors_of(&log);
    assert!(
        matches!(errors.as_slice(), [e] if matches!(e.kind(), ErrorKind::WebSocket { .. })),
        "{errors:?}"
    );
    within(SECS5, server.stop()).await;

    let (server, log, _) = start_server(
        WsServer::new("127.0.0.1:0").allow_text(true),
        Behaviour::echo(),
        SessionConfig::default(),
    )
    .await;
    let mut peer = raw_peer(&server).await;
    peer.send(Message::Text(text.into())).await.unwrap();
    let got = binary_payload(next_frame(&mut peer).await);
    assert_eq!(&got[..], &length_prefixed(b"hi")[..], "echoed as binary");
    assert!(errors_of(&log).is_empty());
    within(SECS5, server.stop()).await;
}

#[actix_rt::test]
async fn library_pings_answers_pings_and_pongs_count_as_activity() {
    let (server, log, _) = start_server(
        WsServer::new("127.0.0.1:0").ping_interval(Duration::from_millis(50)),
        Behaviour::default(),
        SessionConfig::default(),
    )
    .await;
    let mut peer = raw_peer(&server).await;
    let ping = within(SECS5, async {
        loop {
            if let Some(Ok(Frame::Ping(payload))) = peer.next().await {
                return payload;
            }
        }
    })
    .await;
    let session = log.first_session().await;
    let before = session.last_active();
    tokio::time::sleep(Duration::from_millis(30)).await;
    peer.send(Message::Pong(ping)).await.unwrap();
    common::wait_until(SECS5, "a pong updates last_active", || {
        session.last_active() > before
    })
    .await;
    // The library answers the peer's ping with the same payload.
    peer.send(Message::Ping(Bytes::from_static(b"are you there")))
        .await
        .unwrap();
    let pong = within(SECS5, async {
        loop {
            if let Some(Ok(Frame::Pong(payload))) = peer.next().await {
                return payload;
            }
        }
    })
    .await;
    assert_eq!(&pong[..], b"are you there");
    assert!(errors_of(&log).is_empty());
    within(SECS5, server.stop()).await;
}

#[actix_rt::test]
async fn silent_peer_is_closed_while_an_answering_one_stays() {
    let mut config = SessionConfig::default();
    config.read_timeout = Some(Duration::from_millis(400));
    let (server, log, _) = start_server(
        WsServer::new("127.0.0.1:0").ping_interval(Duration::from_millis(50)),
        Behaviour::default(),
        config.clone(),
    )
    .await;
    // The library client answers pings by itself and sends its own.
    let (client, client_log) = start_client(
        WsClient::new(url(&server))
            .session_config(config)
            .ping_interval(Duration::from_millis(50)),
        Behaviour::default(),
    );
    client_log
        .wait_for(SECS5, "client open", |e| !e.is_empty())
        .await;
    // A raw peer that completes the upgrade, then says nothing and answers nothing.
    let mut silent = upgrade_raw(server.inet_addr().unwrap(), PATH).await;
    let started = Instant::now();
    log.wait_for(SECS5, "the silent peer's read timeout", |e| {
        e.iter()
            .any(|(_, e)| e.is_error(|k| matches!(k, ErrorKind::ReadTimeout { .. })))
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(350));
    wait_closed(&log, 1).await;
    // The silent peer's connection is dropped after the close frame.
    within(SECS5, async {
        let mut buf = [0u8; 1024];
        while silent.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
    })
    .await;
    // Idle for three read timeouts, yet the answering session is alive on both ends.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        matches!(errors_of(&log).as_slice(), [e] if matches!(e.kind(), ErrorKind::ReadTimeout { .. })),
        "{:?}",
        log.events()
    );
    assert!(
        errors_of(&client_log).is_empty(),
        "{:?}",
        client_log.events()
    );
    assert_eq!(server.stats().open_sessions, 1);
    assert_eq!(client.stats().open_sessions, 1);
    within(SECS5, client.stop()).await;
    within(SECS5, server.stop()).await;
}

#[actix_rt::test]
async fn close_handshake_from_the_peer() {
    let (server, log) = echo_server(SessionConfig::default()).await;
    let mut peer = raw_peer(&server).await;
    peer.send(Message::Binary(length_prefixed(b"last words").into()))
        .await
        .unwrap();
    peer.send(Message::Close(Some(CloseReason::from(CloseCode::Normal))))
        .await
        .unwrap();
    let started = Instant::now();
    // The echo still comes, then the close answer with our code, then EOF.
    let got = binary_payload(next_frame(&mut peer).await);
    assert_eq!(&got[..], &length_prefixed(b"last words")[..]);
    match next_frame(&mut peer).await {
        Some(Frame::Close(Some(reason))) => assert_eq!(reason.code, CloseCode::Normal),
        other => panic!("expected the close answer, got {other:?}"),
    }
    assert!(
        next_frame(&mut peer).await.is_none(),
        "EOF after the handshake"
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "the connection ends with the handshake, not later: {:?}",
        started.elapsed()
    );
    wait_closed(&log, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(log.count(&Event::Close), 1);
    assert!(errors_of(&log).is_empty());
    within(SECS5, server.stop()).await;
}

#[actix_rt::test]
async fn close_handshake_from_the_server_and_from_the_client() {
    let (server, log, _) = start_server(
        WsServer::new("127.0.0.1:0"),
        Behaviour {
            echo: true,
            close_on: Some(b"bye"),
            ..Behaviour::default()
        },
        SessionConfig::default(),
    )
    .await;
    let mut peer = raw_peer(&server).await;
    peer.send(Message::Binary(length_prefixed(b"bye").into()))
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(read_to_close(&mut peer).await, Some(CloseCode::Normal));
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "the answer ends the connection at once, not after the linger"
    );
    wait_closed(&log, 1).await;

    // The library client, stopped: it runs the handshake; each side closes once.
    let (client, client_log) = start_client(WsClient::new(url(&server)), Behaviour::default());
    client_log
        .wait_for(SECS5, "client open", |e| !e.is_empty())
        .await;
    within(SECS5, client.stop()).await;
    wait_closed(&log, 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(log.count(&Event::Close), 2);
    assert_eq!(client_log.count(&Event::Close), 1);
    assert!(errors_of(&log).is_empty(), "{:?}", log.events());
    assert!(
        errors_of(&client_log).is_empty(),
        "{:?}",
        client_log.events()
    );
    within(SECS5, server.stop()).await;
}

#[actix_rt::test]
async fn oversized_message_ends_only_its_session() {
    let mut config = SessionConfig::default();
    config.max_frame_length = 1024;
    let (server, log) = echo_server(config).await;
    let mut good = raw_peer(&server).await;
    let mut big = raw_peer(&server).await;
    // One message over the limit, whatever frames it holds.
    big.send(Message::Binary(vec![0u8; 4096].into()))
        .await
        .unwrap();
    assert_eq!(read_to_close(&mut big).await, Some(CloseCode::Size));
    // Also over the limit in fragments, each small.
    let mut frag = raw_peer(&server).await;
    for item in [
        Item::FirstBinary(vec![0u8; 600].into()),
        Item::Continue(vec![0u8; 600].into()),
    ] {
        frag.send(Message::Continuation(item)).await.unwrap();
    }
    assert_eq!(read_to_close(&mut frag).await, Some(CloseCode::Size));
    wait_closed(&log, 2).await;
    // One of each, in either order.
    let errors = errors_of(&log);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| matches!(e.kind(), ErrorKind::FrameTooLong { .. })),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| matches!(e.kind(), ErrorKind::WebSocket { .. })),
        "{errors:?}"
    );
    for i in 0..5u8 {
        good.send(Message::Binary(length_prefixed(&[i; 100]).into()))
            .await
            .unwrap();
        let got = binary_payload(next_frame(&mut good).await);
        assert_eq!(&got[4..], &[i; 100][..]);
    }
    assert_eq!(server.stats().open_sessions, 1);
    within(SECS5, server.stop()).await;
}

#[actix_rt::test]
async fn invalid_and_unmasked_frames_end_only_their_session() {
    let (server, log) = echo_server(SessionConfig::default()).await;
    let mut good = raw_peer(&server).await;
    let hostile: [(&str, Vec<u8>); 3] = [
        (
            "unmasked",
            client_frame(true, 0x2, &length_prefixed(b"x"), false),
        ),
        ("bad opcode", client_frame(true, 0x3, b"??", true)),
        ("stray continuation", client_frame(true, 0x0, b"??", true)),
    ];
    for (what, bytes) in hostile {
        let mut stream = upgrade_raw(server.inet_addr().unwrap(), PATH).await;
        stream.write_all(&bytes).await.unwrap();
        let mut peer = Framed::new(stream, Codec::new().client_mode());
        let code = read_to_close(&mut peer).await;
        assert_eq!(code, Some(CloseCode::Protocol), "{what}");
    }
    wait_closed(&log, 3).await;
    let errors = errors_of(&log);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|e| matches!(e.kind(), ErrorKind::WebSocket { .. })),
        "{errors:?}"
    );
    good.send(Message::Binary(length_prefixed(b"still here").into()))
        .await
        .unwrap();
    let got = binary_payload(next_frame(&mut good).await);
    assert_eq!(&got[4..], b"still here");
    assert_eq!(server.stats().open_sessions, 1);
    within(SECS5, server.stop()).await;
}

#[actix_rt::test]
async fn client_reconnects_after_server_restart() {
    let (server, _) = echo_server(SessionConfig::default()).await;
    let addr = server.inet_addr().unwrap();
    let ups = Arc::new(AtomicU64::new(0));
    let u = ups.clone();
    let (client, _log) = start_client(
        WsClient::new(url(&server))
            .reconnect_interval(Duration::from_millis(50))
            .max_reconnect_interval(Duration::from_millis(200))
            .on_event(move |e| {
                if let ClientEvent::SessionUp { .. } = e {
                    u.fetch_add(1, Ordering::Relaxed);
                }
            }),
        Behaviour::default(),
    );
    common::wait_until(SECS5, "first session", || ups.load(Ordering::Relaxed) == 1).await;
    within(SECS5, server.stop()).await;
    common::wait_until(SECS5, "client lost it", || {
        client.stats().open_sessions == 0
    })
    .await;
    let (again, _, _) = start_server(
        WsServer::new(addr.to_string()),
        Behaviour::echo(),
        SessionConfig::default(),
    )
    .await;
    common::wait_until(Duration::from_secs(10), "re-dialed", || {
        ups.load(Ordering::Relaxed) == 2 && again.stats().open_sessions == 1
    })
    .await;
    assert!(client.stats().live_sessions <= 1);
    within(SECS5, client.stop()).await;
    within(SECS5, again.stop()).await;
}

#[actix_rt::test]
async fn failed_handshakes_leave_nothing_behind() {
    let (server, log) = echo_server(SessionConfig::default()).await;
    // Warm up: the first connections allocate what stays (worker state, timers).
    for _ in 0..3 {
        let mut peer = raw_peer(&server).await;
        peer.send(Message::Close(None)).await.unwrap();
        read_to_close(&mut peer).await;
    }
    wait_closed(&log, 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fds = open_fds();
    // A client dialing a wrong path fails every handshake and keeps re-dialing.
    let bad_url = format!("ws://{}/nowhere", server.inet_addr().unwrap());
    let (client, _) = start_client(
        WsClient::new(bad_url)
            .connections(2)
            .reconnect_interval(Duration::from_millis(5))
            .max_reconnect_interval(Duration::from_millis(20)),
        Behaviour::default(),
    );
    for round in 0..30 {
        let mut stream = within(SECS5, TcpStream::connect(server.inet_addr().unwrap()))
            .await
            .unwrap();
        match round % 3 {
            // Not an upgrade at all.
            0 => {
                let req = format!("GET {PATH} HTTP/1.1\r\nHost: x\r\n\r\n");
                stream.write_all(req.as_bytes()).await.unwrap();
                let head = read_head(&mut stream).await;
                assert!(head.starts_with("HTTP/1.1 4"), "{head}");
            }
            // A bad version.
            1 => {
                let req = upgrade_request(PATH, "x", 99);
                stream.write_all(req.as_bytes()).await.unwrap();
                let head = read_head(&mut stream).await;
                assert!(head.starts_with("HTTP/1.1 4"), "{head}");
            }
            // Gone in the middle of the request.
            _ => stream.write_all(b"GET /ws HTTP/1.1\r\nUpgr").await.unwrap(),
        }
        drop(stream);
    }
    common::wait_until(SECS5, "the client failed dials", || {
        client.stats().connect_failures >= 20
    })
    .await;
    within(SECS5, client.stop()).await;
    assert_eq!(client.stats().live_sessions, 0);
    assert_eq!(client.stats().opened, 0);
    common::wait_until(SECS5, "fds back to their start", || open_fds() <= fds).await;
    assert_eq!(server.stats().live_sessions, 0);
    assert_eq!(
        server.stats().opened,
        3,
        "no failed handshake became a session"
    );
    within(SECS5, server.stop()).await;
}

/// rustls configs built by hand (not by this crate's builders) around a test CA and a
/// server certificate for 127.0.0.1 it signed: (server config, client config).
fn tls_configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca = common::tls::Ca::new("test ca");
    let leaf = ca.server();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der));
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(leaf.cert_der)], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der())).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

#[actix_rt::test]
async fn wss_echo_and_a_plain_client_is_refused() {
    let (server_tls, client_tls) = tls_configs();
    let (server, server_log, _) = start_server(
        WsServer::new("127.0.0.1:0").tls(TlsServerConfig::new(server_tls)),
        Behaviour::echo(),
        SessionConfig::default(),
    )
    .await;
    let wss = format!("wss://{}{PATH}", server.inet_addr().unwrap());
    let (client, log) = start_client(
        WsClient::new(wss)
            .connections(2)
            .tls(TlsClientConfig::new(client_tls))
            .expect("a config WsClient can honour"),
        Behaviour::default(),
    );
    log.wait_for(SECS5, "2 sessions open", |e| {
        e.iter().filter(|(_, e)| *e == Event::Open).count() == 2
    })
    .await;
    for session in log.sessions() {
        within(SECS5, session.write(Bytes::from_static(b"over tls")))
            .await
            .expect("write");
    }
    log.wait_for(SECS5, "2 echoes", |e| {
        e.iter()
            .filter(|(_, e)| *e == Event::Message(Bytes::from_static(b"over tls")))
            .count()
            == 2
    })
    .await;
    // A plain ws:// client cannot speak to it: its dials fail, no session opens.
    let (plain, plain_log) = start_client(
        WsClient::new(url(&server))
            .reconnect_interval(Duration::from_millis(20))
            .connect_timeout(Duration::from_secs(1)),
        Behaviour::default(),
    );
    common::wait_until(SECS5, "plain dials fail", || {
        plain.stats().connect_failures >= 2
    })
    .await;
    within(SECS5, plain.stop()).await;
    assert!(plain_log.events().is_empty());
    within(SECS5, client.stop()).await;
    wait_closed(&server_log, 2).await;
    assert!(
        errors_of(&server_log).is_empty(),
        "{:?}",
        server_log.events()
    );
    within(SECS5, server.stop()).await;
    assert_eq!(server.stats().opened, 2);
}

#[actix_rt::test]
async fn a_peer_that_vanishes_without_a_close_frame_ends_its_session() {
    let (server, log) = echo_server(SessionConfig::default()).await;
    for round in 0..5 {
        let mut peer = raw_peer(&server).await;
        peer.send(Message::Binary(length_prefixed(b"hi").into()))
            .await
            .unwrap();
        binary_payload(next_frame(&mut peer).await);
        if round % 2 == 0 {
            // An abortive close: RST instead of FIN (a zero linger never blocks).
            #[allow(deprecated)]
            peer.get_ref().set_linger(Some(Duration::ZERO)).unwrap();
        }
        drop(peer);
        wait_closed(&log, round + 1).await;
    }
    assert_eq!(server.stats().live_sessions, 0);
    assert_eq!(log.count(&Event::Close), 5);
    within(SECS5, server.stop()).await;
}

#[actix_rt::test]
async fn a_peer_that_does_not_read_meets_the_write_timeout_and_max_connections_hold() {
    let mut config = SessionConfig::default();
    config.write_timeout = Some(Duration::from_millis(300));
    let (server, log, _) = start_server(
        WsServer::new("127.0.0.1:0").max_connections(1),
        Behaviour::default(),
        config,
    )
    .await;
    let _deaf = upgrade_raw(server.inet_addr().unwrap(), PATH).await; // never reads
    log.wait_for(SECS5, "open", |e| !e.is_empty()).await;
    // A second upgrade is over the limit: 503, no session.
    let mut second = within(SECS5, TcpStream::connect(server.inet_addr().unwrap()))
        .await
        .unwrap();
    let req = upgrade_request(PATH, "x", 13);
    second.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut second).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert_eq!(server.stats().refused, 1);

    let session = log.sessions()[0].clone();
    let frame = Bytes::from(vec![7u8; 4000]);
    // Write until a write hangs (every buffer on the way is full) or fails.
    let mut stuck = false;
    for _ in 0..50_000 {
        match tokio::time::timeout(Duration::from_millis(200), session.write(frame.clone())).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                stuck = true;
                break;
            }
        }
    }
    assert!(stuck, "a peer that does not read stops the writes");
    log.wait_for(SECS5, "the write timeout", |e| {
        e.iter()
            .any(|(_, e)| e.is_error(|k| matches!(k, ErrorKind::WriteTimeout { .. })))
    })
    .await;
    wait_closed(&log, 1).await;
    assert_eq!(server.stats().live_sessions, 0);
    within(SECS5, server.stop()).await;
}
