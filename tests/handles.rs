//! Writes through `Session` handles from other actors and tasks: fan-out without silent
//! loss, byte-bounded refusals that are reported and counted, waiting writes, order.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::{BufMut, Bytes, BytesMut};
use common::{connect, start_probe_server_with, within, Behaviour, Client};
use futures::{SinkExt, StreamExt};
use getty::prelude::*;
use getty::{Error, ErrorKind, Session, SessionConfig, TcpServer};

/// Fan-out load, scaled by `GETTY_FANOUT_MESSAGES` (default 10,000 per session).
fn fanout_messages() -> u32 {
    common::env_or("GETTY_FANOUT_MESSAGES", 10_000)
}

/// A 100-byte message: its sequence number, then filler.
fn message(seq: u32) -> Bytes {
    let mut b = BytesMut::with_capacity(100);
    b.put_u32(seq);
    b.put_bytes(b'.', 96);
    b.freeze()
}

/// The sequence number at the start of a frame made by [`message`].
fn seq_of(frame: &[u8]) -> u32 {
    u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]])
}

/// What one session's writer did: accepted and refused writes.
#[derive(Default)]
struct Tally {
    accepted: AtomicU64,
    refused: AtomicU64,
}

/// One actor that fans every `Publish` out to every session with `try_write`, as a
/// pub/sub hub or a chat room does.
struct Hub {
    sessions: Vec<(Session<Bytes>, Arc<Tally>)>,
}

