//! getty's WebSocket endpoints against an independent WebSocket implementation:
//! tokio-tungstenite, which shares no code with the actix-web, actix-http and awc stack
//! under `getty::ws` (the raw peer in `tests/ws.rs` is actix-http's own codec). A
//! tungstenite client against `WsServer`, and `WsClient` against a tungstenite server:
//! length-delimited frames over binary messages, ping/pong both ways, and the close
//! handshake from either end, with the close codes the README's WebSocket section states.
//! Real browsers and Python's `websockets` are in `tests/interop.rs`.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::ws::{
    echo_server, errors_of, length_prefixed, start_client, start_server, wait_closed, PATH,
};
use common::{within, Behaviour, Event, Log, SECS5};
use futures::{SinkExt, StreamExt};
use getty::prelude::*;
use getty::transport::ws::{WsClient, WsServer};
use getty::{ErrorKind, ServerHandle, SessionConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// A tokio-tungstenite WebSocket over loopback TCP, client or server side.
type Tung = WebSocketStream<TcpStream>;

/// Most messages a read loop takes before it gives up (each loop also has a time limit).
const MAX_MESSAGES: usize = 10_000;

/// A tungstenite client of `server`, upgraded at [`PATH`].
async fn tung_client(server: &ServerHandle) -> Tung {
    let addr = server.inet_addr().unwrap();
    let tcp = within(SECS5, TcpStream::connect(addr))
        .await
        .expect("connect");
    let (ws, response) = within(
        SECS5,
        tokio_tungstenite::client_async(format!("ws://{addr}{PATH}"), tcp),
    )
    .await
    .expect("upgrade");
    assert_eq!(response.status(), 101, "switching protocols");
    ws
}

/// The next message that is not a ping or pong (tungstenite answers pings by itself),
/// 5 s at most; `None` when the connection has ended.
async fn next_data(ws: &mut Tung) -> Option<Message> {
    within(SECS5, async {
        for _ in 0..MAX_MESSAGES {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(message)) => return Some(message),
                Some(Err(err)) => panic!("the connection failed: {err}"),
                None => return None,
            }
        }
        panic!("{MAX_MESSAGES} pings and pongs and nothing else");
    })
    .await
}

/// The payload of a binary message; panics on anything else.
fn binary(message: Option<Message>) -> Bytes {
    match message {
        Some(Message::Binary(bytes)) => bytes,
        other => panic!("expected a binary message, got {other:?}"),
    }
}

/// The code of a close frame; panics on anything else or a close without a code.
fn close_code(message: Option<Message>) -> CloseCode {
    match message {
        Some(Message::Close(Some(frame))) => frame.code,
        other => panic!("expected a close frame with a code, got {other:?}"),
    }
}

/// Pings the getty peer with `payload` and reads (5 s at most) until its pong, with the
/// same payload, and at least `pings` of its own pings have come; anything else fails.
async fn ping_and_expect_pings(ws: &mut Tung, payload: &'static [u8], pings: usize) {
    ws.send(Message::Ping(Bytes::from_static(payload)))
        .await
        .unwrap();
    let (mut seen, mut pong) = (0, None);
    within(SECS5, async {
        for _ in 0..MAX_MESSAGES {
            match ws.next().await {
                Some(Ok(Message::Ping(_))) => seen += 1,
                Some(Ok(Message::Pong(payload))) => pong = Some(payload),
                other => panic!("only pings and pongs expected, got {other:?}"),
            }
            if pong.is_some() && seen >= pings {
                return;
            }
        }
        panic!("{MAX_MESSAGES} messages without a pong and {pings} pings");
    })
    .await;
    assert_eq!(pong.as_deref(), Some(payload));
}

/// Reads until the connection ends (5 s at most), asserting that nothing but pings and
/// pongs comes first.
async fn expect_end(ws: &mut Tung) {
    let rest = next_data(ws).await;
    assert!(rest.is_none(), "the connection ends, got {rest:?}");
}

/// The payloads a probe log received, in order.
fn messages_of(log: &Log) -> Vec<Bytes> {
    log.events()
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::Message(b) => Some(b),
            _ => None,
        })
        .collect()
}

/// Payload `i` of a run: sizes from 0 up to 3000 bytes (under the default 4 KiB frame
/// limit), contents that tell them apart.
fn payload(i: usize) -> Vec<u8> {
    (0..(i * 613) % 3001).map(|j| (i + j) as u8).collect()
}

