//! Echo over real loopback sockets: built-in and user codecs, many sessions, handles.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use futures::{SinkExt, StreamExt};
use getty::prelude::*;
use getty::{ErrorKind, EventListener, SessionConfig, SessionContext, TcpServer};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LinesCodec};

#[actix::test]
async fn echo_round_trip_with_the_length_delimited_codec() {
    let behaviour = Behaviour::echo();
    let (server, log, _) = start_probe_server(behaviour, SessionConfig::default()).await;
    let mut client = connect(&server).await;
    for payload in [&b"hello"[..], b"", &[7u8; 4096]] {
        assert_eq!(round_trip(&mut client, payload).await, payload);
    }
    drop(client);
    log.wait_for(SECS5, "on_close", |e| {
        e.iter().any(|(_, ev)| *ev == Event::Close)
    })
    .await;
    let id = log.sessions()[0].id();
    let events = log.of(id);
    assert_eq!(events.first(), Some(&Event::Open));
    assert_eq!(events.last(), Some(&Event::Close));
    assert_eq!(events.len(), 5, "open, three messages, close: {events:?}");
    server.stop().await;
}

/// A user codec with typed frames: tokio-util's `LinesCodec`, `String` in and out.
struct Shout;

impl EventListener for Shout {
    type Codec = LinesCodec;
    type Out = String;

    fn on_message(&mut self, session: &mut SessionContext<'_, Self>, line: String) {
        session.write(line.to_uppercase()).expect("queued");
    }
}

#[actix::test]
async fn echo_round_trip_with_a_user_codec() {
    let server = TcpServer::new("127.0.0.1:0")
        .workers(1)
        .start(|_| Ok((Shout, LinesCodec::new())))
        .await
        .unwrap();
    let stream = TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    let mut client = Framed::new(stream, LinesCodec::new());
    client.send("hello getty").await.unwrap();
    client.send("second line").await.unwrap();
    let first = within(SECS5, client.next()).await.unwrap().unwrap();
    let second = within(SECS5, client.next()).await.unwrap().unwrap();
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("HELLO GETTY", "SECOND LINE")
    );
    server.stop().await;
}

#[actix::test]
async fn two_hundred_sessions_each_echo_a_thousand_frames_in_order() {
    const SESSIONS: usize = 200;
    const FRAMES: usize = 1000;
    let behaviour = Behaviour::quiet_echo();
    let server = TcpServer::new("127.0.0.1:0").workers(2);
    let (server, log, _) =
        start_probe_server_with(server, behaviour, SessionConfig::default()).await;
    let addr = server.inet_addr().unwrap();
    let clients: Vec<_> = (0..SESSIONS)
        .map(|c| {
            tokio::spawn(async move {
                let stream = TcpStream::connect(addr).await.expect("connect");
                let (read, write) = stream.into_split();
                let mut sink =
                    tokio_util::codec::FramedWrite::new(write, getty::LengthDelimited::new());
                let mut echoes =
                    tokio_util::codec::FramedRead::new(read, getty::LengthDelimited::new());
                let frame = move |i: usize| Bytes::from(format!("{c}:{i}"));
                let sender = tokio::spawn(async move {
                    for i in 0..FRAMES {
                        sink.feed(frame(i)).await.expect("send");
                    }
                    sink.flush().await.expect("flush");
                    sink
                });
                for i in 0..FRAMES {
                    let echo = echoes
                        .next()
                        .await
                        .expect("echo before EOF")
                        .expect("valid frame");
                    assert_eq!(
                        echo,
                        frame(i),
                        "session {c}: frame {i} out of order or changed"
                    );
                }
                drop(sender.await);
            })
        })
        .collect();
    within(Duration::from_secs(60), async {
        for client in clients {
            client.await.expect("client checks every echo");
        }
    })
    .await;
    wait_until(SECS5, "all sessions closed", || {
        server.stats().closed == SESSIONS as u64
    })
    .await;
    assert_eq!(log.count(&Event::Open), SESSIONS);
    assert_eq!(log.count(&Event::Close), SESSIONS);
    let total: u64 = log.sessions().iter().map(|s| s.stats().frames_read).sum();
    assert_eq!(total, (SESSIONS * FRAMES) as u64);
    server.stop().await;
}

#[actix::test]
async fn another_thread_writes_through_a_handle() {
    let (server, log, _) = start_probe_server(Behaviour::default(), SessionConfig::default()).await;
    let mut client = connect(&server).await;
    let session = log.first_session().await;
    let writer = std::thread::spawn(move || {
        let results: Vec<_> = (0..10)
            .map(|i| {
                futures::executor::block_on(session.write(Bytes::from(format!("from thread {i}"))))
            })
            .collect();
        (results, session)
    });
    for i in 0..10 {
        let frame = within(SECS5, client.next()).await.unwrap().unwrap();
        assert_eq!(frame, format!("from thread {i}").as_bytes());
    }
    let (results, session) = writer.join().unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(session.stats().frames_written, 10);

    session.close();
    within(SECS5, session.closed()).await;
    let after = std::thread::spawn(move || {
        futures::executor::block_on(session.write(Bytes::from_static(b"late")))
    })
    .join()
    .unwrap();
    assert!(
        matches!(&after, Err(e) if matches!(e.kind(), ErrorKind::Closed)),
        "{after:?}"
    );
    assert!(read_to_end(&mut client, SECS5).await.is_empty());
    server.stop().await;
}

