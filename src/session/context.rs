//! What a listener callback gets: the session, and direct access to its write queue.

use std::ops::Deref;

use super::out_buffer::OutBuffer;
use super::Session;
use crate::error::Result;
use crate::listener::EventListener;

/// The session as seen from inside a listener callback.
///
/// Writes here go straight into the session's write queue, with no message hop; they are
/// flushed to the socket when the callback returns, together with every other write of
/// the same batch of frames. A write that returns `Ok` is queued; if the socket later
/// fails, the session ends with `on_error` and `on_close`, so the listener always learns
/// that its queued frames did not leave.
///
/// Derefs to [`Session`] for the id, name, addresses, attributes, stats and limits; use
/// [`session`](Self::session) to get a handle to keep or send to another thread.
pub struct SessionContext<'a, L: EventListener> {
    /// The session's handle.
    pub(crate) session: &'a Session<L::Out>,
    /// The session's write queue.
    pub(crate) out: &'a mut OutBuffer<L::Codec>,
    /// The close machine's flag that `close()` sets (see `CloseMachine::close_flag`).
    pub(crate) close_requested: &'a mut bool,
}

impl<L: EventListener> Deref for SessionContext<'_, L> {
    type Target = Session<L::Out>;
    fn deref(&self) -> &Session<L::Out> {
        self.session
    }
}

impl<L: EventListener> SessionContext<'_, L> {
    /// The session handle (clone it to keep it).
    pub fn session(&self) -> &Session<L::Out> {
        self.session
    }

    /// Encodes `frame` into the write queue. Fails with
    /// [`ErrorKind::QueueFull`](crate::ErrorKind::QueueFull) at the high-water mark,
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed) once the session is closing, or the
    /// codec's [`ErrorKind::Encode`](crate::ErrorKind::Encode); in each case nothing was
    /// queued. A refusal for room is also counted in
    /// [`SessionStats::writes_refused`](crate::SessionStats::writes_refused).
    pub fn write(&mut self, frame: L::Out) -> Result<()> {
        let encoded = self.out.encode(frame);
        self.counted(encoded.map(|()| 1))
    }

    /// Encodes every frame into the write queue, or none of them.
    pub fn write_all(&mut self, frames: impl IntoIterator<Item = L::Out>) -> Result<()> {
        let encoded = self.out.encode_all(frames);
        self.counted(encoded)
    }

    /// Queues bytes as they are, bypassing the codec.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let queued = self.out.push_raw(bytes);
        self.counted(queued.map(|()| 1))
    }

    /// Counts `frames` written, or the refusal.
    fn counted(&mut self, frames: Result<usize>) -> Result<()> {
        let shared = self.session.shared();
        match frames {
            Ok(n) => {
                shared.stats.add_frames_written(n);
                Ok(())
            }
            Err(err) => {
                if err.is_queue_full() {
                    shared.note_refused(&err);
                }
                Err(err)
            }
        }
    }

    /// Closes the session gracefully once this callback returns: no further frames are
    /// delivered, what is queued (including writes made in this callback) is flushed for
    /// at most the wait time, then `on_close` runs.
    pub fn close(&mut self) {
        *self.close_requested = true;
    }

    /// Whether a write now would be accepted by the queue's water marks.
    pub fn is_writable(&self) -> bool {
        self.out.is_writable() && !*self.close_requested
    }

    /// Encoded bytes waiting for the socket right now.
    pub fn queued_bytes(&self) -> usize {
        self.out.len()
    }
}
