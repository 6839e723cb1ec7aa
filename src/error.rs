//! The one error type of the crate.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// A boxed error from a user codec, kept whole so callers can downcast it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Identifies one session for the life of the process.
///
/// Ids are unique across every endpoint of the process and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub(crate) u64);

impl SessionId {
    /// The number behind the id.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session#{}", self.0)
    }
}

/// Prefix for messages of errors that know their session.
struct On(Option<SessionId>);

impl fmt::Display for On {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, "{id}: "),
            None => Ok(()),
        }
    }
}

/// Everything that can go wrong in getty, with the session it concerns when there is one.
///
/// The error is cheap to clone (payloads are shared), so one failure can be handed to
/// every write that it cancels. Errors made by a session carry its [`SessionId`]
/// ([`Error::session`]); errors made by codecs get it attached by the session that ran them.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed (reset, broken pipe, ...).
    #[error("{}I/O error: {source}", On(*session))]
    Io {
        /// Session concerned, if known.
        session: Option<SessionId>,
        /// The OS error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The codec could not decode the peer's bytes.
    #[error("{}decode error: {source}", On(*session))]
    Decode {
        /// Session concerned, if known.
        session: Option<SessionId>,
        /// The codec's own error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The codec could not encode a frame given to a write.
    #[error("{}encode error: {source}", On(*session))]
    Encode {
        /// Session concerned, if known.
        session: Option<SessionId>,
        /// The codec's own error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A frame is longer than the session's max frame length. Raised as soon as the
    /// length is known (from a header) or the undecoded bytes pass the bound, before any
    /// buffer grows to hold the frame.
    #[error("{}frame too long: {len} bytes, max {max}", On(*session))]
    FrameTooLong {
        /// Session concerned, if known.
        session: Option<SessionId>,
        /// The announced length, or the bytes buffered when the bound was passed.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// Nothing was read for the session's read timeout.
    #[error("{}read timeout: nothing read for {after:?}", On(*session))]
    ReadTimeout {
        /// Session concerned, if known.
        session: Option<SessionId>,
        /// The timeout in force.
        after: Duration,
    },
    /// Queued bytes could not be written for the session's write timeout.
    #[error("{}write timeout: no write progress for {after:?}", On(*session))]
    WriteTimeout {
        /// Session concerned, if known.
        session: Option<SessionId>,
        /// The timeout in force.
        after: Duration,
    },
    /// The write queue is above its high-water mark; nothing of this write was queued.
    #[error("{}write queue full: {queued} bytes queued, high-water mark {limit}", On(*session))]
    QueueFull {
        /// Session concerned, if known.
        session: Option<SessionId>,
        /// Bytes waiting to be written when the write was refused.
        queued: usize,
        /// The high-water mark.
        limit: usize,
    },
    /// The session's hand-over queue (frames written through [`Session`](crate::Session)
    /// handles and not yet encoded, see
    /// [`SessionConfig::handoff_queue`](crate::SessionConfig::handoff_queue)) is full;
    /// nothing of this write was queued.
    #[error("{}hand-over queue full: {frames} frames wait to be encoded, limit {limit}", On(*session))]
    HandoffFull {
        /// Session concerned, if known.
        session: Option<SessionId>,
        /// Frames waiting in the hand-over queue when the write was refused.
        frames: usize,
        /// The queue's capacity in frames.
        limit: usize,
    },
    /// The endpoint's memory budget is spent (its sessions together hold that many bytes
    /// buffered) and this session holds at least its fair share of it: nothing of this
    /// write was queued. See `memory_budget` on the endpoint builders.
    #[error("{}memory budget spent: {budget} bytes held across the endpoint's sessions; this one holds {queued} bytes in its write queue, its share is {share}", On(*session))]
    MemoryBudget {
        /// Session concerned, if known.
        session: Option<SessionId>,
        /// Bytes in this session's write queue when the write was refused.
        queued: usize,
        /// One session's fair share of the budget then.
        share: usize,
        /// The endpoint's budget.
        budget: usize,
    },
    /// The session is closed or closing; nothing of this write was queued, or what was
    /// queued could not be written before the session ended.
    #[error("{}session closed", On(*session))]
    Closed {
        /// Session concerned, if known.
        session: Option<SessionId>,
    },
    /// The connection or session was refused (by `new_session`, `on_open`, or a limit).
    #[error("{}refused: {reason}", On(*session))]
    Refused {
        /// Session concerned, if known.
        session: Option<SessionId>,
        /// Why.
        reason: Arc<str>,
    },
    /// The WebSocket peer broke the protocol (an invalid or unmasked frame, a message
    /// over the size limit, a text message where only binary is allowed), or a WebSocket
    /// handshake failed.
    #[error("{}websocket error: {reason}", On(*session))]
    WebSocket {
        /// Session concerned, if known.
        session: Option<SessionId>,
        /// What went wrong.
        reason: Arc<str>,
    },
    /// TLS failed: the handshake (a bad or untrusted certificate, a wrong server name, a
    /// peer that does not speak TLS, a handshake that timed out) or the TLS layer of an
    /// open session (an alert from the peer). The reason is rustls's own words where
    /// rustls made the error, e.g. `invalid peer certificate: UnknownIssuer`.
    #[error("{}TLS error: {reason}", On(*session))]
    Tls {
        /// Session concerned, if known.
        session: Option<SessionId>,
        /// What went wrong.
        reason: Arc<str>,
    },
    /// An endpoint was set up with an option its transport cannot honour, or with
    /// options that contradict each other; it did not start.
    #[error("{}invalid options: {reason}", On(*session))]
    Config {
        /// Session concerned: always `None`, the error concerns an endpoint.
        session: Option<SessionId>,
        /// Which option, and why.
        reason: Arc<str>,
    },
    /// A listener callback panicked; the session was ended.
    #[error("{}listener panicked: {message}", On(*session))]
    ListenerPanic {
        /// Session concerned, if known.
        session: Option<SessionId>,
        /// The panic message, when it was a string.
        message: Arc<str>,
    },
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A refusal with a reason, for `new_session` hooks and `on_open`.
    pub fn refused(reason: impl Into<String>) -> Self {
        Error::Refused {
            session: None,
            reason: Arc::from(reason.into()),
        }
    }

    /// The session this error concerns, when known.
    pub fn session(&self) -> Option<SessionId> {
        match self {
            Error::Io { session, .. }
            | Error::Decode { session, .. }
            | Error::Encode { session, .. }
            | Error::FrameTooLong { session, .. }
            | Error::ReadTimeout { session, .. }
            | Error::WriteTimeout { session, .. }
            | Error::QueueFull { session, .. }
            | Error::HandoffFull { session, .. }
            | Error::MemoryBudget { session, .. }
            | Error::Closed { session }
            | Error::Refused { session, .. }
            | Error::WebSocket { session, .. }
            | Error::Tls { session, .. }
            | Error::Config { session, .. }
            | Error::ListenerPanic { session, .. } => *session,
        }
    }

    /// Returns the error with `id` as its session (kept if one is already set).
    pub fn with_session(mut self, id: SessionId) -> Self {
        match &mut self {
            Error::Io { session, .. }
            | Error::Decode { session, .. }
            | Error::Encode { session, .. }
            | Error::FrameTooLong { session, .. }
            | Error::ReadTimeout { session, .. }
            | Error::WriteTimeout { session, .. }
            | Error::QueueFull { session, .. }
            | Error::HandoffFull { session, .. }
            | Error::MemoryBudget { session, .. }
            | Error::Closed { session }
            | Error::Refused { session, .. }
            | Error::WebSocket { session, .. }
            | Error::Tls { session, .. }
            | Error::Config { session, .. }
            | Error::ListenerPanic { session, .. } => {
                session.get_or_insert(id);
            }
        }
        self
    }

    /// True for [`Error::ReadTimeout`] and [`Error::WriteTimeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::ReadTimeout { .. } | Error::WriteTimeout { .. })
    }

    /// True for [`Error::Tls`].
    pub fn is_tls(&self) -> bool {
        matches!(self, Error::Tls { .. })
    }

    /// The reason of an [`Error::Tls`], `None` for other errors.
    pub fn tls_reason(&self) -> Option<&str> {
        match self {
            Error::Tls { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// A TLS error with a reason and no session yet.
    pub(crate) fn tls(reason: impl Into<String>) -> Self {
        Error::Tls {
            session: None,
            reason: Arc::from(reason.into()),
        }
    }

    /// True for [`Error::QueueFull`], [`Error::HandoffFull`] and [`Error::MemoryBudget`]:
    /// a write refused for room, worth trying again once the session drained (nothing of
    /// it was queued).
    pub fn is_queue_full(&self) -> bool {
        matches!(
            self,
            Error::QueueFull { .. } | Error::HandoffFull { .. } | Error::MemoryBudget { .. }
        )
    }

    /// True for [`Error::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed { .. })
    }

    /// An endpoint option its transport cannot honour.
    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Error::Config {
            session: None,
            reason: Arc::from(reason.into()),
        }
    }

    pub(crate) fn websocket(reason: impl Into<String>) -> Self {
        Error::WebSocket {
            session: None,
            reason: Arc::from(reason.into()),
        }
    }

    pub(crate) fn closed(id: SessionId) -> Self {
        Error::Closed { session: Some(id) }
    }

    /// Wraps a codec's decode error, keeping a getty [`Error`] (or an `io::Error`
    /// carrying one) as it is instead of nesting it.
    pub(crate) fn from_decode(err: impl Into<BoxError>) -> Self {
        Self::from_codec(err.into(), |source| Error::Decode {
            session: None,
            source,
        })
    }

    /// Wraps a codec's encode error, like [`Error::from_decode`].
    pub(crate) fn from_encode(err: impl Into<BoxError>) -> Self {
        Self::from_codec(err.into(), |source| Error::Encode {
            session: None,
            source,
        })
    }

    fn from_codec(
        err: BoxError,
        wrap: impl FnOnce(Arc<dyn std::error::Error + Send + Sync>) -> Error,
    ) -> Self {
        let err = match err.downcast::<Error>() {
            Ok(ours) => return *ours,
            Err(other) => other,
        };
        match err.downcast::<io::Error>() {
            // Codecs do no I/O: an io::Error from one describes bad bytes.
            Ok(io) => match io.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
                Some(ours) => ours.clone(),
                None => wrap(Arc::new(*io)),
            },
            Err(other) => wrap(Arc::from(other)),
        }
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
        Error::Io {
            session: None,
            source: Arc::new(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_inside_io_errors_become_tls_errors() {
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate);
        let err = Error::from(io::Error::new(io::ErrorKind::InvalidData, alert));
        assert!(err.is_tls(), "{err:?}");
        assert_eq!(
            err.tls_reason(),
            Some("received fatal alert: BadCertificate")
        );
        let err = err.with_session(SessionId(3));
        assert_eq!(
            err.to_string(),
            "session#3: TLS error: received fatal alert: BadCertificate"
        );
        let plain = Error::from(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(!plain.is_tls());
    }

    #[test]
    fn session_is_attached_once_and_shown() {
        let err = Error::FrameTooLong {
            session: None,
            len: 10,
            max: 4,
        };
        let err = err.with_session(SessionId(7)).with_session(SessionId(9));
        assert_eq!(err.session(), Some(SessionId(7)));
        assert_eq!(
            err.to_string(),
            "session#7: frame too long: 10 bytes, max 4"
        );
    }

    #[test]
    fn codec_errors_keep_our_kind() {
        let ours = Error::FrameTooLong {
            session: None,
            len: 1,
            max: 0,
        };
        let wrapped = io::Error::new(io::ErrorKind::InvalidData, ours);
        assert!(matches!(
            Error::from_decode(wrapped),
            Error::FrameTooLong { len: 1, .. }
        ));
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert!(matches!(Error::from_decode(eof), Error::Decode { .. }));
        let garbage = io::Error::new(io::ErrorKind::InvalidData, "bad utf-8");
        assert!(matches!(Error::from_decode(garbage), Error::Decode { .. }));
        let custom: BoxError = "not a frame".into();
        assert!(matches!(Error::from_encode(custom), Error::Encode { .. }));
    }
}
