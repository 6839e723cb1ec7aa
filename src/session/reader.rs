//! The reader actor: reads, decodes, and forwards frames to the logic actor in batches.

use actix::prelude::*;
use tokio::io::AsyncRead;
use tokio_util::codec::Decoder;

use super::messages::{Inbound, StopReading};
use crate::codec::FrameReader;
use crate::error::{BoxError, Error};

/// Owns the read half of one session. Each read becomes one `Inbound::Frames` message;
/// when the logic actor's mailbox (the read queue) is full, the reader waits for room
/// before it reads again, so a slow listener slows the peer instead of growing memory.
pub(crate) struct ReaderActor<D: Decoder<Item: Send>> {
    logic: Recipient<Inbound<D::Item>>,
    /// Set once the last message (EOF or error) has been handed over.
    ended: bool,
}

impl<D> ReaderActor<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + 'static,
{
    /// Starts the reader on the current arbiter.
    pub(crate) fn start<R>(
        reader: FrameReader<D, R>,
        logic: Recipient<Inbound<D::Item>>,
    ) -> Addr<Self>
    where
        R: AsyncRead + Unpin + 'static,
    {
        ReaderActor::create(move |ctx| {
            ctx.add_stream(reader);
            ReaderActor {
                logic,
                ended: false,
            }
        })
    }

    /// Hands `msg` to the logic actor, waiting for mailbox room if needed (`do_send`
    /// would ignore the bound). Stops after the last message or if the logic is gone.
    fn forward(&mut self, msg: Inbound<D::Item>, last: bool, ctx: &mut Context<Self>) {
        self.ended |= last;
        match self.logic.try_send(msg) {
            Ok(()) if last => ctx.stop(),
            Ok(()) => {}
            Err(SendError::Full(msg)) => {
                let delivery = self.logic.send(msg).into_actor(self);
                ctx.wait(delivery.map(move |sent, _, ctx| {
                    if sent.is_err() || last {
                        ctx.stop();
                    }
                }));
            }
            Err(SendError::Closed(_)) => ctx.stop(),
        }
    }
}

impl<D> Actor for ReaderActor<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + 'static,
{
    type Context = Context<Self>;
}

impl<D> StreamHandler<Result<Vec<D::Item>, Error>> for ReaderActor<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + 'static,
{
    fn handle(&mut self, item: Result<Vec<D::Item>, Error>, ctx: &mut Context<Self>) {
        match item {
            Ok(batch) => self.forward(Inbound::Frames(batch), false, ctx),
            Err(err) => self.forward(Inbound::Failed(err), true, ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        if !self.ended {
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
        self.ended = true;
        ctx.stop();
    }
}
