//! Every way a session can end runs `on_close` exactly once (with `on_error` first when an
//! error ended it), and ends only that session.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use getty::prelude::*;
use getty::{Error, ErrorKind, EventListener, SessionConfig, SessionContext, TcpServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec};

/// A probe server with `config` that echoes, closes on `bye` and panics on `boom`.
async fn echo_server(config: SessionConfig) -> (getty::ServerHandle, Arc<Log>, Arc<Behaviour>) {
    let behaviour = Behaviour {
        echo: true,
        close_on: Some(b"bye"),
        panic_on: Some(b"boom"),
        ..Default::default()
    };
    start_probe_server(behaviour, config).await
}

#[actix::test]
async fn peer_eof_closes_without_error() {
    let (server, log, _) = echo_server(SessionConfig::default()).await;
    let mut client = connect(&server).await;
    round_trip(&mut client, b"x").await;
    drop(client);
    assert_closed_once(&closed_events(&log).await, None);
    server.stop().await;
}

#[actix::test]
async fn peer_reset_is_an_io_error() {
    let (server, log, _) = echo_server(SessionConfig::default()).await;
    let mut client = connect(&server).await;
    round_trip(&mut client, b"x").await;
    let stream = client.into_inner();
    stream.set_zero_linger().unwrap(); // close with RST
    drop(stream);
    assert_closed_once(
        &closed_events(&log).await,
        Some(|k| matches!(k, ErrorKind::Io { .. })),
    );
    server.stop().await;
}

#[actix::test]
async fn frame_too_long_is_refused_from_its_header() {
    let (server, log, _) = echo_server(SessionConfig::default()).await;
    let mut stream = TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    stream.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap(); // 4 GiB announced, nothing sent
    assert_closed_once(
        &closed_events(&log).await,
        Some(|k| matches!(k, ErrorKind::FrameTooLong { .. })),
    );
    let mut rest = Vec::new();
    within(SECS5, stream.read_to_end(&mut rest)).await.ok();
    assert!(rest.is_empty());
    server.stop().await;
}

#[actix::test]
async fn truncated_frame_then_eof_is_a_decode_error() {
    let (server, log, _) = echo_server(SessionConfig::default()).await;
    let mut stream = TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    stream.write_all(&[0, 0, 0, 10, b'a', b'b']).await.unwrap();
    stream.shutdown().await.unwrap();
    assert_closed_once(
        &closed_events(&log).await,
        Some(|k| matches!(k, ErrorKind::Decode { .. })),
    );
    server.stop().await;
}

/// A user codec's decode error (invalid UTF-8 for `LinesCodec`).
struct Lines(Arc<Log>);

impl EventListener for Lines {
    type Codec = LinesCodec;
    type Out = String;
    fn on_open(&mut self, s: &mut SessionContext<'_, Self>) -> getty::Result<()> {
        self.0.push(s.id(), Event::Open);
        Ok(())
    }
    fn on_message(&mut self, s: &mut SessionContext<'_, Self>, line: String) {
        self.0.push(s.id(), Event::Message(Bytes::from(line)));
    }
    fn on_error(&mut self, s: &getty::Session<String>, error: &Error) {
        self.0.push(s.id(), Event::Error(error.clone()));
    }
    fn on_close(&mut self, s: &getty::Session<String>) {
        self.0.push(s.id(), Event::Close);
    }
}

#[actix::test]
async fn user_codec_decode_error_ends_the_session() {
    let log = Arc::new(Log::default());
    let l = log.clone();
    let server = TcpServer::new("127.0.0.1:0")
        .workers(1)
        .start(move |_| Ok((Lines(l.clone()), LinesCodec::new())))
        .await
        .unwrap();
    let mut stream = TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    stream.write_all(b"fine\n\xff\xfe\n").await.unwrap();
    log.wait_for(SECS5, "close", |e| {
        e.iter().any(|(_, ev)| *ev == Event::Close)
    })
    .await;
    let events: Vec<_> = log.events().into_iter().map(|(_, e)| e).collect();
    assert!(
        matches!(
            events.as_slice(),
            [Event::Open, Event::Message(fine), error, Event::Close]
                if fine == &Bytes::from("fine")
                    && error.is_error(|k| matches!(k, ErrorKind::Decode { .. }))
        ),
        "{events:?}"
    );
    server.stop().await;
}

#[actix::test]
async fn read_timeout_closes_an_idle_session() {
    let mut config = SessionConfig::default();
    config.read_timeout = Some(Duration::from_millis(200));
    let (server, log, _) = echo_server(config).await;
    let mut client = connect(&server).await;
    round_trip(&mut client, b"x").await;
    assert_closed_once(
        &closed_events(&log).await,
        Some(|k| matches!(k, ErrorKind::ReadTimeout { .. })),
    );
    assert!(
        read_to_end(&mut client, SECS5).await.is_empty(),
        "the peer sees the close"
    );
    server.stop().await;
}

