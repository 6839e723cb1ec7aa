//! A WebSocket chat room: every line a member sends goes to every other member. The
//! room is one actor fed by getty's actor adapter; `/` serves a small page to try it.
//!
//! ```text
//! cargo run --release --example ws_chat -- --addr 127.0.0.1:7300
//! # open http://127.0.0.1:7300/ in two or more browser tabs
//! ```
//! The WebSocket is at `/ws`, in message mode: each text message a member sends is one
//! chat line (1 KiB at most; a longer one ends that member's session with close code
//! 1009), and the room sends each line to every other member as one text message,
//! prefixed with the sender's id, with no framing inside: a browser's `onmessage` gets
//! it as a string. Prints `listening on <address>`; exits 0 on SIGINT or SIGTERM.
//!
//! `--broker redis://HOST:PORT` joins the room to the rooms of the same `--room` name in
//! other processes through Redis pub/sub, `chat` processes included (the room is the
//! same actor); `--reuse-port true` lets several processes share one address. See the
//! `chat` example and the README's "Scaling out".

mod common;

use actix::prelude::*;
use actix_web::{web, HttpResponse};
use common::room::Room;
use common::Options;
use getty::actor::ActorListener;
use getty::prelude::*;
use getty::transport::ws::{TextMessages, WsServer};
use getty::SessionConfig;

const USAGE: &str =
    "usage: ws_chat --addr HOST:PORT [--reuse-port true] [--broker redis://HOST:PORT [--room NAME]]";
const MAX_LINE: usize = 1024;

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>getty chat</title></head>
<body style="font-family: sans-serif">
<pre id="log" style="height: 20em; overflow-y: scroll; border: 1px solid #ccc"></pre>
<form id="form"><input id="line" size="60" autofocus> <button>send</button></form>
<script>
const log = document.getElementById('log');
const show = (text) => { log.textContent += text + '\n'; log.scrollTop = log.scrollHeight; };
const ws = new WebSocket(`ws://${location.host}/ws`);
ws.onmessage = (ev) => show(ev.data);
ws.onclose = (ev) => show(`* disconnected (${ev.code})`);
document.getElementById('form').onsubmit = (ev) => {
  ev.preventDefault();
  const line = document.getElementById('line');
  if (line.value) { ws.send(line.value); show(`[me] ${line.value}`); line.value = ''; }
};
</script></body></html>"#;

fn main() {
    let opts = Options::parse(&["addr", "reuse-port", "broker", "room"], USAGE);
    let addr: String = opts.get("addr", "127.0.0.1:7300".to_owned());
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
        let server = WsServer::new(addr)
            .path("/ws")
            .workers(1)
            .session_config(SessionConfig::default().max_frame_length(MAX_LINE))
            .reuse_port(reuse_port)
            .configure(|cfg| {
                cfg.route(
                    "/",
                    web::get().to(|| async {
                        HttpResponse::Ok()
                            .content_type("text/html; charset=utf-8")
                            .body(PAGE)
                    }),
                );
            })
            .start_messages(move |_| {
                Ok((ActorListener::new(room.clone().recipient()), TextMessages))
            })
            .await?;
        common::serve_until_signal(&server, common::DRAIN_DEADLINE).await?;
        Ok::<_, getty::Error>(())
    });
    if let Err(err) = result {
        eprintln!("ws_chat: {err}");
        std::process::exit(1);
    }
}
