//! Echo client on getty's `TcpClient`: keeps N sessions to an echo server, sends frames,
//! checks every echo, and re-dials sessions it loses.
//!
//! ```text
//! cargo run --release --example echo_client -- --addr 127.0.0.1:7000 \
//!     [--conns N] [--frames M] [--size S] [--depth D] [--timeout SECS] \
//!     [--duration SECS] [--reconnect-interval MS]
//! ```
//! Without `--duration`: sends M frames per connection (N × M in all, default 1 × 1000,
//! 64 bytes, D = 16 in flight per session) and exits 0 only if every echo came back
//! intact within `--timeout` (default 30 s).
//!
//! With `--duration SECS`: keeps echoing for that long across reconnections (the server
//! may stop and restart meanwhile), then waits for the echoes in flight. Either way it
//! prints a line for each session that comes up or goes down, and a final line
//! `sent=<n> received=<n> reconnects=<n> errors=<n>`, where errors counts frames reported
//! failed (written but lost with their session, or refused by a write) plus echoes that
//! came back wrong. In duration mode it exits 0 when every frame it counted as sent was
//! echoed back or reported failed, and no echo was wrong. Exit 1 otherwise, 2 for bad
//! options.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::Options;
use getty::{
    ClientEvent, EventListener, LengthDelimited, Session, SessionConfig, SessionContext, TcpClient,
};

const USAGE: &str =
    "usage: echo_client --addr HOST:PORT [--conns N] [--frames M] [--size S] [--depth D] \
[--timeout SECS] [--duration SECS] [--reconnect-interval MS]";

/// Counters shared by every session of the run.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    received: AtomicU64,
    /// Written, then lost with their session: reported failed by `on_close`.
    lost: AtomicU64,
    /// Refused by a write (queue full, closing): never counted as sent.
    refused: AtomicU64,
    wrong: AtomicU64,
    /// Frames still allowed to be sent (frames mode); `u64::MAX` in duration mode.
    budget: AtomicU64,
    /// Set when the run is over: no new frames.
    done: AtomicBool,
}

impl Tally {
    fn take_budget(&self) -> bool {
        !self.done.load(Relaxed)
            && self
                .budget
                .fetch_update(Relaxed, Relaxed, |b| b.checked_sub(1))
                .is_ok()
    }
    fn settled(&self) -> bool {
        self.sent.load(Relaxed) == self.received.load(Relaxed) + self.lost.load(Relaxed)
    }
}

/// Frame `seq` of session `sid`: both numbers, then a pattern, `size` bytes in all.
fn frame(sid: u64, seq: u64, size: usize) -> Bytes {
    let mut buf = BytesMut::with_capacity(size.max(16));
    buf.put_u64(sid);
    buf.put_u64(seq);
    buf.extend((16..size).map(|i| (i as u64 ^ seq ^ sid) as u8));
    buf.truncate(size);
    buf.freeze()
}

/// Keeps `depth` frames in flight on its session and checks each echo against them.
struct Pinger {
    tally: Arc<Tally>,
    size: usize,
    depth: usize,
    next_seq: u64,
    in_flight: VecDeque<u64>,
}

impl Pinger {
    fn send_next(&mut self, session: &mut SessionContext<'_, Self>) {
        if !self.tally.take_budget() {
            return;
        }
        let sid = session.id().get();
        match session.write(frame(sid, self.next_seq, self.size)) {
            Ok(()) => {
                self.tally.sent.fetch_add(1, Relaxed);
                self.in_flight.push_back(self.next_seq);
                self.next_seq += 1;
            }
            Err(_) => {
                self.tally.refused.fetch_add(1, Relaxed);
            }
        }
    }
}

impl EventListener for Pinger {
    type Codec = LengthDelimited;
    type Out = Bytes;

    fn on_open(&mut self, session: &mut SessionContext<'_, Self>) -> getty::Result<()> {
        for _ in 0..self.depth {
            self.send_next(session);
        }
        Ok(())
    }

    fn on_message(&mut self, session: &mut SessionContext<'_, Self>, echo: BytesMut) {
        let sid = session.id().get();
        match self.in_flight.pop_front() {
            Some(seq) if echo == frame(sid, seq, self.size) => {
                self.tally.received.fetch_add(1, Relaxed);
                self.send_next(session);
            }
            Some(_) => {
                self.tally.wrong.fetch_add(1, Relaxed);
                self.tally.lost.fetch_add(1, Relaxed);
                session.close();
            }
            None => {
                self.tally.wrong.fetch_add(1, Relaxed); // an echo nobody asked for
                session.close();
            }
        }
    }

