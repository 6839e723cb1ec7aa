//! How a session ends, as a plain type: the close state machine, with no actor, socket
//! or clock in it.
//!
//! The logic actor tells [`CloseMachine`] what happened (the reader's end, an error, a
//! close asked for, the write queue flushed, a write that failed, the wait time over)
//! and carries out the [`Decision`] it gets back. Every rule of how a session ends lives
//! here, each with a unit test below.

use crate::error::Error;
use crate::metrics::CloseCause;

/// Life phases of a session, kept in an atomic so handles on any thread can see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// `on_open` has not finished yet.
    Opening = 0,
    /// Reading and writing.
    Open = 1,
    /// Closing: no new writes, queued bytes are being flushed.
    Closing = 2,
    /// Gone: the socket is shut and `on_close` has run (or the session was refused).
    Closed = 3,
}

/// What the logic actor does after telling the [`CloseMachine`] of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) enum Decision {
    /// Nothing to do: go on.
    Continue,
    /// Begin the graceful close: encode the writes already handed over (one that cannot
    /// be encoded is told back with [`CloseMachine::owed_write_failed`]), take no more
    /// writes, stop reading, drop the frames not yet delivered, run `on_error` with the
    /// [cause](CloseMachine::cause) if there is one, and flush the write queue until it
    /// is empty ([`CloseMachine::flushed`]) or the wait time is over
    /// ([`CloseMachine::deadline_passed`]).
    Close,
    /// Begin the close as for [`Close`](Self::Close), then abort at once
    /// ([`CloseMachine::abort`]): the writer is broken, nothing more can leave.
    CloseThenAbort,
    /// Everything queued is written: shut the writer down, then tell
    /// [`CloseMachine::writer_shut`].
    ShutDownWriter,
    /// End now: drop the writer, fail what is still queued with the cause (or
    /// `ErrorKind::Closed`), stop reading, run `on_close` if `on_close` (`on_open` ran),
    /// and release the endpoint's slot.
    End {
        /// `on_open` succeeded, so `on_close` is owed.
        on_close: bool,
    },
}

/// The close state of one session: its [`Phase`], the error ending it, and what it
/// waits for before it may close (the frames read before the peer's end).
///
/// The machine decides when a close begins and when the session ends, and guarantees
/// each happens once; the logic actor does the work each [`Decision`] names.
#[derive(Debug)]
pub(crate) struct CloseMachine {
    phase: Phase,
    /// A callback called `close()` (see [`close_flag`](Self::close_flag)). It stays set,
    /// so a callback that asks again is not a new close.
    close_requested: bool,
    /// The reader reported its end (EOF or error), or its queue ended.
    reader_done: bool,
    /// The peer's EOF (`None`) or a read error that arrived while frames still waited
    /// in the backlog, with what began it for the metrics; it ends the session once they
    /// are delivered.
    end_after_backlog: Option<(Option<Error>, CloseCause)>,
    /// The error that is ending the session, if one is.
    cause: Option<Error>,
    /// What began the close, for the metrics (a stop until a close begins otherwise).
    closed_by: CloseCause,
}

impl CloseMachine {
    /// A session whose `on_open` has not run yet.
    pub(crate) fn new() -> Self {
        CloseMachine {
            phase: Phase::Opening,
            close_requested: false,
            reader_done: false,
            end_after_backlog: None,
            cause: None,
            closed_by: CloseCause::Stop,
        }
    }

    /// Where the session is in its life.
    #[inline]
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the session is open: frames are delivered and writes taken.
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Whether the session is closed (ended or refused).
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The error that is ending the session, if one is.
    pub(crate) fn cause(&self) -> Option<&Error> {
        self.cause.as_ref()
    }

    /// What began the close: the peer's end, a stop on this side, or the error that
    /// began it (an error met later while closing does not change it).
    pub(crate) fn closed_by(&self) -> CloseCause {
        self.closed_by
    }

    /// The flag a callback's `close()` sets, lent to the callback's context for the
    /// length of one callback; [`callback_returned`](Self::callback_returned) reads it.
    /// A flag rather than an event, so a callback that delivers many frames checks it
    /// after each one at the cost of a load.
    #[inline]
    pub(crate) fn close_flag(&mut self) -> &mut bool {
        &mut self.close_requested
    }

    /// `on_open` succeeded: the session is open.
    ///
    /// Rule: a `close()` asked for inside `on_open` begins the close once the session is
    /// open, because `on_open` ran: its writes are owed a flush and `on_close` is owed.
    pub(crate) fn opened(&mut self) -> Decision {
        if self.phase != Phase::Opening {
            return Decision::Continue;
        }
        self.phase = Phase::Open;
        if self.close_requested {
            return self.begin(None);
        }
        Decision::Continue
    }

