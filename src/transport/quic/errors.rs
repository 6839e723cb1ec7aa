//! How the ways a QUIC connection or stream ends become the session's close cause.

use std::io;
use std::time::Duration;

use quinn::{ConnectionError, ReadError, WriteError};

use crate::error::Error;

/// The cause a lost connection gives its session: `None` for a clean end (the peer
/// closed with application code 0, read as EOF), else the error to close with.
pub(crate) fn connection_lost(err: &ConnectionError, idle: Option<Duration>) -> Option<Error> {
    Some(match err {
        ConnectionError::ApplicationClosed(close) => {
            let code = close.error_code.into_inner();
            if code == 0 {
                return None;
            }
            let reason = String::from_utf8_lossy(&close.reason);
            let said = if reason.is_empty() {
                String::new()
            } else {
                format!(" ({reason})")
            };
            Error::quic(
                Some(code),
                format!("the peer closed the connection with application error {code}{said}"),
            )
        }
        ConnectionError::TimedOut => match idle {
            Some(after) => Error::read_timeout(after),
            None => Error::quic(None, "idle timeout (the peer's): nothing heard from it"),
        },
        ConnectionError::ConnectionClosed(close) => Error::quic(
            None,
            format!("the peer closed the connection for a transport error: {close}"),
        ),
        ConnectionError::Reset => Error::quic(None, "the peer reset the connection"),
        ConnectionError::LocallyClosed => Error::quic(None, "the connection was closed here"),
        other => Error::quic(None, other.to_string()),
    })
}

/// A failed read of the session stream as the reader returns it: `Ok` (EOF) for a clean
/// end of the connection, else an `io::Error` that carries the session's close cause.
pub(crate) fn read_error(err: ReadError, idle: Option<Duration>) -> io::Result<()> {
    let cause = match &err {
        ReadError::ConnectionLost(lost) => match connection_lost(lost, idle) {
            None => return Ok(()),
            Some(cause) => cause,
        },
        ReadError::Reset(code) => Error::quic(
            Some(code.into_inner()),
            format!("the peer reset the session stream with code {code}"),
        ),
        other => Error::quic(None, other.to_string()),
    };
    Err(io::Error::other(cause))
}

/// A failed write to the session stream, carrying the session's close cause.
pub(crate) fn write_error(err: WriteError, idle: Option<Duration>) -> io::Error {
    let cause = match &err {
        WriteError::ConnectionLost(lost) => match connection_lost(lost, idle) {
            None => return io::ErrorKind::BrokenPipe.into(),
            Some(cause) => cause,
        },
        WriteError::Stopped(code) => Error::quic(
            Some(code.into_inner()),
            format!("the peer stopped reading the session stream, code {code}"),
        ),
        other => Error::quic(None, other.to_string()),
    };
    io::Error::other(cause)
}

/// A failed handshake (or connection attempt) as a TLS error, as for TCP.
pub(crate) fn handshake_failed(err: impl std::fmt::Display) -> Error {
    Error::tls(format!("QUIC handshake failed: {err}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use quinn::{ConnectionError, VarInt};

    use super::connection_lost;
    use crate::error::ErrorKind;

    fn app_close(code: u32) -> ConnectionError {
        ConnectionError::ApplicationClosed(quinn::ApplicationClose {
            error_code: VarInt::from_u32(code),
            reason: bytes::Bytes::from_static(b"why"),
        })
    }

    #[test]
    fn code_zero_is_a_clean_end_and_others_carry_their_code() {
        assert!(connection_lost(&app_close(0), None).is_none());
        let err = connection_lost(&app_close(7), None).expect("an error");
        assert_eq!(err.quic_code(), Some(7));
        assert!(err.to_string().contains("why"), "{err}");
    }

    #[test]
    fn the_idle_timeout_is_the_read_timeout() {
        let after = Duration::from_secs(3);
        let err = connection_lost(&ConnectionError::TimedOut, Some(after)).expect("an error");
        assert!(matches!(err.kind(), ErrorKind::ReadTimeout { after: a } if *a == after));
    }
}
