//! The broker link of the chat room (`room.rs`): one room spread over several processes,
//! possibly on several hosts, joined through Redis pub/sub, the way Socket.IO's Redis
//! adapter, Django Channels and ActionCable join theirs.
//!
//! Each process publishes what its own members say on one Redis channel per room, and
//! hands what the other processes publish to its room, which delivers it to its own
//! members with the room's usual rules (`try_write`, never waiting; missed lines counted
//! and told). Every published line carries the publishing process's id and a sequence
//! number of that process: a process skips its own lines (its members had them already,
//! from the room itself) and sees, from a jump in another process's numbers, that lines
//! of that process did not reach it.
//!
//! ## What a line can meet, and who is told
//! - The link is down (the broker is gone, or was never reached): the room says
//!   `* room partitioned: REASON` to its members, keeps delivering locally, and counts
//!   each line a member says meanwhile; when the link is back it says `* room whole
//!   again` and tells each member `* N lines not delivered to other servers`. The link
//!   re-dials with the capped, jittered exponential backoff of the crate's clients.
//! - The broker is slow: the queue of lines to publish is bounded ([`PUBLISH_QUEUE`]).
//!   A line that finds it full is not queued; the room reports that like a down link
//!   (`* room partitioned: the broker is too slow`) until half the queue is free again.
//! - The link fails with a batch of lines sent but not acknowledged: the broker may or
//!   may not have passed them on, so their senders are told `* N lines may not have
//!   reached other servers`, and a process that missed them sees the gap (next point).
//! - Lines published by another process do not all arrive here (this process's
//!   subscription was down, or the room could not keep up with [`EVENT_QUEUE`] batches
//!   waiting): members are told `* N lines from other servers did not reach this one`.
//!
//! So a line is delivered at most once to each member, each sender's lines arrive in the
//! order it sent them, and a line that does not arrive is reported to its sender or to
//! the members that miss it: never dropped silently, never sent twice (nothing is
//! published again after a failure). Redis pub/sub keeps nothing for a subscriber that
//! is away, so this is all a room can promise without a log it could replay.
//!
//! ## Why an example module and not a feature of the crate
//! Everything here is about one application's messages: the line format, the
//! per-process sequence numbers, what the members are told. The crate's part of the job
//! (bounded queues, `try_write` that never waits, reconnect backoff) it already has, and
//! a broker client in the crate, even behind a feature, would tie its releases to the
//! `redis` crate's for no gain in reuse: a game server or a push gateway joins its
//! processes with other messages and other promises. So this stays an example to copy.
//!
//! ## Why a backoff of its own
//! The crate's clients re-dial with `endpoint::reconnect::Backoff`, which is private to
//! the crate (it is tied to the client's dial rounds). [`Backoff`] here has the same
//! schedule and the same defaults (`getty::defaults::DEFAULT_RECONNECT_INTERVAL`,
//! `DEFAULT_MAX_RECONNECT_INTERVAL`): a delay drawn from `[3/4 d, d]` with
//! `d = min(cap, interval * 2^failures)`, reset by a link that stayed up for ten
//! intervals.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use getty::defaults::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RECONNECT_INTERVAL, DEFAULT_RECONNECT_INTERVAL,
    DEFAULT_WRITE_TIMEOUT,
};
use getty::SessionId;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use tokio::sync::mpsc;

