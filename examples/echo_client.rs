//! Echo client on getty's `TcpClient` (or `UnixClient`, `UdpClient`, `WsClient`,
//! `QuicClient`): keeps N sessions to an echo server, sends frames,
//! checks every echo, and re-dials sessions it loses.
//!
//! ```text
//! cargo run --release --example echo_client -- [--transport tcp|unix|udp|ws|quic] \
//!     [--addr 127.0.0.1:7000 | --path /tmp/echo.sock] \
//!     [--conns N] [--frames M] [--size S] [--depth D] [--timeout SECS] \
//!     [--duration SECS] [--reconnect-interval MS] \
//!     [--tls-ca CA.pem [--tls-server-name NAME]]
//! ```
//! With `--tls-ca` the TCP client speaks TLS and trusts the certificates in that PEM
//! file; the name checked against the server's certificate is the address's host unless
//! `--tls-server-name` gives another. Failed dials (TLS ones included) go to stderr.
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
//!
//! `--compress deflate|deflate-fast|deflate-best|deflate-huffman|snappy` speaks the compressed framing of
//! `echo_server --compress` (each frame compressed on its own).
//!
//! `--transport ws` dials `ws://HOST:PORT/PATH` (`--path`, default `/ws`; `wss://` with
//! `--tls-ca`) and sends each frame as one binary WebSocket message, against
//! `echo_server --transport ws`. With `--messages` it runs in message mode instead and
//! sends each frame as one text message of `--size` bytes (at least 32), with no framing
//! inside, against `echo_server --transport ws --messages`. `--deflate` offers
//! permessage-deflate (RFC 7692), each message compressed on its own;
//! `--deflate-context` with context takeover.
//!
//! `--transport quic` runs the same over QUIC (`QuicClient`: a connection per session,
//! frames on the stream it opens), against `echo_server --transport quic`. It trusts
//! the certificates of `--tls-ca`, or without it the self-signed certificate that
//! `echo_server --transport quic` writes to `$TMPDIR/getty-echo-quic-cert.pem` when it
//! is given none (both on one machine).
//!
//! `--transport udp` runs the same over connected UDP sockets (`UdpClient`), one frame
//! per datagram, against `echo_server --transport udp`. UDP may lose datagrams: a lost
//! one leaves its session waiting, and the run then fails rather than hide it.

mod common;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::framing::Framing;
use common::pinger::{Pinger, Tally, Texts};
use common::Options;
use getty::prelude::*;
use getty::transport::ws::{TextMessages, WsClient};
use getty::{
    ClientEvent, QuicClient, SessionConfig, TcpClient, TlsClientConfig, UdpClient, UnixClient,
};

const USAGE: &str =
    "usage: echo_client [--transport tcp|unix|udp|ws|quic] [--addr HOST:PORT] [--path FILE|/URL-PATH] [--conns N] [--frames M] [--size S] [--depth D] \
[--timeout SECS] [--duration SECS] [--reconnect-interval MS] [--compress deflate|deflate-fast|deflate-best|deflate-huffman|snappy] [--messages] [--deflate | --deflate-context] [--tls-ca CA.pem [--tls-server-name NAME]]";

