//! Echo server: sends every length-delimited frame back unchanged.
//!
//! ```text
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7000 \
//!     [--max-frame BYTES] [--read-timeout SECS] [--threads N] [--memory-budget MIB] \
//!     [--write-high-water KIB] [--reuse-port true] [--drain-secs SECS] \
//!     [--tls-cert CERT.pem --tls-key KEY.pem] [--metrics-addr HOST:PORT]
//! cargo run --release --example echo_server -- --transport unix --path /tmp/echo.sock
//! cargo run --release --example echo_server -- --transport udp --addr 127.0.0.1:7000
//! cargo run --release --example echo_server -- --transport ws --addr 127.0.0.1:7000 \
//!     [--path /ws] [--messages] [--deflate | --deflate-context] \
//!     [--tls-cert CERT.pem --tls-key KEY.pem]
//! cargo run --release --example echo_server -- --transport quic --addr 127.0.0.1:7443 \
//!     [--tls-cert CERT.pem --tls-key KEY.pem]
//! ```
//! `--transport quic` serves QUIC (a session per connection, over the stream the client
//! opens; ALPN `getty`) with the certificate of `--tls-cert`/`--tls-key`, or without
//! them a self-signed one for `localhost` and 127.0.0.1 made at start (with rcgen), whose
//! certificate it writes to `$TMPDIR/getty-echo-quic-cert.pem`, the file `echo_client
//! --transport quic` trusts when it is given no `--tls-ca`. `--read-timeout` is also the
//! connections' QUIC idle timeout.
//!
//! `--transport` is `tcp` (the default), `unix` (listening at `--path`; a stale socket
//! file there is removed, and the file is removed again on stop), or `udp` (one frame
//! per datagram, a session per peer address; `--read-timeout` then expires idle peers,
//! `--max-frame` is capped to what fits in a datagram, and `--threads` is ignored: a
//! UDP endpoint runs on one arbiter), or `ws` (a WebSocket server upgrading requests to
//! the URL path `--path`, default `/ws`; each binary message carries length-delimited
//! frames as over TCP, each echo goes back as one binary message, and with `--tls-cert`
//! it serves `wss://`). With `--messages` the WebSocket server runs in message mode
//! instead: it echoes each message as it came, text as text and binary as binary, with
//! no framing inside (`--compress` does not apply). `--deflate` accepts permessage-deflate
//! (RFC 7692) from clients that offer it, each message compressed on its own;
//! `--deflate-context` with context takeover.
//! Prints `listening on <address>` once it accepts; on SIGINT or SIGTERM it stops
//! gracefully (every session flushes its echoes and closes) and exits 0.
//!
//! `--metrics-addr HOST:PORT` (any transport) serves the server's metrics (see
//! `getty::metrics`: sessions, closes by cause, frames, bytes, refusals, drops) in the
//! Prometheus text format at `GET http://HOST:PORT/metrics`, and prints
//! `metrics on http://HOST:PORT/metrics` on the line after `listening on` (port 0 picks
//! a free port). The `endpoint` label is the transport: `tcp`, `tls`, `unix`, `udp`, `ws`.
//!
//! `--compress deflate|deflate-fast|deflate-best|deflate-huffman|snappy` compresses each frame on its
//! own (`getty::codec::Compressed`: a method byte and a length before each frame; frames
//! under 256 bytes go stored); its clients need the same option.
//!
//! Rolling restart: start each process with `--reuse-port true` (SO_REUSEPORT; TCP, ws
//! and udp), start the new one on the same `--addr`, then send the old one SIGUSR2. It
//! hands over: it stops accepting at once (new connections go to the new process), every
//! session closes once it has flushed the echoes it owes, clients re-dial (to the new
//! process), and whatever is still open after `--drain-secs` (default 10) is stopped;
//! then it exits 0.
//! `--max-frame` defaults to 8 MiB, the yardstick protocol's limit; `--threads` to one
//! arbiter per core. `--memory-budget` bounds the bytes all sessions together hold
//! buffered, in MiB (default 256; see `memory_budget` on the server builders);
//! `--write-high-water KIB` sets each session's write-queue high-water mark (the low one
//! follows at a quarter of it; defaults: `SessionConfig`'s); `--stats-every SECS` prints the server's `EndpointStats` to stderr at that period.
//! With `--tls-cert` and `--tls-key` (a PEM certificate chain and its
//! private key; `cargo run --example tls_cert` makes a test set) the TCP server speaks
//! TLS and prints each failed handshake to stderr. Set `RUST_LOG=debug` to see sessions
//! come and go.