/// Lines waiting to be published: past this the broker is too slow, and the room says so.
pub const PUBLISH_QUEUE: usize = 4096;
/// Most lines sent to the broker in one pipeline (and handed to the room in one event).
pub const BATCH: usize = 256;
/// Events waiting for the room: past this, lines from other processes are dropped here
/// and counted (the redis crate buffers a subscription without a bound, so the link
/// reads it at once and keeps the bound itself).
pub const EVENT_QUEUE: usize = 64;
/// How long a dial (connect, and subscribe) may take.
pub const DIAL_TIMEOUT: Duration = DEFAULT_CONNECT_TIMEOUT;
/// How long the broker may take to acknowledge a batch or answer a ping.
pub const REPLY_TIMEOUT: Duration = DEFAULT_WRITE_TIMEOUT;
/// How often an idle subscription is pinged, so a broker that vanished without closing
/// the connection (a host gone, a NAT that forgot the flow) is noticed.
pub const PING_EVERY: Duration = Duration::from_secs(2);
/// Longest line accepted from the broker; a longer one is not a line of this room.
pub const MAX_REMOTE_LINE: usize = 8 * 1024;
/// Other processes whose sequence numbers are remembered; the least recently heard is
/// forgotten past this, so processes that come and go cannot grow the map.
pub const MAX_ORIGINS: usize = 1024;

/// A broker to dial and the channel of one room on it.
#[derive(Clone)]
pub struct Broker {
    client: redis::Client,
    channel: String,
}

impl Broker {
    /// Checks `url` (`redis://HOST:PORT[/DB]`) without dialing; `room` names the
    /// channel, so processes with the same room name share one room.
    pub fn open(url: &str, room: &str) -> Result<Broker, String> {
        let client = redis::Client::open(url).map_err(|err| format!("broker {url:?}: {err}"))?;
        Ok(Broker {
            client,
            channel: format!("getty:room:{room}"),
        })
    }
}

/// A line for the other processes; `from` is the local member who said it, if any (a
/// join or leave notice has none), so a line that is not delivered can be reported.
#[derive(Debug)]
pub struct Outgoing {
    /// The member whose line this is.
    pub from: Option<SessionId>,
    /// The line as members see it, without its newline.
    pub line: String,
}

/// What the link tells the room, in order.
#[derive(Debug)]
pub enum BrokerEvent {
    /// Connected and subscribed: lines go out and come in.
    Up,
    /// The link is down, for the reason given; it re-dials.
    Down(String),
    /// Lines from other processes, in order; `lost` lines before them did not arrive.
    Remote {
        /// Lines of other processes missed since the last event.
        lost: u64,
        /// The lines, each as members see it.
        lines: Vec<String>,
    },
    /// Lines of one local member that did not (`unsent`) or may not (`unconfirmed`)
    /// have reached the other processes.
    Undelivered {
        /// The member who said them.
        from: SessionId,
        /// Lines certainly not published.
        unsent: u64,
        /// Lines sent to the broker that it did not acknowledge.
        unconfirmed: u64,
    },
}

/// Why a line was not queued for the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The publish queue is full: the broker (or the way to it) is too slow.
    Full,
    /// The link's task has ended (the system is stopping).
    Stopped,
}

/// The room's end of the link: a bounded queue to the task that talks to the broker.
pub struct BrokerLink {
    queue: mpsc::Sender<Outgoing>,
    server: String,
}

impl BrokerLink {
    /// Starts the link's task on the current actix system; what it learns arrives on
    /// `events` (bounded by its capacity, [`EVENT_QUEUE`] is meant).
    pub fn start(broker: Broker, events: mpsc::Sender<BrokerEvent>) -> BrokerLink {
        let origin = process_origin();
        let (queue, outgoing) = mpsc::channel(PUBLISH_QUEUE);
        actix::spawn(run(broker, origin, outgoing, events));
        BrokerLink {
            queue,
            // A short name for people; the full 64-bit origin keeps processes apart.
            server: format!("{:06x}", origin >> 40),
        }
    }

    /// This process's short name, which the room adds to its members' ids.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Queues `line` for the other processes without waiting. A line break in it (a
    /// WebSocket member's message may hold one) crosses as a space: a room elsewhere may
    /// serve line-based members, to whom it would show a second, forged line.
    pub fn publish(&self, mut line: Outgoing) -> Result<(), Refused> {
        if line.line.contains(['\n', '\r']) {
            line.line = line.line.replace(['\n', '\r'], " ");
        }
        self.queue.try_send(line).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => Refused::Full,
            mpsc::error::TrySendError::Closed(_) => Refused::Stopped,
        })
    }

    /// Whether at least half of the publish queue is free: a room that found it full
    /// waits for this before it calls itself whole again, so it does not flap.
    pub fn has_room(&self) -> bool {
        self.queue.capacity() >= self.queue.max_capacity() / 2
    }
}

