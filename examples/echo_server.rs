//! Echo server: sends every length-delimited frame back unchanged.
//!
//! ```text
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7000 \
//!     [--max-frame BYTES] [--read-timeout SECS] [--threads N] [--transport tcp|ws] \
//!     [--path /ws]
//! ```
//! With `--transport ws` it is a WebSocket server upgrading requests to `--path`
//! (default `/ws`); each binary message carries length-delimited frames as over TCP, and
//! each echo goes back as one binary message.
//! Prints `listening on <address>` once it accepts; on SIGINT or SIGTERM it stops
//! gracefully (every session flushes its echoes and closes) and exits 0.
//! `--max-frame` defaults to 8 MiB, the yardstick protocol's limit; `--threads` to one
//! arbiter per core. Set `RUST_LOG=debug` to see sessions come and go.

mod common;

use std::time::Duration;

use common::{Echo, Options};
use getty::ws::WsServer;
use getty::{LengthDelimited, SessionConfig, TcpServer};

const USAGE: &str =
    "usage: echo_server --addr HOST:PORT [--max-frame BYTES] [--read-timeout SECS] \
[--threads N] [--transport tcp|ws] [--path /ws]";

fn main() {
    let opts = Options::parse(
        &[
            "addr",
            "max-frame",
            "read-timeout",
            "threads",
            "transport",
            "path",
        ],
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
    let path: String = opts.get("path", "/ws".to_owned());
    if transport != "tcp" && transport != "ws" {
        eprintln!("--transport must be tcp or ws\n{USAGE}");
        std::process::exit(2);
    }

    let system = actix::System::new();
    let result = system.block_on(async move {
        let hook = |setup: &mut getty::SessionSetup| {
            let max = setup.config().max_frame_length;
            Ok((Echo, LengthDelimited::with_max_frame_length(max)))
        };
        if transport == "ws" {
            let mut server = WsServer::new(addr).path(path).session_config(config);
            if let Some(n) = threads {
                server = server.workers(n);
            }
            let server = server.start(hook).await?;
            common::serve_ws_until_signal(server.clone()).await?;
            eprintln!("stopped: {:?}", server.stats());
            return Ok(());
        }
        let mut server = TcpServer::new(addr).session_config(config);
        if let Some(n) = threads {
            server = server.workers(n);
        }
        let server = server.start(hook).await?;
        common::serve_until_signal(server.clone()).await?;
        eprintln!("stopped: {:?}", server.stats());
        Ok::<_, getty::Error>(())
    });
    if let Err(err) = result {
        eprintln!("echo_server: {err}");
        std::process::exit(1);
    }
}
