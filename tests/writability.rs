//! Writability as an event (netty's `channelWritabilityChanged`): a listener, and an
//! actor through `ActorListener`, are told once when the write queue reaches its
//! high-water mark and once when it drains to the low-water mark, over a real socket.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use common::{within, SECS5};
use getty::actor::{ActorListener, EventKind, SessionEvent};
use getty::prelude::*;
use getty::{
    EventListener, LengthDelimited, ServerHandle, SessionConfig, SessionContext, TcpServer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Each request frame asks for this many bytes of reply.
const REPLY: usize = 4000; // under the default max frame length (4 KiB)

/// Water marks small enough for a few replies to cross them.
fn config() -> SessionConfig {
    SessionConfig::default()
        .write_water_marks(64 * 1024, 16 * 1024)
        .write_timeout(None)
}

type Seen = Arc<Mutex<Vec<bool>>>;

/// Answers every frame with `REPLY` bytes (while there is room) and records the
/// writability events.
struct Producer {
    seen: Seen,
}

impl EventListener for Producer {
    type Codec = LengthDelimited;
    type Out = Bytes;

    fn on_message(&mut self, s: &mut SessionContext<'_, Self>, _: BytesMut) {
        // A refused reply is this test's signal, not a loss: the event says when to
        // go on, and the client counts the replies it got.
        let _ = s.write(Bytes::from(vec![7u8; REPLY]));
    }

    fn on_writability(&mut self, _: &mut SessionContext<'_, Self>, writable: bool) {
        self.seen.lock().unwrap().push(writable);
    }
}

/// Sends `n` one-byte frames, then waits until `seen` holds `want` events.
async fn flood_then_wait(client: &mut TcpStream, n: usize, seen: &Seen, want: usize) {
    for _ in 0..n {
        client.write_all(&[0, 0, 0, 1, b'x']).await.expect("send");
    }
    within(SECS5, async {
        for _ in 0..500 {
            if seen.lock().unwrap().len() >= want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("writability events: {:?}", seen.lock().unwrap());
    })
    .await;
}

/// Reads replies until `seen` holds `want` events (the queue drained).
async fn drain_until(client: &mut TcpStream, seen: &Seen, want: usize) {
    let mut buf = vec![0u8; 64 * 1024];
    within(Duration::from_secs(30), async {
        for _ in 0..100_000 {
            if seen.lock().unwrap().len() >= want {
                return;
            }
            let read = tokio::time::timeout(Duration::from_millis(50), client.read(&mut buf));
            if let Ok(Ok(0)) = read.await {
                panic!("the server closed the connection");
            }
        }
        panic!("writability events: {:?}", seen.lock().unwrap());
    })
    .await;
}

/// Over one connection to `server`: a client that does not read, so the replies fill
/// the socket buffers and then the queue, must leave exactly one `false` in `seen`; then
/// it reads, and the queue draining to the low-water mark adds exactly one `true`.
async fn told_once_each_way(server: ServerHandle, seen: &Seen) {
    let mut client = TcpStream::connect(server.inet_addr().unwrap())
        .await
        .expect("connect");
    flood_then_wait(&mut client, 2_000, seen, 1).await;
    assert_eq!(*seen.lock().unwrap(), [false]);
    drain_until(&mut client, seen, 2).await;
    assert_eq!(*seen.lock().unwrap(), [false, true], "once per change");
    server.stop().await;
}

#[actix_rt::test]
async fn the_listener_is_told_once_when_the_queue_fills_and_once_when_it_drains() {
    let seen: Seen = Arc::default();
    let hook_seen = seen.clone();
    let server = TcpServer::new("127.0.0.1:0")
        .session_config(config())
        .start(move |_| {
            let seen = hook_seen.clone();
            Ok((Producer { seen }, LengthDelimited::new()))
        })
        .await
        .expect("server");
    told_once_each_way(server, &seen).await;
}

/// Records the writability events an actor gets through `ActorListener`.
struct Recorder {
    seen: Seen,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<SessionEvent<BytesMut, Bytes>> for Recorder {
    type Result = ();
    fn handle(&mut self, event: SessionEvent<BytesMut, Bytes>, _: &mut Context<Self>) {
        match event.kind {
            EventKind::Frame(_) => {
                // Refused replies are expected here (see `Producer`).
                let _ = event.session.try_write(Bytes::from(vec![7u8; REPLY]));
            }
            EventKind::Writability(writable) => self.seen.lock().unwrap().push(writable),
            _ => {}
        }
    }
}

#[actix_rt::test]
async fn an_actor_gets_writability_events_through_the_adapter() {
    let seen: Seen = Arc::default();
    let recorder = Recorder { seen: seen.clone() }.start();
    let server = TcpServer::new("127.0.0.1:0")
        .session_config(config())
        .start(move |_| {
            let listener = ActorListener::new(recorder.clone().recipient());
            Ok((listener, LengthDelimited::new()))
        })
        .await
        .expect("server");
    told_once_each_way(server, &seen).await;
}
