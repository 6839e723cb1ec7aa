//! Test support: a listener that records every event, loopback clients, and bounded waits.

#![allow(dead_code)] // each test file uses a part

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use getty::prelude::*;
use getty::{
    ClientEvent, Error, ErrorKind, EventListener, LengthDelimited, ServerHandle, Session,
    SessionConfig, SessionContext, SessionId, TcpServer,
};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Everything a probe saw, in order.
#[derive(Debug, Clone)]
pub enum Event {
    Open,
    Message(Bytes),
    Cron,
    /// The error `on_error` got; assertions match on its [`Error::kind`].
    Error(Error),
    Close,
}

/// Events are equal when they are the same event; two errors, when they are of the same
/// kind (errors have no equality of their own).
impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        match (self, other) {
            (Event::Open, Event::Open)
            | (Event::Cron, Event::Cron)
            | (Event::Close, Event::Close) => true,
            (Event::Message(a), Event::Message(b)) => a == b,
            (Event::Error(a), Event::Error(b)) => {
                std::mem::discriminant(a.kind()) == std::mem::discriminant(b.kind())
            }
            _ => false,
        }
    }
}

impl Event {
    /// True for an error event whose kind passes `is`, e.g.
    /// `event.is_error(|k| matches!(k, ErrorKind::Io { .. }))`.
    pub fn is_error(&self, is: impl Fn(&ErrorKind) -> bool) -> bool {
        matches!(self, Event::Error(err) if is(err.kind()))
    }
}

/// Shared record of all sessions' events.
#[derive(Default)]
pub struct Log {
    events: Mutex<Vec<(SessionId, Event)>>,
    sessions: Mutex<Vec<Session<Bytes>>>,
}

impl Log {
    /// Records `event` of session `id` (from the probe's callbacks).
    pub fn push(&self, id: SessionId, event: Event) {
        self.events.lock().unwrap().push((id, event));
    }

    /// A copy of every event so far, in order, so a test can inspect it without the lock.
    pub fn events(&self) -> Vec<(SessionId, Event)> {
        self.events.lock().unwrap().clone()
    }

    /// Events of one session.
    pub fn of(&self, id: SessionId) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|(s, _)| *s == id)
            .map(|(_, e)| e)
            .collect()
    }

    /// How many times `event` happened, over all sessions.
    pub fn count(&self, event: &Event) -> usize {
        self.events().iter().filter(|(_, e)| e == event).count()
    }

    /// Handles of every session that opened, in open order.
    pub fn sessions(&self) -> Vec<Session<Bytes>> {
        self.sessions.lock().unwrap().clone()
    }

    /// Waits (5 s at most) for the first session to open and returns its handle: how a
    /// test gets hold of the server-side session it drives from outside the callbacks.
    pub async fn first_session(&self) -> Session<Bytes> {
        self.wait_for(SECS5, "open", |e| {
            // on_open records the event before the handle: wait for both.
            !e.is_empty() && !self.sessions.lock().unwrap().is_empty()
        })
        .await;
        self.sessions()[0].clone()
    }

    /// Waits (at most `limit`) until `cond` holds for the events; panics with them if not.
    pub async fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        cond: impl Fn(&[(SessionId, Event)]) -> bool,
    ) {
        if eventually(limit, || cond(&self.events())).await {
            return;
        }
        panic!(
            "timed out after {limit:?} waiting for {what}; events: {:?}",
            self.events()
        );
    }
}

/// What a probe does besides recording.
#[derive(Default)]
pub struct Behaviour {
    /// Echo every frame back.
    pub echo: bool,
    /// Refuse in `on_open`.
    pub refuse: bool,
    /// Close the session (from the callback) on a frame with this payload.
    pub close_on: Option<&'static [u8]>,
    /// Panic on a frame with this payload.
    pub panic_on: Option<&'static [u8]>,
    /// Sleep this long in each `on_message` while `slow` is set (blocks the arbiter: a
    /// listener that consumes slowly).
    pub delay: Duration,
    pub slow: AtomicBool,
    /// Record message payloads (off for floods).
    pub quiet: bool,
    /// Frames handed to `on_message` so far.
    pub delivered: AtomicU64,
}

