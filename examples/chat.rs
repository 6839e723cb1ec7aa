//! A TCP chat room whose room is one actor, fed by getty's actor adapter.
//!
//! ```text
//! cargo run --release --example chat -- --addr 127.0.0.1:7200
//! nc 127.0.0.1 7200      # in two or more terminals; type lines
//! ```
//! Each line a member sends goes to every other member, prefixed with the sender's id.
//! Sessions are plain text lines (tokio-util's `LinesCodec`, 1 KiB at most). Prints
//! `listening on <address>`; exits 0 on SIGINT or SIGTERM.
//!
//! With `--broker`, the room spans every process started with the same broker and
//! `--room` name (default `chat`), on this host or others: each process joins its room
//! to the others' through Redis pub/sub (`common/broker.rs` says what it promises).
//!
//! ```text
//! redis-server --port 6379 --save '' --appendonly no &
//! cargo run --release --example chat -- --addr 127.0.0.1:7201 --broker redis://127.0.0.1:6379 &
//! cargo run --release --example chat -- --addr 127.0.0.1:7202 --broker redis://127.0.0.1:6379 &
//! nc 127.0.0.1 7201      # and nc 127.0.0.1 7202: one room
//! ```
//! `--reuse-port true` lets several processes listen on one address (SO_REUSEPORT),
//! the kernel spreading connections over them; they share a room only through a broker.

mod common;

use actix::prelude::*;
use common::room::Room;
use common::Options;
use getty::actor::ActorListener;
use getty::prelude::*;
use getty::TcpServer;
use tokio_util::codec::LinesCodec;

const USAGE: &str =
    "usage: chat --addr HOST:PORT [--reuse-port true] [--broker redis://HOST:PORT [--room NAME]]";
const MAX_LINE: usize = 1024;

fn main() {
    let opts = Options::parse(&["addr", "reuse-port", "broker", "room"], USAGE);
    let addr: String = opts.get("addr", "127.0.0.1:7200".to_owned());
    let reuse_port: bool = opts.get("reuse-port", false);
    let broker = common::broker_from_options(&opts, USAGE);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let result = actix::System::new().block_on(async move {
        let room = match broker {
            Some(broker) => Room::start_with_broker(broker),
            None => Room::default().start(),
        };
        let server = TcpServer::new(addr)
            .workers(1)
            .reuse_port(reuse_port)
            .start(move |_| {
                Ok((
                    ActorListener::new(room.clone().recipient()),
                    LinesCodec::new_with_max_length(MAX_LINE),
                ))
            })
            .await?;
        common::serve_until_signal(&server, common::DRAIN_DEADLINE).await?;
        Ok::<_, getty::Error>(())
    });
    if let Err(err) = result {
        eprintln!("chat: {err}");
        std::process::exit(1);
    }
}