    /// `on_open` failed or panicked: the session is refused.
    ///
    /// Rule: a session that never opened ends at once and without `on_close`: the
    /// listener was never told it opened, so it is not told it closed.
    pub(crate) fn refused(&mut self) -> Decision {
        if self.phase != Phase::Opening {
            return Decision::Continue;
        }
        self.end(false)
    }

    /// A listener callback returned: `result` is its panic, if it panicked.
    ///
    /// Rule: a callback that panicked ends the session with the panic as the cause; one
    /// that called `close()` closes it gracefully. Both go through [`begin`](Self::begin),
    /// so either only begins a close once.
    #[inline]
    pub(crate) fn callback_returned(&mut self, result: Result<(), Error>) -> Decision {
        match result {
            Ok(()) if !self.close_requested => Decision::Continue,
            Ok(()) => self.begin(None),
            Err(err) => self.begin(Some(err)),
        }
    }

    /// A handle's `close()` or the endpoint's shutdown: stop, flushing what is queued
    /// until the wait time's deadline.
    ///
    /// Rule: a stop asked for from outside is graceful and carries no error (`on_error`
    /// is not called); asked for again, or once a close began, it changes nothing.
    pub(crate) fn stop(&mut self) -> Decision {
        self.begin(None)
    }

    /// An error that ends the session gracefully: a read timeout, a write handed over
    /// that could not be encoded, a callback that panicked on a datagram's error.
    ///
    /// Rule: the first cause is the one: `on_error` hears it once, before `on_close`;
    /// errors after a close began are dropped, since `on_error` already ran (or the
    /// close is graceful and its listener was told nothing went wrong).
    pub(crate) fn failed(&mut self, err: Error) -> Decision {
        self.begin(Some(err))
    }

    /// The reader read the peer's EOF. `backlog_empty`: no frame read before it waits
    /// for delivery.
    ///
    /// Rule: frames read before the EOF are still delivered, and the replies to them
    /// flushed, before the close: the close waits for the backlog to drain
    /// ([`backlog_drained`](Self::backlog_drained)), then flushes like any graceful close.
    pub(crate) fn peer_eof(&mut self, backlog_empty: bool) -> Decision {
        self.reader_ended(None, backlog_empty, CloseCause::PeerEof)
    }

    /// Reading ended because this side stopped what the reader reads (a per-peer UDP
    /// server stopped its demultiplexer). `backlog_empty` as for
    /// [`peer_eof`](Self::peer_eof).
    ///
    /// Rule: as for the EOF, but the close is this side's doing (a stop), not the peer's.
    pub(crate) fn source_stopped(&mut self, backlog_empty: bool) -> Decision {
        self.reader_ended(None, backlog_empty, CloseCause::Stop)
    }

    /// Reading failed with `err`. `backlog_empty` as for [`peer_eof`](Self::peer_eof).
    ///
    /// Rule: as for the EOF, frames read before the error are delivered first; then the
    /// session closes with `err` as its cause.
    pub(crate) fn read_failed(&mut self, err: Error, backlog_empty: bool) -> Decision {
        self.reader_ended(Some(err), backlog_empty, CloseCause::PeerEof)
    }

    /// The reader is gone (its queue ended). `backlog_empty` as for
    /// [`peer_eof`](Self::peer_eof).
    ///
    /// Rule: only the reader's first end counts: its queue ending after its last item
    /// (EOF or error) says nothing new; a queue ending with no last item is an EOF.
    pub(crate) fn reader_gone(&mut self, backlog_empty: bool) -> Decision {
        self.reader_ended(None, backlog_empty, CloseCause::PeerEof)
    }

    /// `quiet`: what began the close when `cause` is no error.
    fn reader_ended(
        &mut self,
        cause: Option<Error>,
        backlog_empty: bool,
        quiet: CloseCause,
    ) -> Decision {
        if std::mem::replace(&mut self.reader_done, true) {
            return Decision::Continue;
        }
        if backlog_empty {
            self.begin_for(cause, quiet)
        } else {
            self.end_after_backlog = Some((cause, quiet));
            Decision::Continue
        }
    }

    /// Every frame that waited in the backlog has been delivered.
    ///
    /// Rule: a reader's end that waited for the backlog takes effect now (see
    /// [`peer_eof`](Self::peer_eof)).
    #[inline]
    pub(crate) fn backlog_drained(&mut self) -> Decision {
        match self.end_after_backlog.take() {
            None => Decision::Continue,
            Some((cause, quiet)) => self.begin_for(cause, quiet),
        }
    }

