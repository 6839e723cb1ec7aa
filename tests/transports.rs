//! The core's echo, close-cause and backpressure tests, written once and run over every
//! stream transport: TCP, Unix domain sockets, in-memory pipes that reach the server
//! only through the public transport seam (`Server::serve` with `Connection`s), and QUIC
//! (a `QuicServer` reached by raw quinn peers, one stream per connection).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::flood::Flood;
use common::rig::{Kind, Rig};
use common::*;
use futures::{SinkExt, StreamExt};
use getty::{ErrorKind, SessionConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs each named body over every transport, as one test per pair.
macro_rules! over_every_transport {
    ($($body:ident),* $(,)?) => {
        mod tcp { $( #[actix::test] async fn $body() { super::$body(super::Kind::Tcp).await } )* }
        mod unix { $( #[actix::test] async fn $body() { super::$body(super::Kind::Unix).await } )* }
        mod pipe { $( #[actix::test] async fn $body() { super::$body(super::Kind::Pipe).await } )* }
        mod quic { $( #[actix::test] async fn $body() { super::$body(super::Kind::Quic).await } )* }
    };
}

over_every_transport!(
    echo_many_sessions_in_order,
    peer_eof_closes_without_error,
    frame_too_long_ends_the_session,
    truncated_frame_then_eof_is_a_decode_error,
    read_timeout_closes_a_silent_session,
    close_from_a_callback_flushes_replies_first,
    stop_closes_every_session_once,
    a_slow_listener_holds_a_flooding_peer_back,
);

async fn echo_many_sessions_in_order(kind: Kind) {
    const SESSIONS: usize = 20;
    const FRAMES: usize = 200;
    let rig = Rig::start(kind, Behaviour::quiet_echo(), SessionConfig::default()).await;
    let mut peers = Vec::new();
    for s in 0..SESSIONS {
        let connector = rig.connector.clone();
        peers.push(actix_rt::spawn(async move {
            let mut client = connector.framed().await;
            for i in 0..FRAMES {
                client.feed(Bytes::from(format!("{s}:{i}"))).await.unwrap();
            }
            client.flush().await.unwrap();
            for i in 0..FRAMES {
                let echo = within(SECS5, client.next()).await.expect("echo").unwrap();
                assert_eq!(echo, format!("{s}:{i}").as_bytes(), "in order");
            }
            client
        }));
    }
    // The peers stay connected until the sessions are counted below: a peer that went
    // would take its session with it (at once over QUIC, whose close is immediate).
    let mut connected = Vec::new();
    for peer in peers {
        connected.push(within(Duration::from_secs(30), peer).await.unwrap());
    }
    let sessions = rig.log.sessions();
    assert_eq!(sessions.len(), SESSIONS);
    let prefix = match kind {
        Kind::Tcp => "tcp:",
        Kind::Unix => "unix:",
        Kind::Pipe => "pipe:",
        Kind::Quic => "quic:",
    };
    for session in &sessions {
        assert!(session.name().starts_with(prefix), "{}", session.name());
        let stats = session.stats();
        assert_eq!(stats.frames_read, FRAMES as u64);
        assert_eq!(stats.frames_written, FRAMES as u64);
        assert_eq!(stats.bytes_read, stats.bytes_written);
    }
    assert_eq!(rig.stats().open_sessions, SESSIONS);
    drop(connected);
    rig.stop().await;
    assert_eq!(rig.stats().live_sessions, 0);
}

async fn peer_eof_closes_without_error(kind: Kind) {
    let rig = Rig::start(kind, Behaviour::echo(), SessionConfig::default()).await;
    let mut client = rig.connector.framed().await;
    client.send(Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(
        within(SECS5, client.next()).await.unwrap().unwrap(),
        &b"x"[..]
    );
    drop(client);
    assert_closed_once(&closed_events(&rig.log).await, None);
    rig.stop().await;
}

async fn frame_too_long_ends_the_session(kind: Kind) {
    let rig = Rig::start(kind, Behaviour::echo(), SessionConfig::default()).await;
    let mut bystander = rig.connector.framed().await;
    bystander.send(Bytes::from_static(b"first")).await.unwrap();
    within(SECS5, bystander.next()).await.unwrap().unwrap();
    let mut peer = rig.connector.connect().await;
    peer.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap(); // 4 GiB announced
    rig.log
        .wait_for(SECS5, "on_close", |e| {
            e.iter().any(|(_, ev)| *ev == Event::Close)
        })
        .await;
    let victim = rig.log.sessions()[1].id();
    assert_closed_once(
        &rig.log.of(victim),
        Some(|k| matches!(k, ErrorKind::FrameTooLong { .. })),
    );
    let mut rest = Vec::new();
    within(SECS5, peer.read_to_end(&mut rest)).await.ok();
    assert!(rest.is_empty());
    // The other session goes on.
    bystander
        .send(Bytes::from_static(b"still here"))
        .await
        .unwrap();
    let echo = within(SECS5, bystander.next()).await.unwrap().unwrap();
    assert_eq!(echo, &b"still here"[..]);
    rig.stop().await;
}

async fn truncated_frame_then_eof_is_a_decode_error(kind: Kind) {
    let rig = Rig::start(kind, Behaviour::echo(), SessionConfig::default()).await;
    let mut peer = rig.connector.connect().await;
    peer.write_all(&[0, 0, 0, 10, b'a', b'b']).await.unwrap();
    peer.shutdown().await.unwrap();
    assert_closed_once(
        &closed_events(&rig.log).await,
        Some(|k| matches!(k, ErrorKind::Decode { .. })),
    );
    rig.stop().await;
}

async fn read_timeout_closes_a_silent_session(kind: Kind) {
    let mut config = SessionConfig::default();
    config.read_timeout = Some(Duration::from_millis(200));
    let rig = Rig::start(kind, Behaviour::echo(), config).await;
    let mut peer = rig.connector.connect().await;
    assert_closed_once(
        &closed_events(&rig.log).await,
        Some(|k| matches!(k, ErrorKind::ReadTimeout { .. })),
    );
    let mut rest = Vec::new();
    within(SECS5, peer.read_to_end(&mut rest)).await.ok();
    rig.stop().await;
}

async fn close_from_a_callback_flushes_replies_first(kind: Kind) {
    let behaviour = Behaviour {
        close_on: Some(b"bye"),
        ..Behaviour::echo()
    };
    let rig = Rig::start(kind, behaviour, SessionConfig::default()).await;
    let mut client = rig.connector.framed().await;
    for frame in [&b"one"[..], b"two", b"bye", b"never"] {
        client.feed(Bytes::from_static(frame)).await.unwrap();
    }
    client.flush().await.unwrap();
    let mut echoes = Vec::new();
    within(SECS5, async {
        while let Some(Ok(frame)) = client.next().await {
            echoes.push(frame.freeze());
        }
    })
    .await;
    assert_eq!(
        echoes,
        [&b"one"[..], b"two"],
        "replies before close() are flushed, then EOF"
    );
    assert_closed_once(&closed_events(&rig.log).await, None);
    rig.stop().await;
}

async fn stop_closes_every_session_once(kind: Kind) {
    let rig = Rig::start(kind, Behaviour::echo(), SessionConfig::default()).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut client = rig.connector.framed().await;
        client.send(Bytes::from_static(b"hi")).await.unwrap();
        within(SECS5, client.next()).await.unwrap().unwrap();
        clients.push(client);
    }
    within(Duration::from_secs(10), rig.stop()).await;
    assert_eq!(rig.log.count(&Event::Close), 5);
    assert_eq!(rig.stats().live_sessions, 0);
    for client in &mut clients {
        assert!(
            within(SECS5, client.next()).await.is_none(),
            "EOF after stop"
        );
    }
}

async fn a_slow_listener_holds_a_flooding_peer_back(kind: Kind) {
    const FRAME: usize = 16 * 1024;
    let flood = Flood {
        frame: FRAME,
        frames: flood_bytes() / FRAME,
        delay: Duration::from_millis(10),
        slack: 64 * 1024,
        samples: 20,
    };
    let rig = Rig::start(kind, flood.behaviour(), flood.config()).await;
    let connector = rig.connector.clone();
    flood
        .run(
            move || async move { connector.connect().await },
            rig.log.clone(),
            rig.behaviour.clone(),
        )
        .await;
    rig.stop().await;
}
