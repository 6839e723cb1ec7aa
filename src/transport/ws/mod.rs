//! WebSocket endpoints: [`WsServer`] (actix-web, with actix-http's WebSocket codec) and
//! [`WsClient`] (awc), with the same sessions, listeners, codecs and options as TCP.
//!
//! ## Two modes: codec and messages
//! The builder says which mode its sessions run in:
//! - **Codec mode** (`start`), for getty-style binary protocols: binary WebSocket
//!   messages carry the codec's bytes. Each incoming message is fed to the session's
//!   codec, which may find zero or more frames in it, and a frame may span messages, so
//!   stream codecs such as [`LengthDelimited`](crate::LengthDelimited) work unchanged.
//!   Each frame the session writes goes out as exactly one binary message. A text
//!   message ends the session with [`ErrorKind::WebSocket`](crate::ErrorKind::WebSocket)
//!   (close code 1003) unless the endpoint allows text (`allow_text`), in which case its
//!   bytes, checked to be UTF-8, go to the codec like binary ones.
//! - **Message mode** (`start_messages`), as browsers use WebSocket: each message is one
//!   frame and keeps its kind, text as a checked UTF-8 string, binary as bytes, and each
//!   frame written goes out as one message of the kind the listener chose. The codec is
//!   one of [`WsMessageCodec`]'s: [`WsMessages`] (frames are [`WsMessage`]s, text or
//!   binary), [`TextMessages`] (frames are `String`s, a chat say), or [`MessageCodec`]
//!   over a codec of yours (JSON with serde, say: one value per message).
//!
//! Either way fragmented messages are reassembled, and the actor adapter
//! ([`ActorListener`](crate::actor::ActorListener)) works with both.
//!
//! ## Limits
//! One message, fragmented or not, may hold at most the session's
//! [`max_frame_length`](crate::SessionConfig::max_frame_length) (in codec mode plus
//! [`FRAME_HEADER_ALLOWANCE`](crate::config::FRAME_HEADER_ALLOWANCE) bytes, room for the
//! codec's header): past that the session ends with
//! [`ErrorKind::FrameTooLong`](crate::ErrorKind::FrameTooLong) or
//! [`ErrorKind::WebSocket`](crate::ErrorKind::WebSocket) and close code 1009. Invalid
//! frames (an unmasked frame from a client, a bad opcode, a broken fragment sequence) end
//! only their session, with [`ErrorKind::WebSocket`](crate::ErrorKind::WebSocket) and close
//! code 1002; text that is not UTF-8 ends it with close code 1007.
//!
//! ## RFC 6455, case by case
//! Each rule below holds in both modes, for [`WsServer`] and [`WsClient`] alike. The
//! tests follow Autobahn|Testsuite's cases (sections 1–7), named in each case:
//! `tests/ws_rfc6455.rs` runs every case against the server (a client that builds its
//! frames byte by byte) and against the client (tokio-tungstenite as the server, sending
//! raw frames), in both modes; `tests/interop.rs` runs the server cases again from Python
//! (`websockets`, and hand-built frames over a plain socket).
//!
//! | Rule | Close code | Autobahn cases |
//! | --- | --- | --- |
//! | Text and binary messages of any size up to the limit come back whole, of their kind | — | 1.1.1–1.1.7, 1.2.x |
//! | A ping's payload comes back in its pong; a ping over 125 bytes fails | 1002 | 2.1, 2.3, 2.4, 2.5 |
//! | Reserved bits set (no extension negotiated; with permessage-deflate, RSV1 anywhere but a message's first frame) | 1002 | 3.1–3.7 |
//! | Reserved opcodes, data (3–7) and control (11–15) | 1002 | 4.1.x, 4.2.x |
//! | A fragmented control frame; a continuation with no message begun; a new message inside a fragmented one | 1002 | 5.1, 5.2, 5.9, 5.18 |
//! | Fragments reassembled, with pings (answered) and pongs between them | — | 5.3–5.7 |
//! | Text that is not UTF-8, failing at the fragment that shows it (fail fast), also when a code point is cut across fragments or the message ends inside one | 1007 | 6.2.x, 6.3.1, 6.4.1, 6.4.3, 6.6.x |
//! | The peer's close code echoed; a close payload of 1 byte, or over 125, or with a reason not UTF-8 | 1002 | 7.1.1, 7.3.1–7.3.6, 7.5.1 |
//! | Close codes a peer may send (1000–1003, 1007–1011, 3000–4999) echoed; the others (0, 999, 1004–1006, 1016, 1100, 2000, 2999, 5000, 65535) | 1002 | 7.7.x, 7.9.x, 7.13.x |
//! | Nothing the peer sends after its close frame is read | — | 7.1.6 |
//! | A message over the limit, whole or across fragments | 1009 | (none: 9.x measure speed) |
//!
//! In codec mode a fragment's bytes go to the codec as they arrive, so a frame the codec
//! found in the first fragments of a message that later fails may already have been
//! handled; message mode hands nothing over before the message is whole and checked.
//!
//! ## Compression: permessage-deflate
//! With [`per_message_deflate`](WsBuilder::per_message_deflate) a client offers RFC 7692's
//! permessage-deflate and a server accepts the first offer it can honour (browsers offer
//! it in every handshake); without it a server accepts no extension and the handshake
//! goes on uncompressed, as RFC 6455 wants. Compressed messages carry RSV1 on their first
//! frame; a message under the [threshold](PerMessageDeflate::threshold) goes as it is.
//! A compressed message is inflated within the session's limit: one that would inflate
//! past it ends the session with close code 1009 before the memory is spent, and data
//! that does not inflate ends it with 1007. Without context takeover (the default) each
//! message is compressed on its own and sessions keep no compressor state; with it
//! ([`PerMessageDeflate::context_takeover`]) repeated content compresses far better, for
//! a compressor and a decompressor per session. A server window smaller than 15 bits
//! cannot be honoured (flate2's deflate has no smaller window): a server declines such an
//! offer, a client fails a connection whose server asks it of the client.
//!
//! ## Heartbeats are built in
//! Every session sends a ping each ping interval (default: its cron period) and answers
//! the peer's pings. Any message from the peer, pongs included, counts as activity: it
//! updates [`Session::last_active`](crate::Session::last_active) and holds off the read
//! timeout, so with a [`read_timeout`](crate::SessionConfig::read_timeout) set, a peer
//! that stops answering is closed with
//! [`ErrorKind::ReadTimeout`](crate::ErrorKind::ReadTimeout) and nothing needs to be
//! written in `on_cron`.
//!
//! ## Closing
//! A close frame from the peer ends the session like an EOF: what the session still
//! writes is flushed, the close frame is answered with the peer's code, and `on_close`
//! runs once. A local close (`close()`, a timeout, an endpoint stop) flushes, sends a
//! close frame (1000, or 1001 when the wait time ran out) and waits up to one second for
//! the peer's answer before the connection is dropped.

mod client;
mod deflate;
mod inflow;
pub mod message;
mod options;
mod outgoing;
mod payload_frames;
mod pipe;
mod reader_actor;
mod server;
mod utf8;

pub use client::WsClient;
pub use deflate::{PerMessageDeflate, DEFAULT_DEFLATE_THRESHOLD};
pub use message::{MessageCodec, TextMessages, WsMessage, WsMessageCodec, WsMessages};
pub use options::{WsBuilder, WsOptions};
pub use server::WsServer;
