//! WebSocket endpoints whose sessions are probes: shared by `tests/ws.rs` and
//! `tests/ws_peers.rs`.

use std::sync::Arc;

use getty::prelude::*;
use getty::transport::ws::{WsClient, WsServer};
use getty::{ClientHandle, Error, ServerHandle, SessionConfig};

use super::{Behaviour, Event, Log, Probe, SECS5};

/// The WebSocket path the test servers serve.
pub const PATH: &str = "/ws";

/// Starts `server` on [`PATH`] with one worker, its sessions probes recording into a new
/// log.
pub async fn start_server(
    server: WsServer,
    behaviour: Behaviour,
    config: SessionConfig,
) -> (ServerHandle, Arc<Log>, Arc<Behaviour>) {
    let log = Arc::new(Log::default());
    let behaviour = Arc::new(behaviour);
    let handle = server
        .path(PATH)
        .workers(1)
        .session_config(config)
        .start(Probe::hook(log.clone(), behaviour.clone()))
        .await
        .expect("server starts");
    (handle, log, behaviour)
}

/// A server on a free loopback port whose probes echo every frame.
pub async fn echo_server(config: SessionConfig) -> (ServerHandle, Arc<Log>) {
    let (server, log, _) =
        start_server(WsServer::new("127.0.0.1:0"), Behaviour::echo(), config).await;
    (server, log)
}

/// The `ws://` URL of a test server.
pub fn url(server: &ServerHandle) -> String {
    format!("ws://{}{PATH}", server.inet_addr().unwrap())
}

/// Starts `client`, its sessions probes recording into a new log.
pub fn start_client(client: WsClient, behaviour: Behaviour) -> (ClientHandle, Arc<Log>) {
    let (log, hook) = super::probe_client_hook(behaviour);
    (client.start(hook), log)
}

/// A WebSocket upgrade request, written by hand for peers that are not a WebSocket
/// library: GET `path` on `host` with a fixed key, asking for protocol `version` (13 is
/// the one servers accept; another tests a refusal).
pub fn upgrade_request(path: &str, host: &str, version: u32) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n\r\n"
    )
}

/// `payload` as one length-delimited frame: a 4-byte big-endian length, then the bytes.
pub fn length_prefixed(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// The errors `log` recorded, in order.
pub fn errors_of(log: &Log) -> Vec<Error> {
    log.events()
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::Error(k) => Some(k),
            _ => None,
        })
        .collect()
}

/// Waits (5 s at most) until `n` sessions of `log` have closed.
pub async fn wait_closed(log: &Log, n: usize) {
    log.wait_for(SECS5, "sessions closed", |events| {
        events.iter().filter(|(_, e)| *e == Event::Close).count() >= n
    })
    .await;
}
