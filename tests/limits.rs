//! Limits and backpressure: oversized frames, floods, peers that do not read, and cron.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::flood::Flood;
use common::*;
use futures::SinkExt;
use getty::prelude::*;
use getty::{Error, ErrorKind, SessionConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[actix::test]
async fn a_frame_over_the_max_ends_only_its_own_session() {
    let mut config = SessionConfig::default();
    config.max_frame_length = 1024;
    let behaviour = Behaviour::echo();
    let (server, log, _) = start_probe_server(behaviour, config).await;
    let mut others = Vec::new();
    for i in 0..5 {
        let mut c = connect(&server).await;
        round_trip(&mut c, format!("peer {i}").as_bytes()).await;
        others.push(c);
    }
    let mut offender = connect(&server).await;
    round_trip(&mut offender, &[1; 1024]).await; // exactly the max: fine
    offender.send(Bytes::from(vec![2; 1025])).await.unwrap();
    assert!(read_to_end(&mut offender, SECS5).await.is_empty());
    let id = log.sessions()[5].id();
    log.wait_for(SECS5, "offender closed", |e| {
        e.iter().any(|(s, ev)| *s == id && *ev == Event::Close)
    })
    .await;
    let events = log.of(id);
    let ending = &events[events.len() - 2..];
    assert!(
        matches!(ending, [error, Event::Close]
            if error.is_error(|k| matches!(k, ErrorKind::FrameTooLong { .. }))),
        "{ending:?}"
    );
    for (i, c) in others.iter_mut().enumerate() {
        for j in 0..20 {
            let payload = format!("peer {i} frame {j}");
            assert_eq!(round_trip(c, payload.as_bytes()).await, payload.as_bytes());
        }
    }
    assert_eq!(server.stats().live_sessions, 5);
    server.stop().await;
}

#[actix::test]
async fn the_read_buffer_is_bounded_for_codecs_without_length_checks() {
    use std::sync::{Arc, Mutex};
    use tokio_util::codec::LinesCodec;

    /// Records the error that ended its session, and how much had been read by then.
    struct Lines(Arc<Mutex<Vec<(Error, u64)>>>);
    impl getty::EventListener for Lines {
        type Codec = LinesCodec;
        type Out = String;
        fn on_message(&mut self, _: &mut getty::SessionContext<'_, Self>, _: String) {}
        fn on_error(&mut self, s: &getty::Session<String>, e: &Error) {
            self.0
                .lock()
                .unwrap()
                .push((e.clone(), s.stats().bytes_read));
        }
    }
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let mut config = SessionConfig::default();
    config.max_frame_length = 1000;
    let server = getty::TcpServer::new("127.0.0.1:0")
        .workers(1)
        .session_config(config)
        .start(move |_| Ok((Lines(errors.clone()), LinesCodec::new())))
        .await
        .unwrap();
    let mut stream = TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    // A line that never ends: up to 1 MiB without a newline. Writes fail once the server
    // has closed the connection, which is the point.
    within(SECS5, async {
        let chunk = vec![b'a'; 4096];
        for _ in 0..256 {
            if stream.write_all(&chunk).await.is_err() {
                break;
            }
        }
    })
    .await;
    wait_until(SECS5, "session closed", || server.stats().closed == 1).await;
    let errors = seen.lock().unwrap().clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let (error, bytes_read) = errors[0].clone();
    assert!(
        matches!(error.kind(), ErrorKind::FrameTooLong { .. }),
        "{error:?}"
    );
    // Bound: max + header allowance, plus at most one read chunk past it.
    assert!(
        bytes_read <= 1000 + 64 + 8 * 1024,
        "read {bytes_read} bytes before refusing"
    );
    server.stop().await;
}

#[actix::test]
async fn a_flood_at_a_slow_listener_leaves_server_memory_bounded() {
    const FRAMES: usize = 1600; // 100 MiB
    let flood = Flood {
        frame: 64 * 1024,
        frames: FRAMES,
        delay: Duration::from_millis(20),
        slack: 8 * 1024,
        samples: 40,
    };
    let (server, log, behaviour) = start_probe_server(flood.behaviour(), flood.config()).await;
    let addr = server.inet_addr().unwrap();
    let measured = flood
        .run(
            move || async move { TcpStream::connect(addr).await.unwrap() },
            log,
            behaviour,
        )
        .await;
    let delivered_while_slow = measured.delivered_while_slow;
    assert!(
        delivered_while_slow < FRAMES as u64 / 2,
        "{delivered_while_slow}"
    );
    server.stop().await;
}

#[actix::test]
async fn a_peer_that_never_reads_gets_queue_full_then_a_write_timeout() {
    let mut config = SessionConfig::default();
    config.write_high_water = 256 * 1024;
    config.write_low_water = 64 * 1024;
    config.write_timeout = Some(Duration::from_millis(300));
    config.max_frame_length = 64 * 1024;
    let (server, log, _) = start_probe_server(Behaviour::default(), config).await;
    let _silent = TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap(); // never reads
    let session = log.first_session().await;
    let frame = Bytes::from(vec![0u8; 64 * 1024]);
    let mut results = Vec::new();
    for _ in 0..1000 {
        let result = within(SECS5, session.write(frame.clone())).await;
        let stop = result.is_err();
        results.push(result);
        if stop && session.queued_bytes() > 0 {
            break;
        }
    }
    let first_err = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("writes fail once nobody reads");
    assert!(
        matches!(
            first_err.kind(),
            ErrorKind::QueueFull { .. } | ErrorKind::WriteTimeout { .. }
        ),
        "{first_err:?}"
    );
    assert!(
        session.queued_bytes() <= 256 * 1024 + 64 * 1024 + 8,
        "queue bounded: {}",
        session.queued_bytes()
    );
    log.wait_for(SECS5, "write timeout closes the session", |e| {
        e.iter().any(|(_, ev)| *ev == Event::Close)
    })
    .await;
    let events = log.of(session.id());
    let ending = &events[events.len() - 2..];
    assert!(
        matches!(ending, [error, Event::Close]
            if error.is_error(|k| matches!(k, ErrorKind::WriteTimeout { .. }))),
        "{ending:?}"
    );
    server.stop().await;
}

#[actix::test]
async fn cron_ticks_arrive_at_the_period() {
    let mut config = SessionConfig::default();
    config.cron_period = Duration::from_millis(100);
    let (server, log, _) = start_probe_server(Behaviour::default(), config).await;
    let _client = connect(&server).await;
    log.wait_for(SECS5, "open", |e| !e.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let ticks = log.count(&Event::Cron);
    // 10 periods passed; allow for a slow machine, but not for a missing or runaway timer.
    assert!(
        (5..=12).contains(&ticks),
        "{ticks} cron ticks in ~1 s at a 100 ms period"
    );
    server.stop().await;
}
