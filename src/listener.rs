//! The user's handler: one uniform set of callbacks for every transport.

use tokio_util::codec::Decoder;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::session::{Session, SessionContext};

/// A decoded frame of listener `L`.
pub type Frame<L> = <<L as EventListener>::Codec as Decoder>::Item;

/// Handles the events of one session: getty's `EventListener`.
///
/// Each session has its own listener value, made by the endpoint's `new_session` hook, so
/// per-connection state lives in `self`. All callbacks of one session run on its logic
/// actor, one at a time, in order; they must return quickly (hand long work to another
/// actor or thread and write the reply through a [`Session`] handle).
///
/// Guarantees:
/// - `on_open` runs first. If it returns an error the session is refused: the socket is
///   closed and no other callback runs.
/// - `on_close` runs exactly once for every session whose `on_open` succeeded, whatever
///   ended it (peer EOF, reset, decode error, frame too long, timeout, `close()`,
///   endpoint stop), after the socket is shut.
/// - `on_error` runs just before that when an error ended the session, once.
/// - On a datagram session (UDP), `on_error` may also report an error that concerns
///   one datagram only (a bad, truncated or oversized datagram, an ICMP "port
///   unreachable", a datagram the OS refused to send): no `on_close` follows it and
///   the session goes on. [`SessionStats::soft_errors`](crate::SessionStats) counts them.
/// - A callback that panics ends its session with
///   [`ErrorKind::ListenerPanic`](crate::ErrorKind::ListenerPanic) (`on_error`, then
///   `on_close`); the arbiter and the other sessions go on.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use getty::{EventListener, LengthDelimited, SessionContext};
///
/// struct Echo;
///
/// impl EventListener for Echo {
///     type Codec = LengthDelimited;
///     type Out = Bytes;
///
///     fn on_message(&mut self, session: &mut SessionContext<'_, Self>, frame: BytesMut) {
///         if session.write(frame.freeze()).is_err() {
///             session.close(); // queue full or closing: this peer is too slow
///         }
///     }
/// }
/// ```
pub trait EventListener: Sized + 'static {
    /// The codec: decodes incoming bytes to [`Frame<Self>`] and encodes [`Self::Out`].
    type Codec: Codec<Self::Out>;
    /// The type of frames written to the session.
    type Out: Send + 'static;

    /// The session is about to start. Return an error to refuse it.
    fn on_open(&mut self, session: &mut SessionContext<'_, Self>) -> Result<()> {
        let _ = session;
        Ok(())
    }

    /// One decoded frame arrived.
    ///
    /// Frames that the built-in codecs decode share the buffer they were read into with
    /// other frames (of this session and, for small reads, of other sessions on the same
    /// arbiter), so keeping a small frame for long keeps that buffer allocated (up to
    /// 64 KiB). To store a frame, copy it out (`Bytes::copy_from_slice(&frame)`).
    fn on_message(&mut self, session: &mut SessionContext<'_, Self>, frame: Frame<Self>);

    /// The session's cron period elapsed: send heartbeats, check
    /// [`last_active`](Session::last_active).
    fn on_cron(&mut self, session: &mut SessionContext<'_, Self>) {
        let _ = session;
    }

    /// The session's writability changed (netty's `channelWritabilityChanged`):
    /// `false` once its write queue reached the high-water mark, or the endpoint's memory
    /// budget held it back (writes now fail with
    /// [`ErrorKind::QueueFull`](crate::ErrorKind::QueueFull) or
    /// [`ErrorKind::MemoryBudget`](crate::ErrorKind::MemoryBudget), and reading pauses);
    /// `true` once it drained to the low-water mark, or the budget let it go. Called once
    /// per change, after the batch of frames or the write that caused it, so a producer
    /// pauses and resumes on it instead of polling [`SessionContext::is_writable`].
    fn on_writability(&mut self, session: &mut SessionContext<'_, Self>, writable: bool) {
        let _ = (session, writable);
    }

    /// The server is draining (a rolling restart hands its clients to the next process;
    /// see [`ServerHandle::drain`](crate::ServerHandle::drain)): it takes no new
    /// sessions, and this one should end before the drain deadline. Send the peer a
    /// "go away" of your protocol here and close when it suits; replies already queued
    /// are flushed either way. The default closes the session at once (gracefully, like
    /// [`SessionContext::close`]). A session still open at the deadline is closed by the
    /// server's stop. Called at most once.
    fn on_drain(&mut self, session: &mut SessionContext<'_, Self>) {
        session.close();
    }

    /// An error is ending the session; `on_close` follows. Writes fail from here on.
    ///
    /// On a datagram session it may instead report an error of one datagram, after
    /// which the session goes on (see the trait docs).
    fn on_error(&mut self, session: &Session<Self::Out>, error: &Error) {
        let _ = (session, error);
    }

    /// The session is closed: the socket is shut and queued writes were flushed or failed.
    fn on_close(&mut self, session: &Session<Self::Out>) {
        let _ = session;
    }
}