/// A 64-bit id for this process, different for each start, never 0.
fn process_origin() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // std's RandomState is seeded from the OS; hashing the pid and the time as well
    // keeps two processes apart even on a platform where it is not.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() | 1
}

// ---- the wire format: `ORIGIN SEQ LINE`, ORIGIN 16 hex digits, SEQ decimal ----------

fn encode(origin: u64, seq: u64, line: &str) -> String {
    format!("{origin:016x} {seq} {line}")
}

/// The origin, sequence number and line of a payload, or `None` if it is not one.
fn decode(payload: &[u8]) -> Option<(u64, u64, &str)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (origin, rest) = text.split_once(' ')?;
    let (seq, line) = rest.split_once(' ')?;
    // A line break would let a payload pose as several lines (a fake notice).
    if origin.len() != 16 || line.len() > MAX_REMOTE_LINE || line.contains(['\n', '\r']) {
        return None;
    }
    Some((
        u64::from_str_radix(origin, 16).ok()?,
        seq.parse().ok()?,
        line,
    ))
}

/// The last sequence number heard from each other process, to find gaps.
#[derive(Default)]
struct Heard {
    last: HashMap<u64, (u64, u64)>, // origin -> (last seq, when heard, in `tick`s)
    tick: u64,
}

impl Heard {
    /// Notes `seq` from `origin`: `Some(lines missed before it)`, or `None` if it is not
    /// newer than the last one (a copy: dropped, so nothing is delivered twice).
    fn note(&mut self, origin: u64, seq: u64) -> Option<u64> {
        self.tick += 1;
        if !self.last.contains_key(&origin) && self.last.len() >= MAX_ORIGINS {
            if let Some(oldest) = self.last.iter().min_by_key(|(_, v)| v.1).map(|(k, _)| *k) {
                self.last.remove(&oldest);
            }
        }
        match self.last.insert(origin, (seq, self.tick)) {
            // The first line heard from a process: what it said before is unknown here.
            None => Some(0),
            Some((last, _)) if seq > last => Some(seq - last - 1),
            Some(previous) => {
                self.last.insert(origin, previous);
                None
            }
        }
    }
}

// ---- the backoff ---------------------------------------------------------------------

/// When to dial again: the schedule of the crate's clients (see the module docs).
pub struct Backoff {
    interval: Duration,
    cap: Duration,
    failures: u32,
    rng: u64,
}

impl Backoff {
    /// A schedule from `interval` up to `cap`; `seed` varies the jitter between processes.
    pub fn new(interval: Duration, cap: Duration, seed: u64) -> Backoff {
        let interval = interval.max(Duration::from_millis(1));
        Backoff {
            interval,
            cap: cap.max(interval),
            failures: 0,
            rng: seed | 1,
        }
    }

    /// How long a link must stay up to count as healthy: ten intervals, at most the cap.
    pub fn stable_after(&self) -> Duration {
        self.interval.saturating_mul(10).min(self.cap)
    }

    /// A dial failed, or a link went down before it was healthy.
    pub fn fail(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    /// A link stayed up: start over from the interval.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The delay before the next dial.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .interval
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.cap);
        // xorshift64: jitter needs no more randomness than this.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let unit = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(0.75 + 0.25 * unit)
    }
}

// ---- the link's task -----------------------------------------------------------------

/// How a connected link ended.
enum Ended {
    /// The connection failed or the broker stopped answering; re-dial.
    Lost(String),
    /// The room is gone (its queues closed): the process is stopping.
    RoomGone,
}

/// Counts of lines per member that did not reach the other processes.
#[derive(Default)]
struct Tally(HashMap<SessionId, (u64, u64)>);