    fn on_close(&mut self, _: &Session<Bytes>) {
        // The library reports, the caller decides: these frames are lost, not resent.
        self.tally
            .lost
            .fetch_add(self.in_flight.len() as u64, Relaxed);
        self.in_flight.clear();
    }
}

#[actix::main]
async fn main() {
    let opts = Options::parse(
        &[
            "addr",
            "conns",
            "frames",
            "size",
            "depth",
            "timeout",
            "duration",
            "reconnect-interval",
        ],
        USAGE,
    );
    let addr: String = opts.get("addr", "127.0.0.1:7000".to_owned());
    let conns: usize = opts.get("conns", 1);
    let frames: u64 = opts.get("frames", 1000);
    let size: usize = opts.get("size", 64);
    let depth: usize = opts.get::<usize>("depth", 16).max(1);
    let timeout = Duration::from_secs_f64(opts.get("timeout", 30.0));
    let duration = opts.opt::<f64>("duration").map(Duration::from_secs_f64);
    let interval = Duration::from_millis(opts.get("reconnect-interval", 300));

    let tally = Arc::new(Tally::default());
    let budget = if duration.is_some() {
        u64::MAX
    } else {
        frames * conns as u64
    };
    tally.budget.store(budget, Relaxed);
    let ups = Arc::new(AtomicU64::new(0));
    let mut config = SessionConfig::default();
    config.max_frame_length = size.max(16);

    let started = Instant::now();
    let client = {
        let (tally, ups) = (tally.clone(), ups.clone());
        TcpClient::new(addr)
            .connections(conns)
            .reconnect_interval(interval)
            .session_config(config)
            .on_event(move |event| match event {
                ClientEvent::SessionUp { id } => {
                    ups.fetch_add(1, Relaxed);
                    println!(
                        "session up: {id} at {:.3} s",
                        started.elapsed().as_secs_f64()
                    );
                }
                ClientEvent::SessionDown { id } => {
                    println!(
                        "session down: {id} at {:.3} s",
                        started.elapsed().as_secs_f64()
                    );
                }
                ClientEvent::DialFailed { .. } => {}
                _ => {}
            })
            .start(move |setup| {
                let max = setup.config().max_frame_length;
                let pinger = Pinger {
                    tally: tally.clone(),
                    size,
                    depth,
                    next_seq: 0,
                    in_flight: VecDeque::new(),
                };
                Ok((pinger, LengthDelimited::with_max_frame_length(max)))
            })
    };

    // Run: for the duration, or until every budgeted frame is settled (or the timeout).
    let deadline = started + duration.unwrap_or(timeout);
    while Instant::now() < deadline {
        let budget_spent = tally.budget.load(Relaxed) == 0;
        if duration.is_none() && budget_spent && tally.settled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Stop sending, give the echoes in flight a moment, then stop: on_close reports the
    // frames of any session that could not finish.
    tally.done.store(true, Relaxed);
    let drain = Instant::now() + Duration::from_secs(5);
    while !tally.settled() && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.stop().await;

    let secs = started.elapsed().as_secs_f64();
    let (sent, received) = (tally.sent.load(Relaxed), tally.received.load(Relaxed));
    let (lost, refused, wrong) = (
        tally.lost.load(Relaxed),
        tally.refused.load(Relaxed),
        tally.wrong.load(Relaxed),
    );
    let reconnects = ups.load(Relaxed).saturating_sub(conns as u64);
    let errors = lost + refused + wrong;
    println!("{received} echoes matched on {conns} connections ({size} B frames) in {secs:.3} s, {:.0} frames/s", received as f64 / secs);
    println!("sent={sent} received={received} reconnects={reconnects} errors={errors}");
    let accounted = sent == received + lost && wrong == 0;
    let ok = match duration {
        Some(_) => accounted,
        None => accounted && errors == 0 && received == frames * conns as u64,
    };
    if !ok {
        eprintln!(
            "echo_client: lost={lost} refused={refused} wrong={wrong}; not every frame was echoed"
        );
    }
    std::process::exit(if ok { 0 } else { 1 });
}
