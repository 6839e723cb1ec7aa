//! RFC 6455, case by case, for both WebSocket modes (codec mode and message mode), on
//! both sides:
//! - `WsServer` against a client that is no WebSocket library: frames built byte by byte
//!   here (masked, with whatever reserved bits, opcodes and lengths a case needs), and
//!   the server's frames parsed byte by byte;
//! - `WsClient` against tokio-tungstenite as the server, sending raw frames
//!   (`Message::Frame`) where a case needs a frame no library would send.
//!
//! Each case names the Autobahn|Testsuite cases (sections 1–7) it follows; the table of
//! cases and tests is in the `getty::transport::ws` module docs. Python's `websockets`
//! runs the server cases again from outside Rust in `tests/interop.rs`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::ws::{masked_frame, RawWsClient};
use common::{within, within_for, SECS5};
use futures::{SinkExt, StreamExt};
use getty::config::FRAME_HEADER_ALLOWANCE;
use getty::prelude::*;
use getty::transport::ws::{WsClient, WsMessage, WsMessages, WsServer};
use getty::{
    ClientHandle, Error, EventListener, RawBytes, ServerHandle, Session, SessionConfig,
    SessionContext,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode;
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{accept_async_with_config, WebSocketStream};

const PATH: &str = "/ws";
/// The sessions' max frame length: a message of this many bytes is taken in message
/// mode, one more is refused with 1009.
const MAX: usize = 70_000;

const CONT: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

// ---- what the listeners saw ----------------------------------------------------------

/// What the sessions of one endpoint saw.
#[derive(Default)]
struct Seen {
    errors: Mutex<Vec<String>>,
    closed: AtomicUsize,
}

impl Seen {
    fn error(&self, err: &Error) {
        self.errors.lock().unwrap().push(err.to_string());
    }

    /// Waits (5 s at most) until `n` sessions have closed.
    async fn wait_closed(&self, n: usize) {
        within_for(SECS5, "sessions closed", async {
            while self.closed.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

/// Message mode: echoes every message as it came.
struct MessageEcho(Arc<Seen>);

impl EventListener for MessageEcho {
    type Codec = WsMessages;
    type Out = WsMessage;

    fn on_message(&mut self, s: &mut SessionContext<'_, Self>, msg: WsMessage) {
        if let Err(err) = s.write(msg) {
            self.0.error(&err);
        }
    }

    fn on_error(&mut self, _: &Session<WsMessage>, err: &Error) {
        self.0.error(err);
    }

    fn on_close(&mut self, _: &Session<WsMessage>) {
        self.0.closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// Codec mode: echoes the bytes of every message (text allowed) as binary.
struct ByteEcho(Arc<Seen>);

impl EventListener for ByteEcho {
    type Codec = RawBytes;
    type Out = Bytes;

    fn on_message(&mut self, s: &mut SessionContext<'_, Self>, bytes: BytesMut) {
        if let Err(err) = s.write(bytes.freeze()) {
            self.0.error(&err);
        }
    }

    fn on_error(&mut self, _: &Session<Bytes>, err: &Error) {
        self.0.error(err);
    }

    fn on_close(&mut self, _: &Session<Bytes>) {
        self.0.closed.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Codec,
    Messages,
}

fn config() -> SessionConfig {
    SessionConfig::default()
        .max_frame_length(MAX)
        .wait_time(Duration::from_secs(2))
}

/// The longest message a session of `mode` takes.
fn bound(mode: Mode) -> usize {
    match mode {
        Mode::Messages => MAX,
        Mode::Codec => MAX + FRAME_HEADER_ALLOWANCE,
    }
}

async fn server(mode: Mode) -> (ServerHandle, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let builder = WsServer::new("127.0.0.1:0")
        .path(PATH)
        .workers(1)
        .session_config(config())
        .allow_text(true);
    let s = seen.clone();
    let handle = match mode {
        Mode::Messages => {
            builder
                .start_messages(move |_| Ok((MessageEcho(s.clone()), WsMessages)))
                .await
        }
        Mode::Codec => {
            builder
                .start(move |_| Ok((ByteEcho(s.clone()), RawBytes::new())))
                .await
        }
    };
    (handle.expect("server starts"), seen)
}

// ---- a client that is no WebSocket library --------------------------------------------

/// One frame a case sends, whatever the side: the raw client masks it, the tungstenite
/// server sends it as it is.
#[derive(Debug, Clone)]
struct Raw {
    fin: bool,
    /// RSV1..RSV3 as the three low bits.
    rsv: u8,
    opcode: u8,
    payload: Vec<u8>,
}

fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Raw {
    Raw {
        fin,
        rsv,
        opcode,
        payload: payload.to_vec(),
    }
}

/// A frame as a client puts it on the wire: masked.
fn masked(raw: &Raw) -> Vec<u8> {
    let first = if raw.fin { 0x80 } else { 0 } | (raw.rsv & 0x7) << 4 | raw.opcode;
    masked_frame(first, &raw.payload)
}

/// A frame as a server sends it, through tungstenite's raw frames.
fn unmasked(raw: &Raw) -> Frame {
    let header = FrameHeader {
        is_final: raw.fin,
        rsv1: raw.rsv & 0b100 != 0,
        rsv2: raw.rsv & 0b010 != 0,
        rsv3: raw.rsv & 0b001 != 0,
        opcode: OpCode::from(raw.opcode),
        mask: None,
    };
    Frame::from_payload(header, Bytes::from(raw.payload.clone()))
}

fn whole(opcode: u8, payload: &[u8]) -> Raw {
    frame(true, 0, opcode, payload)
}

fn close_frame(code: u16, reason: &[u8]) -> Raw {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    whole(CLOSE, &payload)
}

/// What the server sends, as this client reads it.
#[derive(Debug, Clone, PartialEq)]
enum Got {
    Data(u8, Vec<u8>),
    Pong(Vec<u8>),
    /// A close frame and its code (`None`: an empty close payload).
    Close(Option<u16>),
}

/// The raw client of a server: frames built here, the server's read byte by byte.
struct RawClient(RawWsClient);

impl RawClient {
    async fn connect(server: &ServerHandle) -> RawClient {
        let (client, _) = RawWsClient::connect(server.inet_addr().unwrap(), PATH, "").await;
        RawClient(client)
    }
}

/// The peer of a case: the raw client of a server, or the tungstenite server of a client.
trait Peer {
    /// Sends one frame of the case.
    async fn send(&mut self, raw: &Raw);
    /// The next frame from the endpoint under test (its pings skipped); `None` at EOF.
    /// 5 s at most.
    async fn next(&mut self) -> Option<Got>;
    /// Answers the close frame just read, and reads on to the end of the connection.
    async fn answer_close(&mut self, code: Option<u16>, case: &str);

    /// Reads the endpoint's close frame (answering it), then to EOF; the close code.
    /// Any other frame first is a failure of the case, but data where `data_may_come`.
    async fn expect_close(&mut self, case: &str, data_may_come: bool) -> Option<u16> {
        for _ in 0..1_000 {
            match self.next().await {
                Some(Got::Close(code)) => {
                    self.answer_close(code, case).await;
                    return code;
                }
                Some(Got::Data(..)) if data_may_come => continue,
                Some(other) => panic!("{case}: {other:?} where a close frame was due"),
                None => panic!("{case}: connection ended without a close frame"),
            }
        }
        panic!("{case}: no close frame in 1,000 frames");
    }
}

impl Peer for RawClient {
    async fn send(&mut self, raw: &Raw) {
        self.0.send(&masked(raw)).await;
    }

    async fn next(&mut self) -> Option<Got> {
        let (first, payload) = self.0.next_frame().await?;
        assert!(first & 0x80 != 0, "the server sends whole messages");
        assert_eq!(first & 0x70, 0, "no reserved bits from the server");
        Some(match first & 0x0f {
            PONG => Got::Pong(payload),
            CLOSE => {
                let code =
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                Got::Close(code)
            }
            op => Got::Data(op, payload),
        })
    }

    async fn answer_close(&mut self, code: Option<u16>, case: &str) {
        self.send(&close_frame(code.unwrap_or(1000), b"")).await;
        self.0.read_to_end(case).await;
    }
}

// ---- the server cases --------------------------------------------------------------------

/// One case: what the client sends, and what it must get back.
struct Case {
    /// The Autobahn|Testsuite cases this one follows.
    autobahn: &'static str,
    send: Vec<Raw>,
    /// Data and pongs expected before the end (message mode: exactly; codec mode: the
    /// pongs, and the data bytes in order, as binary messages however split).
    replies: Vec<Got>,
    /// `Some(code)`: the server must close with it (0: with an empty close payload).
    /// `None`: the session stays up, and a clean close from the client ends it
    /// (Autobahn 7.1.1).
    close: Option<u16>,
    /// The server fails the connection: its session has one error.
    fails: bool,
}

/// A case; the server fails the ones it closes with 1002, 1007 or 1009.
fn case(autobahn: &'static str, send: Vec<Raw>, replies: Vec<Got>, close: Option<u16>) -> Case {
    Case {
        autobahn,
        send,
        replies,
        close,
        fails: matches!(close, Some(1002 | 1007 | 1009)),
    }
}

fn text(s: &str) -> Got {
    Got::Data(TEXT, s.as_bytes().to_vec())
}

fn binary(b: &[u8]) -> Got {
    Got::Data(BINARY, b.to_vec())
}

/// The RFC cases every server mode must pass.
fn server_cases(mode: Mode) -> Vec<Case> {
    let big = "x".repeat(65_536);
    let utf8 = "Hello-µ@ßöäüàá-UTF-8!!";
    let euro = "€".as_bytes();
    // Invalid: "κόσμε" then a code point past U+10FFFF (Autobahn 6.3.1's bytes differ,
    // the failure is the same).
    let mut invalid = "κόσμε".as_bytes().to_vec();
    invalid.extend_from_slice(&[0xf4, 0x90, 0x80, 0x80]);
    let over = vec![b'y'; bound(mode) + 1];
    let ping125 = vec![b'p'; 125];
    vec![
        case("1.1.1", vec![whole(TEXT, b"")], vec![text("")], None),
        case(
            "1.1.2",
            vec![whole(TEXT, &[b'a'; 125])],
            vec![text(&"a".repeat(125))],
            None,
        ),
        case(
            "1.1.3",
            vec![whole(TEXT, &[b'a'; 126])],
            vec![text(&"a".repeat(126))],
            None,
        ),
        case(
            "1.1.7",
            vec![whole(TEXT, big.as_bytes())],
            vec![text(&big)],
            None,
        ),
        case(
            "1.2.3",
            vec![whole(BINARY, &[0xfe; 126])],
            vec![binary(&[0xfe; 126])],
            None,
        ),
        case("2.1", vec![whole(PING, b"")], vec![Got::Pong(vec![])], None),
        case(
            "2.3",
            vec![whole(PING, &[0, 0xff, 0xfe])],
            vec![Got::Pong(vec![0, 0xff, 0xfe])],
            None,
        ),
        case(
            "2.4",
            vec![whole(PING, &ping125)],
            vec![Got::Pong(ping125.clone())],
            None,
        ),
        case("2.5", vec![whole(PING, &[b'p'; 126])], vec![], Some(1002)),
        case(
            "3.1",
            vec![frame(true, 1, TEXT, b"rsv1")],
            vec![],
            Some(1002),
        ),
        case(
            "3.2",
            vec![frame(true, 2, TEXT, b"rsv2")],
            vec![],
            Some(1002),
        ),
        case(
            "3.4",
            vec![frame(true, 4, BINARY, b"rsv3")],
            vec![],
            Some(1002),
        ),
        case("3.6", vec![frame(true, 6, PING, b"")], vec![], Some(1002)),
        case(
            "3.7",
            vec![frame(true, 7, CLOSE, &1000u16.to_be_bytes())],
            vec![],
            Some(1002),
        ),
        case("4.1.1", vec![whole(3, b"")], vec![], Some(1002)),
        case(
            "4.1.3",
            vec![whole(5, b"reserved"), whole(PING, b"")],
            vec![],
            Some(1002),
        ),
        case("4.2.1", vec![whole(11, b"")], vec![], Some(1002)),
        case("4.2.2", vec![whole(12, b"reserved")], vec![], Some(1002)),
        case(
            "5.1",
            vec![frame(false, 0, PING, b"a"), frame(true, 0, CONT, b"b")],
            vec![],
            Some(1002),
        ),
        case(
            "5.2",
            vec![frame(false, 0, PONG, b"a"), frame(true, 0, CONT, b"b")],
            vec![],
            Some(1002),
        ),
        case(
            "5.3, 5.5",
            vec![
                frame(false, 0, TEXT, b"frag1"),
                frame(true, 0, CONT, b"frag2"),
            ],
            vec![text("frag1frag2")],
            None,
        ),
        case(
            "5.6, 5.7",
            vec![
                frame(false, 0, TEXT, b"frag1"),
                whole(PING, b"in between"),
                frame(false, 0, CONT, b"frag2"),
                whole(PONG, b"unsolicited"),
                frame(true, 0, CONT, b"frag3"),
            ],
            vec![Got::Pong(b"in between".to_vec()), text("frag1frag2frag3")],
            None,
        ),
        case(
            "5.9",
            vec![frame(true, 0, CONT, b"alone")],
            vec![],
            Some(1002),
        ),
        case(
            "5.18",
            vec![frame(false, 0, TEXT, b"one"), frame(true, 0, TEXT, b"two")],
            vec![],
            Some(1002),
        ),
        case(
            "6.2.1",
            vec![whole(TEXT, utf8.as_bytes())],
            vec![text(utf8)],
            None,
        ),
        case(
            "6.2.3, 6.2.4",
            utf8.as_bytes()
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let last = i + 1 == utf8.len();
                    frame(last, 0, if i == 0 { TEXT } else { CONT }, &[*b])
                })
                .collect(),
            vec![text(utf8)],
            None,
        ),
        case("6.3.1", vec![whole(TEXT, &invalid)], vec![], Some(1007)),
        case(
            // Fail fast: the invalid bytes are in the first fragment; the last one is
            // never needed.
            "6.4.1",
            vec![frame(false, 0, TEXT, &invalid)],
            vec![],
            Some(1007),
        ),
        case(
            "6.4.3 (a code point cut across fragments, then an invalid continuation)",
            vec![
                frame(false, 0, TEXT, &euro[..1]),
                frame(true, 0, CONT, &[0x41, 0x42]),
            ],
            vec![],
            Some(1007),
        ),
        case(
            "6.6.x (a code point cut across fragments)",
            vec![
                frame(false, 0, TEXT, &euro[..2]),
                frame(true, 0, CONT, &euro[2..]),
            ],
            vec![text("€")],
            None,
        ),
        case(
            "6.x (a message that ends inside a code point)",
            vec![
                frame(false, 0, TEXT, b"a"),
                frame(true, 0, CONT, &euro[..2]),
            ],
            vec![],
            Some(1007),
        ),
        case(
            "7.1.6",
            vec![
                whole(TEXT, b"before"),
                close_frame(1000, b""),
                whole(TEXT, b"after"),
            ],
            vec![text("before")],
            Some(1000),
        ),
        case("7.3.1", vec![whole(CLOSE, b"")], vec![], Some(0)),
        case("7.3.2", vec![whole(CLOSE, b"\x03")], vec![], Some(1002)),
        case("7.3.4", vec![close_frame(1000, b"bye")], vec![], Some(1000)),
        case(
            "7.3.6",
            vec![close_frame(1000, &[b'r'; 124])],
            vec![],
            Some(1002),
        ),
        case(
            "7.5.1",
            vec![close_frame(1000, &[0xce, 0xba, 0xff])],
            vec![],
            Some(1002),
        ),
        case(
            "size limit (no Autobahn case)",
            vec![whole(BINARY, &over)],
            vec![],
            Some(1009),
        ),
        case(
            "size limit across fragments (no Autobahn case)",
            vec![
                frame(false, 0, BINARY, &over[..bound(mode) / 2]),
                frame(true, 0, CONT, &over[bound(mode) / 2..]),
            ],
            vec![],
            Some(1009),
        ),
    ]
}

/// The close codes a peer may send (Autobahn 7.7.x), echoed back, and those it may not
/// (7.9.x, 7.13.x), answered with 1002.
const VALID_CODES: [u16; 13] = [
    1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
];
const INVALID_CODES: [u16; 11] = [
    0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 5000, 65535,
];

fn close_code_cases() -> Vec<Case> {
    // The client closed: the server echoes its code and has no error.
    let valid = VALID_CODES.iter().map(|&code| Case {
        fails: false,
        ..case("7.7.x", vec![close_frame(code, b"")], vec![], Some(code))
    });
    let invalid = INVALID_CODES.iter().map(|&code| {
        case(
            "7.9.x, 7.13.x",
            vec![close_frame(code, b"")],
            vec![],
            Some(1002),
        )
    });
    valid.chain(invalid).collect()
}

/// Data replies in codec mode: the bytes, in order, however split into messages.
fn data_bytes(replies: &[Got]) -> Vec<u8> {
    replies
        .iter()
        .filter_map(|g| match g {
            Got::Data(_, b) => Some(b.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Runs `case` against the endpoint behind `peer`.
async fn run_case(peer: &mut impl Peer, mode: Mode, case: &Case, name: &str) {
    for raw in &case.send {
        peer.send(raw).await;
    }
    let (want_pongs, want_data): (Vec<Got>, Vec<Got>) = case
        .replies
        .iter()
        .cloned()
        .partition(|g| matches!(g, Got::Pong(_)));
    let want_bytes = data_bytes(&want_data).len();
    let (mut pongs, mut data) = (Vec::new(), Vec::new());
    let done = |pongs: &Vec<Got>, data: &Vec<Got>| {
        pongs.len() >= want_pongs.len()
            && match mode {
                Mode::Messages => data.len() >= want_data.len(),
                // An empty message carries no bytes to a byte stream: nothing to echo.
                Mode::Codec => data_bytes(data).len() >= want_bytes,
            }
    };
    while !done(&pongs, &data) {
        match peer.next().await {
            Some(g @ Got::Pong(_)) => pongs.push(g),
            Some(g @ Got::Data(..)) => data.push(g),
            other => panic!("{name}: ended early with {other:?}, after {data:?}"),
        }
    }
    assert_eq!(pongs, want_pongs, "{name}: pongs");
    match mode {
        Mode::Messages => assert_eq!(data, want_data, "{name}: messages"),
        Mode::Codec => {
            assert_eq!(data_bytes(&data), data_bytes(&want_data), "{name}: bytes");
            assert!(
                data.iter().all(|g| matches!(g, Got::Data(BINARY, _))),
                "{name}: codec mode sends binary"
            );
        }
    }
    if case.close.is_none() {
        // Nothing else came, and a clean close from this side ends it (7.1.1).
        peer.send(&close_frame(1000, b"")).await;
    }
    // Codec mode feeds each fragment to the byte stream as it comes: bytes of a message
    // that fails later may be echoed before the close.
    let code = peer
        .expect_close(name, mode == Mode::Codec && case.fails)
        .await;
    let want = match case.close {
        None => Some(1000),
        Some(0) => None, // an empty close payload is answered with an empty one
        Some(code) => Some(code),
    };
    assert_eq!(code, want, "{name}: close code");
}

async fn run_server_cases(mode: Mode, cases: Vec<Case>) {
    let (server, seen) = server(mode).await;
    let mut errors = 0;
    for (i, case) in cases.iter().enumerate() {
        let name = format!("server, {mode:?} mode, Autobahn {}", case.autobahn);
        let mut client = RawClient::connect(&server).await;
        run_case(&mut client, mode, case, &name).await;
        seen.wait_closed(i + 1).await;
        // A session the server failed has its error; one the client closed has none.
        errors += usize::from(case.fails);
        let seen_errors = seen.errors.lock().unwrap().clone();
        assert_eq!(
            seen_errors.len(),
            errors,
            "{mode:?} mode, Autobahn {}: errors {seen_errors:?}",
            case.autobahn
        );
    }
    within(SECS5, server.stop()).await;
}

#[actix_rt::test]
async fn server_cases_in_message_mode() {
    run_server_cases(Mode::Messages, server_cases(Mode::Messages)).await;
}

#[actix_rt::test]
async fn server_cases_in_codec_mode() {
    run_server_cases(Mode::Codec, server_cases(Mode::Codec)).await;
}

#[actix_rt::test]
async fn server_close_codes() {
    run_server_cases(Mode::Messages, close_code_cases()).await;
}

// ---- the client cases --------------------------------------------------------------------

/// tokio-tungstenite as the server of a `WsClient`, sending each case's frames raw.
struct TungServer(WebSocketStream<TcpStream>);

impl Peer for TungServer {
    async fn send(&mut self, raw: &Raw) {
        // The client may have closed already (a fail-fast case); what it sent is what
        // the case checks.
        let _ = self.0.send(Message::Frame(unmasked(raw))).await;
    }

    async fn next(&mut self) -> Option<Got> {
        within_for(SECS5, "the client's next frame", async {
            loop {
                return match self.0.next().await {
                    Some(Ok(Message::Ping(_))) => continue,
                    Some(Ok(Message::Pong(p))) => Some(Got::Pong(p.to_vec())),
                    Some(Ok(Message::Text(t))) => Some(Got::Data(TEXT, t.as_bytes().to_vec())),
                    Some(Ok(Message::Binary(b))) => Some(Got::Data(BINARY, b.to_vec())),
                    Some(Ok(Message::Close(frame))) => {
                        Some(Got::Close(frame.map(|f| u16::from(f.code))))
                    }
                    Some(Ok(Message::Frame(_))) | Some(Err(_)) | None => None,
                };
            }
        })
        .await
    }

    async fn answer_close(&mut self, _: Option<u16>, case: &str) {
        // tungstenite queued its answer when it read the close; reading on sends it and
        // sees the end of the connection.
        within_for(SECS5, case, async {
            while let Some(Ok(_)) = self.0.next().await {}
        })
        .await;
    }
}

async fn run_client_cases(mode: Mode, cases: Vec<Case>) {
    for case in &cases {
        let name = format!("client, {mode:?} mode, Autobahn {}", case.autobahn);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}{PATH}", listener.local_addr().unwrap());
        let seen = Arc::new(Seen::default());
        let builder = WsClient::new(url)
            .connections(1)
            .reconnect_interval(Duration::from_secs(60))
            .session_config(config())
            .allow_text(true);
        let s = seen.clone();
        let client: ClientHandle = match mode {
            Mode::Messages => {
                builder.start_messages(move |_| Ok((MessageEcho(s.clone()), WsMessages)))
            }
            Mode::Codec => builder.start(move |_| Ok((ByteEcho(s.clone()), RawBytes::new()))),
        };
        let (tcp, _) = within(SECS5, listener.accept()).await.unwrap();
        let config = WebSocketConfig::default()
            .max_message_size(None)
            .max_frame_size(None);
        let ws = within(SECS5, accept_async_with_config(tcp, Some(config)))
            .await
            .expect("tungstenite accepts the client");
        run_case(&mut TungServer(ws), mode, case, &name).await;
        seen.wait_closed(1).await;
        let errors = seen.errors.lock().unwrap().clone();
        assert_eq!(
            errors.len(),
            usize::from(case.fails),
            "{name}: errors {errors:?}"
        );
        within(SECS5, client.stop()).await;
    }
}

#[actix_rt::test]
async fn client_cases_in_message_mode() {
    run_client_cases(Mode::Messages, server_cases(Mode::Messages)).await;
}

#[actix_rt::test]
async fn client_cases_in_codec_mode() {
    run_client_cases(Mode::Codec, server_cases(Mode::Codec)).await;
}

#[actix_rt::test]
async fn client_close_codes() {
    run_client_cases(Mode::Messages, close_code_cases()).await;
}