#[actix::test]
async fn close_from_a_handle_and_from_a_callback() {
    let (server, log, _) = echo_server(SessionConfig::default()).await;
    let mut a = connect(&server).await;
    round_trip(&mut a, b"a").await;
    let session = log.sessions()[0].clone();
    session.close();
    session.close(); // harmless
    within(SECS5, session.closed()).await;
    assert!(read_to_end(&mut a, SECS5).await.is_empty());
    assert_closed_once(&log.of(session.id()), None);

    let mut b = connect(&server).await;
    round_trip(&mut b, b"b").await;
    b.send(Bytes::from_static(b"before")).await.unwrap();
    b.send(Bytes::from_static(b"bye")).await.unwrap();
    b.send(Bytes::from_static(b"after")).await.unwrap();
    let rest = read_to_end(&mut b, SECS5).await;
    assert_eq!(
        rest,
        vec![Bytes::from_static(b"before")],
        "written before close() is flushed"
    );
    let second = log.sessions()[1].clone();
    within(SECS5, second.closed()).await;
    let events = log.of(second.id());
    assert_closed_once(&events, None);
    assert!(
        !events.contains(&Event::Message(Bytes::from_static(b"after"))),
        "nothing after close()"
    );
    server.stop().await;
}

#[actix::test]
async fn a_panicking_listener_ends_only_its_own_session() {
    let (server, log, _) = echo_server(SessionConfig::default()).await;
    let mut calm = connect(&server).await;
    round_trip(&mut calm, b"calm").await;
    let mut doomed = connect(&server).await;
    round_trip(&mut doomed, b"doomed").await;
    doomed.send(Bytes::from_static(b"boom")).await.unwrap();
    assert!(read_to_end(&mut doomed, SECS5).await.is_empty());
    let doomed_id = log.sessions()[1].id();
    log.wait_for(SECS5, "close", |e| {
        e.iter()
            .any(|(s, ev)| *s == doomed_id && *ev == Event::Close)
    })
    .await;
    assert_closed_once(
        &log.of(doomed_id),
        Some(|k| matches!(k, ErrorKind::ListenerPanic { .. })),
    );
    for i in 0..100 {
        let payload = format!("still here {i}");
        assert_eq!(
            round_trip(&mut calm, payload.as_bytes()).await,
            payload.as_bytes()
        );
    }
    server.stop().await;
}

#[actix::test]
async fn server_shutdown_closes_every_session_once() {
    let (server, log, _) = echo_server(SessionConfig::default()).await;
    let mut clients = Vec::new();
    for i in 0..10 {
        let mut c = connect(&server).await;
        round_trip(&mut c, format!("{i}").as_bytes()).await;
        clients.push(c);
    }
    within(Duration::from_secs(10), server.stop()).await;
    assert_eq!(server.stats().live_sessions, 0);
    assert_eq!(log.count(&Event::Close), 10);
    for s in log.sessions() {
        assert_closed_once(&log.of(s.id()), None);
        assert!(s.is_closed());
    }
    for c in &mut clients {
        assert!(
            read_to_end(c, SECS5).await.is_empty(),
            "each client sees EOF"
        );
    }
    assert!(
        TcpStream::connect(server.inet_addr().unwrap())
            .await
            .is_err(),
        "no longer accepting"
    );
    within(SECS5, server.stop()).await; // stopping again is harmless
}

#[actix::test]
async fn on_open_refusing_closes_the_connection_without_callbacks() {
    let behaviour = Behaviour {
        refuse: true,
        ..Default::default()
    };
    let (server, log, _) = start_probe_server(behaviour, SessionConfig::default()).await;
    let mut client = connect(&server).await;
    let _ = client.send(Bytes::from_static(b"hello?")).await;
    assert!(read_to_end(&mut client, SECS5).await.is_empty());
    wait_until(SECS5, "refusal counted", || server.stats().refused == 1).await;
    assert_eq!(server.stats().live_sessions, 0);
    assert!(log.events().is_empty(), "no on_close for a refused session");
    server.stop().await;
}

