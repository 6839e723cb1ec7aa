//! Small helpers shared by the examples: command-line options and the echo listener.

#![allow(dead_code)] // each example uses a part

pub mod broker;
pub mod framing;
pub mod metrics;
pub mod pinger;
pub mod pubsub;
pub mod quic;
pub mod room;

use std::collections::HashMap;
use std::process::exit;
use std::str::FromStr;

use bytes::{Bytes, BytesMut};
use getty::{EventListener, Session, SessionContext};

/// `--name value` options and `--name` flags, checked against the names an example knows.
pub struct Options {
    values: HashMap<String, String>,
    usage: &'static str,
}

impl Options {
    /// Parses the process arguments; exits with status 2 and `usage` on anything unknown.
    pub fn parse(known: &[&str], usage: &'static str) -> Self {
        Self::parse_with_flags(known, &[], usage)
    }

    /// Like [`parse`](Self::parse), with `flags`: options that take no value (see
    /// [`flag`](Self::flag)).
    pub fn parse_with_flags(known: &[&str], flags: &[&str], usage: &'static str) -> Self {
        let mut values = HashMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "-h" || arg == "--help" {
                println!("{usage}");
                exit(0);
            }
            if let Some(flag) = arg.strip_prefix("--").filter(|n| flags.contains(n)) {
                values.insert(flag.to_owned(), "true".to_owned());
                continue;
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

    /// Whether the flag `--name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
}

/// Echoes every frame back on the session it came from.
pub struct Echo;

impl EventListener for Echo {
    type Codec = framing::Framing;
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

/// The broker `--broker URL` names, with the room `--room NAME` (default `chat`), if
/// given. Checked before anything starts: a bad URL is the user's to fix, so it exits 2
/// with `usage`.
pub fn broker_from_options(opts: &Options, usage: &str) -> Option<broker::Broker> {
    let url = opts.opt::<String>("broker")?;
    let room: String = opts.get("room", "chat".to_owned());
    match broker::Broker::open(&url, &room) {
        Ok(broker) => Some(broker),
        Err(err) => {
            eprintln!("{err}\n{usage}");
            exit(2);
        }
    }
}

/// permessage-deflate from `--deflate` (each message on its own) or `--deflate-context`
/// (with context takeover), for `--transport ws` only; exits 2 otherwise.
pub fn deflate_from_options(
    opts: &Options,
    transport: &str,
    usage: &str,
) -> Option<getty::transport::ws::PerMessageDeflate> {
    let (alone, context) = (opts.flag("deflate"), opts.flag("deflate-context"));
    if !alone && !context {
        return None;
    }
    if transport != "ws" || (alone && context) {
        eprintln!("--deflate or --deflate-context, with --transport ws\n{usage}");
        exit(2);
    }
    Some(getty::transport::ws::PerMessageDeflate::new().context_takeover(context))
}

/// Echoes every WebSocket message back as it came, text as text and binary as binary
/// (a message-mode session: `WsServer::start_messages`).
pub struct MessageEcho;

impl EventListener for MessageEcho {
    type Codec = getty::transport::ws::WsMessages;
    type Out = getty::transport::ws::WsMessage;

    fn on_message(
        &mut self,
        session: &mut SessionContext<'_, Self>,
        msg: getty::transport::ws::WsMessage,
    ) {
        if let Err(err) = session.write(msg) {
            // As `Echo`: an echo the peer cannot be sent ends its session, said aloud.
            tracing::warn!(%err, "cannot echo; closing the session");
            session.close();
        }
    }

    fn on_error(&mut self, session: &Session<Self::Out>, error: &getty::Error) {
        tracing::debug!(session = %session.id(), %error, "session error");
    }
}

/// How a server program was told to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// SIGINT or SIGTERM: stop.
    Stop,
    /// SIGUSR2: hand over to the next process (drain).
    HandOver,
}

/// Resolves on SIGINT or SIGTERM (stop), or SIGUSR2 (hand over).
pub async fn wait_for_signal() -> std::io::Result<Ending> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    Ok(tokio::select! {
        _ = term.recv() => Ending::Stop,
        _ = int.recv() => Ending::Stop,
        _ = usr2.recv() => Ending::HandOver,
    })
}

/// Prints `listening on <address>` (flushed: tests and scripts wait for it) and serves
/// until a signal, as [`stop_on_signal`] says.
pub async fn serve_until_signal(
    server: &getty::ServerHandle,
    drain_deadline: std::time::Duration,
) -> std::io::Result<()> {
    announce(server, &[])?;
    stop_on_signal(server, drain_deadline).await
}

/// Prints `listening on <address>`, then each line of `more`, and flushes: tests and
/// scripts wait for the first line.
pub fn announce(server: &getty::ServerHandle, more: &[String]) -> std::io::Result<()> {
    use std::io::Write;
    println!("listening on {}", server.local_addr());
    for line in more {
        println!("{line}");
    }
    std::io::stdout().flush()
}

/// Serves until a signal. SIGINT or SIGTERM stop the server gracefully: every session
/// flushes and closes. SIGUSR2 hands over to a next process bound to the same address
/// with `reuse_port` (a rolling restart): the server drains, each session closes once it
/// has flushed what it owes, its peer re-dials (to the next process), and what is still
/// open after `drain_deadline` is stopped.
pub async fn stop_on_signal(
    server: &getty::ServerHandle,
    drain_deadline: std::time::Duration,
) -> std::io::Result<()> {
    match wait_for_signal().await? {
        Ending::Stop => server.stop().await,
        Ending::HandOver => {
            eprintln!("handing over: draining for at most {drain_deadline:?}");
            server.drain(drain_deadline).await;
        }
    }
    Ok(())
}

/// The drain deadline of a hand-over (SIGUSR2) unless a program says otherwise: 10 s.
pub const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);
