//! Echo server: sends every length-delimited frame back unchanged.
//!
//! ```text
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7000 \
//!     [--transport tcp|udp] [--max-frame BYTES] [--read-timeout SECS] [--threads N]
//! ```
//! Prints `listening on <address>` once it accepts; on SIGINT or SIGTERM it stops
//! gracefully (every session flushes its echoes and closes) and exits 0.
//! `--max-frame` defaults to 8 MiB, the yardstick protocol's limit; `--threads` to one
//! arbiter per core. Set `RUST_LOG=debug` to see sessions come and go.
//!
//! `--transport udp` serves the same framing over UDP, one frame per datagram, with a
//! session per peer address (`UdpServer::start_per_peer`); `--read-timeout` then expires
//! idle peers, `--max-frame` is capped to what fits in a datagram, and `--threads` is
//! ignored (a UDP endpoint runs on one arbiter).

mod common;

use std::time::Duration;

use common::{Echo, Options};
use getty::udp::DEFAULT_MAX_DATAGRAM_SIZE;
use getty::{LengthDelimited, SessionConfig, TcpServer, UdpServer};

const USAGE: &str = "usage: echo_server --addr HOST:PORT [--transport tcp|udp] \
[--max-frame BYTES] [--read-timeout SECS] [--threads N]";

fn main() {
    let opts = Options::parse(
        &["addr", "transport", "max-frame", "read-timeout", "threads"],
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
    let threads = opts.opt::<usize>("threads");
    let transport: String = opts.get("transport", "tcp".to_owned());

    let system = actix::System::new();
    if transport == "udp" {
        // A frame and its 4-byte header must fit in one datagram.
        let header = 4;
        config.max_frame_length = config
            .max_frame_length
            .min(DEFAULT_MAX_DATAGRAM_SIZE - header);
        let result = system.block_on(async move {
            // Room for bursts from many peers: a datagram that finds the socket's
            // receive buffer full is dropped by the kernel (the OS caps the size asked).
            let mut server = UdpServer::new(addr).recv_buffer_size(4 * 1024 * 1024);
            if let Some(idle) = config.read_timeout {
                server = server.peer_idle_timeout(idle);
            }
            let server = server
                .session_config(config)
                .start_per_peer(|setup| {
                    let max = setup.config().max_frame_length;
                    Ok((Echo, LengthDelimited::with_max_frame_length(max)))
                })
                .await?;
            common::serve_udp_until_signal(server.clone()).await?;
            eprintln!("stopped: {:?} {:?}", server.stats(), server.udp_stats());
            Ok::<_, getty::Error>(())
        });
        if let Err(err) = result {
            eprintln!("echo_server: {err}");
            std::process::exit(1);
        }
        return;
    }
    if transport != "tcp" {
        eprintln!("unknown transport {transport:?}\n{USAGE}");
        std::process::exit(2);
    }
    let result = system.block_on(async move {
        let mut server = TcpServer::new(addr).session_config(config);
        if let Some(n) = threads {
            server = server.workers(n);
        }
        let server = server
            .start(|setup| {
                let max = setup.config().max_frame_length;
                Ok((Echo, LengthDelimited::with_max_frame_length(max)))
            })
            .await?;
        common::serve_until_signal(server.clone()).await?;
        eprintln!("stopped: {:?}", server.stats());
        Ok::<_, getty::Error>(())
    });
    if let Err(err) = result {
        eprintln!("echo_server: {err}");
        std::process::exit(1);
    }
}
