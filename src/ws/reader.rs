//! What the server's and the client's WebSocket reader actors share: reacting to each
//! incoming message, pings, and the end of the connection.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_http::ws::{CloseCode, Message, ProtocolError};
use bytes::Bytes;
use tokio_util::codec::Decoder;

use super::inflow::{protocol_error, wait_while_paused, Inflow, Step, WsIn};
use super::pipe::Pipe;
use crate::error::{BoxError, Error};
use crate::session::{forward, Inbound, InboxSender, SessionShared};

/// Options of a WebSocket endpoint that its readers apply (default: pings every cron
/// period, no text).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WsOptions {
    /// Ping period; `None`: the session's cron period.
    pub(crate) ping_interval: Option<Duration>,
    /// Feed text messages to the codec like binary ones instead of failing.
    pub(crate) allow_text: bool,
}

/// The reader's part of one WebSocket session, whatever actor runs it.
pub(crate) struct WsReader<D: Decoder<Item: Send + 'static>> {
    inflow: Inflow<D>,
    logic: InboxSender<D::Item>,
    pipe: Pipe,
    shared: Arc<SessionShared>,
    ping_interval: Duration,
    /// The last message (EOF or error) is on its way to the logic actor: deliver nothing
    /// more.
    ended: bool,
    /// That last message, kept until it is delivered: if the actor is dropped first (its
    /// connection vanished), `stopped` sends it so the session still ends.
    last: Option<Error>,
    last_delivered: Rc<Cell<bool>>,
}

impl<D> WsReader<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + 'static,
{
    pub(crate) fn new(
        decoder: D,
        shared: Arc<SessionShared>,
        logic: InboxSender<D::Item>,
        pipe: Pipe,
        options: WsOptions,
    ) -> Self {
        let ping_interval = options
            .ping_interval
            .unwrap_or(shared.config.cron_period)
            .max(Duration::from_millis(1));
        WsReader {
            inflow: Inflow::new(decoder, shared.clone(), options.allow_text),
            logic,
            pipe,
            shared,
            ping_interval,
            ended: false,
            last: None,
            last_delivered: Rc::new(Cell::new(false)),
        }
    }

    /// Longest message accepted, for the WebSocket codec's own limit.
    pub(crate) fn bound(&self) -> usize {
        self.inflow.bound()
    }

    /// How often the actor sends a ping.
    pub(crate) fn ping_interval(&self) -> Duration {
        self.ping_interval
    }

    /// Sends a ping (its payload is empty; the pong proves the peer alive).
    pub(crate) fn ping(&self) {
        self.pipe.push_control(Message::Ping(Bytes::new()));
    }

    /// One message from the peer.
    pub(crate) fn on_message<A>(&mut self, msg: WsIn, ctx: &mut A::Context)
    where
        A: Actor,
        A::Context: AsyncContext<A>,
    {
        if self.ended {
            return;
        }
        match self.inflow.on_message(msg) {
            Step::Nothing => {}
            Step::Frames(batch) => {
                let upto = self.shared.forwarded_upto();
                forward::<A, _>(&self.logic, Inbound::Frames(batch, upto), None, ctx);
                wait_while_paused::<A>(&self.shared, ctx);
            }
            Step::Pong(payload) => self.pipe.push_control(Message::Pong(payload)),
            Step::Closed(reason) => {
                // Our answer goes once the logic actor has flushed what it still sends.
                self.pipe.close_received(reason);
                self.end::<A>(None, ctx);
            }
            Step::Failed(err, code) => self.fail::<A>(err, code, ctx),
        }
    }

    /// The WebSocket codec refused what the peer sent.
    pub(crate) fn on_protocol_error<A>(&mut self, err: &ProtocolError, ctx: &mut A::Context)
    where
        A: Actor,
        A::Context: AsyncContext<A>,
    {
        if self.ended {
            ctx.stop();
            return;
        }
        let (err, code) = protocol_error(err, self.bound());
        self.fail::<A>(err, code, ctx);
    }

    fn fail<A>(&mut self, err: Error, code: CloseCode, ctx: &mut A::Context)
    where
        A: Actor,
        A::Context: AsyncContext<A>,
    {
        tracing::debug!(%err, "websocket peer failed");
        self.pipe.close(Some(code.into()));
        // The actor stops after this: the codec would only refuse the same bytes again.
        self.end::<A>(Some(err), ctx);
    }

    /// Sends the last message (EOF, or the error that ends the session), then stops.
    fn end<A>(&mut self, cause: Option<Error>, ctx: &mut A::Context)
    where
        A: Actor,
        A::Context: AsyncContext<A>,
    {
        self.ended = true;
        self.last = cause.clone();
        let msg = match cause {
            Some(err) => Inbound::Failed(err),
            None => Inbound::Eof,
        };
        forward::<A, _>(&self.logic, msg, Some(self.last_delivered.clone()), ctx);
    }

    /// The connection ended (the stream of messages is over).
    pub(crate) fn finished<A>(&mut self, ctx: &mut A::Context)
    where
        A: Actor,
        A::Context: AsyncContext<A>,
    {
        if self.ended {
            ctx.stop();
        } else {
            self.end::<A>(None, ctx);
        }
    }

    /// The actor stopped: nothing will read the peer's answer to a close any more. If the
    /// session has not been told that the connection ended (the actor was dropped with
    /// its connection, or before its last message got through), tell it now: one message,
    /// so past the read queue's bound if need be.
    pub(crate) fn stopped(&mut self) {
        self.pipe.reader_gone();
        if !self.last_delivered.get() {
            self.last_delivered.set(true);
            let msg = match self.last.take() {
                Some(err) => Inbound::Failed(err),
                None => Inbound::Eof,
            };
            self.logic.send_last(msg);
        }
    }
}
