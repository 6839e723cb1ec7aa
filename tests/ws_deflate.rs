//! permessage-deflate (RFC 7692) over loopback: a client that is no WebSocket library
//! (frames built here, compressed with flate2 directly) against `WsServer`; `WsClient`
//! and `WsServer` together, with and without context takeover, counted on the wire by
//! a proxy; a compression bomb; and a client whose offer is declined (by a getty server
//! without the option, and by tokio-tungstenite, which has no compression).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::ws::{echo_messages, masked_frame, RawWsClient};
use common::{within, SECS5};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use futures::{SinkExt, StreamExt};
use getty::prelude::*;
use getty::transport::ws::{PerMessageDeflate, WsClient, WsMessage, WsMessages, WsServer};
use getty::{EventListener, ServerHandle, SessionConfig, SessionContext};
use tokio::net::{TcpListener, TcpStream};

const TEXT: u8 = 0x1;
const CONT: u8 = 0x0;
const CLOSE: u8 = 0x8;
const RSV1: u8 = 0x40;
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// Echoes every message as it came.
struct Echo;

impl EventListener for Echo {
    type Codec = WsMessages;
    type Out = WsMessage;

    fn on_message(&mut self, s: &mut SessionContext<'_, Self>, msg: WsMessage) {
        s.write(msg).expect("the echo fits the write queue");
    }
}

async fn echo_server(deflate: Option<PerMessageDeflate>, max: usize) -> ServerHandle {
    let mut server = WsServer::new("127.0.0.1:0")
        .path("/ws")
        .workers(1)
        .session_config(SessionConfig::default().max_frame_length(max));
    if let Some(deflate) = deflate {
        server = server.per_message_deflate(deflate);
    }
    server
        .start_messages(|_| Ok((Echo, WsMessages)))
        .await
        .expect("server starts")
}

/// A chat line as JSON, `i` making each one differ a little.
fn chat(i: usize) -> String {
    format!(
        r#"{{"type":"chat","room":"lobby","from":"user{}","text":"message number {i}: the game starts in five minutes, ready?","ts":{}}}"#,
        i % 7,
        1_733_100_000_000u64 + i as u64 * 137
    )
}

// ---- a client that is no WebSocket library ------------------------------------------------

fn deflate(payload: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(payload.len() + 64);
    c.compress_vec(payload, &mut out, FlushCompress::Sync)
        .unwrap();
    assert_eq!(
        c.total_in() as usize,
        payload.len(),
        "room enough in one call"
    );
    assert!(out.ends_with(&TAIL));
    out.truncate(out.len() - 4);
    out
}

fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut d = Decompress::new(false);
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    let mut out = Vec::with_capacity(64 * 1024);
    d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    out
}

fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    masked_frame(first, payload)
}

/// The raw client of these tests: it offers `extensions` in its upgrade.
struct Raw(RawWsClient);

impl Raw {
    /// Upgrades, offering `extensions`; returns the client and the response head.
    async fn connect(addr: SocketAddr, extensions: &str) -> (Raw, String) {
        let offer = format!("Sec-WebSocket-Extensions: {extensions}\r\n");
        let (client, head) = RawWsClient::connect(addr, "/ws", &offer).await;
        (Raw(client), head)
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.0.send(bytes).await;
    }

    /// The next server frame but pings: its first byte and payload. 5 s at most.
    async fn next(&mut self) -> (u8, Vec<u8>) {
        self.0.next_frame().await.expect("connection ended")
    }