impl Tally {
    fn unsent(&mut self, from: Option<SessionId>) {
        if let Some(id) = from {
            self.0.entry(id).or_default().0 += 1;
        }
    }

    fn unconfirmed(&mut self, from: Option<SessionId>) {
        if let Some(id) = from {
            self.0.entry(id).or_default().1 += 1;
        }
    }

    /// Tells the room; false if it is gone.
    async fn report(self, events: &mpsc::Sender<BrokerEvent>) -> bool {
        for (from, (unsent, unconfirmed)) in self.0 {
            let event = BrokerEvent::Undelivered {
                from,
                unsent,
                unconfirmed,
            };
            if events.send(event).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// Dials, serves the link while it holds, and re-dials after a backoff, until the room
/// is gone. While the link is down every queued line is taken out at once and reported
/// as not sent, so the queue never holds lines the broker will not see.
async fn run(
    broker: Broker,
    origin: u64,
    mut outgoing: mpsc::Receiver<Outgoing>,
    events: mpsc::Sender<BrokerEvent>,
) {
    let mut backoff = Backoff::new(
        DEFAULT_RECONNECT_INTERVAL,
        DEFAULT_MAX_RECONNECT_INTERVAL,
        origin,
    );
    let mut next_seq = 1u64;
    let mut heard = Heard::default();
    loop {
        let reason = match dial(&broker).await {
            Ok((publisher, sink, stream)) => {
                tracing::info!(channel = %broker.channel, "broker link up");
                if events.send(BrokerEvent::Up).await.is_err() {
                    return;
                }
                let up_since = Instant::now();
                let mut in_flight = Vec::new();
                let link = Link {
                    origin,
                    channel: &broker.channel,
                    events: &events,
                };
                let ended = link
                    .serve(
                        publisher,
                        sink,
                        stream,
                        &mut outgoing,
                        &mut next_seq,
                        &mut heard,
                        &mut in_flight,
                    )
                    .await;
                // As the crate's clients do: a link that held starts the schedule over,
                // one that dropped at once counts as a failed dial.
                if up_since.elapsed() >= backoff.stable_after() {
                    backoff.reset();
                } else {
                    backoff.fail();
                }
                let reason = match ended {
                    Ended::Lost(reason) => reason,
                    Ended::RoomGone => return,
                };
                if events
                    .send(BrokerEvent::Down(reason.clone()))
                    .await
                    .is_err()
                {
                    return;
                }
                let mut tally = Tally::default();
                for from in in_flight {
                    tally.unconfirmed(from);
                }
                if !tally.report(&events).await {
                    return;
                }
                reason
            }
            Err(reason) => {
                backoff.fail();
                if events
                    .send(BrokerEvent::Down(reason.clone()))
                    .await
                    .is_err()
                {
                    return;
                }
                reason
            }
        };
        let delay = backoff.next_delay();
        tracing::warn!(%reason, ?delay, "broker link down; dialing again after the delay");
        if !drain_for(delay, &mut outgoing, &events).await {
            return;
        }
    }
}

/// Waits `delay`, taking out every line queued meanwhile and reporting it as not sent;
/// false if the room is gone.
async fn drain_for(
    delay: Duration,
    outgoing: &mut mpsc::Receiver<Outgoing>,
    events: &mpsc::Sender<BrokerEvent>,
) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            _ = &mut sleep => return true,
            n = outgoing.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return false;
                }
                let mut tally = Tally::default();
                for line in batch.drain(..) {
                    tally.unsent(line.from);
                }
                if !tally.report(events).await {
                    return false;
                }
            }
        }
    }
}

