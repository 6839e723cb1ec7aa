//! Actor-native handlers: a session's events as actix messages to your own actor.
//!
//! [`ActorListener`] is an [`EventListener`] that forwards every event of its session as
//! a [`SessionEvent`] to a [`Recipient`]: one handler actor per session (start it in the
//! `new_session` hook), or one for many sessions (a chat room, a gateway). The handler
//! keeps its state in the actor and answers through the [`Session`] handle each event
//! carries ([`Session::try_write`] from a handler, [`Session::write`] from async code).
//!
//! ## Order and timing
//! - One session's events reach the handler in order: `Opened`, then frames, cron ticks
//!   and at most one `Errored`, then `Closed`, always last.
//! - Delivery is asynchronous, so by the time the handler sees an event the session may
//!   have moved on: after it closed, a handler may still get its last frames and then
//!   `Closed`. Writes through the handle then return
//!   [`ErrorKind::Closed`](crate::ErrorKind::Closed); nothing panics.
//!
//! ## Backpressure
//! Events go with `try_send`, never `do_send`, so the handler's mailbox bound holds. When
//! the mailbox is full the adapter keeps the event, pauses the session's reading
//! ([`Session::pause_reading`]) and delivers the kept events, in order, as room appears;
//! then reading resumes. What waits in between is bounded by the session's read queue, so
//! a slow handler slows the peer through TCP flow control instead of growing memory.
//!
//! ```
//! use actix::prelude::*;
//! use bytes::{Bytes, BytesMut};
//! use futures::{SinkExt, StreamExt};
//! use getty::actor::{ActorListener, EventKind, SessionEvent};
//! use getty::prelude::*;
//! use getty::{LengthDelimited, TcpServer};
//!
//! /// Counts frames per session and echoes them with the count.
//! #[derive(Default)]
//! struct Counter {
//!     seen: usize,
//! }
//!
//! impl Actor for Counter {
//!     type Context = Context<Self>;
//! }
//!
//! impl Handler<SessionEvent<BytesMut, Bytes>> for Counter {
//!     type Result = ();
//!     fn handle(&mut self, event: SessionEvent<BytesMut, Bytes>, ctx: &mut Context<Self>) {
//!         match event.kind {
//!             EventKind::Frame(frame) => {
//!                 self.seen += 1;
//!                 let reply = format!("{} #{}", String::from_utf8_lossy(&frame), self.seen);
//!                 if let Err(err) = event.session.try_write(Bytes::from(reply)) {
//!                     // Refused for room (or closed): the peer reads too slowly to
//!                     // keep up, so end its session rather than skip a reply.
//!                     tracing::warn!(%err, "reply not queued; closing the session");
//!                     event.session.close();
//!                 }
//!             }
//!             EventKind::Closed => ctx.stop(), // one actor per session: done
//!             _ => {}
//!         }
//!     }
//! }
//!
//! #[actix::main]
//! async fn main() -> getty::Result<()> {
//!     let server = TcpServer::new("127.0.0.1:0")
//!         .start(|_| {
//!             // Runs on the session's arbiter, so the actor lives beside the session.
//!             let handler = Counter::default().start();
//!             Ok((ActorListener::new(handler.recipient()), LengthDelimited::new()))
//!         })
//!         .await?;
//!     let stream = tokio::net::TcpStream::connect(server.inet_addr()?).await?;
//!     let mut client = tokio_util::codec::Framed::new(stream, LengthDelimited::new());
//!     client.send(Bytes::from_static(b"hi")).await?;
//!     client.send(Bytes::from_static(b"hi")).await?;
//!     assert_eq!(&client.next().await.expect("reply")?[..], b"hi #1");
//!     assert_eq!(&client.next().await.expect("reply")?[..], b"hi #2");
//!     server.stop().await;
//!     Ok(())
//! }
//! ```

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::rc::Rc;

use actix::prelude::*;
use tokio_util::codec::Decoder;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::listener::EventListener;
use crate::session::{Session, SessionContext};

/// What happened to a session.
#[derive(Debug)]
#[non_exhaustive]
pub enum EventKind<Item> {
    /// The session opened (its `on_open` ran).
    Opened,
    /// A decoded frame arrived.
    Frame(Item),
    /// The session's cron period elapsed.
    Cron,
    /// The session's writability changed (see [`EventListener::on_writability`]):
    /// `false` when its write queue is full, `true` when it drained again.
    Writability(bool),
    /// The server is draining (see [`EventListener::on_drain`]): end the session before
    /// the drain deadline, after a "go away" of your protocol if it has one. The actor
    /// decides: a session it leaves open is closed at the deadline.
    Draining,
    /// An error is ending the session; `Closed` follows.
    Errored(Error),
    /// The session closed; its last event.
    Closed,
}

