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

/// A WebSocket client that is no WebSocket library: the upgrade written by hand, frames
/// built by the caller, the server's frames parsed byte by byte here.
pub struct RawWsClient {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RawWsClient {
    /// Upgrades at `path` on `addr`, with `headers` (extra header lines, each ending in
    /// `\r\n`) in the request; asserts the upgrade was accepted and returns the client
    /// and the response head. 5 s at most for each step.
    pub async fn connect(addr: std::net::SocketAddr, path: &str, headers: &str) -> (Self, String) {
        use tokio::io::AsyncWriteExt;
        let connecting = tokio::net::TcpStream::connect(addr);
        let mut stream = super::within(SECS5, connecting).await.expect("connect");
        let request = upgrade_request(path, &addr.to_string(), 13);
        // The request's last line is blank: the extra headers go before it.
        let request = format!("{}{headers}\r\n", &request[..request.len() - 2]);
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send the upgrade");
        let mut client = RawWsClient {
            stream,
            buf: Vec::new(),
        };
        let end_of_head = |buf: &[u8]| buf.windows(4).position(|w| w == b"\r\n\r\n");
        super::within_for(SECS5, "the upgrade response", async {
            while end_of_head(&client.buf).is_none() {
                assert!(client.fill().await, "connection ended during the upgrade");
            }
        })
        .await;
        let end = end_of_head(&client.buf).map_or(0, |at| at + 4);
        let head = String::from_utf8_lossy(&client.buf[..end]).into_owned();
        client.buf.drain(..end);
        assert!(head.starts_with("HTTP/1.1 101"), "upgraded: {head}");
        (client, head)
    }

    /// Reads more; false at EOF or on a reset.
    pub async fn fill(&mut self) -> bool {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Sends `bytes`. The server may have closed already (a fail-fast case): a failed
    /// write is no failure, what the server answered is what a test checks.
    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next frame from the server but its own pings: its first byte (FIN, reserved
    /// bits, opcode) and payload; `None` at EOF. 5 s at most.
    pub async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        super::within_for(SECS5, "the server's next frame", async {
            loop {
                match self.parse() {
                    Some((first, _)) if first & 0x0f == 0x9 => continue,
                    Some(frame) => return Some(frame),
                    None if !self.fill().await => return None,
                    None => {}
                }
            }
        })
        .await
    }

    /// Reads to the end of the connection (5 s at most), dropping what comes.
    pub async fn read_to_end(&mut self, what: &str) {
        super::within_for(SECS5, what, async {
            while self.fill().await {
                self.buf.clear();
            }
        })
        .await;
    }

    /// One server frame from the buffer, if it holds a whole one.
    fn parse(&mut self) -> Option<(u8, Vec<u8>)> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        assert_eq!(b[1] & 0x80, 0, "server frames are not masked");
        let (len, at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => {
                let mut len = [0u8; 8];
                len.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(len) as usize, 10)
            }
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        if b.len() < at + len {
            return None;
        }
        let frame = (b[0], b[at..at + len].to_vec());
        self.buf.drain(..at + len);
        Some(frame)
    }
}