    /// While a close begins ([`Decision::Close`]), a write that was handed over before
    /// it could not be encoded.
    ///
    /// Rule: that error becomes the cause `on_error` hears, in place of what began the
    /// close: nobody waits for such a write, so `on_error` is the only way its writer
    /// learns it was lost, and owed writes count as made before the close began. (The
    /// last of several such errors is the one kept.)
    pub(crate) fn owed_write_failed(&mut self, err: Error) {
        if self.phase == Phase::Closing {
            self.cause = Some(err);
        }
    }

    /// A write to the socket failed with `err`.
    ///
    /// Rule: nothing more can leave, so waiting for the wait time would not help: an
    /// open session closes (`on_error` hears `err`) and aborts at once; a closing one
    /// aborts at once, its queued writers failing with `err` unless the close already
    /// had a cause (`on_error` is not called again).
    pub(crate) fn write_failed(&mut self, err: Error) -> Decision {
        match self.phase {
            Phase::Open => match self.begin(Some(err)) {
                Decision::Close => Decision::CloseThenAbort,
                other => other,
            },
            Phase::Opening | Phase::Closing => {
                if self.cause.is_none() {
                    self.cause = Some(err);
                }
                self.end(self.phase == Phase::Closing)
            }
            Phase::Closed => Decision::Continue,
        }
    }

    /// Queued bytes made no progress for the write timeout (`err` says so).
    ///
    /// Rule: a peer that takes nothing will not take the rest within the wait time
    /// either: it ends the session like a failed write.
    pub(crate) fn write_timed_out(&mut self, err: Error) -> Decision {
        self.write_failed(err)
    }

    /// The write queue is empty and the socket flushed.
    ///
    /// Rule: a closing session shuts its writer down only once everything queued was
    /// written, so no reply is cut short by the close.
    #[inline]
    pub(crate) fn flushed(&mut self) -> Decision {
        if self.phase == Phase::Closing {
            Decision::ShutDownWriter
        } else {
            Decision::Continue
        }
    }

    /// The writer is shut down (or failed to, with nothing left to lose).
    ///
    /// Rule: the graceful close is complete: the session ends and `on_close` runs.
    pub(crate) fn writer_shut(&mut self) -> Decision {
        self.abort()
    }

    /// The wait time since the close began is over.
    ///
    /// Rule: a close flushes for at most the wait time: a session still closing then is
    /// aborted with its bytes unsent, so a peer that reads nothing cannot keep it.
    pub(crate) fn deadline_passed(&mut self) -> Decision {
        self.abort()
    }

    /// End a closing session now, with whatever is still queued unsent (the wait time
    /// is over, the writer broke, or it was shut).
    ///
    /// Rule: only a closing session is ended this way; one already closed has had its
    /// `on_close`.
    pub(crate) fn abort(&mut self) -> Decision {
        if self.phase != Phase::Closing {
            return Decision::Continue;
        }
        self.end(true)
    }

    /// The logic actor stopped (its arbiter stopped it, or it ended).
    ///
    /// Rule: whatever happened before, a session ends exactly once: if nothing ended it
    /// yet, this does, with `on_close` owed if `on_open` succeeded.
    pub(crate) fn stopped(&mut self) -> Decision {
        match self.phase {
            Phase::Closed => Decision::Continue,
            Phase::Opening => self.end(false),
            Phase::Open | Phase::Closing => self.end(true),
        }
    }

    /// Rule: a close begins once, and only from `Open`: before `on_open` returned there
    /// is nothing to close gracefully (a refusal ends the session), and once a close
    /// began its cause is settled.
    fn begin(&mut self, cause: Option<Error>) -> Decision {
        self.begin_for(cause, CloseCause::Stop)
    }

    /// [`begin`](Self::begin), where `quiet` is what began the close if it carries no
    /// error (the peer's end, or a stop).
    fn begin_for(&mut self, cause: Option<Error>, quiet: CloseCause) -> Decision {
        if self.phase != Phase::Open {
            return Decision::Continue;
        }
        self.phase = Phase::Closing;
        self.closed_by = cause
            .as_ref()
            .map_or(quiet, |err| CloseCause::of(err.kind()));
        self.cause = cause;
        Decision::Close
    }

    /// Rule: `End` is decided only here, on the move into `Closed`, and nothing leaves
    /// `Closed`: so `on_close` is decided exactly once, whatever order events arrive in.
    fn end(&mut self, on_close: bool) -> Decision {
        self.phase = Phase::Closed;
        Decision::End { on_close }
    }
}

#[cfg(test)]
mod tests;