#[actix::test]
async fn attributes_and_stats() {
    let behaviour = Behaviour::echo();
    let (server, log, _) = start_probe_server(behaviour, SessionConfig::default()).await;
    let mut client = connect(&server).await;
    round_trip(&mut client, b"12345").await;
    round_trip(&mut client, b"678").await;
    let session = log.sessions()[0].clone();

    let stats = session.stats();
    assert_eq!((stats.frames_read, stats.frames_written), (2, 2));
    assert_eq!(
        (stats.bytes_read, stats.bytes_written),
        (4 + 5 + 4 + 3, 4 + 5 + 4 + 3)
    );
    assert!(session.last_active().elapsed() < Duration::from_secs(5));
    assert_eq!(*session.peer_addr(), client.get_ref().local_addr().unwrap());
    assert_eq!(*session.local_addr(), server.inet_addr().unwrap());
    assert_eq!(session.name(), format!("tcp:{}", session.peer_addr()));
    assert_eq!(
        session.max_frame_length(),
        getty::defaults::DEFAULT_MAX_FRAME_LENGTH
    );
    assert_eq!(session.cron_period(), getty::defaults::DEFAULT_CRON_PERIOD);
    assert_eq!(session.wait_time(), getty::defaults::DEFAULT_WAIT_TIME);
    assert!(session.is_writable() && !session.is_closed());

    #[derive(Clone, Debug, PartialEq)]
    struct User(String);
    assert!(session.set_attribute("user", User("ann".into())).is_none());
    session.set_attribute("visits", 3u32);
    assert_eq!(session.attribute::<User>("user"), Some(User("ann".into())));
    assert_eq!(
        session.attribute::<u64>("visits"),
        None,
        "typed: wrong type reads as absent"
    );
    assert_eq!(session.attribute::<u32>("visits"), Some(3));
    let from_other_thread = {
        let s = session.clone();
        std::thread::spawn(move || s.attribute::<User>("user"))
            .join()
            .unwrap()
    };
    assert_eq!(from_other_thread, Some(User("ann".into())));
    assert!(session.remove_attribute("user").is_some());
    assert!(!session.has_attribute("user") && session.has_attribute("visits"));

    let before = session.last_active();
    tokio::time::sleep(Duration::from_millis(20)).await;
    session.update_active();
    assert!(session.last_active() > before);
    server.stop().await;
}

#[actix::test]
async fn write_all_sends_frames_together_in_order() {
    let (server, log, _) = start_probe_server(Behaviour::default(), SessionConfig::default()).await;
    let mut client = connect(&server).await;
    let session = log.first_session().await;
    let frames: Vec<Bytes> = (0..50).map(|i| Bytes::from(vec![i as u8; i])).collect();
    within(SECS5, session.write_all(frames.clone()))
        .await
        .unwrap();
    within(
        SECS5,
        session.write_bytes(Bytes::from_static(b"\0\0\0\x03raw")),
    )
    .await
    .unwrap();
    for expected in frames {
        let got: BytesMut = within(SECS5, client.next()).await.unwrap().unwrap();
        assert_eq!(got, expected);
    }
    assert_eq!(
        within(SECS5, client.next()).await.unwrap().unwrap(),
        &b"raw"[..]
    );
    assert_eq!(session.stats().frames_written, 51);
    server.stop().await;
}

/// A peer that sends but stops reading: the echoes fill the sockets, then the write
/// queue; frames read after that wait in the logic actor's backlog (never handed to an
/// `on_message` that could not reply) and reading pauses. Once the peer reads again,
/// every echo arrives, whole and in order.
#[actix::test]
async fn echoes_held_back_by_a_peer_that_stops_reading_arrive_in_order() {
    const FRAME: usize = 16 * 1024;
    let frames = flood_bytes() / FRAME;
    let mut config = SessionConfig::default();
    config.max_frame_length = FRAME;
    config.write_high_water = 64 * 1024;
    config.write_low_water = 16 * 1024;
    // The peer stops reading on purpose, for as long as this test takes to look: on a
    // loaded machine that passed the default 5 s write timeout now and then, which ends
    // the session (a different test's subject) instead of holding the echoes back.
    config.write_timeout = None;
    let behaviour = Behaviour::quiet_echo();
    let (server, log, behaviour) = start_probe_server(behaviour, config).await;
    let stream = TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    let (read, write) = stream.into_split();
    let codec = getty::LengthDelimited::with_max_frame_length(FRAME);
    let mut sink = tokio_util::codec::FramedWrite::new(write, codec.clone());
    let frame = |i: usize| {
        let mut payload = vec![(i % 251) as u8; FRAME];
        payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
        Bytes::from(payload)
    };
    let sender = tokio::spawn(async move {
        for i in 0..frames {
            sink.feed(frame(i)).await.expect("send");
        }
        sink.flush().await.expect("flush");
        sink
    });
    let session = log.first_session().await;
    wait_until(Duration::from_secs(30), "the write queue fills", || {
        !session.is_writable()
    })
    .await;
    let held_at = behaviour
        .delivered
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        held_at < frames as u64,
        "the write queue filled before the last frame was delivered"
    );

    let mut echoes = tokio_util::codec::FramedRead::new(read, codec);
    within(Duration::from_secs(60), async {
        for i in 0..frames {
            let echo = echoes
                .next()
                .await
                .expect("echo before EOF")
                .expect("frame");
            assert!(echo == frame(i), "echo {i} out of order or changed");
        }
    })
    .await;
    drop(within(SECS5, sender).await.unwrap());
    assert_eq!(session.stats().frames_written, frames as u64);
    assert!(
        !log.of(session.id())
            .iter()
            .any(|e| matches!(e, Event::Error(_))),
        "no error: {:?}",
        log.of(session.id())
    );
    server.stop().await;
}