#[actix_rt::test]
async fn a_tungstenite_client_round_trips_frames_one_binary_message_each() {
    let (server, log) = echo_server(SessionConfig::default()).await;
    let mut ws = tung_client(&server).await;

    // One frame per message: each comes back whole, as one binary message, in order.
    const N: usize = 50;
    for i in 0..N {
        ws.send(Message::binary(length_prefixed(&payload(i))))
            .await
            .expect("send");
    }
    for i in 0..N {
        let echo = binary(next_data(&mut ws).await);
        assert_eq!(&echo[..], &length_prefixed(&payload(i))[..], "frame {i}");
    }

    // A frame split across two messages, cut inside its length prefix and inside its
    // payload: it is reassembled, and comes back as one message.
    for cut in [2, 9] {
        let frame = length_prefixed(b"split across two messages");
        ws.send(Message::binary(frame[..cut].to_vec()))
            .await
            .unwrap();
        ws.send(Message::binary(frame[cut..].to_vec()))
            .await
            .unwrap();
        let echo = binary(next_data(&mut ws).await);
        assert_eq!(&echo[..], &frame[..], "cut at {cut}");
    }

    // Two frames in one message: two messages back, one frame each.
    let mut both = length_prefixed(b"first of two");
    both.extend(length_prefixed(b"second of two"));
    ws.send(Message::binary(both)).await.unwrap();
    for want in [&b"first of two"[..], b"second of two"] {
        let echo = binary(next_data(&mut ws).await);
        assert_eq!(&echo[..], &length_prefixed(want)[..]);
    }

    // The server's listener saw exactly those frames, in that order.
    let mut want: Vec<Bytes> = (0..N).map(|i| Bytes::from(payload(i))).collect();
    want.extend([&b"split across two messages"[..]; 2].map(Bytes::from_static));
    want.extend([&b"first of two"[..], b"second of two"].map(Bytes::from_static));
    assert_eq!(messages_of(&log), want);
    assert!(errors_of(&log).is_empty(), "{:?}", log.events());
    drop(ws);
    wait_closed(&log, 1).await;
    within(SECS5, server.stop()).await;
}

#[actix_rt::test]
async fn ping_pong_both_ways_with_a_tungstenite_client_keeps_the_session_alive() {
    let mut config = SessionConfig::default();
    config.read_timeout = Some(Duration::from_millis(400));
    let (server, log, _) = start_server(
        WsServer::new("127.0.0.1:0").ping_interval(Duration::from_millis(50)),
        Behaviour::default(),
        config,
    )
    .await;
    let mut ws = tung_client(&server).await;

    // The client's ping gets a pong with its payload; the server's own pings arrive.
    ping_and_expect_pings(&mut ws, b"are you there", 3).await;

    // tungstenite answers the server's pings by itself (on each read). Idle for three
    // read timeouts, reading only: the pongs count as activity, so the session stays.
    let mut idle_pings = 0;
    let idle = tokio::time::timeout(Duration::from_millis(1200), async {
        for _ in 0..MAX_MESSAGES {
            match ws.next().await {
                Some(Ok(Message::Ping(_))) => idle_pings += 1,
                other => return other,
            }
        }
        None
    })
    .await;
    assert!(idle.is_err(), "still open, nothing but pings: {idle:?}");
    assert!(
        idle_pings >= 3,
        "pings every 50 ms, got {idle_pings} in 1.2 s"
    );
    assert_eq!(server.stats().open_sessions, 1);
    assert!(errors_of(&log).is_empty(), "{:?}", log.events());
    within(SECS5, server.stop()).await;
}

#[actix_rt::test]
async fn a_close_from_a_tungstenite_client_is_echoed_and_the_session_closes_once() {
    let (server, log) = echo_server(SessionConfig::default()).await;
    // 1000, and an application's own code: the peer's code is echoed.
    for (round, code) in [CloseCode::Normal, CloseCode::from(4001)]
        .into_iter()
        .enumerate()
    {
        let mut ws = tung_client(&server).await;
        ws.send(Message::binary(length_prefixed(b"last words")))
            .await
            .unwrap();
        let close = CloseFrame {
            code,
            reason: "done".into(),
        };
        within(SECS5, ws.close(Some(close))).await.expect("close");
        let started = Instant::now();
        // What the session still writes is flushed: the echo comes, then the close
        // answer with our code, then the end of the connection.
        let echo = binary(next_data(&mut ws).await);
        assert_eq!(&echo[..], &length_prefixed(b"last words")[..]);
        assert_eq!(close_code(next_data(&mut ws).await), code);
        expect_end(&mut ws).await;
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "the connection ends with the handshake, not later: {:?}",
            started.elapsed()
        );
        wait_closed(&log, round + 1).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(log.count(&Event::Close), 2, "on_close once per session");
    assert!(errors_of(&log).is_empty(), "{:?}", log.events());
    assert_eq!(server.stats().live_sessions, 0);
    within(SECS5, server.stop()).await;
}

