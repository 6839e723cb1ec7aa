//! The heartbeat pattern getty users detect dead peers with, over TCP.
//!
//! ```text
//! cargo run --release --example heartbeat
//! ```
//! The client sends `ping` in `on_cron`; the server answers `pong`, and in its own
//! `on_cron` closes any session that has been silent for longer than `IDLE_LIMIT`. Here
//! the client's first session goes quiet after a few pings (as a hung peer would); the
//! server closes it, the client sees the close and re-dials, and the new session pings
//! on. Prints the timeline and exits 0 once the new session has been answered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use getty::prelude::*;
use getty::{
    ClientEvent, EventListener, LengthDelimited, Session, SessionConfig, SessionContext, TcpClient,
    TcpServer,
};

const CRON: Duration = Duration::from_millis(200);
const IDLE_LIMIT: Duration = Duration::from_millis(700);
const PINGS_BEFORE_HANG: usize = 3;

fn at(start: Instant) -> String {
    format!("{:>5.2} s", start.elapsed().as_secs_f64())
}

/// Server side: answers pings, closes sessions idle past the limit.
struct Watchdog {
    start: Instant,
}

impl EventListener for Watchdog {
    type Codec = LengthDelimited;
    type Out = Bytes;

    fn on_message(&mut self, session: &mut SessionContext<'_, Self>, frame: BytesMut) {
        if &frame[..] == b"ping" {
            // Each decoded frame marks the session active by itself; a protocol whose heartbeat
            // travels inside other traffic would call `update_active` here.
            let _ = session.write(Bytes::from_static(b"pong"));
        }
    }

    fn on_cron(&mut self, session: &mut SessionContext<'_, Self>) {
        let idle = session.last_active().elapsed();
        if idle > IDLE_LIMIT {
            println!(
                "{} server: its {} silent for {idle:.1?}, closing it",
                at(self.start),
                session.id()
            );
            session.close();
        }
    }
}

/// Client side: pings every cron tick; the first session hangs after a few pings.
struct Pinger {
    start: Instant,
    pings: usize,
    /// This session hangs after a few pings; `announced` once it has said so.
    hang: bool,
    announced: bool,
    answered: Arc<AtomicUsize>,
}

impl EventListener for Pinger {
    type Codec = LengthDelimited;
    type Out = Bytes;

    fn on_message(&mut self, session: &mut SessionContext<'_, Self>, frame: BytesMut) {
        if &frame[..] == b"pong" {
            session.update_active();
            if !self.hang {
                self.answered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn on_cron(&mut self, session: &mut SessionContext<'_, Self>) {
        if self.hang && self.pings >= PINGS_BEFORE_HANG {
            if !self.announced {
                self.announced = true;
                println!(
                    "{} client: {} stops sending pings (simulated hang)",
                    at(self.start),
                    session.id()
                );
            }
            return;
        }
        self.pings += 1;
        let _ = session.write(Bytes::from_static(b"ping"));
    }

    fn on_close(&mut self, session: &Session<Bytes>) {
        println!(
            "{} client: {} closed after {} pings",
            at(self.start),
            session.id(),
            self.pings
        );
    }
}

#[actix::main]
async fn main() -> getty::Result<()> {
    let start = Instant::now();
    let mut config = SessionConfig::default();
    config.cron_period = CRON;

    let server = TcpServer::new("127.0.0.1:0")
        .workers(1)
        .session_config(config.clone())
        .start(move |_| Ok((Watchdog { start }, LengthDelimited::new())))
        .await?;
    println!("{} server: listening on {}", at(start), server.local_addr());

    let sessions = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let client = {
        let (sessions, answered) = (sessions.clone(), answered.clone());
        TcpClient::new(server.local_addr().to_string())
            .reconnect_interval(Duration::from_millis(100))
            .session_config(config)
            .on_event(move |event| match event {
                ClientEvent::SessionUp { id, .. } => println!("{} client: {id} up", at(start)),
                ClientEvent::SessionDown { id } => println!("{} client: {id} down", at(start)),
                _ => {}
            })
            .start(move |_| {
                let first = sessions.fetch_add(1, Ordering::Relaxed) == 0;
                let pinger = Pinger {
                    start,
                    pings: 0,
                    hang: first,
                    announced: false,
                    answered: answered.clone(),
                };
                Ok((pinger, LengthDelimited::new()))
            })
    };

    // Done once the re-dialed session has had three pings answered (10 s at most).
    let deadline = Instant::now() + Duration::from_secs(10);
    while answered.load(Ordering::Relaxed) < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ok = answered.load(Ordering::Relaxed) >= 3 && sessions.load(Ordering::Relaxed) >= 2;
    client.stop().await;
    server.stop().await;
    if ok {
        println!(
            "{} done: the hung session was closed and its replacement is answered",
            at(start)
        );
        Ok(())
    } else {
        eprintln!("heartbeat demo did not complete");
        std::process::exit(1);
    }
}
