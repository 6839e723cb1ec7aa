//! Messages between a session's actors, its handles and the endpoint supervisor.

use actix::Message;
use bytes::Bytes;

use crate::error::Error;

/// What a write through a [`Session`](super::Session) handle carries.
pub(crate) enum Payload<Out> {
    One(Out),
    Many(Vec<Out>),
    Raw(Bytes),
}

/// From [`Session`](super::Session) handles to the logic actor: close gracefully. Writes
/// travel through the hand-over queue (`super::handoff`), not the mailbox.
pub(crate) struct CloseSession;

impl Message for CloseSession {
    type Result = ();
}

/// From the reader actor to the logic actor, in read order, through the read queue
/// (`super::inbox`).
pub(crate) enum Inbound<Item> {
    /// Every frame one read completed, and where in the session's bytes read they end
    /// (for the memory budget: the bytes up to there are the listener's once the frames
    /// are delivered).
    Frames(Vec<Item>, u64),
    /// The peer finished sending (EOF).
    Eof,
    /// Reading ended because this side stopped the source (a per-peer UDP server's
    /// demultiplexer stopped): handled as an EOF, but no peer ended the session.
    Stopped,
    /// Reading failed; the session ends with this error.
    Failed(Error),
    /// One datagram (or one ICMP report) went wrong: `on_error` hears of it and the
    /// session goes on. Only datagram transports send it.
    Warn(Error),
}

impl<Item> Inbound<Item> {
    /// The message for one item of a `FrameReader` (`session::frame_reader`) whose
    /// frames end at byte `upto` of what it read.
    pub(crate) fn from_batch(batch: Result<Vec<Item>, Error>, upto: u64) -> Self {
        match batch {
            Ok(frames) => Inbound::Frames(frames, upto),
            Err(err) => Inbound::Failed(err),
        }
    }
}

/// From the endpoint supervisor to a session's logic actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Run `on_cron`.
    Cron,
    /// Nothing was read for the read timeout.
    ReadTimeout,
    /// Queued bytes made no progress for the write timeout.
    WriteTimeout,
    /// The endpoint is stopping: close gracefully.
    Shutdown,
    /// The server is draining: run `on_drain`.
    Drain,
    /// The memory budget held the session back: run its write loop again, which asks
    /// the budget anew (it may have room now that others ended).
    Recheck,
}

impl Message for Control {
    type Result = ();
}

/// From the logic actor to its reader actor.
pub(crate) struct StopReading;

impl Message for StopReading {
    type Result = ();
}

/// What a message transport's writer returns (inside an `io::Error`) for one message
/// the OS refused to send, e.g. a datagram to an unreachable address: the session drops
/// that message, fails the write that queued it, reports it to `on_error`, and goes on.
#[derive(Debug)]
pub(crate) struct MessageRejected(pub(crate) Error);

impl MessageRejected {
    /// The `io::Error` a writer returns for it.
    pub(crate) fn into_io(err: Error) -> std::io::Error {
        std::io::Error::other(MessageRejected(err))
    }

    /// Whether `err` is one.
    pub(crate) fn is(err: &std::io::Error) -> bool {
        err.get_ref()
            .is_some_and(|inner| inner.is::<MessageRejected>())
    }
}

impl std::fmt::Display for MessageRejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "message rejected: {}", self.0)
    }
}

impl std::error::Error for MessageRejected {}
