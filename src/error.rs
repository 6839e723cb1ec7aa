//! The one error type of the crate: [`Error`], what went wrong ([`ErrorKind`]) and the
//! session it concerns.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::session::SessionId;

/// A boxed error from a user codec, kept whole so callers can downcast it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in getty, with the session it concerns when there is one.
///
/// What went wrong is its [`kind`](Error::kind), an [`ErrorKind`] to match on:
///
/// ```
/// use getty::{Error, ErrorKind};
///
/// fn retry_later(err: &Error) -> bool {
///     matches!(err.kind(), ErrorKind::QueueFull { .. } | ErrorKind::HandoffFull { .. })
/// }
/// assert!(!retry_later(&Error::refused("busy")));
/// ```
///
/// The error is cheap to clone (payloads are shared), so one failure can be handed to
/// every write that it cancels. Errors made by a session carry its [`SessionId`]
/// ([`Error::session`]); errors made by codecs get it attached by the session that ran
/// them. Its message starts with the session when there is one, e.g.
/// `session#7: write queue full: 262144 bytes queued, high-water mark 262144`.
#[derive(Debug, Clone)]
pub struct Error {
    session: Option<SessionId>,
    kind: ErrorKind,
}

/// What went wrong: the kind of an [`Error`], to match on.
///
/// New kinds and new fields may come in later versions, so match with a wildcard arm and
/// with `{ .. }` in patterns of kinds that carry data.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The socket failed (reset, broken pipe, ...).
    #[error("I/O error: {source}")]
    #[non_exhaustive]
    Io {
        /// The OS error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The codec could not decode the peer's bytes.
    #[error("decode error: {source}")]
    #[non_exhaustive]
    Decode {
        /// The codec's own error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The codec could not encode a frame given to a write.
    #[error("encode error: {source}")]
    #[non_exhaustive]
    Encode {
        /// The codec's own error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A frame is longer than the session's max frame length. Raised as soon as the
    /// length is known (from a header) or the undecoded bytes pass the bound, before any
    /// buffer grows to hold the frame.
    #[error("frame too long: {len} bytes, max {max}")]
    #[non_exhaustive]
    FrameTooLong {
        /// The announced length, or the bytes buffered when the bound was passed.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// Nothing was read for the session's read timeout.
    #[error("read timeout: nothing read for {after:?}")]
    #[non_exhaustive]
    ReadTimeout {
        /// The timeout in force.
        after: Duration,
    },
    /// Queued bytes could not be written for the session's write timeout.
    #[error("write timeout: no write progress for {after:?}")]
    #[non_exhaustive]
    WriteTimeout {
        /// The timeout in force.
        after: Duration,
    },
    /// The write queue is above its high-water mark; nothing of this write was queued.
    #[error("write queue full: {queued} bytes queued, high-water mark {limit}")]
    #[non_exhaustive]
    QueueFull {
        /// Bytes waiting to be written when the write was refused.
        queued: usize,
        /// The high-water mark.
        limit: usize,
    },
    /// The session's hand-over queue (frames written through [`Session`](crate::Session)
    /// handles and not yet encoded, see
    /// [`SessionConfig::handoff_queue`](crate::SessionConfig::handoff_queue)) is full;
    /// nothing of this write was queued.
    #[error("hand-over queue full: {frames} frames wait to be encoded, limit {limit}")]
    #[non_exhaustive]
    HandoffFull {
        /// Frames waiting in the hand-over queue when the write was refused.
        frames: usize,
        /// The queue's capacity in frames.
        limit: usize,
    },
    /// The endpoint's memory budget is spent (its sessions together hold that many bytes
    /// buffered) and this session holds at least its fair share of it: nothing of this
    /// write was queued. See `memory_budget` on the endpoint builders.
    #[error("memory budget spent: {budget} bytes held across the endpoint's sessions; this one holds {queued} bytes in its write queue, its share is {share}")]
    #[non_exhaustive]
    MemoryBudget {
        /// Bytes in this session's write queue when the write was refused.
        queued: usize,
        /// One session's fair share of the budget then.
        share: usize,
        /// The endpoint's budget.
        budget: usize,
    },
    /// The session is closed or closing; nothing of this write was queued, or what was
    /// queued could not be written before the session ended.
    #[error("session closed")]
    Closed,
    /// The connection or session was refused (by `new_session`, `on_open`, or a limit).
    #[error("refused: {reason}")]
    #[non_exhaustive]
    Refused {
        /// Why.
        reason: Arc<str>,
    },
    /// The WebSocket peer broke the protocol (an invalid or unmasked frame, a message
    /// over the size limit, a text message where only binary is allowed), or a WebSocket
    /// handshake failed.
    #[error("websocket error: {reason}")]
    #[non_exhaustive]
    WebSocket {
        /// What went wrong.
        reason: Arc<str>,
    },
    /// TLS failed: the handshake (a bad or untrusted certificate, a wrong server name, a
    /// peer that does not speak TLS, a handshake that timed out) or the TLS layer of an
    /// open session (an alert from the peer). The reason is rustls's own words where
    /// rustls made the error, e.g. `invalid peer certificate: UnknownIssuer`.
    #[error("TLS error: {reason}")]
    #[non_exhaustive]
    Tls {
        /// What went wrong.
        reason: Arc<str>,
    },
    /// A QUIC connection ended other than cleanly: the peer closed it with an application
    /// error code other than 0 (a close with code 0 is a clean end, read as EOF), closed
    /// it for a transport error, reset or stopped the session's stream, or the
    /// connection was lost another way. A QUIC idle timeout is
    /// [`ReadTimeout`](Self::ReadTimeout) and a failed handshake [`Tls`](Self::Tls).
    #[error("QUIC: {reason}")]
    #[non_exhaustive]
    Quic {
        /// The application error code the peer closed the connection (or reset or
        /// stopped the stream) with, when it gave one.
        code: Option<u64>,
        /// What happened, with the peer's reason phrase when it gave one.
        reason: Arc<str>,
    },
    /// An endpoint was set up with an option its transport cannot honour, or with
    /// options that contradict each other; it did not start. Such an error concerns an
    /// endpoint: it has no session.
    #[error("invalid options: {reason}")]
    #[non_exhaustive]
    Config {
        /// Which option, and why.
        reason: Arc<str>,
    },
    /// A listener callback panicked; the session was ended.
    #[error("listener panicked: {message}")]
    #[non_exhaustive]
    ListenerPanic {
        /// The panic message, when it was a string.
        message: Arc<str>,
    },
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` that concerns no session yet.
    fn new(kind: ErrorKind) -> Self {
        Error {
            session: None,
            kind,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The session this error concerns, when known.
    pub fn session(&self) -> Option<SessionId> {
        self.session
    }

    /// Returns the error with `id` as its session (kept if one is already set).
    pub fn with_session(mut self, id: SessionId) -> Self {
        self.session.get_or_insert(id);
        self
    }

    /// A refusal with a reason, for `new_session` hooks and `on_open`
    /// ([`ErrorKind::Refused`]).
    pub fn refused(reason: impl Into<String>) -> Self {
        Error::new(ErrorKind::Refused {
            reason: Arc::from(reason.into()),
        })
    }

    /// A frame of `len` bytes over the limit `max` ([`ErrorKind::FrameTooLong`]), for
    /// codecs that bound their frames.
    pub fn frame_too_long(len: usize, max: usize) -> Self {
        Error::new(ErrorKind::FrameTooLong { len, max })
    }

    /// True for [`ErrorKind::ReadTimeout`] and [`ErrorKind::WriteTimeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::ReadTimeout { .. } | ErrorKind::WriteTimeout { .. }
        )
    }

    /// True for [`ErrorKind::Tls`].
    pub fn is_tls(&self) -> bool {
        matches!(self.kind, ErrorKind::Tls { .. })
    }

    /// The reason of an [`ErrorKind::Tls`], `None` for other errors.
    pub fn tls_reason(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Tls { reason } => Some(reason),
            _ => None,
        }
    }

    /// The application error code of an [`ErrorKind::Quic`] that carries one: what the
    /// QUIC peer closed the connection (or reset or stopped the stream) with.
    pub fn quic_code(&self) -> Option<u64> {
        match &self.kind {
            ErrorKind::Quic { code, .. } => *code,
            _ => None,
        }
    }

    /// True for [`ErrorKind::QueueFull`], [`ErrorKind::HandoffFull`] and
    /// [`ErrorKind::MemoryBudget`]: a write refused for room, worth trying again once the
    /// session drained (nothing of it was queued).
    pub fn is_queue_full(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::QueueFull { .. }
                | ErrorKind::HandoffFull { .. }
                | ErrorKind::MemoryBudget { .. }
        )
    }

    /// True for [`ErrorKind::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self.kind, ErrorKind::Closed)
    }

    /// A TLS error with a reason and no session yet.
    pub(crate) fn tls(reason: impl Into<String>) -> Self {
        Error::new(ErrorKind::Tls {
            reason: Arc::from(reason.into()),
        })
    }

    /// A QUIC connection or stream that ended other than cleanly.
    pub(crate) fn quic(code: Option<u64>, reason: impl Into<String>) -> Self {
        Error::new(ErrorKind::Quic {
            code,
            reason: Arc::from(reason.into()),
        })
    }

    /// An endpoint option its transport cannot honour.
    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config {
            reason: Arc::from(reason.into()),
        })
    }

    /// A WebSocket protocol or handshake failure, no session yet.
    pub(crate) fn websocket(reason: impl Into<String>) -> Self {
        Error::new(ErrorKind::WebSocket {
            reason: Arc::from(reason.into()),
        })
    }

    /// Session `id` is closed or closing.
    pub(crate) fn closed(id: SessionId) -> Self {
        Error::new(ErrorKind::Closed).with_session(id)
    }

    /// A write refused at the high-water mark `limit` with `queued` bytes queued.
    pub(crate) fn queue_full(queued: usize, limit: usize) -> Self {
        Error::new(ErrorKind::QueueFull { queued, limit })
    }

    /// A write refused with `frames` frames in a hand-over queue of `limit`.
    pub(crate) fn handoff_full(frames: usize, limit: usize) -> Self {
        Error::new(ErrorKind::HandoffFull { frames, limit })
    }

    /// A write refused by a spent memory budget.
    pub(crate) fn memory_budget(queued: usize, share: usize, budget: usize) -> Self {
        Error::new(ErrorKind::MemoryBudget {
            queued,
            share,
            budget,
        })
    }

    /// Nothing read for `after`.
    pub(crate) fn read_timeout(after: Duration) -> Self {
        Error::new(ErrorKind::ReadTimeout { after })
    }

    /// No write progress for `after`.
    pub(crate) fn write_timeout(after: Duration) -> Self {
        Error::new(ErrorKind::WriteTimeout { after })
    }

    /// A listener callback panicked with `message`.
    pub(crate) fn listener_panic(message: Arc<str>) -> Self {
        Error::new(ErrorKind::ListenerPanic { message })
    }

    /// Wraps a codec's decode error, keeping a getty [`Error`] (or an `io::Error`
    /// carrying one) as it is instead of nesting it.
    pub(crate) fn from_decode(err: impl Into<BoxError>) -> Self {
        Self::from_codec(err.into(), |source| ErrorKind::Decode { source })
    }

    /// Wraps a codec's encode error, like [`Error::from_decode`].
    pub(crate) fn from_encode(err: impl Into<BoxError>) -> Self {
        Self::from_codec(err.into(), |source| ErrorKind::Encode { source })
    }

    fn from_codec(
        err: BoxError,
        wrap: impl FnOnce(Arc<dyn std::error::Error + Send + Sync>) -> ErrorKind,
    ) -> Self {
        let err = match err.downcast::<Error>() {
            Ok(ours) => return *ours,
            Err(other) => other,
        };
        match err.downcast::<io::Error>() {
            // Codecs do no I/O: an io::Error from one describes bad bytes.
            Ok(io) => match io.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
                Some(ours) => ours.clone(),
                None => Error::new(wrap(Arc::new(*io))),
            },
            Err(other) => Error::new(wrap(Arc::from(other))),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(id) = self.session {
            write!(f, "{id}: ")?;
        }
        fmt::Display::fmt(&self.kind, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        // An io::Error may carry one of ours (codecs must speak io::Error to tokio-util).
        if let Some(ours) = err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<Error>())
        {
            return ours.clone();
        }
        // tokio-rustls reports TLS failures as io::Errors that carry the rustls error.
        if let Some(tls) = err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Error::tls(tls.to_string());
        }
        Error::new(ErrorKind::Io {
            source: Arc::new(err),
        })
    }
}

#[cfg(test)]
mod tests;