mod common;

use std::time::Duration;

use common::framing::Framing;
use common::{Echo, MessageEcho, Options};
use getty::defaults::DEFAULT_MAX_DATAGRAM_SIZE;
use getty::prelude::*;
use getty::transport::ws::{WsMessages, WsServer};
use getty::QuicServer;
use getty::{ServerHandle, SessionConfig, TcpServer, TlsServerConfig, UdpServer, UnixServer};

const USAGE: &str =
    "usage: echo_server [--transport tcp|unix|udp|ws|quic] [--addr HOST:PORT] [--path FILE|/URL-PATH] \
[--max-frame BYTES] [--read-timeout SECS] [--threads N] [--memory-budget MIB] [--write-high-water KIB] \
[--stats-every SECS] [--reuse-port true] [--drain-secs SECS] [--compress deflate|deflate-fast|deflate-best|deflate-huffman|snappy] [--messages] [--deflate | --deflate-context] [--tls-cert CERT.pem --tls-key KEY.pem] \
[--metrics-addr HOST:PORT]";

fn main() {
    let opts = Options::parse_with_flags(
        &[
            "transport",
            "addr",
            "path",
            "max-frame",
            "read-timeout",
            "threads",
            "memory-budget",
            "write-high-water",
            "stats-every",
            "reuse-port",
            "drain-secs",
            "compress",
            "tls-cert",
            "tls-key",
            "metrics-addr",
        ],
        &["messages", "deflate", "deflate-context"],
        USAGE,
    );
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();

    let addr: String = opts.get("addr", "127.0.0.1:7000".to_owned());
    let mut config = SessionConfig::default();
    config.max_frame_length = opts.get("max-frame", 8 * 1024 * 1024);
    config.read_timeout = opts.opt::<f64>("read-timeout").map(Duration::from_secs_f64);
    if let Some(kib) = opts.opt::<usize>("write-high-water") {
        let high = kib.saturating_mul(1024);
        config = config.write_water_marks(high, high / 4);
    }
    let threads = opts.opt::<usize>("threads").unwrap_or_else(num_cpus);
    let budget_mib: usize = opts.get(
        "memory-budget",
        getty::defaults::DEFAULT_MEMORY_BUDGET >> 20,
    );
    let budget = budget_mib.saturating_mul(1024 * 1024);
    let stats_every = opts.opt::<f64>("stats-every").map(Duration::from_secs_f64);
    let reuse_port: bool = opts.get("reuse-port", false);
    let compress = common::framing::from_options(&opts, USAGE);
    let drain = opts
        .opt::<f64>("drain-secs")
        .map_or(common::DRAIN_DEADLINE, Duration::from_secs_f64);
    let transport: String = opts.get("transport", "tcp".to_owned());
    let messages = opts.flag("messages");
    let deflate = common::deflate_from_options(&opts, &transport, USAGE);
    if messages && (transport != "ws" || compress.is_some()) {
        eprintln!("--messages is for --transport ws, without --compress\n{USAGE}");
        std::process::exit(2);
    }
    let path: Option<std::path::PathBuf> = opts.opt("path");
    let tls = tls_config(&opts);
    let metrics_addr: Option<String> = opts.opt("metrics-addr");
    let hook = move |setup: &mut getty::SessionSetup| {
        let max = setup.config().max_frame_length;
        Ok((Echo, Framing::new(compress, max)))
    };

    let system = actix::System::new();
    let result = system.block_on(async move {
        // The recorder first: each endpoint registers its metrics as it starts.
        let metrics = match metrics_addr {
            Some(addr) => Some(common::metrics::serve(&addr)?),
            None => None,
        };
        let server: ServerHandle = match transport.as_str() {
            "tcp" => {
                let mut server =
                    with_shared(TcpServer::new(addr), config, budget, reuse_port).workers(threads);
                if let Some(tls) = tls {
                    server = server
                        .tls(tls)
                        .on_establish_error(|err| eprintln!("handshake failed: {err}"));
                }
                server.start(hook).await?
            }
            "ws" => {
                let url_path = path.map_or("/ws".to_owned(), |p| p.display().to_string());
                let mut server = with_shared(WsServer::new(addr), config, budget, reuse_port)
                    .path(url_path)
                    .workers(threads);
                if let Some(tls) = tls {
                    server = server.tls(tls);
                }
                if let Some(deflate) = deflate {
                    server = server.per_message_deflate(deflate);
                }
                if messages {
                    server
                        .start_messages(|_| Ok((MessageEcho, WsMessages)))
                        .await?
                } else {
                    server.start(hook).await?
                }
            }
            "quic" => {
                let tls = match tls {
                    Some(tls) => tls,
                    None => common::quic::self_signed()?,
                };
                with_shared(QuicServer::new(addr, tls), config, budget, reuse_port)
                    .workers(threads)
                    .on_establish_error(|err| eprintln!("handshake failed: {err}"))
                    .start(hook)
                    .await?
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
                with_shared(UnixServer::new(&path), config, budget, false)
                    .remove_stale_socket(true)
                    .workers(threads)
                    .start(hook)
                    .await?
            }
            "udp" => {
                // A frame and its 4-byte header must fit in one datagram.
                let header = 4;
                let mut config = config;
                config.max_frame_length = config
                    .max_frame_length
                    .min(DEFAULT_MAX_DATAGRAM_SIZE - header);
                // One socket, read on this arbiter: no `workers` here (a UDP server
                // would refuse it). Room for bursts from many peers: a datagram that
                // finds the socket's receive buffer full is dropped by the kernel (the
                // OS caps the size).
                let idle = config.read_timeout;
                let mut server = with_shared(UdpServer::new(addr), config, budget, reuse_port)
                    .recv_buffer_size(4 * 1024 * 1024);
                if let Some(idle) = idle {
                    server = server.peer_idle_timeout(idle);
                }
                server.start_per_peer(hook).await?
            }
            other => {
                eprintln!("unknown transport {other:?}\n{USAGE}");
                std::process::exit(2);
            }
        };
        let watched = server.clone();
        print_stats_every(stats_every, move || watched.stats());
        let more: Vec<String> = metrics
            .map(|addr| format!("metrics on http://{addr}/metrics"))
            .into_iter()
            .collect();
        common::announce(&server, &more)?;
        common::stop_on_signal(&server, drain).await?;
        eprintln!("stopped: {:?} {:?}", server.stats(), server.udp_stats());
        Ok::<_, getty::Error>(())
    });
    if let Err(err) = result {
        eprintln!("echo_server: {err}");
        std::process::exit(1);
    }
}