impl Behaviour {
    /// Echo every frame back and record it: what most of the suite's servers do.
    pub fn echo() -> Behaviour {
        Behaviour {
            echo: true,
            ..Default::default()
        }
    }

    /// Echo every frame back without recording payloads: for floods and many frames,
    /// where the log would only grow.
    pub fn quiet_echo() -> Behaviour {
        Behaviour {
            echo: true,
            quiet: true,
            ..Default::default()
        }
    }
}

/// A listener that records its events in a [`Log`] and acts per [`Behaviour`].
pub struct Probe {
    pub log: Arc<Log>,
    pub behaviour: Arc<Behaviour>,
}

impl EventListener for Probe {
    type Codec = LengthDelimited;
    type Out = Bytes;

    fn on_open(&mut self, session: &mut SessionContext<'_, Self>) -> getty::Result<()> {
        if self.behaviour.refuse {
            return Err(Error::refused("test refuses"));
        }
        self.log.push(session.id(), Event::Open);
        self.log
            .sessions
            .lock()
            .unwrap()
            .push(session.session().clone());
        Ok(())
    }

    fn on_message(&mut self, session: &mut SessionContext<'_, Self>, frame: BytesMut) {
        let b = &self.behaviour;
        b.delivered.fetch_add(1, Ordering::Relaxed);
        if b.slow.load(Ordering::Relaxed) {
            std::thread::sleep(b.delay);
        }
        if b.panic_on == Some(&frame[..]) {
            panic!("probe told to panic");
        }
        let frame = frame.freeze();
        if !b.quiet {
            self.log.push(session.id(), Event::Message(frame.clone()));
        }
        if b.close_on == Some(&frame[..]) {
            session.close();
            return;
        }
        if b.echo {
            session
                .write(frame)
                .expect("echo accepted while the session is writable");
        }
    }

    fn on_cron(&mut self, session: &mut SessionContext<'_, Self>) {
        self.log.push(session.id(), Event::Cron);
    }

    fn on_error(&mut self, session: &Session<Bytes>, error: &Error) {
        assert_eq!(
            error.session(),
            Some(session.id()),
            "errors name their session"
        );
        self.log.push(session.id(), Event::Error(error.clone()));
    }

    fn on_close(&mut self, session: &Session<Bytes>) {
        self.log.push(session.id(), Event::Close);
    }
}

impl Probe {
    /// A `new_session` hook whose sessions are probes recording into `log`, with the
    /// length-delimited codec bounded by each session's max frame length.
    pub fn hook(
        log: Arc<Log>,
        behaviour: Arc<Behaviour>,
    ) -> impl Fn(&mut getty::SessionSetup) -> getty::Result<(Probe, LengthDelimited)>
           + Send
           + Sync
           + 'static {
        move |setup| {
            let max = setup.config().max_frame_length;
            Ok((
                Probe {
                    log: log.clone(),
                    behaviour: behaviour.clone(),
                },
                LengthDelimited::with_max_frame_length(max),
            ))
        }
    }
}

/// Starts a one-arbiter server on a free loopback port with probes as listeners.
pub async fn start_probe_server(
    behaviour: Behaviour,
    config: SessionConfig,
) -> (ServerHandle, Arc<Log>, Arc<Behaviour>) {
    start_probe_server_with(TcpServer::new("127.0.0.1:0").workers(1), behaviour, config).await
}

/// Starts `server` (its address and workers chosen by the test) with probes as listeners,
/// recording into a new log: for tests that need more than [`start_probe_server`]'s
/// defaults.
pub async fn start_probe_server_with(
    server: TcpServer,
    behaviour: Behaviour,
    config: SessionConfig,
) -> (ServerHandle, Arc<Log>, Arc<Behaviour>) {
    let log = Arc::new(Log::default());
    let behaviour = Arc::new(behaviour);
    let handle = server
        .session_config(config)
        .start(Probe::hook(log.clone(), behaviour.clone()))
        .await
        .expect("server starts");
    (handle, log, behaviour)
}