#[actix::test]
async fn new_session_hook_refusing_or_panicking_refuses_the_connection() {
    let server = TcpServer::new("127.0.0.1:0")
        .workers(1)
        .start(|setup| -> getty::Result<(Probe, getty::LengthDelimited)> {
            if setup.peer_addr().inet().is_some_and(|a| a.port() % 2 == 0) {
                Err(Error::refused("even ports are not welcome"))
            } else {
                panic!("hook panics for odd ports")
            }
        })
        .await
        .unwrap();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(server.inet_addr().unwrap())
            .await
            .unwrap();
        let mut buf = Vec::new();
        let n = within(SECS5, stream.read_to_end(&mut buf)).await;
        assert!(n.map_or(true, |n| n == 0));
    }
    wait_until(SECS5, "refusals counted", || server.stats().refused == 4).await;
    assert_eq!(server.stats().live_sessions, 0);
    server.stop().await;
}

#[actix::test]
async fn max_connections_refuses_the_rest_cleanly() {
    let behaviour = Behaviour::echo();
    let server = TcpServer::new("127.0.0.1:0").workers(1).max_connections(3);
    let (server, _log, _) =
        start_probe_server_with(server, behaviour, SessionConfig::default()).await;
    let mut kept = Vec::new();
    for _ in 0..3 {
        let mut c = connect(&server).await;
        round_trip(&mut c, b"in").await;
        kept.push(c);
    }
    let mut extra = connect(&server).await;
    let _ = extra.send(Bytes::from_static(b"me too")).await;
    assert!(
        read_to_end(&mut extra, SECS5).await.is_empty(),
        "closed at once"
    );
    assert_eq!(server.stats().refused, 1);
    for c in &mut kept {
        round_trip(c, b"still fine").await;
    }
    drop(kept.pop());
    wait_until(SECS5, "slot freed", || server.stats().live_sessions == 2).await;
    let mut next = connect(&server).await;
    round_trip(&mut next, b"room again").await;
    server.stop().await;
}

#[actix::test]
async fn half_close_flushes_every_reply_before_the_socket_shuts() {
    const FRAMES: usize = 2000;
    let mut config = SessionConfig::default();
    config.max_frame_length = 32 * 1024;
    let behaviour = Behaviour::quiet_echo();
    let (server, log, _) = start_probe_server(behaviour, config).await;
    let stream = TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    let (read, write) = stream.into_split();
    let mut sink = FramedWrite::new(
        write,
        getty::LengthDelimited::with_max_frame_length(32 * 1024),
    );
    let mut echoes = FramedRead::new(
        read,
        getty::LengthDelimited::with_max_frame_length(32 * 1024),
    );
    let frame = |i: usize| Bytes::from(vec![(i % 251) as u8; 16 * 1024]);
    // 32 MB of echoes owed when the client half-closes: far more than socket buffers.
    let writer = tokio::spawn(async move {
        for i in 0..FRAMES {
            sink.feed(frame(i)).await.unwrap();
        }
        sink.flush().await.unwrap();
        sink.into_inner().shutdown().await.unwrap(); // half-close: we send no more
    });
    let mut got = 0;
    within(Duration::from_secs(30), async {
        while let Some(echo) = echoes.next().await {
            assert_eq!(echo.unwrap(), frame(got));
            got += 1;
        }
    })
    .await;
    writer.await.unwrap();
    assert_eq!(
        got, FRAMES,
        "every echo owed at the half-close arrived before EOF"
    );
    assert_closed_once(&closed_events(&log).await, None);
    server.stop().await;
}

#[actix::test]
async fn stop_flushes_what_sessions_have_queued() {
    const FRAMES: usize = 256;
    const SIZE: usize = 64 * 1024;
    let mut config = SessionConfig::default();
    config.max_frame_length = SIZE;
    config.write_high_water = 32 * 1024 * 1024;
    let (server, log, _) = start_probe_server(Behaviour::default(), config).await;
    let mut client = connect(&server).await;
    let session = log.first_session().await;
    let frame = |i: usize| Bytes::from(vec![i as u8; SIZE]);
    // 16 MiB queued while the client reads nothing: more than the socket buffers hold.
    let writer = {
        let s = session.clone();
        actix_rt::spawn(async move { s.write_all((0..FRAMES).map(frame).collect()).await })
    };
    wait_until(SECS5, "frames queued", || {
        session.stats().frames_written == FRAMES as u64
    })
    .await;
    assert!(
        session.queued_bytes() > 0,
        "some bytes still wait in the queue"
    );
    let stop = actix_rt::spawn({
        let server = server.clone();
        async move { server.stop().await }
    });
    let got = read_to_end(&mut client, Duration::from_secs(10)).await;
    assert_eq!(got.len(), FRAMES, "every queued frame arrived before EOF");
    assert!(got.iter().enumerate().all(|(i, f)| *f == frame(i)));
    within(SECS5, stop).await.unwrap();
    assert!(
        within(SECS5, writer).await.unwrap().is_ok(),
        "the writer learns its frames left"
    );
    assert_closed_once(&log.of(session.id()), None);
}