    /// Reads to the server's close frame; its code.
    async fn close_code(&mut self) -> u16 {
        for _ in 0..100 {
            let (first, payload) = self.next().await;
            if first & 0x0f == CLOSE {
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
        panic!("no close frame in 100 frames");
    }
}

const CHROMIUM_OFFER: &str = "permessage-deflate; client_max_window_bits";

#[actix_rt::test]
async fn the_server_accepts_an_offer_and_compresses_both_ways() {
    let server = echo_server(Some(PerMessageDeflate::new()), 64 * 1024).await;
    let (mut raw, head) = Raw::connect(server.inet_addr().unwrap(), CHROMIUM_OFFER).await;
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains(
            "sec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        ),
        "{head}"
    );
    for i in 0..20 {
        let line = chat(i);
        // Compressed by this client (RSV1 on), or not: the server takes both.
        let bytes = if i % 2 == 0 {
            frame(0x80 | RSV1 | TEXT, &deflate(line.as_bytes()))
        } else {
            frame(0x80 | TEXT, line.as_bytes())
        };
        raw.send(&bytes).await;
        let (first, payload) = raw.next().await;
        assert_eq!(first, 0x80 | RSV1 | TEXT, "a compressed text message");
        assert!(
            payload.len() < line.len(),
            "{} of {}",
            payload.len(),
            line.len()
        );
        assert_eq!(inflate(&payload), line.as_bytes());
    }
    // A fragmented compressed message: RSV1 on the first fragment only.
    let packed = deflate(chat(99).as_bytes());
    let (a, b) = packed.split_at(packed.len() / 2);
    raw.send(&frame(RSV1 | TEXT, a)).await;
    raw.send(&frame(0x80 | CONT, b)).await;
    let (_, payload) = raw.next().await;
    assert_eq!(inflate(&payload), chat(99).as_bytes());
    // Under the threshold: sent as it is.
    raw.send(&frame(0x80 | TEXT, b"short")).await;
    assert_eq!(raw.next().await, (0x80 | TEXT, b"short".to_vec()));
    // RSV1 on a continuation frame is a protocol error (RFC 7692 §6.1).
    raw.send(&frame(RSV1 | TEXT, a)).await;
    raw.send(&frame(0x80 | RSV1 | CONT, b)).await;
    assert_eq!(raw.close_code().await, 1002);
    within(SECS5, server.stop()).await;
}

#[actix_rt::test]
async fn a_compression_bomb_ends_only_its_session_with_1009() {
    let server = echo_server(Some(PerMessageDeflate::new()), 64 * 1024).await;
    let addr = server.inet_addr().unwrap();
    let (mut good, _) = Raw::connect(addr, CHROMIUM_OFFER).await;
    let (mut bomber, _) = Raw::connect(addr, CHROMIUM_OFFER).await;
    // 16 MiB of zeros in about 16 KiB: inflated, it would be 256 times the limit.
    let bomb = deflate(&vec![0u8; 16 << 20]);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    bomber.send(&frame(0x80 | RSV1 | 0x2, &bomb)).await;
    assert_eq!(bomber.close_code().await, 1009);
    good.send(&frame(0x80 | TEXT, chat(1).as_bytes())).await;
    let (_, payload) = good.next().await;
    assert_eq!(inflate(&payload), chat(1).as_bytes());
    assert!(common::eventually(SECS5, || server.stats().open_sessions == 1).await);
    within(SECS5, server.stop()).await;
}

#[actix_rt::test]
async fn a_server_without_the_option_declines_every_offer() {
    let server = echo_server(None, 64 * 1024).await;
    let (mut raw, head) = Raw::connect(server.inet_addr().unwrap(), CHROMIUM_OFFER).await;
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions"),
        "no extension accepted: {head}"
    );
    raw.send(&frame(0x80 | TEXT, chat(1).as_bytes())).await;
    assert_eq!(raw.next().await, (0x80 | TEXT, chat(1).into_bytes()));
    within(SECS5, server.stop()).await;
}

// ---- WsClient and WsServer together, counted on the wire -----------------------------------

/// A TCP proxy for one connection to `upstream`: its address, and the bytes that went
/// each way (client to server, server to client) once the connection is over.
async fn counting_proxy(
    upstream: SocketAddr,
) -> (SocketAddr, tokio::sync::oneshot::Receiver<(u64, u64)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    actix_rt::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut server = TcpStream::connect(upstream).await.unwrap();
        let counts = tokio::io::copy_bidirectional(&mut client, &mut server)
            .await
            .unwrap_or((0, 0));
        let _ = tx.send(counts);
    });
    (addr, rx)
}

/// Echoes `messages` through a client and a server with these settings; the bytes on
/// the wire each way.
async fn echo_through_proxy(
    client_deflate: Option<PerMessageDeflate>,
    server_deflate: Option<PerMessageDeflate>,
    messages: &[WsMessage],
) -> (u64, u64) {
    let server = echo_server(server_deflate, 64 * 1024).await;
    let (proxy, counts) = counting_proxy(server.inet_addr().unwrap()).await;
    let mut client = WsClient::new(format!("ws://{proxy}/ws"));
    if let Some(deflate) = client_deflate {
        client = client.per_message_deflate(deflate);
    }
    let config = SessionConfig::default().max_frame_length(64 * 1024);
    let client = client
        .reconnect_interval(Duration::from_secs(60))
        .session_config(config);
    let client = echo_messages(client, messages).await;
    within(SECS5, client.stop()).await;
    let counts = within(SECS5, counts)
        .await
        .expect("the proxied connection ended");
    within(SECS5, server.stop()).await;
    counts
}

#[actix_rt::test]
async fn client_and_server_compress_with_and_without_context_takeover() {
    let mut messages: Vec<WsMessage> = (0..200).map(|i| WsMessage::text(chat(i))).collect();
    messages.push(WsMessage::binary(vec![0u8; 50_000]));
    messages.push(WsMessage::text("short"));
    let payload: u64 = messages.iter().map(|m| m.as_bytes().len() as u64).sum();
    let plain = echo_through_proxy(None, None, &messages).await;
    let alone = PerMessageDeflate::new();
    let fresh = echo_through_proxy(Some(alone), Some(alone), &messages).await;
    let keep = PerMessageDeflate::new().context_takeover(true);
    let kept = echo_through_proxy(Some(keep), Some(keep), &messages).await;
    println!("payload {payload} B each way; on the wire (up, down): plain {plain:?}, without context {fresh:?}, with context {kept:?}");
    // Uncompressed, the wire carries the payload and the framing.
    assert!(plain.0 > payload && plain.1 > payload, "{plain:?}");
    // Each message on its own: the chat lines shrink, the zeros all but vanish.
    assert!(fresh.0 * 2 < payload && fresh.1 * 2 < payload, "{fresh:?}");
    // With context, lines that repeat the ones before shrink much further.
    assert!(
        kept.0 * 2 < fresh.0 && kept.1 * 2 < fresh.1,
        "{kept:?} vs {fresh:?}"
    );
}

#[actix_rt::test]
async fn a_client_whose_offer_is_declined_goes_on_uncompressed() {
    let messages: Vec<WsMessage> = (0..20).map(|i| WsMessage::text(chat(i))).collect();
    // By a getty server without the option.
    let payload: u64 = messages.iter().map(|m| m.as_bytes().len() as u64).sum();
    let (up, down) = echo_through_proxy(Some(PerMessageDeflate::new()), None, &messages).await;
    assert!(
        up > payload && down > payload,
        "uncompressed: {up} {down} for {payload}"
    );

    // By tokio-tungstenite, which knows no extension.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    actix_rt::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() || msg.is_binary() {
                ws.send(msg).await.unwrap();
            }
        }
    });
    let client = WsClient::new(url).per_message_deflate(PerMessageDeflate::new());
    let client = echo_messages(client, &messages).await;
    within(SECS5, client.stop()).await;
}
