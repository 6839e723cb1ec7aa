//! The chat room of the `chat` (TCP) and `ws_chat` (WebSocket) examples: one actor that
//! every member's session events reach through getty's actor adapter.
//!
//! A line goes to every other member with `try_write`, which never waits, so one slow
//! member cannot stall the room. When a member's session refuses a line for room (its
//! write queue is at the high-water mark, or lines wait in its hand-over queue), the line
//! is not queued, and the room counts it; the member is told how many lines it missed
//! with the next line that does get through, so no gap goes unseen. The session's own
//! stats count the refusals too (`SessionStats::writes_refused`).
//!
//! ## One room over several processes
//! A room started with [`Room::start_with_broker`] is joined to the rooms of the same
//! name in other processes through a broker (`broker.rs` has the link and what it
//! promises): what its members say also goes to the broker, what the others publish
//! reaches its members, and member ids get the process's short name (`session#3@1f2e3d`)
//! so they stay apart across processes. While the link is down or the broker too slow,
//! the members are told (`* room partitioned: ...`), lines still reach the members of
//! this process, and each member is told how many of its lines did not reach the other
//! processes when the room is whole again.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use getty::actor::{EventKind, SessionEvent};
use getty::{Session, SessionId};
use tokio::sync::mpsc;

use super::broker::{Broker, BrokerEvent, BrokerLink, Outgoing, Refused, EVENT_QUEUE};

/// How often a room that found the publish queue full looks whether it has room again.
const CONGESTION_CHECK: Duration = Duration::from_millis(100);

/// One member: its session, the lines it missed since it last got one, and its lines
/// that did not reach the other processes, not yet told.
struct Member {
    session: Session<String>,
    missed: u64,
    unsent: u64,
    unconfirmed: u64,
}

impl Member {
    fn new(session: Session<String>) -> Member {
        Member {
            session,
            missed: 0,
            unsent: 0,
            unconfirmed: 0,
        }
    }

    /// Sends `line`, preceded by a notice of the lines missed before it, if any; true if
    /// `line` was queued.
    fn send(&mut self, line: &str) -> bool {
        if self.missed > 0 {
            let notice = format!("* you missed {} lines: you read too slowly", self.missed);
            if self.session.try_write(notice).is_err() {
                self.missed += 1; // still no room: this line is missed too
                return false;
            }
            self.missed = 0;
        }
        match self.session.try_write(line.to_owned()) {
            Ok(()) => true,
            Err(err) if err.is_closed() => false, // it is leaving; its Closed event follows
            Err(err) => {
                tracing::debug!(id = %self.session.id(), %err, "line not queued; counted");
                self.missed += 1;
                false
            }
        }
    }

    /// Tells the member how many of its lines did not (or may not) reach the other
    /// processes; a count whose notice found no room is kept for the next try.
    fn report_undelivered(&mut self) {
        if self.unsent > 0 {
            let notice = format!("* {} lines not delivered to other servers", self.unsent);
            if self.send(&notice) {
                self.unsent = 0;
            }
        }
        if self.unconfirmed > 0 {
            let notice = format!(
                "* {} lines may not have reached other servers: the broker went away \
                 before it acknowledged them",
                self.unconfirmed
            );
            if self.send(&notice) {
                self.unconfirmed = 0;
            }
        }
    }
}

/// The room's side of a broker link.
struct Linked {
    link: BrokerLink,
    /// Why the link is down, as it last said; `None` while it is up (or still dialing
    /// for the first time: lines are queued then, and reported if the dial fails).
    down: Option<String>,
    /// The publish queue was found full; cleared once half of it is free.
    congested: bool,
    /// The members were told the room is partitioned, and not yet that it is whole.
    told_partitioned: bool,
}

impl Linked {
    /// Why lines cannot go to the other processes now, if they cannot.
    fn partition(&self) -> Option<String> {
        match (&self.down, self.congested) {
            (Some(reason), _) => Some(reason.clone()),
            (None, true) => Some("the broker is too slow".to_owned()),
            (None, false) => None,
        }
    }
}

/// The room: every member, the broadcast, and the link to other processes if any.
#[derive(Default)]
pub struct Room {
    members: HashMap<SessionId, Member>,
    link: Option<Linked>,
}

impl Room {
    /// Starts a room joined, through `broker`, to the rooms of the same name in other
    /// processes. The link dials in the background: the room serves its own members at
    /// once, broker or not.
    pub fn start_with_broker(broker: Broker) -> Addr<Room> {
        Room::create(|ctx| {
            let (events, incoming) = mpsc::channel(EVENT_QUEUE);
            ctx.add_stream(futures::stream::unfold(incoming, |mut rx| async move {
                rx.recv().await.map(|event| (event, rx))
            }));
            ctx.run_interval(CONGESTION_CHECK, |room, _| room.check_congestion());
            Room {
                members: HashMap::new(),
                link: Some(Linked {
                    link: BrokerLink::start(broker, events),
                    down: None,
                    congested: false,
                    told_partitioned: false,
                }),
            }
        })
    }

