//! The broker and the client of the `pubsub` example (its module doc has the protocol):
//! newline-delimited JSON over TCP, and one registry actor that every session's events
//! reach through getty's actor adapter.
//!
//! ## Refused deliveries
//! The registry fans each publish out with `try_write`, which never waits, so a slow
//! subscriber never stalls the registry, the publishers or the other subscribers. When a
//! subscriber's session refuses a line for room (its write queue holds
//! `write_high_water` bytes, default 256 KiB, or `handoff_queue` frames, default 1,024,
//! wait in its hand-over queue), the line is not queued: the registry counts it, and
//! sends `{"missed":N}` just before the next line that does get through (or, if no line
//! comes, within a second: pending notices are retried on a timer). So a subscriber
//! never sees a silent gap, and the topic's `seq` tells it which messages it missed. A
//! subscriber that stops reading altogether is closed by its session's write timeout
//! (default 5 s without progress), and the registry forgets it on its `Closed` event.

#![allow(dead_code)] // the server and the client each use a part

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use getty::actor::{ActorListener, EventKind, SessionEvent};
use getty::prelude::*;
use getty::{
    EventListener, ServerHandle, Session, SessionConfig, SessionContext, SessionId, TcpClient,
    TcpClientHandle, TcpServer,
};
use serde::{Deserialize, Serialize};
use tokio_util::codec::LinesCodec;

/// Longest request line a server reads, in bytes; a longer line ends its session.
pub const MAX_LINE: usize = 16 * 1024;
/// Longest line a client reads: a delivery is a little longer than the publish it
/// carries (its `seq`).
pub const MAX_REPLY_LINE: usize = 2 * MAX_LINE;
/// How often the registry retries notices of missed lines that found no room.
pub const NOTICE_PERIOD: Duration = Duration::from_secs(1);
/// Most topics one session may subscribe to, so one peer cannot grow the registry
/// without bound.
pub const MAX_SUBSCRIPTIONS: usize = 100;

/// What a client sends: `{"op":"sub","topic":"t"}`, `{"op":"unsub","topic":"t"}`,
/// `{"op":"pub","topic":"t","data":"..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    Sub { topic: String },
    Unsub { topic: String },
    Pub { topic: String, data: String },
}

/// What the server sends, told apart by their fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    /// A publish to a subscribed topic: `{"topic":"t","seq":7,"data":"..."}`.
    Message {
        topic: String,
        seq: u64,
        data: String,
    },
    /// Lines this session was not sent since the last line it got, because it read too
    /// slowly: `{"missed":3}`.
    Missed { missed: u64 },
    /// A `sub` or `unsub` took effect: `{"ok":"sub","topic":"t"}`.
    Ok { ok: String, topic: String },
    /// A request was refused; the session goes on: `{"error":"..."}`.
    Error { error: String },
}

/// One JSON line (without its newline).
pub fn to_line(value: &impl Serialize) -> String {
    // Strings and numbers only, so serializing cannot fail.
    serde_json::to_string(value).expect("a request or reply serializes")
}

// ---------------------------------------------------------------------------------------
// The broker.

/// One connected session: its handle, its topics, and the lines it missed since it last
/// got one.
struct Peer {
    session: Session<Arc<str>>,
    topics: HashSet<String>,
    missed: u64,
}

impl Peer {
    /// Queues `line`, preceded by the notice of lines missed before it, if any.
    fn send(&mut self, line: Arc<str>) {
        if !self.notify_missed() {
            self.missed += 1; // still no room: this line is missed too
            return;
        }
        match self.session.try_write(line) {
            Ok(()) => {}
            Err(err) if err.is_closed() => {} // leaving; its Closed event follows
            Err(err) => {
                tracing::debug!(id = %self.session.id(), %err, "line not queued; counted");
                self.missed += 1;
            }
        }
    }

    /// Queues `{"missed":N}` if lines were missed; false if it found no room either.
    fn notify_missed(&mut self) -> bool {
        if self.missed == 0 {
            return true;
        }
        let notice = to_line(&Reply::Missed {
            missed: self.missed,
        });
        if self.session.try_write(Arc::from(notice)).is_err() {
            return false;
        }
        self.missed = 0;
        true
    }

    fn reply(&mut self, reply: &Reply) {
        self.send(Arc::from(to_line(reply)));
    }
}

/// A topic with subscribers, and how many messages it has carried.
#[derive(Default)]
struct Topic {
    seq: u64,
    subscribers: HashSet<SessionId>,
}

/// Topic -> subscribers, fed the events of every session by `ActorListener`.
#[derive(Default)]
pub struct Registry {
    peers: HashMap<SessionId, Peer>,
    /// Only topics with subscribers: a topic is dropped with its last one.
    topics: HashMap<String, Topic>,
}

