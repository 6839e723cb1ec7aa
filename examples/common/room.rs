//! The chat room of the `chat` (TCP) and `ws_chat` (WebSocket) examples: one actor that
//! every member's session events reach through getty's actor adapter.
//!
//! A line goes to every other member with `try_write`, which never waits, so one slow
//! member cannot stall the room. When a member's session refuses a line for room (its
//! write queue is at the high-water mark, or lines wait in its hand-over queue), the line
//! is not queued, and the room counts it; the member is told how many lines it missed
//! with the next line that does get through, so no gap goes unseen. The session's own
//! stats count the refusals too (`SessionStats::writes_refused`).

use std::collections::HashMap;

use actix::prelude::*;
use getty::actor::{EventKind, SessionEvent};
use getty::{Session, SessionId};

/// One member: its session, and the lines it missed since it last got one.
struct Member {
    session: Session<String>,
    missed: u64,
}

impl Member {
    /// Sends `line`, preceded by a notice of the lines missed before it, if any.
    fn send(&mut self, line: &str) {
        if self.missed > 0 {
            let notice = format!("* you missed {} lines: you read too slowly", self.missed);
            if self.session.try_write(notice).is_err() {
                self.missed += 1; // still no room: this line is missed too
                return;
            }
            self.missed = 0;
        }
        match self.session.try_write(line.to_owned()) {
            Ok(()) => {}
            Err(err) if err.is_closed() => {} // it is leaving; its Closed event follows
            Err(err) => {
                tracing::debug!(id = %self.session.id(), %err, "line not queued; counted");
                self.missed += 1;
            }
        }
    }
}

/// The room: every member, and the broadcast.
#[derive(Default)]
pub struct Room {
    members: HashMap<SessionId, Member>,
}

impl Room {
    fn broadcast(&mut self, from: SessionId, line: &str) {
        for (id, member) in &mut self.members {
            if *id != from {
                member.send(line);
            }
        }
    }
}

impl Actor for Room {
    type Context = Context<Self>;
}

impl Handler<SessionEvent<String, String>> for Room {
    type Result = ();

    fn handle(&mut self, event: SessionEvent<String, String>, _: &mut Context<Self>) {
        let id = event.session.id();
        match event.kind {
            EventKind::Opened => {
                let mut member = Member {
                    session: event.session,
                    missed: 0,
                };
                member.send(&format!(
                    "* welcome, you are {id}; {} others here",
                    self.members.len()
                ));
                self.members.insert(id, member);
                self.broadcast(id, &format!("* {id} joined"));
            }
            EventKind::Frame(line) => self.broadcast(id, &format!("[{id}] {line}")),
            EventKind::Closed => {
                self.members.remove(&id);
                self.broadcast(id, &format!("* {id} left"));
            }
            _ => {}
        }
    }
}
