//! Messages between a session's actors, its handles and the endpoint supervisor.

use actix::Message;
use bytes::Bytes;
use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// What a write carries.
pub(crate) enum Payload<Out> {
    One(Out),
    Many(Vec<Out>),
    Raw(Bytes),
}

/// From [`Session`](super::Session) handles to the logic actor.
pub(crate) enum Command<Out> {
    /// Queue a payload; `ack`, if any, resolves once its bytes reached the OS, or with
    /// the error.
    Write {
        payload: Payload<Out>,
        ack: Option<oneshot::Sender<Result<()>>>,
    },
    /// Close gracefully.
    Close,
}

impl<Out> Message for Command<Out> {
    type Result = ();
}

/// From the reader actor to the logic actor, in read order.
pub(crate) enum Inbound<Item> {
    /// Every frame one read completed.
    Frames(Vec<Item>),
    /// The peer finished sending (EOF).
    Eof,
    /// Reading failed; the session ends with this error.
    Failed(Error),
    /// One datagram (or one ICMP report) went wrong: `on_error` hears of it and the
    /// session goes on. Only datagram transports send it.
    Warn(Error),
}

impl<Item> Inbound<Item> {
    /// The message for one item of a [`FrameReader`](crate::codec::FrameReader).
    pub(crate) fn from_batch(batch: Result<Vec<Item>, Error>) -> Self {
        match batch {
            Ok(frames) => Inbound::Frames(frames),
            Err(err) => Inbound::Failed(err),
        }
    }
}

impl<Item> Message for Inbound<Item> {
    type Result = ();
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
}

impl Message for Control {
    type Result = ();
}

/// From the logic actor to its reader actor.
pub(crate) struct StopReading;

impl Message for StopReading {
    type Result = ();
}
