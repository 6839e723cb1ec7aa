//! Session events as messages to user actors: order, close, backpressure, worker pool.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use common::*;
use futures::{SinkExt, StreamExt};
use getty::actor::{ActorListener, EventKind, SessionEvent};
use getty::pool::WorkerPool;
use getty::prelude::*;
use getty::{
    ErrorKind, EventListener, LengthDelimited, Session, SessionConfig, SessionContext, SessionId,
    TcpServer,
};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedWrite};

type Events = Arc<Mutex<HashMap<SessionId, Vec<String>>>>;

/// One actor for every session: records each session's events as short strings.
struct Recorder {
    events: Events,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<SessionEvent<BytesMut, Bytes>> for Recorder {
    type Result = ();
    fn handle(&mut self, event: SessionEvent<BytesMut, Bytes>, _: &mut Context<Self>) {
        let text = match event.kind {
            EventKind::Opened => "open".to_owned(),
            EventKind::Frame(f) => String::from_utf8_lossy(&f).into_owned(),
            EventKind::Cron => "cron".to_owned(),
            EventKind::Errored(e) => match e.kind() {
                ErrorKind::FrameTooLong { .. } => "error:frame_too_long".to_owned(),
                _ => format!("error:{e}"),
            },
            EventKind::Closed => "close".to_owned(),
            _ => "other".to_owned(),
        };
        self.events
            .lock()
            .unwrap()
            .entry(event.session.id())
            .or_default()
            .push(text);
    }
}

#[actix::test]
async fn one_actor_gets_every_sessions_events_in_order_and_every_close() {
    const SESSIONS: usize = 100;
    const FRAMES: usize = 50;
    let events: Events = Arc::default();
    let recorder = Recorder {
        events: events.clone(),
    }
    .start();
    let mut config = SessionConfig::default();
    config.max_frame_length = 100;
    let server = TcpServer::new("127.0.0.1:0")
        .workers(2)
        .session_config(config)
        .start(move |_| {
            Ok((
                ActorListener::new(recorder.clone().recipient()),
                LengthDelimited::with_max_frame_length(100),
            ))
        })
        .await
        .unwrap();
    let addr = server.inet_addr().unwrap();
    let clients: Vec<_> = (0..SESSIONS)
        .map(|c| {
            tokio::spawn(async move {
                let stream = TcpStream::connect(addr).await.unwrap();
                let mut sink =
                    FramedWrite::new(stream, LengthDelimited::with_max_frame_length(1000));
                for i in 0..FRAMES {
                    sink.send(Bytes::from(format!("{c}:{i}"))).await.unwrap();
                }
                if c % 10 == 0 {
                    sink.send(Bytes::from(vec![b'x'; 101])).await.unwrap(); // too long
                }
            })
        })
        .collect();
    for c in clients {
        within(SECS5, c).await.unwrap();
    }
    wait_until(Duration::from_secs(10), "every Closed", || {
        let e = events.lock().unwrap();
        e.len() == SESSIONS
            && e.values()
                .all(|v| v.last().map(String::as_str) == Some("close"))
    })
    .await;
    for (_, list) in events.lock().unwrap().iter() {
        assert_eq!(list[0], "open");
        let c: usize = list[1].split(':').next().unwrap().parse().unwrap();
        for i in 0..FRAMES {
            assert_eq!(
                list[1 + i],
                format!("{c}:{i}"),
                "session of client {c}: order"
            );
        }
        let tail: Vec<_> = list[1 + FRAMES..].iter().map(String::as_str).collect();
        if c % 10 == 0 {
            assert_eq!(tail, ["error:frame_too_long", "close"]);
        } else {
            assert_eq!(tail, ["close"]);
        }
    }
    server.stop().await;
}

/// A handler that takes `delay` per frame (while `slow`), on its own arbiter.
struct Slow {
    delay: Duration,
    slow: Arc<AtomicBool>,
    handled: Arc<AtomicU64>,
    session: Arc<Mutex<Option<Session<Bytes>>>>,
}

impl Actor for Slow {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(2);
    }
}

