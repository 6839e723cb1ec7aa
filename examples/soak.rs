//! Soak run (opt-in, not part of `cargo test`): echo load with random disconnects for a
//! set time, reporting the books and memory as it goes.
//!
//! ```text
//! cargo run --release --example soak -- [--secs 60] [--conns 32] [--kill-every-ms 200]
//! ```
//! An in-process echo server and a getty `TcpClient` keeping `--conns` sessions that
//! each keep 16 frames in flight; every `--kill-every-ms` the server closes one session
//! at random, and the client re-dials it. Once a second it prints frames sent, received
//! and reported failed, live sessions, and resident memory. At the end the books must
//! balance (sent = received + reported failed, no wrong echo) and every session must be
//! gone; the exit status is 0 only then.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::pinger::{Pinger, Tally};
use common::Options;
use getty::prelude::*;
use getty::{EventListener, LengthDelimited, Session, SessionContext, TcpClient, TcpServer};

const USAGE: &str = "usage: soak [--secs N] [--conns N] [--kill-every-ms MS]";

/// Echoes, and lists its session where the soak driver can pick it to kill.
struct Echo(Arc<Mutex<Vec<Session<Bytes>>>>);

impl EventListener for Echo {
    type Codec = LengthDelimited;
    type Out = Bytes;
    fn on_open(&mut self, s: &mut SessionContext<'_, Self>) -> getty::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(s.session().clone());
        Ok(())
    }
    fn on_message(&mut self, s: &mut SessionContext<'_, Self>, frame: BytesMut) {
        let _ = s.write(frame.freeze());
    }
    fn on_close(&mut self, s: &Session<Bytes>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|o| o.id() != s.id());
    }
}

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

#[actix::main]
async fn main() -> getty::Result<()> {
    let opts = Options::parse(&["secs", "conns", "kill-every-ms"], USAGE);
    let secs: u64 = opts.get("secs", 60);
    let conns: usize = opts.get("conns", 32);
    let kill_every = Duration::from_millis(opts.get("kill-every-ms", 200));

    let open = Arc::new(Mutex::new(Vec::new()));
    let server = {
        let open = open.clone();
        TcpServer::new("127.0.0.1:0")
            .start(move |_| Ok((Echo(open.clone()), LengthDelimited::new())))
            .await?
    };
    let tally = Arc::new(Tally::default());
    tally.budget.store(u64::MAX, Relaxed);
    let client = {
        let tally = tally.clone();
        TcpClient::new(server.local_addr().to_string())
            .connections(conns)
            .reconnect_interval(Duration::from_millis(20))
            .max_reconnect_interval(Duration::from_millis(200))
            .start(move |_| {
                let framing = common::framing::Framing::new(None, 4096);
                Ok((Pinger::new(tally.clone(), 64, 16), framing))
            })
    };

    let started = Instant::now();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut kills = 0u64;
    let mut next_report = Duration::from_secs(1);
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(kill_every).await;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let victim = {
            let open = open.lock().unwrap_or_else(|p| p.into_inner());
            (!open.is_empty()).then(|| open[(rng % open.len() as u64) as usize].clone())
        };
        if let Some(victim) = victim {
            victim.close();
            kills += 1;
        }
        if started.elapsed() >= next_report {
            next_report += Duration::from_secs(1);
            println!(
                "t={:>4}s sent={} received={} failed={} live={} kills={kills} rss={:.1}MiB",
                started.elapsed().as_secs(),
                tally.sent.load(Relaxed),
                tally.received.load(Relaxed),
                tally.lost.load(Relaxed) + tally.refused.load(Relaxed),
                client.stats().open_sessions,
                rss_mib()
            );
        }
    }
    tally.done.store(true, Relaxed);
    client.stop().await;
    server.stop().await;

    let (sent, received) = (tally.sent.load(Relaxed), tally.received.load(Relaxed));
    let (lost, refused, wrong) = (
        tally.lost.load(Relaxed),
        tally.refused.load(Relaxed),
        tally.wrong.load(Relaxed),
    );
    let live = client.stats().live_sessions + server.stats().live_sessions;
    println!("final: sent={sent} received={received} failed={} wrong={wrong} kills={kills} live={live} rss={:.1}MiB", lost + refused, rss_mib());
    let balanced = sent == received + lost && wrong == 0 && live == 0;
    println!(
        "{}",
        if balanced {
            "books balance"
        } else {
            "BOOKS DO NOT BALANCE"
        }
    );
    std::process::exit(if balanced { 0 } else { 1 });
}
