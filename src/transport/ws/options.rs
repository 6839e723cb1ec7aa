//! The options every WebSocket endpoint has, server and client: what its sessions'
//! readers do with pings and text messages.

use std::time::Duration;

use super::deflate::PerMessageDeflate;

/// The WebSocket options of an endpoint; set through [`WsBuilder`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WsOptions {
    /// Ping period; `None`: the session's cron period.
    pub(crate) ping_interval: Option<Duration>,
    /// Feed text messages to the codec like binary ones instead of failing.
    pub(crate) allow_text: bool,
    /// Message mode (`start_messages`): each message is one frame and keeps its kind.
    pub(crate) messages: bool,
    /// permessage-deflate, offered (client) or accepted (server).
    pub(crate) deflate: Option<PerMessageDeflate>,
}

impl WsOptions {
    /// Longest message a session takes: in message mode the max frame length (a message
    /// is a frame); in codec mode one undecoded frame with its header allowance.
    pub(crate) fn message_bound(&self, config: &crate::SessionConfig) -> usize {
        if self.messages {
            config.max_frame_length
        } else {
            config.read_buffer_bound()
        }
    }
}

/// The options every WebSocket endpoint builder has, server and client, kept in its
/// [`WsOptions`].
pub trait WsBuilder: Sized {
    /// The WebSocket options this builder keeps.
    fn ws_options(&mut self) -> &mut WsOptions;

    /// How often each session pings its peer. Default: the session's cron period.
    fn ping_interval(mut self, every: Duration) -> Self {
        self.ws_options().ping_interval = Some(every);
        self
    }

    /// Codec mode: feeds text messages to the codec like binary ones (their bytes
    /// checked to be UTF-8 first: invalid text closes with 1007). Default: off, and a
    /// text message ends its session with
    /// [`ErrorKind::WebSocket`](crate::ErrorKind::WebSocket) and close code 1003. Message
    /// mode (`start_messages`) always takes text.
    fn allow_text(mut self, allow: bool) -> Self {
        self.ws_options().allow_text = allow;
        self
    }

    /// Compresses messages with permessage-deflate (RFC 7692) when the peer agrees: a
    /// client offers it, a server accepts an offer it can honour (browsers offer it in
    /// every handshake). Default: off; a server then accepts no extension, and the
    /// handshake goes on without one.
    fn per_message_deflate(mut self, deflate: PerMessageDeflate) -> Self {
        self.ws_options().deflate = Some(deflate);
        self
    }
}