impl Registry {
    fn request(&mut self, id: SessionId, line: &str) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return; // not opened (cannot happen: Opened comes first)
        };
        let request = match serde_json::from_str::<Request>(line) {
            Ok(request) => request,
            Err(err) => {
                let error = format!("bad request: {err}");
                return peer.reply(&Reply::Error { error });
            }
        };
        match request {
            Request::Sub { topic } => {
                if !peer.topics.contains(&topic) && peer.topics.len() >= MAX_SUBSCRIPTIONS {
                    let error = format!("too many subscriptions (at most {MAX_SUBSCRIPTIONS})");
                    return peer.reply(&Reply::Error { error });
                }
                peer.topics.insert(topic.clone());
                let subscribers = &mut self.topics.entry(topic.clone()).or_default().subscribers;
                subscribers.insert(id);
                let ok = "sub".to_owned();
                peer.reply(&Reply::Ok { ok, topic });
            }
            Request::Unsub { topic } => {
                peer.topics.remove(&topic);
                Self::drop_subscriber(&mut self.topics, &topic, id);
                let ok = "unsub".to_owned();
                peer.reply(&Reply::Ok { ok, topic });
            }
            Request::Pub { topic, data } => self.publish(topic, data),
        }
    }

    /// Sends one message to every subscriber of `topic` (nobody, if it has none).
    fn publish(&mut self, topic: String, data: String) {
        let Some(entry) = self.topics.get_mut(&topic) else {
            return;
        };
        entry.seq += 1;
        let seq = entry.seq;
        // Serialized once; every subscriber's queue shares the line.
        let line: Arc<str> = Arc::from(to_line(&Reply::Message { topic, seq, data }));
        for id in &entry.subscribers {
            if let Some(peer) = self.peers.get_mut(id) {
                peer.send(line.clone());
            }
        }
    }

    fn drop_subscriber(topics: &mut HashMap<String, Topic>, topic: &str, id: SessionId) {
        if let Some(entry) = topics.get_mut(topic) {
            entry.subscribers.remove(&id);
            if entry.subscribers.is_empty() {
                topics.remove(topic);
            }
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A subscriber hears of missed lines with its next line; if its topics went
        // quiet, there is no next line, so the notice is also tried on a timer.
        ctx.run_interval(NOTICE_PERIOD, |registry, _| {
            for peer in registry.peers.values_mut() {
                peer.notify_missed();
            }
        });
    }
}

impl Handler<SessionEvent<String, Arc<str>>> for Registry {
    type Result = ();

    fn handle(&mut self, event: SessionEvent<String, Arc<str>>, _: &mut Context<Self>) {
        let id = event.session.id();
        match event.kind {
            EventKind::Opened => {
                let peer = Peer {
                    session: event.session,
                    topics: HashSet::new(),
                    missed: 0,
                };
                self.peers.insert(id, peer);
            }
            EventKind::Frame(line) => self.request(id, &line),
            // A line over MAX_LINE, a reset, a write timeout...: `Closed` follows.
            EventKind::Errored(err) => tracing::info!(%id, %err, "session ends with an error"),
            EventKind::Closed => {
                if let Some(peer) = self.peers.remove(&id) {
                    for topic in &peer.topics {
                        Self::drop_subscriber(&mut self.topics, topic, id);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Starts the broker on `addr`: one registry actor and a TCP server whose sessions all
/// feed it, with `config`'s limits (the example's are the defaults) and lines of at most
/// [`MAX_LINE`]. One arbiter: the registry and every session share a thread, so a burst
/// the registry fans out in one turn waits in the sessions' hand-over queues until the
/// turn ends, and each publisher is slowed to the pace of the registry by the registry's
/// bounded mailbox.
pub async fn serve(addr: &str, config: SessionConfig) -> getty::Result<ServerHandle> {
    let registry = Registry::default().start();
    TcpServer::new(addr)
        .workers(1)
        .session_config(config.max_frame_length(MAX_LINE))
        .start(move |_| {
            Ok((
                ActorListener::new(registry.clone().recipient()),
                LinesCodec::new_with_max_length(MAX_LINE),
            ))
        })
        .await
}

// ---------------------------------------------------------------------------------------
// The client.

/// Gets every reply a client's sessions receive (on the session's arbiter).
pub type OnReply = Arc<dyn Fn(Reply) + Send + Sync>;

/// A client session: subscribes to its topics as soon as it opens, so every new session
/// of the client (after a reconnect too) carries the subscriptions, and hands every
/// reply to `on_reply`.
struct ClientSession {
    topics: Arc<[String]>,
    on_reply: OnReply,
}

impl EventListener for ClientSession {
    type Codec = LinesCodec;
    type Out = String;

    fn on_open(&mut self, session: &mut SessionContext<'_, Self>) -> getty::Result<()> {
        for topic in self.topics.iter() {
            let topic = topic.clone();
            // Fails only if the session cannot take it; the error refuses the session,
            // and the client dials again.
            session.write(to_line(&Request::Sub { topic }))?;
        }
        Ok(())
    }

    fn on_message(&mut self, _: &mut SessionContext<'_, Self>, line: String) {
        let reply = serde_json::from_str(&line).unwrap_or_else(|err| Reply::Error {
            error: format!("unreadable line from the server: {err}"),
        });
        (self.on_reply)(reply);
    }
}

/// Starts `client` with sessions that subscribe to `topics` whenever they open and hand
/// every reply to `on_reply`. Write requests through the sessions it reports
/// (`ClientEvent::SessionUp`, `ClientHandle::sessions`) as `Session<String>`.
pub fn start_client(client: TcpClient, topics: Vec<String>, on_reply: OnReply) -> TcpClientHandle {
    let topics: Arc<[String]> = topics.into();
    client
        .session_config(SessionConfig::default().max_frame_length(MAX_REPLY_LINE))
        .start(move |_| {
            let listener = ClientSession {
                topics: topics.clone(),
                on_reply: on_reply.clone(),
            };
            Ok((listener, LinesCodec::new_with_max_length(MAX_REPLY_LINE)))
        })
}