#[actix_rt::test]
async fn a_server_close_reaches_a_tungstenite_client_as_1000_after_the_last_frame() {
    let (server, log) = echo_server(SessionConfig::default()).await;
    let mut ws = tung_client(&server).await;
    let session = log.first_session().await;
    within(SECS5, session.write(Bytes::from_static(b"goodbye")))
        .await
        .expect("write");
    session.close();
    let started = Instant::now();
    // The write is flushed before the close; then 1000.
    let last = binary(next_data(&mut ws).await);
    assert_eq!(&last[..], &length_prefixed(b"goodbye")[..]);
    assert_eq!(close_code(next_data(&mut ws).await), CloseCode::Normal);
    // tungstenite answers the close (on its next read); the server waits up to 1 s for
    // that answer, so the connection ending well before then means it was understood.
    expect_end(&mut ws).await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "the answer ends the connection at once, not after the wait: {:?}",
        started.elapsed()
    );
    wait_closed(&log, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(log.count(&Event::Close), 1);
    assert!(errors_of(&log).is_empty(), "{:?}", log.events());
    within(SECS5, server.stop()).await;
}

/// A tungstenite server on a free loopback port: the listener, and its `ws://` URL.
async fn tung_listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}{PATH}", listener.local_addr().unwrap());
    (listener, url)
}

/// Accepts one connection on `listener` and completes its upgrade (5 s at most each);
/// returns the socket and the path the client asked for.
#[allow(clippy::result_large_err)] // the callback's Result type is tungstenite's, not ours
async fn tung_accept(listener: &TcpListener) -> (Tung, String) {
    let (tcp, _) = within(SECS5, listener.accept()).await.expect("accept");
    let mut path = String::new();
    let ws = within(
        SECS5,
        tokio_tungstenite::accept_hdr_async(tcp, |request: &Request, response: Response| {
            path = request.uri().path().to_owned();
            Ok(response)
        }),
    )
    .await
    .expect("upgrade");
    (ws, path)
}

#[actix_rt::test]
async fn ws_client_round_trips_frames_with_a_tungstenite_server_and_answers_its_ping() {
    let (listener, url) = tung_listener().await;
    let (client, log) = start_client(
        WsClient::new(url).ping_interval(Duration::from_millis(50)),
        Behaviour::default(),
    );
    let (mut ws, path) = tung_accept(&listener).await;
    assert_eq!(path, PATH);
    log.wait_for(SECS5, "client open", |e| !e.is_empty()).await;
    let session = log.sessions()[0].clone();

    // Each frame the client writes goes out as exactly one binary message.
    const N: usize = 20;
    for i in 0..N {
        within(SECS5, session.write(Bytes::from(payload(i))))
            .await
            .expect("write");
    }
    let mut received = Vec::new();
    for _ in 0..N {
        received.push(binary(next_data(&mut ws).await));
    }
    for (i, message) in received.iter().enumerate() {
        assert_eq!(&message[..], &length_prefixed(&payload(i))[..], "frame {i}");
    }

    // The server sends them back as it likes: one per message, then a frame split across
    // two messages, then two frames in one message. The client's codec finds them all.
    for message in received {
        ws.send(Message::Binary(message)).await.unwrap();
    }
    let split = length_prefixed(b"split by the server");
    ws.send(Message::binary(split[..6].to_vec())).await.unwrap();
    ws.send(Message::binary(split[6..].to_vec())).await.unwrap();
    let mut both = length_prefixed(b"one of two");
    both.extend(length_prefixed(b"two of two"));
    ws.send(Message::binary(both)).await.unwrap();
    let mut want: Vec<Bytes> = (0..N).map(|i| Bytes::from(payload(i))).collect();
    want.extend(
        [&b"split by the server"[..], b"one of two", b"two of two"].map(Bytes::from_static),
    );
    log.wait_for(SECS5, "every frame", |e| {
        e.iter()
            .filter(|(_, e)| matches!(e, Event::Message(_)))
            .count()
            >= want.len()
    })
    .await;
    assert_eq!(messages_of(&log), want);

    // The server's ping gets a pong with its payload; the client's own pings arrive.
    ping_and_expect_pings(&mut ws, b"server ping", 2).await;

    // Stopping the client runs the close handshake: 1000, then the end.
    let stopping = actix_rt::spawn(async move { client.stop().await });
    assert_eq!(close_code(next_data(&mut ws).await), CloseCode::Normal);
    expect_end(&mut ws).await;
    within(SECS5, stopping).await.expect("client stopped");
    wait_closed(&log, 1).await;
    assert_eq!(log.count(&Event::Close), 1);
    assert!(errors_of(&log).is_empty(), "{:?}", log.events());
}