impl Actor for Hub {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Publish(u32);

impl Handler<Publish> for Hub {
    type Result = ();
    fn handle(&mut self, Publish(seq): Publish, _: &mut Context<Self>) {
        let msg = message(seq);
        for (session, tally) in &self.sessions {
            match session.try_write(msg.clone()) {
                Ok(()) => tally.accepted.fetch_add(1, Ordering::Relaxed),
                Err(err) => {
                    assert!(err.is_queue_full(), "only refusals for room here: {err}");
                    tally.refused.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
    }
}

/// Reads until `expected` frames arrived (at most `limit`); asserts they come in order.
async fn read_in_order(client: &mut Client, expected: u64, limit: Duration) -> u64 {
    let mut got = 0u64;
    let mut last: Option<u32> = None;
    let _ = tokio::time::timeout(limit, async {
        while got < expected {
            let Some(Ok(frame)) = client.next().await else {
                break;
            };
            let seq = seq_of(&frame);
            assert!(
                last.is_none_or(|l| seq > l),
                "out of order: {seq} after {last:?}"
            );
            last = Some(seq);
            got += 1;
        }
    })
    .await;
    got
}

/// A two-worker quiet probe server with `n` connected clients and the handles of their
/// `n` server-side sessions, in the order they opened.
async fn server_with_sessions(
    n: usize,
    config: SessionConfig,
) -> (getty::ServerHandle, Vec<Client>, Vec<Session<Bytes>>) {
    let (server, log, _) = start_probe_server_with(
        TcpServer::new("127.0.0.1:0").workers(2),
        Behaviour {
            quiet: true,
            ..Behaviour::default()
        },
        config,
    )
    .await;
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(connect(&server).await);
    }
    common::wait_until(Duration::from_secs(10), "every session open", || {
        log.sessions().len() == n
    })
    .await;
    // Clients connected in order, but sessions may open out of order across arbiters:
    // pair each client with its session by the client's local port.
    let sessions = log.sessions();
    let paired = clients
        .iter()
        .map(|c| {
            let port = c.get_ref().local_addr().unwrap().port();
            sessions
                .iter()
                .find(|s| s.peer_addr().to_string().ends_with(&format!(":{port}")))
                .expect("a session per client")
                .clone()
        })
        .collect();
    (server, clients, paired)
}

/// 100 sessions × 10,000 messages of 100 B, fanned out by one actor with `try_write` and
/// default settings: every message arrives, in order, and nothing was refused (any
/// refusal would have been counted and returned, and this test would show the gap).
///
/// The publisher feeds the hub through its bounded mailbox (`try_send`, then `send`
/// when full), as a hub fed by sessions through the actor adapter is fed; `do_send`
/// would ignore the bound and let one turn of the hub fan out the whole burst, more
/// than a session on the hub's own arbiter can take before the turn ends (the next
/// test shows what happens then).
#[actix_rt::test]
async fn one_actor_fans_a_burst_out_to_100_sessions_and_every_message_arrives() {
    let sessions_n = 100;
    let messages = fanout_messages();
    let (server, clients, sessions) =
        server_with_sessions(sessions_n, SessionConfig::default()).await;
    let tallies: Vec<Arc<Tally>> = (0..sessions_n).map(|_| Arc::default()).collect();
    let hub = Hub {
        sessions: sessions
            .iter()
            .cloned()
            .zip(tallies.iter().cloned())
            .collect(),
    }
    .start();
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let expected = u64::from(messages);
            actix_rt::spawn(async move {
                read_in_order(&mut client, expected, Duration::from_secs(120)).await
            })
        })
        .collect();
    for seq in 0..messages {
        if let Err(SendError::Full(publish)) = hub.try_send(Publish(seq)) {
            hub.send(publish).await.expect("hub runs");
        }
    }
    let mut delivered = Vec::new();
    for reader in readers {
        delivered.push(reader.await.expect("reader"));
    }
    for (i, ((got, tally), session)) in delivered.iter().zip(&tallies).zip(&sessions).enumerate() {
        let accepted = tally.accepted.load(Ordering::Relaxed);
        let refused = tally.refused.load(Ordering::Relaxed);
        assert_eq!(accepted + refused, u64::from(messages), "session {i}");
        assert_eq!(refused, session.stats().writes_refused, "refusals counted");
        assert_eq!(*got, accepted, "session {i}: every accepted write arrives");
        assert_eq!(refused, 0, "session {i}: default settings carry the burst");
    }
    server.stop().await;
}

/// One handler call that writes more than either bound holds, to a session that shares
/// its arbiter (so nothing is encoded until the call returns): the hand-over queue takes
/// its capacity, the rest is refused with `HandoffFull` saying how full, each refusal is
/// counted, and what was accepted arrives whole and in order.
#[actix_rt::test]
async fn a_burst_past_the_handoff_queue_is_refused_counted_and_the_rest_arrives() {
    let config = SessionConfig::default().handoff_queue(100);
    let (server, log, _) = start_probe_server_with(
        TcpServer::new("127.0.0.1:0").workers(1),
        Behaviour::default(),
        config,
    )
    .await;
    let mut client = connect(&server).await;
    common::wait_until(common::SECS5, "open", || log.sessions().len() == 1).await;
    let session = log.sessions()[0].clone();
    // The test runs on the server's arbiter: this loop keeps the session from running.
    let mut accepted = 0u64;
    let mut refusals = Vec::new();
    for seq in 0..250 {
        match session.try_write(message(seq)) {
            Ok(()) => accepted += 1,
            Err(err) => refusals.push(err),
        }
    }
    assert_eq!(accepted, 100, "the hand-over queue's capacity");
    assert_eq!(refusals.len(), 150);
    for err in &refusals {
        assert!(
            matches!(
                err.kind(),
                ErrorKind::HandoffFull {
                    frames: 100,
                    limit: 100,
                    ..
                }
            ) && err.session() == Some(session.id()),
            "{err}"
        );
    }
    assert_eq!(session.stats().writes_refused, 150);
    assert_eq!(read_in_order(&mut client, 100, common::SECS5).await, 100);
    // Room again: the next write is taken.
    session.try_write(message(1000)).expect("room again");
    assert_eq!(read_in_order(&mut client, 1, common::SECS5).await, 1);
    server.stop().await;
}

/// The byte bound: a peer that does not read lets the write queue reach its high-water
/// mark; then `try_write` says `QueueFull` with the bytes queued and the mark, and the
/// async `write` waits instead of failing, for at most the write timeout.
#[actix_rt::test]
async fn past_the_high_water_mark_try_write_says_queue_full_and_write_waits() {
    let config = SessionConfig::default()
        .write_water_marks(64 * 1024, 16 * 1024)
        .write_timeout(Some(Duration::from_millis(800)));
    let (server, _clients, sessions) = server_with_sessions(1, config).await;
    let session = sessions[0].clone();
    let big = Bytes::from(vec![7u8; 4000]);
    // Fill the socket buffers and the write queue: the client never reads.
    let refused = within(Duration::from_secs(30), async {
        for _ in 0..100_000 {
            match session.try_write(big.clone()) {
                Ok(()) => tokio::task::yield_now().await,
                Err(err) => return err,
            }
        }
        panic!("the write queue never filled");
    })
    .await;
    match refused.kind() {
        ErrorKind::QueueFull { queued, limit, .. } => {
            assert_eq!(*limit, 64 * 1024);
            assert!(*queued >= *limit, "{refused}");
        }
        // The hand-over queue may fill first while the write queue is at the mark.
        ErrorKind::HandoffFull { .. } => {}
        _ => panic!("a refusal for room, got {refused}"),
    }
    assert!(session.stats().writes_refused >= 1);
    // The async write waits for room; the peer never reads, so either the wait or the
    // session's own write timeout ends it, within the timeout (plus slack).
    let waited = within(Duration::from_secs(5), session.write(big.clone())).await;
    let err = waited.expect_err("no room ever came");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::WriteTimeout { .. } | ErrorKind::Closed
        ),
        "{err}"
    );
    server.stop().await;
}