#[actix::main]
async fn main() {
    let opts = Options::parse_with_flags(
        &[
            "transport",
            "addr",
            "path",
            "conns",
            "frames",
            "size",
            "depth",
            "timeout",
            "duration",
            "reconnect-interval",
            "compress",
            "tls-ca",
            "tls-server-name",
        ],
        &["messages", "deflate", "deflate-context"],
        USAGE,
    );
    let addr: String = opts.get("addr", "127.0.0.1:7000".to_owned());
    let transport: String = opts.get("transport", "tcp".to_owned());
    let path: Option<std::path::PathBuf> = opts.opt("path");
    let conns: usize = opts.get("conns", 1);
    let frames: u64 = opts.get("frames", 1000);
    let size: usize = opts.get("size", 64);
    let depth: usize = opts.get::<usize>("depth", 16).max(1);
    let timeout = Duration::from_secs_f64(opts.get("timeout", 30.0));
    let duration = opts.opt::<f64>("duration").map(Duration::from_secs_f64);
    let compress = common::framing::from_options(&opts, USAGE);
    let interval = Duration::from_millis(opts.get("reconnect-interval", 300));
    let messages = opts.flag("messages");
    let deflate = common::deflate_from_options(&opts, &transport, USAGE);
    if messages && (transport != "ws" || compress.is_some()) {
        eprintln!("--messages is for --transport ws, without --compress\n{USAGE}");
        std::process::exit(2);
    }
    // A text message holds the session and frame numbers, 32 hex digits.
    let size = if messages { size.max(32) } else { size };
    let tls = opts.opt::<String>("tls-ca").map(|ca| {
        let tls = TlsClientConfig::builder().root_certificate_file(ca);
        let tls = tls.and_then(|b| b.build());
        let name = opts.opt::<String>("tls-server-name");
        tls.and_then(|tls| match name {
            Some(name) => tls.server_name(name),
            None => Ok(tls),
        })
        .unwrap_or_else(|err| {
            eprintln!("echo_client: {err}");
            std::process::exit(2);
        })
    });

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
        let on_event = move |event| match event {
            ClientEvent::SessionUp { id, .. } => {
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
            ClientEvent::DialFailed { error } => eprintln!("dial failed: {error}"),
            _ => {}
        };
        let texts = {
            let tally = tally.clone();
            move |_: &mut getty::SessionSetup| {
                Ok((
                    Pinger::<Texts>::with_wire(tally.clone(), size, depth),
                    TextMessages,
                ))
            }
        };
        let new_session = move |setup: &mut getty::SessionSetup| {
            let max = setup.config().max_frame_length;
            let pinger = Pinger::new(tally.clone(), size, depth);
            Ok((pinger, Framing::new(compress, max)))
        };
        // The same options on every transport's client builder.
        macro_rules! start {
            ($builder:expr) => {
                start!($builder, start, new_session)
            };
            ($builder:expr, $start:ident, $new_session:expr) => {
                $builder
                    .connections(conns)
                    .reconnect_interval(interval)
                    .session_config(config)
                    .on_event(on_event)
                    .$start($new_session)
            };
        }
        match transport.as_str() {
            "tcp" => match tls {
                Some(tls) => start!(TcpClient::new(addr).tls(tls)),
                None => start!(TcpClient::new(addr)),
            },
            "ws" => {
                let url_path = path.map_or("/ws".to_owned(), |p| p.display().to_string());
                let url_path = url_path.trim_start_matches('/');
                let with_deflate = |client: WsClient| match deflate {
                    Some(deflate) => client.per_message_deflate(deflate),
                    None => client,
                };
                match tls {
                    Some(tls) => {
                        let url = format!("wss://{addr}/{url_path}");
                        match WsClient::new(url).tls(tls).map(with_deflate) {
                            Ok(client) if messages => start!(client, start_messages, texts),
                            Ok(client) => start!(client),
                            Err(err) => {
                                // A server name for wss goes in the URL instead.
                                eprintln!("echo_client: {err}");
                                std::process::exit(2);
                            }
                        }
                    }
                    None => {
                        let client = with_deflate(WsClient::new(format!("ws://{addr}/{url_path}")));
                        if messages {
                            start!(client, start_messages, texts)
                        } else {
                            start!(client)
                        }
                    }
                }
            }
            "quic" => {
                let tls = match tls {
                    Some(tls) => tls,
                    None => common::quic::trust_self_signed().unwrap_or_else(|err| {
                        eprintln!("echo_client: {err}");
                        std::process::exit(2);
                    }),
                };
                start!(QuicClient::new(addr, tls)).unwrap_or_else(|err| {
                    eprintln!("echo_client: {err}");
                    std::process::exit(2);
                })
            }
            "unix" | "udp" if tls.is_some() => {
                eprintln!("TLS is for --transport tcp or ws\n{USAGE}");
                std::process::exit(2);
            }
            "unix" => {
                let Some(path) = path else {
                    eprintln!("--transport unix needs --path\n{USAGE}");
                    std::process::exit(2);
                };
                start!(UnixClient::new(path))
            }
            "udp" => start!(UdpClient::new(addr)),
            other => {
                eprintln!("unknown transport {other:?}\n{USAGE}");
                std::process::exit(2);
            }
        }
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
