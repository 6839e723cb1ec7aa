//! The `pubsub` example: its broker carries a publish burst to every subscriber whole
//! and in order with default settings, tells a subscriber that reads too slowly exactly
//! what it missed, its client subscribes again after the broker restarts, and its
//! command line works end to end.
//!
//! The broker runs in this process (the example's `examples/common/pubsub.rs`); its
//! peers are plain tokio connections, except in the command-line test, which runs the
//! example's binary.

mod common;

#[path = "../examples/common/pubsub.rs"]
mod pubsub;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::{output_within, stdout_of_success, ChildGuard};
use common::within_for;
use futures::{SinkExt, StreamExt};
use getty::prelude::*;
use getty::SessionConfig;
use pubsub::{to_line, Reply, Request, MAX_REPLY_LINE};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec};

const SECS10: Duration = Duration::from_secs(10);

/// Burst size, scaled by `GETTY_PUBSUB_MESSAGES` (default 50,000).
fn burst_messages() -> u64 {
    common::env_or("GETTY_PUBSUB_MESSAGES", 50_000)
}

type Lines = FramedRead<tokio::net::tcp::OwnedReadHalf, LinesCodec>;
type Requests = FramedWrite<tokio::net::tcp::OwnedWriteHalf, LinesCodec>;

/// A plain tokio connection speaking the example's protocol.
async fn connect(addr: std::net::SocketAddr) -> (Lines, Requests) {
    let stream = within_for(SECS10, "connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let (read, write) = stream.into_split();
    (
        FramedRead::new(read, LinesCodec::new_with_max_length(MAX_REPLY_LINE)),
        FramedWrite::new(write, LinesCodec::new()),
    )
}

/// The next reply line from the broker (10 s at most), parsed.
async fn next_reply(lines: &mut Lines) -> Reply {
    let line = within_for(SECS10, "a reply", lines.next())
        .await
        .expect("a line, not EOF")
        .expect("a readable line");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

/// A request line subscribing to `topic`.
fn sub(topic: &str) -> String {
    to_line(&Request::Sub {
        topic: topic.to_owned(),
    })
}

/// A request line publishing `data` on `topic`.
fn publication(topic: &str, data: impl Into<String>) -> String {
    to_line(&Request::Pub {
        topic: topic.to_owned(),
        data: data.into(),
    })
}

/// What one subscriber read of the burst.
#[derive(Debug, Default)]
struct Read {
    messages: u64,
    /// The first message that was not the next one in order, if any.
    out_of_order: Option<Reply>,
    missed_notices: Vec<Reply>,
    other: Vec<Reply>,
    ended_early: bool,
}

/// Reads the burst's messages until `expected` arrived (at most `limit`, and at most
/// twice as many lines); each must be the next in order by `seq` and `data`.
async fn read_burst(mut lines: Lines, expected: u64, limit: Duration) -> Read {
    let mut read = Read::default();
    let deadline = tokio::time::Instant::now() + limit;
    for _ in 0..expected.saturating_mul(2).max(16) {
        if read.messages == expected {
            break;
        }
        let line = match tokio::time::timeout_at(deadline, lines.next()).await {
            Ok(Some(Ok(line))) => line,
            _ => {
                read.ended_early = true;
                break;
            }
        };
        match serde_json::from_str::<Reply>(&line) {
            Ok(Reply::Message { seq, data, .. })
                if seq == read.messages + 1 && data == read.messages.to_string() =>
            {
                read.messages += 1
            }
            Ok(message @ Reply::Message { .. }) => {
                read.out_of_order.get_or_insert(message);
                read.messages += 1;
            }
            Ok(missed @ Reply::Missed { .. }) => read.missed_notices.push(missed),
            Ok(other) => read.other.push(other),
            Err(err) => panic!("unreadable line {line:?}: {err}"),
        }
    }
    read
}

/// The burst's clients: 3 subscribers, then a publisher that writes `n` publishes as
/// fast as its socket takes them. Returns what each subscriber read, and the time from
/// the first publish to the last delivery.
async fn burst_clients(addr: std::net::SocketAddr, n: u64) -> (Vec<Read>, f64) {
    let mut readers = Vec::new();
    let mut keep_open = Vec::new();
    for _ in 0..3 {
        let (mut lines, mut requests) = connect(addr).await;
        requests.send(sub("burst")).await.expect("subscribe");
        let ack = next_reply(&mut lines).await;
        let subscribed = Reply::Ok {
            ok: "sub".into(),
            topic: "burst".into(),
        };
        assert_eq!(ack, subscribed);
        readers.push(tokio::spawn(read_burst(lines, n, Duration::from_secs(300))));
        keep_open.push(requests);
    }
    let started = Instant::now();
    let (_publisher_lines, mut publisher) = connect(addr).await;
    let publishing = tokio::spawn(async move {
        for i in 0..n {
            publisher.feed(publication("burst", i.to_string())).await?;
        }
        SinkExt::<String>::flush(&mut publisher).await?;
        Ok::<_, tokio_util::codec::LinesCodecError>(publisher)
    });
    let mut reads = Vec::new();
    for reader in readers {
        reads.push(reader.await.expect("reader"));
    }
    let secs = started.elapsed().as_secs_f64();
    within_for(SECS10, "the publisher", publishing)
        .await
        .expect("publisher task")
        .expect("every publish written");
    (reads, secs)
}

/// Three subscribers and one publisher that writes a burst of 50,000 publishes to one
/// topic as fast as its socket takes them, with the broker's default settings: every
/// subscriber gets every message, in order (`seq` 1..=50,000, `data` 0..50,000), and no
/// notice of missed messages. The clients run on a thread of their own, as the
/// broker's peers would.
#[actix_rt::test]
async fn a_publish_burst_reaches_every_subscriber_whole_and_in_order() {
    let n = burst_messages();
    let server = pubsub::serve("127.0.0.1:0", SessionConfig::default())
        .await
        .expect("broker");
    let addr = server.inet_addr().unwrap();
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("client runtime");
        let _ = done.send(runtime.block_on(burst_clients(addr, n)));
    });
    let (reads, secs) = within_for(Duration::from_secs(330), "the burst", result)
        .await
        .expect("the clients finish (a panic there is above)");
    let delivered: Vec<u64> = reads.iter().map(|r| r.messages).collect();
    eprintln!(
        "pubsub burst: {n} publishes, delivered {delivered:?} in {secs:.2} s ({:.0} deliveries/s)",
        delivered.iter().sum::<u64>() as f64 / secs
    );
    for (i, read) in reads.iter().enumerate() {
        assert!(read.missed_notices.is_empty(), "subscriber {i}: {read:?}");
        assert_eq!(read.out_of_order, None, "subscriber {i}");
        assert!(read.other.is_empty(), "subscriber {i}: {read:?}");
        assert!(!read.ended_early, "subscriber {i}: {read:?}");
        assert_eq!(read.messages, n, "subscriber {i}");
    }
    server.stop().await;
}

