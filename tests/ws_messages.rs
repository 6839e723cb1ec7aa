//! WebSocket message mode (`start_messages`): each message one frame that keeps its
//! kind, between `WsClient` and `WsServer`, with the actor adapter, with a serde codec on
//! top, and against tokio-tungstenite as an independent client. The RFC 6455 cases of
//! both modes are in `tests/ws_rfc6455.rs`.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use common::ws::echo_messages;
use common::{within, SECS5};
use futures::{SinkExt, StreamExt};
use getty::actor::{ActorListener, EventKind, SessionEvent};
use getty::prelude::*;
use getty::transport::ws::{MessageCodec, TextMessages, WsClient, WsMessage, WsMessages, WsServer};
use getty::{EventListener, Session, SessionConfig, SessionContext, SessionStats};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{client_async, WebSocketStream};
use tokio_util::codec::{Decoder, Encoder};

const MAX: usize = 64 * 1024;

fn config() -> SessionConfig {
    SessionConfig::default().max_frame_length(MAX)
}

/// Echoes every message as it came; keeps its session's stats at close.
struct Echo(Arc<Mutex<Option<SessionStats>>>);

impl EventListener for Echo {
    type Codec = WsMessages;
    type Out = WsMessage;

    fn on_message(&mut self, s: &mut SessionContext<'_, Self>, msg: WsMessage) {
        s.write(msg).expect("the echo fits the write queue");
    }

    fn on_close(&mut self, s: &Session<WsMessage>) {
        *self.0.lock().unwrap() = Some(s.stats());
    }
}

#[actix_rt::test]
async fn messages_keep_their_bounds_and_kinds_between_client_and_server() {
    let server_stats = Arc::new(Mutex::new(None));
    let stats = server_stats.clone();
    let server = WsServer::new("127.0.0.1:0")
        .path("/m")
        .workers(1)
        .session_config(config())
        .start_messages(move |_| Ok((Echo(stats.clone()), WsMessages)))
        .await
        .expect("server starts");
    // Sizes around the frame header's length steps (125/126, 65535/65536 is past MAX),
    // empty messages, the limit itself, and text with multi-byte characters.
    let mut messages = vec![
        WsMessage::text(""),
        WsMessage::binary(Bytes::new()),
        WsMessage::text("héllo, wörld: ☃"),
        WsMessage::binary(vec![0u8, 0xff, 0x80]),
        WsMessage::text("a".repeat(125)),
        WsMessage::binary(vec![7u8; 126]),
        WsMessage::text("€".repeat(MAX / 3)),
        WsMessage::binary(vec![9u8; MAX]),
    ];
    for i in 0..50 {
        messages.push(WsMessage::text(format!("line {i}")));
        messages.push(WsMessage::binary(vec![i as u8; i]));
    }
    let client =
        WsClient::new(format!("ws://{}/m", server.inet_addr().unwrap())).session_config(config());
    let client = echo_messages(client, &messages).await;
    within(SECS5, client.stop()).await;
    within(SECS5, server.stop()).await;
    let stats = server_stats
        .lock()
        .unwrap()
        .expect("the server session closed");
    let payload: usize = messages.iter().map(|m| m.as_bytes().len()).sum();
    assert_eq!(stats.frames_read, messages.len() as u64);
    assert_eq!(stats.frames_written, messages.len() as u64);
    assert_eq!(
        stats.bytes_read, payload as u64,
        "payload bytes, no framing"
    );
    assert_eq!(
        stats.bytes_written, payload as u64,
        "payload bytes, no framing"
    );
}

/// A tokio-tungstenite client, upgraded at `path`.
async fn tung_client(addr: SocketAddr, path: &str) -> WebSocketStream<TcpStream> {
    let tcp = within(SECS5, TcpStream::connect(addr)).await.unwrap();
    let (ws, _) = within(SECS5, client_async(format!("ws://{addr}{path}"), tcp))
        .await
        .expect("upgrade");
    ws
}