/// One event of one session, as an actix message.
#[derive(Debug)]
pub struct SessionEvent<Item, Out: Send + 'static> {
    /// The session, to answer through or to keep.
    pub session: Session<Out>,
    /// What happened.
    pub kind: EventKind<Item>,
}

impl<Item, Out: Send + 'static> Message for SessionEvent<Item, Out> {
    type Result = ();
}

/// Events that wait for room in the handler's mailbox, shared with the task that
/// delivers them.
struct Backlog<Item, Out: Send + 'static> {
    events: RefCell<VecDeque<SessionEvent<Item, Out>>>,
    delivering: Cell<bool>,
}

/// An [`EventListener`] that forwards its session's events to an actor (see the
/// [module docs](self)). `C` is the session's codec, `Out` the type of frames written.
pub struct ActorListener<C: Codec<Out>, Out: Send + 'static> {
    handler: Recipient<SessionEvent<C::Item, Out>>,
    backlog: Rc<Backlog<C::Item, Out>>,
    _codec: PhantomData<fn() -> C>,
}

impl<C: Codec<Out>, Out: Send + 'static> ActorListener<C, Out> {
    /// Forwards to `handler`.
    pub fn new(handler: Recipient<SessionEvent<<C as Decoder>::Item, Out>>) -> Self {
        ActorListener {
            handler,
            backlog: Rc::new(Backlog {
                events: RefCell::new(VecDeque::new()),
                delivering: Cell::new(false),
            }),
            _codec: PhantomData,
        }
    }

    fn forward(&mut self, session: &Session<Out>, kind: EventKind<C::Item>) {
        let event = SessionEvent {
            session: session.clone(),
            kind,
        };
        if self.backlog.delivering.get() {
            self.backlog.events.borrow_mut().push_back(event);
            return;
        }
        match self.handler.try_send(event) {
            Ok(()) => {}
            Err(SendError::Full(event)) => {
                self.backlog.events.borrow_mut().push_back(event);
                self.deliver_backlog(session);
            }
            Err(SendError::Closed(_)) => {
                // Nobody handles this session any more: end it rather than read on.
                tracing::debug!(session = %session.id(), "handler actor gone; closing the session");
                session.close();
            }
        }
    }

    /// Pauses reading and delivers the backlog in order as the mailbox makes room.
    fn deliver_backlog(&self, session: &Session<Out>) {
        self.backlog.delivering.set(true);
        session.pause_reading();
        let (handler, backlog, session) =
            (self.handler.clone(), self.backlog.clone(), session.clone());
        // On the session's own arbiter: the backlog never crosses a thread.
        actix_rt::spawn(async move {
            loop {
                let next = backlog.events.borrow_mut().pop_front();
                let Some(event) = next else { break };
                if handler.send(event).await.is_err() {
                    backlog.events.borrow_mut().clear();
                    session.close();
                    break;
                }
            }
            backlog.delivering.set(false);
            session.resume_reading();
        });
    }
}

impl<C: Codec<Out>, Out: Send + 'static> EventListener for ActorListener<C, Out> {
    type Codec = C;
    type Out = Out;

    fn on_open(&mut self, session: &mut SessionContext<'_, Self>) -> Result<()> {
        self.forward(session.session(), EventKind::Opened);
        Ok(())
    }

    fn on_message(&mut self, session: &mut SessionContext<'_, Self>, frame: C::Item) {
        self.forward(session.session(), EventKind::Frame(frame));
    }

    fn on_cron(&mut self, session: &mut SessionContext<'_, Self>) {
        self.forward(session.session(), EventKind::Cron);
    }

    fn on_writability(&mut self, session: &mut SessionContext<'_, Self>, writable: bool) {
        self.forward(session.session(), EventKind::Writability(writable));
    }

    fn on_drain(&mut self, session: &mut SessionContext<'_, Self>) {
        self.forward(session.session(), EventKind::Draining);
    }

    fn on_error(&mut self, session: &Session<Out>, error: &Error) {
        self.forward(session, EventKind::Errored(error.clone()));
    }

    fn on_close(&mut self, session: &Session<Out>) {
        self.forward(session, EventKind::Closed);
    }
}