/// A framed loopback client.
pub type Client = Framed<TcpStream, LengthDelimited>;

/// Connects a framed loopback client to `server`, taking frames up to 16 MiB.
pub async fn connect(server: &ServerHandle) -> Client {
    connect_max(server, 16 * 1024 * 1024).await
}

/// Connects a framed loopback client to `server` (5 s at most) with Nagle off, taking
/// frames up to `max` bytes.
pub async fn connect_max(server: &ServerHandle, max: usize) -> Client {
    let stream = within(
        Duration::from_secs(5),
        TcpStream::connect(server.inet_addr().unwrap()),
    )
    .await
    .expect("connect");
    stream.set_nodelay(true).unwrap();
    Framed::new(stream, LengthDelimited::with_max_frame_length(max))
}

/// Sends one frame and waits (5 s at most) for its echo.
pub async fn round_trip(client: &mut Client, payload: &[u8]) -> Bytes {
    client
        .send(Bytes::copy_from_slice(payload))
        .await
        .expect("send");
    let echo = within(Duration::from_secs(5), client.next()).await;
    echo.expect("an echo before EOF")
        .expect("a valid frame")
        .freeze()
}

/// Reads until EOF (or error), at most `limit`; returns the frames read.
pub async fn read_to_end(client: &mut Client, limit: Duration) -> Vec<Bytes> {
    let mut frames = Vec::new();
    within(limit, async {
        while let Some(Ok(frame)) = client.next().await {
            frames.push(frame.freeze());
        }
    })
    .await;
    frames
}

/// Awaits `fut`, panicking if it takes longer than `limit`.
pub async fn within<F: std::future::Future>(limit: Duration, fut: F) -> F::Output {
    within_for(limit, "the awaited future", fut).await
}

/// Awaits `fut`, panicking with `what` it waited for if that takes longer than `limit`:
/// for tests with many waits, where the panic must say which one timed out.
pub async fn within_for<F: std::future::Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?}: {what}"))
}

/// Polls `cond()` every 10 ms until it holds; false if it still does not after `limit`.
/// The one polling loop of the suite: bounded both by a round count and by the clock, so a
/// slow `cond` cannot stretch the wait, and a test that must not fail on a timeout (a
/// capability probe) can decide for itself what a `false` means.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let step = Duration::from_millis(10);
    let start = Instant::now();
    for _ in 0..(limit.as_millis() / step.as_millis()).max(1) {
        if cond() {
            return true;
        }
        if start.elapsed() >= limit {
            break;
        }
        tokio::time::sleep(step).await;
    }
    cond()
}

/// Waits (at most `limit`) until `cond()` holds; panics naming `what` if it never does.
pub async fn wait_until(limit: Duration, what: &str, cond: impl FnMut() -> bool) {
    if !eventually(limit, cond).await {
        panic!("timed out after {limit:?} waiting for {what}");
    }
}

/// The number in environment variable `name`, or `default` when it is unset or not a
/// number: how a load test lets a run scale its size or length up (or down on a small
/// machine) without an edit.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The suite's usual limit on a wait that should take milliseconds: long enough for a
/// loaded machine, short enough that a hang fails fast.
pub const SECS5: Duration = Duration::from_secs(5);

/// How many file descriptors this process holds now (0 where /proc is missing): the leak
/// tests compare it before and after, since a socket left behind shows up only here.
pub fn open_fds() -> usize {
    open_fds_of("self")
}

/// How many file descriptors process `pid` holds now (`self` for this one; 0 where /proc
/// is missing or the process is gone).
pub fn open_fds_of(pid: impl std::fmt::Display) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// A new log, and a client's `new_session` hook whose sessions are probes recording
/// into it with the length-delimited codec's own default bound.
pub fn probe_client_hook(
    behaviour: Behaviour,
) -> (
    Arc<Log>,
    impl Fn(&mut getty::SessionSetup) -> getty::Result<(Probe, LengthDelimited)> + Send + Sync + 'static,
) {
    let log = Arc::new(Log::default());
    let behaviour = Arc::new(behaviour);
    let l = log.clone();
    let hook = move |_: &mut getty::SessionSetup| {
        Ok((
            Probe {
                log: l.clone(),
                behaviour: behaviour.clone(),
            },
            LengthDelimited::new(),
        ))
    };
    (log, hook)
}