/// `write_within` waits for room for its own time, not the session's write timeout: with
/// a peer that does not read it fails with `WriteTimeout` (queueing nothing) and the
/// session goes on; once the peer reads, everything queued before arrives in order and
/// the next `write_within` is taken.
#[actix_rt::test]
async fn write_within_gives_up_after_its_own_wait_and_the_session_goes_on() {
    let config = SessionConfig::default()
        .write_water_marks(64 * 1024, 16 * 1024)
        .write_timeout(None);
    let (server, mut clients, sessions) = server_with_sessions(1, config).await;
    let session = sessions[0].clone();
    // Fill the socket buffers and the write queue: the client does not read yet.
    let queued = within(Duration::from_secs(30), async {
        for seq in 0..200_000u32 {
            if session.try_write(message(seq)).is_err() {
                return seq;
            }
            tokio::task::yield_now().await;
        }
        panic!("the write queue never filled");
    })
    .await;
    let wait = Duration::from_millis(300);
    let refused = within(common::SECS5, session.write_within(message(queued), wait)).await;
    match refused.as_ref().map_err(Error::kind) {
        Err(ErrorKind::WriteTimeout { after, .. }) => assert_eq!(*after, wait),
        _ => panic!("a write timeout after {wait:?}, got {refused:?}"),
    }
    assert!(!session.is_closed(), "the session goes on");
    // The peer reads: every frame queued before arrives, in order, and nothing of the
    // refused write.
    let got = read_in_order(&mut clients[0], u64::from(queued), Duration::from_secs(60)).await;
    assert_eq!(got, u64::from(queued));
    let next = within(
        common::SECS5,
        session.write_within(message(queued + 1), common::SECS5),
    );
    next.await.expect("room again");
    let Some(Ok(frame)) = within(common::SECS5, clients[0].next()).await else {
        panic!("the last frame");
    };
    assert_eq!(seq_of(&frame), queued + 1, "the refused frame was not sent");
    server.stop().await;
}

/// `write` from another task waits for room instead of failing: 20,000 writes of one
/// task through a hand-over queue of 64 frames all arrive, in order.
#[actix_rt::test]
async fn awaited_writes_wait_for_room_and_all_arrive_in_order() {
    let config = SessionConfig::default().handoff_queue(64);
    let (server, mut clients, sessions) = server_with_sessions(1, config).await;
    let session = sessions[0].clone();
    let n = 20_000u32;
    let writer = actix_rt::spawn(async move {
        // Unacknowledged writes in flight, so the queue fills: each `write` resolves
        // only once its bytes left, so spawn them in order and await all.
        let mut pending = Vec::new();
        for seq in 0..n {
            let s = session.clone();
            // Started one after the other: each hands its frame over before the next.
            let mut fut = Box::pin(async move { s.write(message(seq)).await });
            match futures::poll!(fut.as_mut()) {
                std::task::Poll::Ready(result) => result.expect("write"),
                std::task::Poll::Pending => pending.push(fut),
            }
            if pending.len() >= 256 {
                for p in pending.drain(..) {
                    p.await.expect("write");
                }
            }
        }
        for p in pending {
            p.await.expect("write");
        }
    });
    let got = read_in_order(&mut clients[0], u64::from(n), Duration::from_secs(60)).await;
    within(Duration::from_secs(10), writer)
        .await
        .expect("writer");
    assert_eq!(got, u64::from(n));
    server.stop().await;
}