    /// How members are named: their session id, and with a broker the process's name.
    fn name(&self, id: SessionId) -> String {
        match &self.link {
            Some(linked) => format!("{id}@{}", linked.link.server()),
            None => id.to_string(),
        }
    }

    /// Sends `line` to every member here but `from`.
    fn broadcast(&mut self, from: Option<SessionId>, line: &str) {
        for (id, member) in &mut self.members {
            if Some(*id) != from {
                member.send(line);
            }
        }
    }

    /// Sends `line` to the members here but `from`, and to the other processes.
    fn say(&mut self, from: Option<SessionId>, line: String) {
        self.broadcast(from, &line);
        let Some(linked) = &mut self.link else {
            return;
        };
        let refused = if linked.partition().is_some() {
            true
        } else {
            match linked.link.publish(Outgoing { from, line }) {
                Ok(()) => false,
                Err(Refused::Full) => {
                    linked.congested = true;
                    true
                }
                Err(Refused::Stopped) => {
                    linked.down = Some("the broker link stopped".to_owned());
                    true
                }
            }
        };
        if refused {
            if let Some(member) = from.and_then(|id| self.members.get_mut(&id)) {
                member.unsent += 1;
            }
            self.tell_partition();
        }
    }

    /// Tells every member when the room becomes partitioned or whole again (once each
    /// way), and then each member what of its lines did not reach the other processes.
    fn tell_partition(&mut self) {
        let Some(linked) = &mut self.link else {
            return;
        };
        match (linked.partition(), linked.told_partitioned) {
            (Some(reason), false) => {
                linked.told_partitioned = true;
                tracing::warn!(%reason, "room partitioned");
                self.broadcast(
                    None,
                    &format!(
                        "* room partitioned: {reason}; lines reach this server's members only"
                    ),
                );
            }
            (None, true) => {
                linked.told_partitioned = false;
                tracing::info!("room whole again");
                for member in self.members.values_mut() {
                    member.send("* room whole again");
                    member.report_undelivered();
                }
            }
            _ => {}
        }
    }

    /// Ends a congestion once half of the publish queue is free.
    fn check_congestion(&mut self) {
        if let Some(linked) = &mut self.link {
            if linked.congested && linked.link.has_room() {
                linked.congested = false;
                self.tell_partition();
            }
        }
    }

    /// Whether lines go to the other processes now (always false without a broker).
    fn whole(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.partition().is_none())
    }
}

impl Actor for Room {
    type Context = Context<Self>;
}

impl Handler<SessionEvent<String, String>> for Room {
    type Result = ();

    fn handle(&mut self, event: SessionEvent<String, String>, _: &mut Context<Self>) {
        let id = event.session.id();
        let name = self.name(id);
        match event.kind {
            EventKind::Opened => {
                let mut member = Member::new(event.session);
                let others = self.members.len();
                if let Some(linked) = &self.link {
                    member.send(&format!(
                        "* welcome, you are {name}; {others} others on this server"
                    ));
                    if let Some(reason) = linked.partition().filter(|_| linked.told_partitioned) {
                        member.send(&format!(
                            "* room partitioned: {reason}; lines reach this server's members only"
                        ));
                    }
                } else {
                    member.send(&format!("* welcome, you are {name}; {others} others here"));
                }
                self.members.insert(id, member);
                self.say(Some(id), format!("* {name} joined"));
            }
            EventKind::Frame(line) => {
                if self.whole() {
                    // A count whose notice found no room earlier: tell it now.
                    if let Some(member) = self.members.get_mut(&id) {
                        member.report_undelivered();
                    }
                }
                self.say(Some(id), format!("[{name}] {line}"));
            }
            EventKind::Closed => {
                self.members.remove(&id);
                self.say(Some(id), format!("* {name} left"));
            }
            _ => {}
        }
    }
}

impl StreamHandler<BrokerEvent> for Room {
    fn handle(&mut self, event: BrokerEvent, _: &mut Context<Self>) {
        let Some(linked) = &mut self.link else {
            return;
        };
        match event {
            BrokerEvent::Up => {
                linked.down = None;
                self.tell_partition();
            }
            BrokerEvent::Down(reason) => {
                linked.down = Some(reason);
                self.tell_partition();
            }
            BrokerEvent::Remote { lost, lines } => {
                if lost > 0 {
                    self.broadcast(
                        None,
                        &format!("* {lost} lines from other servers did not reach this one"),
                    );
                }
                for line in &lines {
                    self.broadcast(None, line);
                }
            }
            BrokerEvent::Undelivered {
                from,
                unsent,
                unconfirmed,
            } => {
                let whole = self.whole();
                if let Some(member) = self.members.get_mut(&from) {
                    member.unsent += unsent;
                    member.unconfirmed += unconfirmed;
                    if whole {
                        member.report_undelivered();
                    }
                }
            }
        }
    }

    /// The link's task ended: the system is stopping. The room serves on locally.
    fn finished(&mut self, _: &mut Context<Self>) {
        if let Some(linked) = &mut self.link {
            linked.down = Some("the broker link stopped".to_owned());
            self.tell_partition();
        }
    }
}