impl Handler<SessionEvent<BytesMut, Bytes>> for Slow {
    type Result = ();
    fn handle(&mut self, event: SessionEvent<BytesMut, Bytes>, _: &mut Context<Self>) {
        match event.kind {
            EventKind::Opened => *self.session.lock().unwrap() = Some(event.session),
            EventKind::Frame(_) => {
                if self.slow.load(Ordering::Relaxed) {
                    std::thread::sleep(self.delay);
                }
                self.handled.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

#[actix::test]
async fn a_slow_handler_actor_throttles_a_flooding_peer() {
    const FRAME: usize = 64 * 1024;
    let frames = (flood_bytes() / FRAME) as u64;
    let slow = Arc::new(AtomicBool::new(true));
    let handled = Arc::new(AtomicU64::new(0));
    let session = Arc::new(Mutex::new(None));
    let arbiter = Arbiter::new();
    let handler = {
        let (slow, handled, session) = (slow.clone(), handled.clone(), session.clone());
        Slow::start_in_arbiter(&arbiter.handle(), move |_| Slow {
            delay: Duration::from_millis(20),
            slow,
            handled,
            session,
        })
    };
    let mut config = SessionConfig::default();
    config.max_frame_length = FRAME;
    config.read_queue = 4;
    let server = TcpServer::new("127.0.0.1:0")
        .workers(1)
        .session_config(config)
        .start(move |_| {
            Ok((
                ActorListener::new(handler.clone().recipient()),
                LengthDelimited::with_max_frame_length(FRAME),
            ))
        })
        .await
        .unwrap();
    let stream = TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    let mut sink = FramedWrite::new(stream, LengthDelimited::with_max_frame_length(FRAME));
    let flood = tokio::spawn(async move {
        for i in 0..frames {
            sink.feed(Bytes::from(vec![i as u8; FRAME])).await.unwrap();
        }
        sink.flush().await.unwrap();
        sink
    });
    wait_until(SECS5, "opened", || session.lock().unwrap().is_some()).await;
    let s = session.lock().unwrap().clone().unwrap();
    // Frames read but not yet handled: the read queue's batches, the one in hand, the
    // handler's mailbox and the adapter's backlog, a couple of frames each.
    let bound = (4 + 1 + 2 + 4) * 2;
    let mut worst = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let waiting = s
            .stats()
            .frames_read
            .saturating_sub(handled.load(Ordering::Relaxed));
        worst = worst.max(waiting);
    }
    eprintln!("frames read but not handled: at most {worst} (bound {bound})");
    assert!(
        worst <= bound,
        "{worst} frames waited for the handler, bound {bound}"
    );
    assert!(!flood.is_finished(), "the peer is held back");
    slow.store(false, Ordering::Relaxed);
    drop(within(Duration::from_secs(30), flood).await.unwrap());
    wait_until(Duration::from_secs(30), "all handled", || {
        handled.load(Ordering::Relaxed) == frames
    })
    .await;
    server.stop().await;
    arbiter.stop();
}

/// Hands every frame to a pool; `slow` frames take 300 ms.
struct Offload(WorkerPool<BytesMut, Bytes>);

impl EventListener for Offload {
    type Codec = LengthDelimited;
    type Out = Bytes;
    fn on_message(&mut self, session: &mut SessionContext<'_, Self>, frame: BytesMut) {
        self.0
            .try_submit(session.session(), frame)
            .expect("pool has room");
    }
}

#[actix::test]
async fn long_work_on_the_pool_does_not_hold_up_other_frames_and_late_replies_get_closed() {
    let (tx, rx) = std::sync::mpsc::channel::<(Bytes, getty::Result<()>)>();
    let tx = Mutex::new(tx);
    let pool = WorkerPool::start(2, move |frame: BytesMut, session: &Session<Bytes>| {
        if frame.starts_with(b"slow") {
            std::thread::sleep(Duration::from_millis(300));
        }
        let frame = frame.freeze();
        let result = session.write_blocking(frame.clone());
        let _ = tx.lock().unwrap().send((frame, result));
    });
    let server = TcpServer::new("127.0.0.1:0")
        .workers(1)
        .start(move |_| Ok((Offload(pool.clone()), LengthDelimited::new())))
        .await
        .unwrap();
    let stream = TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    let mut client = Framed::new(stream, LengthDelimited::new());
    client.send(Bytes::from_static(b"slow 1")).await.unwrap();
    for i in 0..5 {
        client.send(Bytes::from(format!("fast {i}"))).await.unwrap();
    }
    let mut order = Vec::new();
    for _ in 0..6 {
        let frame = within(SECS5, client.next()).await.unwrap().unwrap();
        order.push(String::from_utf8_lossy(&frame).into_owned());
    }
    assert_eq!(
        order.last().map(String::as_str),
        Some("slow 1"),
        "{order:?}"
    );

    // A reply to a session that closed meanwhile: Err(Closed) to the worker.
    client.send(Bytes::from_static(b"slow 2")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(client);
    let late = within(SECS5, async {
        loop {
            if let Ok((frame, result)) = rx.try_recv() {
                if frame == "slow 2" {
                    return result;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        matches!(&late, Err(e) if matches!(e.kind(), ErrorKind::Closed)),
        "{late:?}"
    );
    server.stop().await;
}
