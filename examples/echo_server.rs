//! Echo server: sends every length-delimited frame back unchanged.
//!
//! ```text
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7000 \
//!     [--max-frame BYTES] [--read-timeout SECS] [--threads N] \
//!     [--tls-cert CERT.pem --tls-key KEY.pem]
//! ```
//! Prints `listening on <address>` once it accepts; on SIGINT or SIGTERM it stops
//! gracefully (every session flushes its echoes and closes) and exits 0.
//! `--max-frame` defaults to 8 MiB, the yardstick protocol's limit; `--threads` to one
//! arbiter per core. With `--tls-cert` and `--tls-key` (a PEM certificate chain and its
//! private key; `cargo run --example tls_cert` makes a test set) it speaks TLS, and
//! prints each failed handshake to stderr. Set `RUST_LOG=debug` to see sessions come
//! and go.

mod common;

use std::time::Duration;

use common::{Echo, Options};
use getty::{LengthDelimited, SessionConfig, TcpServer, TlsServerConfig};

const USAGE: &str =
    "usage: echo_server --addr HOST:PORT [--max-frame BYTES] [--read-timeout SECS] \
[--threads N] [--tls-cert CERT.pem --tls-key KEY.pem]";

fn main() {
    let opts = Options::parse(
        &[
            "addr",
            "max-frame",
            "read-timeout",
            "threads",
            "tls-cert",
            "tls-key",
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
    let tls = match (
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
    };

    let system = actix::System::new();
    let result = system.block_on(async move {
        let mut server = TcpServer::new(addr).session_config(config);
        if let Some(n) = threads {
            server = server.workers(n);
        }
        if let Some(tls) = tls {
            server = server
                .tls(tls)
                .on_handshake_error(|err| eprintln!("handshake failed: {err}"));
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
