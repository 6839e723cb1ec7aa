//! The chat room of the `chat` (TCP) and `ws_chat` (WebSocket) examples: one actor that
//! every member's session events reach through getty's actor adapter.

use std::collections::HashMap;

use actix::prelude::*;
use getty::actor::{EventKind, SessionEvent};
use getty::{Session, SessionId};

/// The room: every member's session, and the broadcast.
#[derive(Default)]
pub struct Room {
    members: HashMap<SessionId, Session<String>>,
}

impl Room {
    fn broadcast(&mut self, from: SessionId, line: &str) {
        for (id, member) in &self.members {
            if *id != from {
                // A member too slow to keep up loses this line and is told by its own
                // session closing (queue full), not by stalling the room.
                if let Err(err) = member.try_write(line.to_owned()) {
                    tracing::debug!(%id, %err, "line not delivered");
                }
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
                let _ = event.session.try_write(format!(
                    "* welcome, you are {id}; {} others here",
                    self.members.len()
                ));
                self.members.insert(id, event.session);
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
