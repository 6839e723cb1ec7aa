//! Small helpers shared by the examples: command-line options and the echo listener.

#![allow(dead_code)] // each example uses a part

pub mod pinger;
pub mod pubsub;
pub mod room;

use std::collections::HashMap;
use std::process::exit;
use std::str::FromStr;

use bytes::{Bytes, BytesMut};
use getty::{EventListener, LengthDelimited, Session, SessionContext};

/// `--name value` options, checked against the names an example knows.
pub struct Options {
    values: HashMap<String, String>,
    usage: &'static str,
}

impl Options {
    /// Parses the process arguments; exits with status 2 and `usage` on anything unknown.
    pub fn parse(known: &[&str], usage: &'static str) -> Self {
        let mut values = HashMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "-h" || arg == "--help" {
                println!("{usage}");
                exit(0);
            }
            let Some(name) = arg.strip_prefix("--").filter(|n| known.contains(n)) else {
                eprintln!("unknown argument {arg:?}\n{usage}");
                exit(2);
            };
            let Some(value) = args.next() else {
                eprintln!("--{name} needs a value\n{usage}");
                exit(2);
            };
            values.insert(name.to_owned(), value);
        }
        Options { values, usage }
    }

    /// The value of `--name`, if given; exits with status 2 if it does not parse.
    pub fn opt<T: FromStr>(&self, name: &str) -> Option<T> {
        self.values.get(name).map(|raw| {
            raw.parse().unwrap_or_else(|_| {
                eprintln!("bad value {raw:?} for --{name}\n{}", self.usage);
                exit(2);
            })
        })
    }

    /// The value of `--name`, or `default`.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        self.opt(name).unwrap_or(default)
    }
}

/// Echoes every frame back on the session it came from.
pub struct Echo;

impl EventListener for Echo {
    type Codec = LengthDelimited;
    type Out = Bytes;

    fn on_message(&mut self, session: &mut SessionContext<'_, Self>, frame: BytesMut) {
        if let Err(err) = session.write(frame.freeze()) {
            // The peer sends faster than it reads (queue full): an echo server cannot
            // keep its promise to this peer, so it says so and ends the session.
            tracing::warn!(%err, "cannot echo; closing the session");
            session.close();
        }
    }

    fn on_error(&mut self, session: &Session<Bytes>, error: &getty::Error) {
        tracing::debug!(session = %session.id(), %error, "session error");
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Prints `listening on <address>` (flushed: tests and scripts wait for it), serves until
/// SIGINT or SIGTERM, then stops the server gracefully.
pub async fn serve_until_signal(
    listening: impl std::fmt::Display,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    use std::io::Write;
    println!("listening on {listening}");
    std::io::stdout().flush()?;
    wait_for_signal().await?;
    stop.await;
    Ok(())
}