/// Starts a client of `addr` whose sessions are probes recording into a new log.
pub fn start_probe_client(
    client: getty::TcpClient,
    behaviour: Behaviour,
) -> (getty::TcpClientHandle, Arc<Log>) {
    let (log, hook) = probe_client_hook(behaviour);
    (client.start(hook), log)
}

/// A client's events as its `on_event` hook saw them, in order. The hook runs on the
/// thread that started the client, so a shared cell is enough.
#[derive(Clone, Default)]
pub struct ClientEvents(Rc<RefCell<Vec<ClientEvent>>>);

impl ClientEvents {
    /// An `on_event` hook that records into this.
    pub fn hook(&self) -> impl Fn(ClientEvent) + 'static {
        let events = self.0.clone();
        move |event| events.borrow_mut().push(event)
    }

    /// Every event so far.
    pub fn all(&self) -> Vec<ClientEvent> {
        self.0.borrow().clone()
    }

    /// How many sessions came up.
    pub fn ups(&self) -> usize {
        self.count(|e| matches!(e, ClientEvent::SessionUp { .. }))
    }

    /// How many sessions went down.
    pub fn downs(&self) -> usize {
        self.count(|e| matches!(e, ClientEvent::SessionDown { .. }))
    }

    /// How many dials failed.
    pub fn dial_failures(&self) -> usize {
        self.count(|e| matches!(e, ClientEvent::DialFailed { .. }))
    }

    /// How many events `which` picks.
    fn count(&self, which: impl Fn(&ClientEvent) -> bool) -> usize {
        self.0.borrow().iter().filter(|e| which(e)).count()
    }
}

/// Waits for the one session of `log` to close and returns its events.
pub async fn closed_events(log: &Log) -> Vec<Event> {
    log.wait_for(SECS5, "on_close", |e| {
        e.iter().any(|(_, ev)| *ev == Event::Close)
    })
    .await;
    // A second on_close would come right after the first: give it a moment to show.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let id = log.sessions()[0].id();
    log.of(id)
}

/// Asserts that a session's `events` end with exactly one `on_close`, preceded right
/// before it by the one error, whose kind passes `error` (or by no error at all when
/// `None`).
pub fn assert_closed_once(events: &[Event], error: Option<fn(&ErrorKind) -> bool>) {
    assert_eq!(
        events.iter().filter(|e| **e == Event::Close).count(),
        1,
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&Event::Close), "{events:?}");
    let errors: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::Error(_)))
        .collect();
    match error {
        Some(is) => {
            assert!(
                matches!(errors.as_slice(), [error] if error.is_error(is)),
                "{events:?}"
            );
            assert!(
                events[events.len() - 2].is_error(is),
                "on_error right before on_close: {events:?}"
            );
        }
        None => assert!(errors.is_empty(), "{events:?}"),
    }
}

pub mod flood;
pub mod process;
pub mod quic;
pub mod rig;
pub mod scrape;
pub mod tls;
pub mod ws;

/// Bytes a flood must have so that a reader which stops reading holds the peer back:
/// more than the kernel's buffers can take between them. Loopback TCP may tune its
/// receive buffer up to tcp_rmem's maximum (32 MiB on the CI machine); a 6.4 MiB flood
/// sometimes fit and finished unhindered. The largest receive and send buffers, plus 8 MiB.
pub fn flood_bytes() -> usize {
    let max_of = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().last()?.parse::<usize>().ok())
            .unwrap_or(32 << 20)
    };
    max_of("/proc/sys/net/ipv4/tcp_rmem") + max_of("/proc/sys/net/ipv4/tcp_wmem") + (8 << 20)
}
