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

/// One masked client frame built byte by byte, as no WebSocket library would refuse to:
/// `first` is its whole first byte (FIN, the reserved bits, the opcode).
pub fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    use bytes::BufMut;
    let mut out = bytes::BytesMut::new();
    out.put_u8(first);
    match payload.len() {
        n if n < 126 => out.put_u8(0x80 | n as u8),
        n if n <= 0xffff => {
            out.put_u8(0x80 | 126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(0x80 | 127);
            out.put_u64(n as u64);
        }
    }
    let key = [0x37u8, 0xfa, 0x21, 0x3d];
    out.put_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out.to_vec()
}

/// Starts `client` in message mode with a [`MessageSender`] of `messages`, waits (5 s
/// at most) until as many came back, and asserts they are the messages sent: each whole,
/// in order, of its kind. Returns the client, still running.
pub async fn echo_messages(
    client: WsClient,
    messages: &[getty::transport::ws::WsMessage],
) -> ClientHandle {
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (to_send, sink) = (messages.to_vec(), got.clone());
    let client = client.start_messages(move |_| {
        let sender = MessageSender {
            messages: to_send.clone(),
            got: sink.clone(),
        };
        Ok((sender, getty::transport::ws::WsMessages))
    });
    super::within_for(SECS5, "every echo", async {
        while got.lock().unwrap().len() < messages.len() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(
        &*got.lock().unwrap(),
        messages,
        "each message whole, in order, of its kind"
    );
    client
}

/// A message-mode listener that sends `messages` on open and keeps what comes back.
pub struct MessageSender {
    pub messages: Vec<getty::transport::ws::WsMessage>,
    pub got: Arc<std::sync::Mutex<Vec<getty::transport::ws::WsMessage>>>,
}

impl getty::EventListener for MessageSender {
    type Codec = getty::transport::ws::WsMessages;
    type Out = getty::transport::ws::WsMessage;

    fn on_open(&mut self, s: &mut getty::SessionContext<'_, Self>) -> getty::Result<()> {
        for msg in self.messages.clone() {
            s.write(msg)?;
        }
        Ok(())
    }

    fn on_message(
        &mut self,
        _: &mut getty::SessionContext<'_, Self>,
        msg: getty::transport::ws::WsMessage,
    ) {
        self.got.lock().unwrap().push(msg);
    }
}