#[actix_rt::test]
async fn a_close_from_a_tungstenite_server_ends_the_ws_client_session_and_is_echoed() {
    let (listener, url) = tung_listener().await;
    let (client, log) = start_client(
        WsClient::new(url)
            .reconnect_interval(Duration::from_millis(50))
            .max_reconnect_interval(Duration::from_millis(200)),
        Behaviour::default(),
    );
    let (mut ws, _) = tung_accept(&listener).await;
    drop(listener); // the client's re-dials are refused from here on
    log.wait_for(SECS5, "client open", |e| !e.is_empty()).await;
    ws.send(Message::binary(length_prefixed(b"before the close")))
        .await
        .unwrap();
    let close = CloseFrame {
        code: CloseCode::Away,
        reason: "going away".into(),
    };
    within(SECS5, ws.close(Some(close))).await.expect("close");
    // The client echoes our code and its session closes once, without an error, after
    // the frame that came before the close.
    assert_eq!(close_code(next_data(&mut ws).await), CloseCode::Away);
    expect_end(&mut ws).await;
    wait_closed(&log, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id = log.sessions()[0].id();
    assert_eq!(
        log.of(id),
        vec![
            Event::Open,
            Event::Message(Bytes::from_static(b"before the close")),
            Event::Close
        ]
    );
    within(SECS5, client.stop()).await;
    assert_eq!(client.stats().live_sessions, 0);
}

/// Reads (5 s at most) until the peer closes; returns the close code, answering as a
/// well-behaved peer does (tungstenite sends the answer on its next read).
async fn read_to_close(ws: &mut Tung) -> CloseCode {
    let code = close_code(next_data(ws).await);
    let end = within(SECS5, ws.next()).await;
    assert!(
        matches!(
            end,
            None | Some(Err(WsError::ConnectionClosed
                | WsError::AlreadyClosed
                | WsError::Protocol(_)))
        ),
        "the end after the close, got {end:?}"
    );
    code
}

#[actix_rt::test]
async fn text_and_oversized_messages_from_a_tungstenite_client_get_the_documented_codes() {
    let mut config = SessionConfig::default();
    config.max_frame_length = 1024;
    let (server, log) = echo_server(config).await;
    // Text, on an endpoint that does not allow it: 1003.
    let mut ws = tung_client(&server).await;
    let text = String::from_utf8(length_prefixed(b"hi")).unwrap();
    ws.send(Message::text(text)).await.unwrap();
    assert_eq!(read_to_close(&mut ws).await, CloseCode::Unsupported);
    wait_closed(&log, 1).await;
    let errors = errors_of(&log);
    assert!(
        matches!(errors.as_slice(), [e] if matches!(e.kind(), ErrorKind::WebSocket { .. })),
        "{errors:?}"
    );
    // A message over max_frame_length + 64 bytes: 1009.
    let mut ws = tung_client(&server).await;
    ws.send(Message::binary(vec![0u8; 1024 + 64 + 1]))
        .await
        .unwrap();
    assert_eq!(read_to_close(&mut ws).await, CloseCode::Size);
    wait_closed(&log, 2).await;
    let errors = errors_of(&log);
    assert_eq!(errors.len(), 2, "{:?}", log.events());
    assert!(
        matches!(
            errors[1].kind(),
            ErrorKind::WebSocket { .. } | ErrorKind::FrameTooLong { .. }
        ),
        "{errors:?}"
    );
    within(SECS5, server.stop()).await;
}
