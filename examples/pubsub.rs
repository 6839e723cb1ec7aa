//! A publish/subscribe broker and its client over TCP, with newline-delimited JSON.
//!
//! ```text
//! cargo run --release --example pubsub -- --addr 127.0.0.1:7400                    # broker
//! cargo run --release --example pubsub -- --addr 127.0.0.1:7400 --subscribe news   # prints news
//! cargo run --release --example pubsub -- --addr 127.0.0.1:7400 --publish news --count 1000
//! ```
//!
//! ## Protocol
//! One JSON object per line, each way (at most 16 KiB a line; a longer one ends the
//! session). A client sends:
//! - `{"op":"sub","topic":"t"}`: deliver the messages of topic `t` to me. Answered with
//!   `{"ok":"sub","topic":"t"}`. At most 100 topics per session.
//! - `{"op":"unsub","topic":"t"}`: stop. Answered with `{"ok":"unsub","topic":"t"}`.
//! - `{"op":"pub","topic":"t","data":"..."}`: send `data` to every subscriber of `t`
//!   (nobody, if it has none). Not answered.
//!
//! The broker sends each subscriber `{"topic":"t","seq":N,"data":"..."}` per message:
//! `seq` counts the topic's messages from 1, since the topic got its first subscriber
//! (a topic with none is forgotten). A line that is not a request is answered with
//! `{"error":"..."}` and the session goes on.
//!
//! Deliveries never wait for a slow subscriber: when a subscriber's session has no room
//! for a line (it reads too slowly), the line is not sent, and the subscriber gets
//! `{"missed":N}` just before the next line that does get through (or within a second,
//! if no line comes): N lines were not sent to it, and `seq` shows which messages they
//! were. Nothing is skipped silently. (The registry and this policy:
//! `examples/common/pubsub.rs`.)
//!
//! ## Modes
//! - `--addr HOST:PORT` alone: the broker. Prints `listening on <address>`; exits 0 on
//!   SIGINT or SIGTERM.
//! - `--subscribe T1,T2,...`: a getty client that subscribes whenever its session opens,
//!   so after a reconnect (the broker restarted) the subscriptions are back. Prints each
//!   message as `TOPIC #SEQ DATA` and each notice as `missed N`; on SIGINT/SIGTERM, or
//!   after `--count N` messages, prints `received=<n> missed=<n> sessions=<n>` and exits,
//!   0 unless it was told it missed some (or its stdout closed).
//! - `--publish T --count N [--data TEXT]`: publishes N messages (`TEXT 0` ... `TEXT N-1`,
//!   default text `message`) as fast as the broker takes them, checking every write, and
//!   prints `published=<n> secs=<s> per_s=<rate>`; exits 0 only if all N were written.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pubsub::{self, Reply, Request};
use common::Options;
use getty::prelude::*;
use getty::{ClientEvent, SessionConfig, TcpClient};

const USAGE: &str = "usage: pubsub --addr HOST:PORT \
[--subscribe TOPIC[,TOPIC...] [--count N] | --publish TOPIC --count N [--data TEXT]]";
/// Publishes written per `write_all`: one wait for many lines.
const BATCH: u64 = 256;
/// How long a client waits for its first session.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

#[actix::main]
async fn main() {
    let opts = Options::parse(&["addr", "subscribe", "publish", "count", "data"], USAGE);
    let addr: String = opts.get("addr", "127.0.0.1:7400".to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let (subscribe_to, publish_to) = (opts.opt::<String>("subscribe"), opts.opt("publish"));
    let code = match (subscribe_to, publish_to, opts.opt("count")) {
        (None, None, None) => serve(&addr).await,
        (Some(topics), None, count) => {
            let topics = topics.split(',').map(str::to_owned).collect();
            subscribe(&addr, topics, count).await
        }
        (None, Some(topic), Some(count)) => {
            let data = opts.get("data", "message".to_owned());
            publish(&addr, topic, count, &data).await
        }
        _ => {
            eprintln!("a broker, a subscriber or a publisher (with --count)\n{USAGE}");
            2
        }
    };
    std::process::exit(code);
}

async fn serve(addr: &str) -> i32 {
    let served = async {
        let server = pubsub::serve(addr, SessionConfig::default()).await?;
        common::serve_until_signal(&server, common::DRAIN_DEADLINE).await?;
        Ok::<_, getty::Error>(())
    };
    match served.await {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("pubsub: {err}");
            1
        }
    }
}

/// What a subscriber counted, across its sessions.
#[derive(Default)]
struct Tally {
    received: AtomicU64,
    missed: AtomicU64,
    sessions: AtomicU64,
    /// Received `--count` messages, or stdout is gone.
    done: tokio::sync::Notify,
    stdout_failed: std::sync::atomic::AtomicBool,
}