/// Sets the options this program gives every transport's server: one generic function,
/// since every server builder has them through `ServerBuilder`.
fn with_shared<B: ServerBuilder>(
    builder: B,
    config: SessionConfig,
    budget: usize,
    reuse_port: bool,
) -> B {
    builder
        .session_config(config)
        .memory_budget(budget)
        .reuse_port(reuse_port)
}

/// The TLS config from `--tls-cert` and `--tls-key`, if given; exits 2 on bad options.
fn tls_config(opts: &Options) -> Option<TlsServerConfig> {
    match (
        opts.opt::<String>("tls-cert"),
        opts.opt::<String>("tls-key"),
    ) {
        (Some(cert), Some(key)) => {
            match TlsServerConfig::from_pem_files(cert, key).and_then(|b| b.build()) {
                Ok(tls) => Some(tls),
                Err(err) => {
                    eprintln!("echo_server: {err}");
                    std::process::exit(2);
                }
            }
        }
        (None, None) => None,
        _ => {
            eprintln!("--tls-cert and --tls-key go together\n{USAGE}");
            std::process::exit(2);
        }
    }
}

/// Prints `stats: <EndpointStats>` to stderr every `period`, if one is given.
fn print_stats_every(period: Option<Duration>, stats: impl Fn() -> getty::EndpointStats + 'static) {
    let Some(period) = period else { return };
    actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            eprintln!("stats: {:?}", stats());
        }
    });
}

/// One arbiter per core, the servers' default.
fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
