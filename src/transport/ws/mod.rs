//! WebSocket endpoints: [`WsServer`] (actix-web, with actix-http's WebSocket codec) and
//! [`WsClient`] (awc), with the same sessions, listeners, codecs and options as TCP.
//!
//! ## Messages and frames
//! Binary WebSocket messages carry the codec's bytes. Each incoming message is fed to
//! the session's codec, which may find zero or more frames in it, and a frame may span
//! messages, so stream codecs such as [`LengthDelimited`](crate::LengthDelimited) work
//! unchanged. Each frame the session writes goes out as exactly one binary message.
//! Fragmented messages are reassembled. A text message ends the session with
//! [`ErrorKind::WebSocket`](crate::ErrorKind::WebSocket) (close code 1003) unless the
//! endpoint allows text (`allow_text`), in which case its bytes go to the codec like binary
//! ones.
//!
//! ## Limits
//! One message, fragmented or not, may hold at most the session's
//! [`max_frame_length`](crate::SessionConfig::max_frame_length) plus
//! [`FRAME_HEADER_ALLOWANCE`](crate::config::FRAME_HEADER_ALLOWANCE) bytes: past that
//! the session ends with [`ErrorKind::FrameTooLong`](crate::ErrorKind::FrameTooLong) or
//! [`ErrorKind::WebSocket`](crate::ErrorKind::WebSocket) and close code 1009. Invalid
//! frames (an unmasked frame from a client, a bad opcode, a broken fragment sequence) end
//! only their session, with [`ErrorKind::WebSocket`](crate::ErrorKind::WebSocket) and close
//! code 1002.
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
mod inflow;
pub mod message;
mod options;
mod payload_frames;
mod pipe;
mod reader_actor;
mod server;
mod utf8;

pub use client::WsClient;
pub use message::{MessageCodec, TextMessages, WsMessage, WsMessageCodec, WsMessages};
pub use options::{WsBuilder, WsOptions};
pub use server::WsServer;