/// Writes one line to stdout; false if stdout is gone (a closed pipe).
fn print_line(line: std::fmt::Arguments<'_>) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .is_ok()
}

async fn subscribe(addr: &str, topics: Vec<String>, count: Option<u64>) -> i32 {
    let tally = Arc::new(Tally::default());
    let on_reply = {
        let tally = tally.clone();
        move |reply: Reply| {
            let printed = match reply {
                Reply::Message { topic, seq, data } => {
                    let n = tally.received.fetch_add(1, Relaxed) + 1;
                    if Some(n) == count {
                        tally.done.notify_one();
                    }
                    print_line(format_args!("{topic} #{seq} {data}"))
                }
                Reply::Missed { missed } => {
                    tally.missed.fetch_add(missed, Relaxed);
                    print_line(format_args!("missed {missed}"))
                }
                Reply::Ok { ok, topic } => {
                    eprintln!("{ok} {topic}: ok");
                    true
                }
                Reply::Error { error } => {
                    eprintln!("error from the broker: {error}");
                    true
                }
            };
            if !printed && !tally.stdout_failed.swap(true, Relaxed) {
                tally.done.notify_one();
            }
        }
    };
    let client = {
        let tally = tally.clone();
        let client = TcpClient::new(addr)
            .max_reconnect_interval(Duration::from_secs(2))
            .on_event(move |event| match event {
                ClientEvent::SessionUp { peer, .. } => {
                    tally.sessions.fetch_add(1, Relaxed);
                    eprintln!("connected to {peer}; subscribing");
                }
                ClientEvent::SessionDown { .. } => eprintln!("connection closed"),
                ClientEvent::DialFailed { error } => eprintln!("dial failed: {error}"),
                _ => {}
            });
        pubsub::start_client(client, topics, Arc::new(on_reply))
    };
    let stopped_by = tokio::select! {
        signal = common::wait_for_signal() => signal.err(),
        () = tally.done.notified() => None,
    };
    client.stop().await;
    if let Some(err) = stopped_by {
        eprintln!("pubsub: cannot wait for signals: {err}");
        return 1;
    }
    if tally.stdout_failed.load(Relaxed) {
        eprintln!("pubsub: stdout is closed");
        return 1;
    }
    let (received, missed) = (tally.received.load(Relaxed), tally.missed.load(Relaxed));
    let sessions = tally.sessions.load(Relaxed);
    println!("received={received} missed={missed} sessions={sessions}");
    if missed == 0 {
        0
    } else {
        1
    }
}

async fn publish(addr: &str, topic: String, count: u64, data: &str) -> i32 {
    let (up_tx, mut up_rx) = tokio::sync::mpsc::unbounded_channel();
    let client = TcpClient::new(addr).on_event(move |event| match event {
        ClientEvent::SessionUp { session, .. } => {
            let _ = up_tx.send(session);
        }
        ClientEvent::DialFailed { error } => eprintln!("dial failed: {error}"),
        _ => {}
    });
    // A publisher subscribes to nothing; the broker answers it only with errors.
    let on_reply = |reply: Reply| eprintln!("unexpected reply from the broker: {reply:?}");
    let client = pubsub::start_client(client, Vec::new(), Arc::new(on_reply));
    let session = match tokio::time::timeout(CONNECT_WAIT, up_rx.recv()).await {
        Ok(Some(session)) => session.downcast::<String>(),
        _ => None,
    };
    let Some(session) = session else {
        eprintln!("pubsub: no session to {addr} within {CONNECT_WAIT:?}");
        client.stop().await;
        return 1;
    };

    // `write_all` waits while the session has no room (the broker slows us down when its
    // subscribers are busy), and resolves once the lines reached the OS, or with the
    // error that stopped them: nothing is lost without our knowing.
    let started = Instant::now();
    let mut published = 0;
    while published < count {
        let batch = (published..count.min(published + BATCH))
            .map(|i| {
                let (topic, data) = (topic.clone(), format!("{data} {i}"));
                pubsub::to_line(&Request::Pub { topic, data })
            })
            .collect::<Vec<_>>();
        let n = batch.len() as u64;
        if let Err(err) = session.write_all(batch).await {
            eprintln!("pubsub: publishing stopped after {published} of {count}: {err}");
            break;
        }
        published += n;
    }
    let secs = started.elapsed().as_secs_f64();
    client.stop().await;
    println!(
        "published={published} secs={secs:.3} per_s={:.0}",
        published as f64 / secs.max(1e-9)
    );
    if published == count {
        0
    } else {
        1
    }
}