/// Messages of the slow-subscriber test, and their size: 16 MB in all, far more than
/// the slow subscriber's socket buffers and its session's 1 MiB write queue hold.
const FLOOD_MESSAGES: u64 = 2_000;
const FLOOD_DATA: usize = 8 * 1024;

/// A subscriber that does not read while 16 MB are published: its session refuses lines
/// once its write queue is full, the publisher is not held back (no refusal stalls the
/// registry), and when the subscriber
/// reads again every gap in `seq` is announced by a `{"missed":N}` of exactly its size,
/// so the messages it got plus those it was told it missed are all that were published.
#[actix_rt::test]
async fn a_subscriber_that_reads_too_slowly_is_told_exactly_what_it_missed() {
    // Without a write timeout the broker waits for the subscriber however long the
    // flood takes on a busy machine; by default it would close a subscriber that read
    // nothing for 5 s (the policy's last resort, not what is tested here).
    let no_write_timeout = SessionConfig::default().write_timeout(None);
    let server = pubsub::serve("127.0.0.1:0", no_write_timeout)
        .await
        .expect("broker");
    let addr = server.inet_addr().unwrap();
    // A small receive buffer, so the broker's side fills sooner.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(64 * 1024).expect("SO_RCVBUF");
    let stream = within_for(SECS10, "connect", socket.connect(addr))
        .await
        .expect("connect");
    let (read, write) = stream.into_split();
    let mut lines = FramedRead::new(read, LinesCodec::new_with_max_length(MAX_REPLY_LINE));
    let mut requests = FramedWrite::new(write, LinesCodec::new());
    requests.send(sub("flood")).await.expect("subscribe");
    assert!(matches!(next_reply(&mut lines).await, Reply::Ok { .. }));

    let (_publisher_lines, mut publisher) = connect(addr).await;
    let data = "x".repeat(FLOOD_DATA);
    within_for(
        Duration::from_secs(60),
        "publishing, not held back",
        async {
            for _ in 0..FLOOD_MESSAGES {
                publisher.feed(publication("flood", data.clone())).await?;
            }
            SinkExt::<String>::flush(&mut publisher).await
        },
    )
    .await
    .expect("every publish written");

    // Reads again: what was queued, then the notices and the rest.
    let (mut received, mut missed, mut pending) = (0u64, 0u64, 0u64);
    let mut last_seq = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for _ in 0..2 * FLOOD_MESSAGES {
        if last_seq + pending == FLOOD_MESSAGES {
            break;
        }
        let line = tokio::time::timeout_at(deadline, lines.next())
            .await
            .expect("the rest within 60 s (a pending notice within a second)")
            .expect("a line, not EOF")
            .expect("a readable line");
        match serde_json::from_str::<Reply>(&line).expect("a reply") {
            Reply::Message { seq, data: got, .. } => {
                assert_eq!(seq, last_seq + pending + 1, "every gap announced exactly");
                assert_eq!(got.len(), FLOOD_DATA);
                (last_seq, pending, received) = (seq, 0, received + 1);
            }
            Reply::Missed { missed: n } => {
                assert_eq!(pending, 0, "one notice per gap");
                (pending, missed) = (n, missed + n);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    eprintln!("slow subscriber: received {received}, told it missed {missed}");
    assert_eq!(received + missed, FLOOD_MESSAGES);
    assert!(missed > 0, "the subscriber's write queue never filled");
    drop((publisher, requests));
    server.stop().await;
}

/// The next reply the client handed over, within 10 s.
async fn next(replies: &mut tokio::sync::mpsc::UnboundedReceiver<Reply>) -> Reply {
    within_for(SECS10, "a reply to the client", replies.recv())
        .await
        .expect("the client runs")
}

/// Starts the broker on `addr`, retrying for a few seconds while the port is not yet
/// free again.
async fn restart_broker(addr: std::net::SocketAddr) -> getty::ServerHandle {
    let mut last = None;
    for _ in 0..50 {
        match pubsub::serve(&addr.to_string(), SessionConfig::default()).await {
            Ok(server) => return server,
            Err(err) => last = Some(err),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot listen on {addr} again: {last:?}");
}

/// Publishes one message on a connection of its own.
async fn publish_once(addr: std::net::SocketAddr, topic: &str, data: &str) {
    let (_lines, mut requests) = connect(addr).await;
    within_for(SECS10, "publish", requests.send(publication(topic, data)))
        .await
        .expect("publish");
}

/// The example's client subscribes in its listener's `on_open`: when its broker stops
/// and a new one (which knows nothing of it) starts on the same port, the client dials
/// again, subscribes again, and gets what is published there.
#[actix_rt::test]
async fn the_client_subscribes_again_after_its_broker_restarts() {
    let server = pubsub::serve("127.0.0.1:0", SessionConfig::default())
        .await
        .expect("broker");
    let addr = server.inet_addr().unwrap();
    let (tx, mut replies) = tokio::sync::mpsc::unbounded_channel::<Reply>();
    let client = pubsub::start_client(
        getty::TcpClient::new(addr.to_string())
            .reconnect_interval(Duration::from_millis(50))
            .max_reconnect_interval(Duration::from_millis(500)),
        vec!["news".to_owned()],
        Arc::new(move |reply| {
            let _ = tx.send(reply);
        }),
    );
    let subscribed = Reply::Ok {
        ok: "sub".into(),
        topic: "news".into(),
    };
    assert_eq!(next(&mut replies).await, subscribed);
    publish_once(addr, "news", "before").await;
    let message = |data: &str| Reply::Message {
        topic: "news".into(),
        seq: 1,
        data: data.into(),
    };
    assert_eq!(next(&mut replies).await, message("before"));

    server.stop().await;
    let server = restart_broker(addr).await;
    assert_eq!(
        next(&mut replies).await,
        subscribed,
        "subscribed again on its own"
    );
    publish_once(addr, "news", "after").await;
    // A new broker: the topic's seq starts again at 1.
    assert_eq!(next(&mut replies).await, message("after"));
    assert_eq!(client.stats().open_sessions, 1);

    within_for(SECS10, "client stop", client.stop()).await;
    within_for(SECS10, "server stop", server.stop()).await;
}

/// The `pubsub` example binary (built by this test's cargo if need be).
fn pubsub_binary() -> PathBuf {
    common::process::example("pubsub")
}

/// Starts the `pubsub` example with `args`, its stdout and stderr piped.
fn start_pubsub(args: &[&str]) -> ChildGuard {
    let child = Command::new(pubsub_binary())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pubsub");
    ChildGuard::new(child)
}

/// Lines of the child's stdout or stderr, as they come: a thread reads them, so a test
/// can wait for one with a time limit.
fn lines(child: &mut ChildGuard, stderr: bool) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let reader: Box<dyn std::io::Read + Send> = if stderr {
        Box::new(child.child().stderr.take().expect("stderr"))
    } else {
        Box::new(child.child().stdout.take().expect("stdout"))
    };
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits at most `limit` for a line that satisfies `pred`, and returns it.
fn wait_line(
    lines: &std::sync::mpsc::Receiver<String>,
    limit: Duration,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + limit;
    for _ in 0..100_000 {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if pred(&line) => return line,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("no such line within {limit:?}");
}

/// Every line until the child's stream ends (at most `limit`).
fn all_lines(lines: &std::sync::mpsc::Receiver<String>, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut all = Vec::new();
    for _ in 0..1_000_000 {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => all.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return all,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
        }
    }
    panic!(
        "the stream did not end within {limit:?}; read {} lines",
        all.len()
    );
}

/// The command line: the broker prints its address and exits 0 on SIGTERM; a
/// subscriber with `--count` prints every message and its summary; a publisher prints
/// its own.
#[test]
fn the_command_line_modes_work_end_to_end() {
    let mut server = start_pubsub(&["--addr", "127.0.0.1:0"]);
    let out = lines(&mut server, false);
    let listening = wait_line(&out, Duration::from_secs(60), |l| {
        l.starts_with("listening on ")
    });
    let addr = listening["listening on ".len()..].to_owned();

    let mut subscriber = start_pubsub(&["--addr", &addr, "--subscribe", "cli", "--count", "2000"]);
    let sub_out = lines(&mut subscriber, false);
    let sub_err = lines(&mut subscriber, true);
    wait_line(&sub_err, Duration::from_secs(60), |l| l == "sub cli: ok");

    let publisher = output_within(
        Command::new(pubsub_binary())
            .args(["--addr", &addr, "--publish", "cli", "--count", "2000"])
            .args(["--data", "hello"]),
        Duration::from_secs(60),
    );
    let summary = stdout_of_success(&publisher, "the publisher");
    assert!(summary.starts_with("published=2000 "), "{summary}");

    let status = subscriber.wait_exit(Duration::from_secs(60));
    let printed = all_lines(&sub_out, SECS10);
    assert!(status.success(), "{status}: {printed:?}");
    assert_eq!(printed.len(), 2001, "every message, then the summary");
    assert_eq!(printed[0], "cli #1 hello 0");
    assert_eq!(printed[1999], "cli #2000 hello 1999");
    assert_eq!(printed[2000], "received=2000 missed=0 sessions=1");

    server.signal("-TERM");
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "broker exit status {status}");
}
