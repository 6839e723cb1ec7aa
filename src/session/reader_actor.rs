//! The reader actor: reads, decodes, and forwards frames to the logic actor in batches.

use std::cell::Cell;
use std::rc::Rc;

use actix::fut::{wrap_future, ActorFutureExt};
use actix::prelude::*;
use futures::Stream;
use tokio_util::codec::Decoder;

use super::inbox::{InboxSender, TrySendError};
use super::messages::{Inbound, StopReading};
use crate::error::BoxError;

/// Owns the read half of one session. Each read becomes one `Inbound::Frames` item;
/// when the read queue to the logic actor is full, the reader waits for room before it
/// reads again, so a slow listener slows the peer instead of growing memory.
pub(crate) struct ReaderActor<D: Decoder<Item: Send>> {
    logic: InboxSender<D::Item>,
    /// Set once the last message (EOF or error) has been handed over.
    ended: Rc<Cell<bool>>,
}

impl<D> ReaderActor<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + 'static,
{
    /// Starts the reader on the current arbiter. `reader` yields what to hand over, in
    /// order; a `Failed` item is the last, and the stream's end means EOF.
    pub(crate) fn start<S>(reader: S, logic: InboxSender<D::Item>) -> Addr<Self>
    where
        S: Stream<Item = Inbound<D::Item>> + Unpin + 'static,
    {
        ReaderActor::create(move |ctx| {
            ctx.add_stream(reader);
            ReaderActor {
                logic,
                ended: Rc::default(),
            }
        })
    }

    /// Hands `msg` to the logic actor (see [`forward`]); the last one marks the reader
    /// ended once it got through.
    fn forward(&mut self, msg: Inbound<D::Item>, last: bool, ctx: &mut Context<Self>) {
        let last = last.then(|| self.ended.clone());
        forward::<Self, _>(&self.logic, msg, last, ctx);
    }
}

/// Hands `msg` from a reader actor (the byte-stream and datagram reader, or a WebSocket
/// reader) to the logic actor, waiting for room in the read queue if needed: while it
/// waits, the actor reads nothing, so the peer is slowed by TCP flow control. For the
/// last message (`last` is set), stops the actor after it and marks `last` delivered;
/// stops the actor too if the logic is gone.
pub(crate) fn forward<A, T>(
    logic: &InboxSender<T>,
    msg: Inbound<T>,
    last: Option<Rc<Cell<bool>>>,
    ctx: &mut A::Context,
) where
    A: Actor,
    A::Context: AsyncContext<A>,
    T: Send + 'static,
{
    match logic.try_send(msg) {
        Ok(()) => {
            if let Some(delivered) = last {
                delivered.set(true);
                ctx.stop();
            }
        }
        Err(TrySendError::Full(msg)) => {
            let delivery = wrap_future::<_, A>(logic.send(msg));
            ctx.wait(delivery.map(move |sent, _, ctx: &mut A::Context| {
                if let Some(delivered) = &last {
                    delivered.set(sent.is_ok());
                }
                if sent.is_err() || last.is_some() {
                    ctx.stop();
                }
            }));
        }
        Err(TrySendError::Closed) => ctx.stop(),
    }
}

impl<D> Actor for ReaderActor<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + 'static,
{
    type Context = Context<Self>;
}

impl<D> StreamHandler<Inbound<D::Item>> for ReaderActor<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + 'static,
{
    fn handle(&mut self, item: Inbound<D::Item>, ctx: &mut Context<Self>) {
        let last = matches!(item, Inbound::Failed(_) | Inbound::Eof | Inbound::Stopped);
        self.forward(item, last, ctx);
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        if !self.ended.get() {
            self.forward(Inbound::Eof, true, ctx);
        }
    }
}

impl<D> Handler<StopReading> for ReaderActor<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + 'static,
{
    type Result = ();

    fn handle(&mut self, _: StopReading, ctx: &mut Context<Self>) {
        self.ended.set(true);
        ctx.stop();
    }
}