/// Writes made after the session closed, or waiting when it closes, end with `Closed`;
/// none panics and none hangs.
#[actix_rt::test]
async fn waiting_writers_hear_closed_when_the_session_ends() {
    let config = SessionConfig::default()
        .write_water_marks(16 * 1024, 4 * 1024)
        .write_timeout(None);
    let (server, clients, sessions) = server_with_sessions(1, config).await;
    let session = sessions[0].clone();
    let big = Bytes::from(vec![1u8; 4000]);
    within(Duration::from_secs(30), async {
        for _ in 0..100_000 {
            if session.try_write(big.clone()).is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("never full");
    })
    .await;
    let waiting = {
        let s = session.clone();
        let big = big.clone();
        actix_rt::spawn(async move { s.write(big).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(clients); // the peer resets; the session ends
    let result = within(Duration::from_secs(10), waiting)
        .await
        .expect("task");
    assert!(
        matches!(&result, Err(e) if matches!(e.kind(), ErrorKind::Closed)),
        "{result:?}"
    );
    session.closed().await;
    assert!(matches!(
        session.try_write(big.clone()),
        Err(e) if matches!(e.kind(), ErrorKind::Closed)
    ));
    assert!(matches!(
        session.write(big).await,
        Err(e) if matches!(e.kind(), ErrorKind::Closed)
    ));
    server.stop().await;
}

/// The room's broker link, which the room names (not started here: the interop suite
/// runs the room with a broker).
#[path = "../examples/common/broker.rs"]
#[allow(dead_code)]
mod broker;
/// The `chat` and `ws_chat` examples' room, as they use it.
#[path = "../examples/common/room.rs"]
#[allow(dead_code)]
mod room;

/// Lines each chat sender sends, scaled by `GETTY_CHAT_LINES` (default 20,000).
fn chat_lines() -> u64 {
    common::env_or("GETTY_CHAT_LINES", 20_000)
}

/// The chat example's room with 6 members, 3 of whom send 20,000 lines each at once,
/// with default settings: every member gets every line of every other member, in order
/// per sender, and no member is told it missed any.
#[actix_rt::test]
async fn the_chat_room_delivers_every_line_of_a_three_sender_burst_to_all_six_members() {
    use getty::actor::ActorListener;
    use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec};

    let lines = chat_lines();
    let room = room::Room::default().start();
    let server = TcpServer::new("127.0.0.1:0")
        .workers(1)
        .start(move |_| {
            Ok((
                ActorListener::new(room.clone().recipient()),
                LinesCodec::new_with_max_length(1024),
            ))
        })
        .await
        .expect("chat server");
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for member in 0..6 {
        let stream = tokio::net::TcpStream::connect(server.inet_addr().unwrap())
            .await
            .unwrap();
        let (read, write) = stream.into_split();
        let mut read = FramedRead::new(read, LinesCodec::new());
        // The welcome line first, so every member is in the room before anyone talks.
        let welcome = within(common::SECS5, read.next()).await.unwrap().unwrap();
        assert!(welcome.starts_with("* welcome"), "{welcome}");
        let sender = member < 3;
        let expected = if sender { 2 * lines } else { 3 * lines };
        readers.push(actix_rt::spawn(async move {
            let mut got = 0u64;
            let mut last: std::collections::HashMap<String, u64> = Default::default();
            let mut notices = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(120), async {
                while got < expected {
                    let Some(Ok(line)) = read.next().await else {
                        break;
                    };
                    if let Some(rest) = line.strip_prefix('[') {
                        let (from, n) = rest.split_once("] ").expect("[id] n");
                        let n: u64 = n.parse().expect("a number");
                        let before = last.insert(from.to_owned(), n);
                        assert!(
                            before.map_or(n == 0, |b| n == b + 1),
                            "{from}: {n} after {before:?}"
                        );
                        got += 1;
                    } else if line.starts_with("* you missed") {
                        notices.push(line);
                    }
                }
            })
            .await;
            (member, got, expected, notices)
        }));
        writers.push((sender, FramedWrite::new(write, LinesCodec::new())));
    }
    let mut sends = Vec::new();
    for (sender, mut write) in writers {
        sends.push(actix_rt::spawn(async move {
            if sender {
                for n in 0..lines {
                    write.feed(n.to_string()).await.expect("send");
                }
                SinkExt::<String>::flush(&mut write).await.expect("flush");
            }
            write // kept open until every member has read
        }));
    }
    let mut open = Vec::new();
    for send in sends {
        open.push(
            within(Duration::from_secs(120), send)
                .await
                .expect("sender"),
        );
    }
    for reader in readers {
        let (member, got, expected, notices) = reader.await.expect("reader");
        assert!(notices.is_empty(), "member {member}: {notices:?}");
        assert_eq!(got, expected, "member {member} got every line");
    }
    drop(open);
    server.stop().await;
}
