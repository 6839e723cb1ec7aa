//! Unit tests of `error`.

use super::*;
use std::error::Error as _;

#[test]
fn rustls_errors_inside_io_errors_become_tls_errors() {
    let alert = rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate);
    let err = Error::from(io::Error::new(io::ErrorKind::InvalidData, alert));
    assert!(err.is_tls(), "{err:?}");
    assert_eq!(
        err.tls_reason(),
        Some("received fatal alert: BadCertificate")
    );
    let err = err.with_session(SessionId::of(3));
    assert_eq!(
        err.to_string(),
        "session#3: TLS error: received fatal alert: BadCertificate"
    );
    let plain = Error::from(io::Error::from(io::ErrorKind::ConnectionReset));
    assert!(!plain.is_tls());
}

#[test]
fn session_is_attached_once_and_shown() {
    let err = Error::frame_too_long(10, 4);
    let err = err
        .with_session(SessionId::of(7))
        .with_session(SessionId::of(9));
    assert_eq!(err.session(), Some(SessionId::of(7)));
    assert_eq!(
        err.to_string(),
        "session#7: frame too long: 10 bytes, max 4"
    );
}

#[test]
fn every_kind_takes_a_session_and_keeps_its_message() {
    let id = SessionId::of(7);
    let kinds = [
        (
            Error::queue_full(300, 256),
            "write queue full: 300 bytes queued, high-water mark 256",
        ),
        (
            Error::handoff_full(4, 4),
            "hand-over queue full: 4 frames wait to be encoded, limit 4",
        ),
        (
            Error::memory_budget(10, 5, 100),
            "memory budget spent: 100 bytes held across the endpoint's sessions; \
             this one holds 10 bytes in its write queue, its share is 5",
        ),
        (
            Error::write_timeout(Duration::from_secs(5)),
            "write timeout: no write progress for 5s",
        ),
        (
            Error::read_timeout(Duration::from_millis(20)),
            "read timeout: nothing read for 20ms",
        ),
        (Error::refused("full"), "refused: full"),
        (
            Error::websocket("bad opcode"),
            "websocket error: bad opcode",
        ),
        (
            Error::config("no TLS on UDP"),
            "invalid options: no TLS on UDP",
        ),
        (
            Error::listener_panic(Arc::from("boom")),
            "listener panicked: boom",
        ),
    ];
    for (err, message) in kinds {
        assert_eq!(err.session(), None);
        assert_eq!(err.to_string(), message);
        let on = err.with_session(id);
        assert_eq!(on.session(), Some(id));
        assert_eq!(on.to_string(), format!("session#7: {message}"));
    }
    let closed = Error::closed(id);
    assert!(closed.is_closed());
    assert!(matches!(closed.kind(), ErrorKind::Closed));
    assert_eq!(closed.session(), Some(id));
    assert_eq!(closed.to_string(), "session#7: session closed");
    let full = Error::queue_full(300, 256).with_session(id);
    assert!(full.is_queue_full());
    assert!(matches!(
        full.kind(),
        ErrorKind::QueueFull {
            queued: 300,
            limit: 256
        }
    ));
    assert!(full.source().is_none());
}

#[test]
fn io_errors_keep_their_source() {
    let err = Error::from(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
    assert!(
        matches!(err.kind(), ErrorKind::Io { source } if source.kind() == io::ErrorKind::ConnectionReset)
    );
    assert_eq!(err.to_string(), "I/O error: reset");
    let source = err.source().expect("an I/O error has a source");
    assert_eq!(source.to_string(), "reset");
    let err = err.with_session(SessionId::of(2));
    assert_eq!(err.to_string(), "session#2: I/O error: reset");
    assert_eq!(err.source().map(|s| s.to_string()), Some("reset".into()));
    let decode = Error::from_decode(io::Error::new(io::ErrorKind::InvalidData, "bad"));
    assert_eq!(decode.source().map(|s| s.to_string()), Some("bad".into()));
}

#[test]
fn codec_errors_keep_our_kind() {
    let ours = Error::frame_too_long(1, 0);
    let wrapped = io::Error::new(io::ErrorKind::InvalidData, ours);
    assert!(matches!(
        Error::from_decode(wrapped).kind(),
        ErrorKind::FrameTooLong { len: 1, .. }
    ));
    let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
    assert!(matches!(
        Error::from_decode(eof).kind(),
        ErrorKind::Decode { .. }
    ));
    let garbage = io::Error::new(io::ErrorKind::InvalidData, "bad utf-8");
    assert!(matches!(
        Error::from_decode(garbage).kind(),
        ErrorKind::Decode { .. }
    ));
    let custom: BoxError = "not a frame".into();
    assert!(matches!(
        Error::from_encode(custom).kind(),
        ErrorKind::Encode { .. }
    ));
}

#[test]
fn stays_small_for_the_hot_path() {
    // Every write returns a Result<(), Error>: keep it within five words.
    assert!(std::mem::size_of::<Error>() <= 40);
    assert!(std::mem::size_of::<Result<()>>() <= 40);
}