// ---- JSON over text messages, through the actor adapter ------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Chat {
    from: String,
    text: String,
}

/// serde JSON, one value per message.
#[derive(Clone, Default)]
struct Json;

impl Decoder for Json {
    type Item = Chat;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> std::io::Result<Option<Chat>> {
        let chat = serde_json::from_slice(src)?;
        src.clear();
        Ok(Some(chat))
    }
}

impl Encoder<Chat> for Json {
    type Error = std::io::Error;

    fn encode(&mut self, chat: Chat, dst: &mut BytesMut) -> std::io::Result<()> {
        serde_json::to_writer(bytes::BufMut::writer(dst), &chat)?;
        Ok(())
    }
}

/// Answers each chat message with an upper-cased copy from "room".
struct Room;

impl Actor for Room {
    type Context = Context<Self>;
}

impl Handler<SessionEvent<Chat, Chat>> for Room {
    type Result = ();

    fn handle(&mut self, event: SessionEvent<Chat, Chat>, _: &mut Context<Self>) {
        if let EventKind::Frame(chat) = event.kind {
            let reply = Chat {
                from: "room".to_owned(),
                text: chat.text.to_uppercase(),
            };
            if let Err(err) = event.session.try_write(reply) {
                panic!("the reply fits the write queue: {err}");
            }
        }
    }
}

#[actix_rt::test]
async fn json_over_text_messages_through_the_actor_adapter() {
    let room = Room.start();
    let server = WsServer::new("127.0.0.1:0")
        .path("/chat")
        .workers(1)
        .start_messages(move |_| {
            Ok((
                ActorListener::new(room.clone().recipient()),
                MessageCodec::text(Json),
            ))
        })
        .await
        .expect("server starts");
    let mut ws = tung_client(server.inet_addr().unwrap(), "/chat").await;
    for i in 0..20 {
        let chat = Chat {
            from: "ann".to_owned(),
            text: format!("hello {i}"),
        };
        ws.send(Message::text(serde_json::to_string(&chat).unwrap()))
            .await
            .unwrap();
        let reply = within(SECS5, ws.next()).await.expect("a reply").unwrap();
        // A text message, one JSON value, no framing around it.
        let Message::Text(text) = reply else {
            panic!("expected a text message, got {reply:?}");
        };
        let reply: Chat = serde_json::from_str(&text).expect("one JSON value");
        assert_eq!(reply.text, format!("HELLO {i}"));
    }
    // Not JSON: the codec refuses it, and the session closes with 1007 (invalid data).
    ws.send(Message::text("{not json")).await.unwrap();
    let code = within(SECS5, async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Close(frame) = msg {
                return frame.map(|f| f.code);
            }
        }
        None
    })
    .await;
    assert_eq!(code, Some(CloseCode::Invalid));
    within(SECS5, server.stop()).await;
}

// ---- plain text, as a browser chat sends it --------------------------------------------

/// Answers each line with its length, as text.
struct Lengths;

impl EventListener for Lengths {
    type Codec = TextMessages;
    type Out = String;

    fn on_message(&mut self, s: &mut SessionContext<'_, Self>, line: String) {
        s.write(format!("{} chars", line.chars().count()))
            .expect("the reply fits the write queue");
    }
}

#[actix_rt::test]
async fn text_messages_are_strings_both_ways() {
    let server = WsServer::new("127.0.0.1:0")
        .start_messages(|_| Ok((Lengths, TextMessages)))
        .await
        .expect("server starts");
    let mut ws = tung_client(server.inet_addr().unwrap(), "/").await;
    for line in ["", "one line", "two\nlines", "ünïcödé ☃"] {
        ws.send(Message::text(line)).await.unwrap();
        let reply = within(SECS5, ws.next()).await.expect("a reply").unwrap();
        assert_eq!(
            reply,
            Message::text(format!("{} chars", line.chars().count())),
            "{line:?}"
        );
    }
    within(SECS5, server.stop()).await;
}
