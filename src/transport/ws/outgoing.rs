//! The frames a session sends, encoded the moment they are queued: with actix-http's
//! frame writer, and, for a data message permessage-deflate compresses, with RSV1 set on
//! it afterwards (the writer has no way to set it).

use actix_http::ws::{Message, OpCode, Parser};
use bytes::BytesMut;

use super::deflate::Deflater;

/// RSV1 in a frame's first byte: the message is compressed (RFC 7692 §6).
pub(crate) const RSV1: u8 = 0x40;

/// Encodes one side's outgoing frames.
pub(crate) struct FrameEncoder {
    deflater: Option<Deflater>,
    /// A client masks its frames.
    client: bool,
}

impl FrameEncoder {
    /// The encoder of a server's frames; `deflater` where permessage-deflate was agreed.
    pub(crate) fn server(deflater: Option<Deflater>) -> Self {
        FrameEncoder {
            deflater,
            client: false,
        }
    }

    /// The encoder of a client's (masked) frames.
    pub(crate) fn client(deflater: Option<Deflater>) -> Self {
        FrameEncoder {
            deflater,
            client: true,
        }
    }

    /// Appends one data message, text or binary, as one frame.
    pub(crate) fn data(&mut self, payload: &[u8], text: bool, dst: &mut BytesMut) {
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        if let Some(packed) = self.deflater.as_mut().and_then(|d| d.compress(payload)) {
            let start = dst.len();
            Parser::write_message(dst, packed, opcode, true, self.client);
            dst[start] |= RSV1;
            return;
        }
        Parser::write_message(dst, payload, opcode, true, self.client);
    }

    /// Appends a control message (ping, pong or close) as one frame; data messages go
    /// through [`data`](Self::data).
    pub(crate) fn control(&mut self, msg: Message, dst: &mut BytesMut) {
        match msg {
            Message::Ping(payload) => {
                Parser::write_message(dst, payload, OpCode::Ping, true, self.client)
            }
            Message::Pong(payload) => {
                Parser::write_message(dst, payload, OpCode::Pong, true, self.client)
            }
            Message::Close(reason) => Parser::write_close(dst, reason, self.client),
            Message::Text(text) => self.data(text.as_bytes(), true, dst),
            Message::Binary(bytes) => self.data(&bytes, false, dst),
            // The pipe queues no fragments and no other kind of message.
            Message::Continuation(_) | Message::Nop => {}
        }
    }
}