/// One connection for publishing and one subscribed to the room's channel.
async fn dial(
    broker: &Broker,
) -> Result<(MultiplexedConnection, PubSubSink, PubSubStream), String> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(DIAL_TIMEOUT)
        .set_response_timeout(REPLY_TIMEOUT);
    let publisher = broker
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|err| format!("cannot reach the broker: {err}"))?;
    let pubsub = within(DIAL_TIMEOUT, broker.client.get_async_pubsub())
        .await
        .map_err(|err| format!("cannot reach the broker: {err}"))?;
    let (mut sink, stream) = pubsub.split();
    within(REPLY_TIMEOUT, sink.subscribe(&broker.channel))
        .await
        .map_err(|err| format!("cannot subscribe: {err}"))?;
    Ok((publisher, sink, stream))
}

/// `future`'s result, or an error once `limit` has passed.
async fn within<T>(
    limit: Duration,
    future: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, future).await {
        Ok(result) => result.map_err(|err| err.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// What a connected link works with.
struct Link<'a> {
    origin: u64,
    channel: &'a str,
    events: &'a mpsc::Sender<BrokerEvent>,
}

impl Link<'_> {
    /// Publishes, receives and pings at once until one of them fails. Lines sent but not
    /// acknowledged when it ends are left in `in_flight` (their senders, in order).
    #[allow(clippy::too_many_arguments)]
    async fn serve(
        &self,
        mut publisher: MultiplexedConnection,
        mut sink: PubSubSink,
        mut stream: PubSubStream,
        outgoing: &mut mpsc::Receiver<Outgoing>,
        next_seq: &mut u64,
        heard: &mut Heard,
        in_flight: &mut Vec<Option<SessionId>>,
    ) -> Ended {
        let publish = async {
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                if outgoing.recv_many(&mut batch, BATCH).await == 0 {
                    return Ended::RoomGone;
                }
                // One pipeline per batch: one round trip for up to BATCH lines, in order
                // on this one connection, which is what keeps each sender's order.
                let mut pipe = redis::pipe();
                for line in batch.drain(..) {
                    let payload = encode(self.origin, *next_seq, &line.line);
                    *next_seq += 1;
                    pipe.cmd("PUBLISH").arg(self.channel).arg(payload).ignore();
                    in_flight.push(line.from);
                }
                // The connection's response timeout bounds the wait.
                if let Err(err) = pipe.query_async::<()>(&mut publisher).await {
                    return Ended::Lost(format!("publishing failed: {err}"));
                }
                in_flight.clear();
            }
        };
        let receive = async {
            let mut lost = 0u64;
            loop {
                let Some(first) = stream.next().await else {
                    return Ended::Lost("the broker closed the connection".to_owned());
                };
                // Everything already here goes to the room as one event.
                let mut lines = Vec::new();
                let mut next = Some(first);
                while let Some(msg) = next {
                    match decode(msg.get_payload_bytes()) {
                        Some((origin, _, _)) if origin == self.origin => {} // ours
                        Some((origin, seq, line)) => match heard.note(origin, seq) {
                            Some(missed) => {
                                lost += missed;
                                lines.push(line.to_owned());
                            }
                            None => tracing::debug!(origin, seq, "repeated line dropped"),
                        },
                        None => tracing::debug!("a payload not of this room's format ignored"),
                    }
                    if lines.len() >= BATCH {
                        break;
                    }
                    next = stream.next().now_or_never().flatten();
                }
                if lines.is_empty() && lost == 0 {
                    continue;
                }
                let count = lines.len() as u64;
                match self.events.try_send(BrokerEvent::Remote { lost, lines }) {
                    Ok(()) => lost = 0,
                    // The room is behind: these lines are counted, not kept.
                    Err(mpsc::error::TrySendError::Full(_)) => lost += count,
                    Err(mpsc::error::TrySendError::Closed(_)) => return Ended::RoomGone,
                }
            }
        };
        let ping = async {
            loop {
                tokio::time::sleep(PING_EVERY).await;
                if let Err(err) = within(REPLY_TIMEOUT, sink.ping::<redis::Value>()).await {
                    return Ended::Lost(format!("the broker stopped answering: {err}"));
                }
            }
        };
        tokio::select! {
            ended = publish => ended,
            ended = receive => ended,
            ended = ping => ended,
        }
    }
}
