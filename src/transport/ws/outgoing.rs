//! The messages a session sends, as wire frames: actix-http's codec, or, for a data
//! message permessage-deflate compresses, the frame written here with RSV1 set (the
//! codec has no way to set it).

use actix_http::ws::{Codec, Message, OpCode, Parser, ProtocolError};
use bytes::BytesMut;
use tokio_util::codec::Encoder;

use super::deflate::Deflater;

/// RSV1 in a frame's first byte: the message is compressed (RFC 7692 §6).
pub(crate) const RSV1: u8 = 0x40;

/// Encodes one side's outgoing messages.
pub(crate) struct FrameEncoder {
    codec: Codec,
    deflater: Option<Deflater>,
    /// A client masks its frames.
    client: bool,
}

impl FrameEncoder {
    /// The encoder of a server's frames; `deflater` where permessage-deflate was agreed.
    pub(crate) fn server(deflater: Option<Deflater>) -> Self {
        FrameEncoder {
            codec: Codec::new(),
            deflater,
            client: false,
        }
    }

    /// The encoder of a client's (masked) frames.
    pub(crate) fn client(deflater: Option<Deflater>) -> Self {
        FrameEncoder {
            codec: Codec::new().client_mode(),
            deflater,
            client: true,
        }
    }

    /// Appends `msg` as one frame to `dst`.
    pub(crate) fn encode(&mut self, msg: Message, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        if let Some(deflater) = &mut self.deflater {
            let (opcode, payload) = match &msg {
                Message::Text(text) => (OpCode::Text, &text.as_bytes()[..]),
                Message::Binary(bytes) => (OpCode::Binary, &bytes[..]),
                _ => return self.codec.encode(msg, dst),
            };
            if let Some(packed) = deflater.compress(payload) {
                let start = dst.len();
                Parser::write_message(dst, packed, opcode, true, self.client);
                dst[start] |= RSV1;
                return Ok(());
            }
        }
        self.codec.encode(msg, dst)
    }
}
