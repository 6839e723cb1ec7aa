//! The client side of the public transport seam, with no socket at all: a `Client` whose
//! dial function makes in-memory pipes to a `Server`, re-dialing across server restarts
//! exactly as the TCP and Unix clients do.

mod common;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::channel::mpsc;
use futures::StreamExt;
use getty::prelude::*;
use getty::transport::{Address, Connection};
use getty::{Client, LengthDelimited, Server, ServerHandle, SessionConfig};
use tokio::io::DuplexStream;

type Accept = mpsc::UnboundedSender<Connection<DuplexStream>>;

/// Where the dial function finds the server: `None` while it is down.
#[derive(Clone, Default)]
struct Switchboard(Arc<Mutex<Option<Accept>>>);

impl Switchboard {
    fn dial(&self) -> getty::Result<Connection<DuplexStream>> {
        let accept = self.0.lock().unwrap().clone();
        let refused = || io::Error::new(io::ErrorKind::ConnectionRefused, "no pipe server");
        let accept = accept.ok_or_else(refused)?;
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let server_end =
            Connection::new(theirs, Address::other("server"), Address::other("client"));
        accept.unbounded_send(server_end).map_err(|_| refused())?;
        Ok(Connection::new(
            ours,
            Address::other("client"),
            Address::other("server"),
        ))
    }

    /// Starts an echo server and connects the switchboard to it.
    fn start_server(&self) -> (ServerHandle, Arc<Log>) {
        let (tx, rx) = mpsc::unbounded();
        let log = Arc::new(Log::default());
        let l = log.clone();
        let server = Server::new()
            .kind("pipe")
            .workers(1)
            .serve(rx.map(Ok), move |_| {
                let behaviour = Behaviour::echo();
                Ok((
                    Probe {
                        log: l.clone(),
                        behaviour: behaviour.into(),
                    },
                    LengthDelimited::new(),
                ))
            })
            .expect("no option it cannot honour");
        *self.0.lock().unwrap() = Some(tx);
        (server, log)
    }

    fn disconnect(&self) {
        *self.0.lock().unwrap() = None;
    }
}

#[actix::test]
async fn a_client_over_a_dial_function_keeps_its_sessions_across_server_restarts() {
    let board = Switchboard::default();
    let events = ClientEvents::default();
    let dial_board = board.clone();
    let (log, hook) = probe_client_hook(Behaviour::default());
    let mut config = SessionConfig::default();
    config.cron_period = Duration::from_millis(50);
    let client = Client::new()
        .kind("pipe-client")
        .connections(2)
        .reconnect_interval(Duration::from_millis(20))
        .session_config(config)
        .on_event(events.hook())
        .start(move || std::future::ready(dial_board.dial()), hook);
    // No server yet: dials fail and are counted, with backoff.
    wait_until(SECS5, "failed dials", || {
        client.stats().connect_failures >= 2
    })
    .await;
    assert_eq!(client.stats().open_sessions, 0);

    let (server, server_log) = board.start_server();
    wait_until(SECS5, "2 sessions", || client.stats().open_sessions == 2).await;
    // The sessions are live: handles write through the pipe and the echoes come back.
    for session in log.sessions() {
        assert!(
            session.name().starts_with("pipe-client:"),
            "{}",
            session.name()
        );
        within(SECS5, session.write(bytes::Bytes::from_static(b"ping")))
            .await
            .unwrap();
    }
    log.wait_for(SECS5, "2 echoes", |e| {
        e.iter()
            .filter(|(_, ev)| matches!(ev, Event::Message(_)))
            .count()
            == 2
    })
    .await;
    // Cron runs over this transport too.
    log.wait_for(SECS5, "cron", |e| {
        e.iter().any(|(_, ev)| *ev == Event::Cron)
    })
    .await;

    board.disconnect();
    server.stop().await;
    assert_eq!(server_log.count(&Event::Close), 2);
    wait_until(SECS5, "sessions lost", || client.stats().open_sessions == 0).await;

    let (again, _) = board.start_server();
    wait_until(SECS5, "2 sessions again", || {
        client.stats().open_sessions == 2
    })
    .await;
    assert_eq!(events.ups(), 4);
    client.stop().await;
    assert_eq!(log.count(&Event::Close), 4);
    assert_eq!(client.stats().live_sessions, 0);
    again.stop().await;
}
