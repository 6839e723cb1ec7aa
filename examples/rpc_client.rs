//! Request/response client: many calls in flight over one getty client session, each
//! matched to its own reply by id.
//!
//! ```text
//! cargo run --release --example rpc_client -- --addr 127.0.0.1:7100 \
//!     [--calls N] [--in-flight K] [--slow-every M] [--timeout MS]
//! ```
//! Makes N calls (default 10,000), K at a time (default 16); every M-th call asks for
//! 50 ms of work (default 0: none). Prints `calls=<n> ok=<n> timeouts=<n> errors=<n>
//! calls_per_s=<x>` and exits 0 only if every call got its own reply.

mod common;
mod rpc;

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::Options;
use rpc::{CallError, RpcClient};

const USAGE: &str = "usage: rpc_client --addr HOST:PORT [--calls N] [--in-flight K] [--slow-every M] [--timeout MS]";
const SLOW_MS: u64 = 50;

#[derive(Default)]
struct Tally {
    next: AtomicU64,
    ok: AtomicU64,
    timeouts: AtomicU64,
    errors: AtomicU64,
}

#[actix::main]
async fn main() {
    let opts = Options::parse(
        &["addr", "calls", "in-flight", "slow-every", "timeout"],
        USAGE,
    );
    let addr: String = opts.get("addr", "127.0.0.1:7100".to_owned());
    let calls: u64 = opts.get("calls", 10_000);
    let in_flight: usize = opts.get::<usize>("in-flight", 16).max(1);
    let slow_every: u64 = opts.get("slow-every", 0);
    let timeout = Duration::from_millis(opts.get("timeout", 5_000));

    let client = Rc::new(RpcClient::start(&addr));
    let connect_deadline = Instant::now() + Duration::from_secs(10);
    while !client.connected() && Instant::now() < connect_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let tally = Rc::new(Tally::default());
    let started = Instant::now();
    let callers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (client, tally) = (client.clone(), tally.clone());
            actix_rt::spawn(async move {
                loop {
                    let n = tally.next.fetch_add(1, Relaxed);
                    if n >= calls {
                        break;
                    }
                    let work_ms = if slow_every > 0 && n % slow_every == 0 {
                        SLOW_MS
                    } else {
                        0
                    };
                    let body = format!("call {n}");
                    match client.call(body.clone(), work_ms, timeout).await {
                        Ok(response) if response.result.as_deref() == Ok(body.as_str()) => {
                            tally.ok.fetch_add(1, Relaxed)
                        }
                        Ok(_) => tally.errors.fetch_add(1, Relaxed), // someone else's reply
                        Err(CallError::Timeout) => tally.timeouts.fetch_add(1, Relaxed),
                        Err(_) => tally.errors.fetch_add(1, Relaxed),
                    };
                }
            })
        })
        .collect();
    for caller in callers {
        let _ = caller.await;
    }
    let secs = started.elapsed().as_secs_f64();
    client.stop().await;

    let (ok, timeouts, errors) = (
        tally.ok.load(Relaxed),
        tally.timeouts.load(Relaxed),
        tally.errors.load(Relaxed),
    );
    println!(
        "calls={calls} ok={ok} timeouts={timeouts} errors={errors} calls_per_s={:.0}",
        ok as f64 / secs
    );
    std::process::exit(if ok == calls { 0 } else { 1 });
}
