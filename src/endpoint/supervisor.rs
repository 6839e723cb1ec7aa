//! The supervisor actor: one per endpoint. It drives every session's cron ticks, read and
//! write timeouts, and the endpoint's graceful stop.
//!
//! It never touches a socket and holds no lock: it reads each session's timestamps from
//! shared atomics on a tick and sends a [`Control`] message when something is due. Stop
//! requests are messages too, handled one at a time, so a stop cannot race a session
//! that is closing. Rule: no lock is held across a callback or a close; getty's own
//! client deadlocked when its shutdown held its lock while a closing session re-entered
//! the reconnect logic that wanted the same lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::clock;
use crate::endpoint::client::{ClientEvent, EventHook};
use crate::endpoint::reconnect::Backoff;
use crate::endpoint::{EndpointShared, SessionSlot};
use crate::error::Error;
use crate::session::{AnySession, Control, SessionId, SessionShared};
use crate::SessionConfig;

/// Shortest and longest supervisor tick. Timers fire within one tick of being due.
const MIN_TICK: Duration = Duration::from_millis(5);
const MAX_TICK: Duration = Duration::from_millis(250);
/// Time granted past the longest wait time before a stop stops waiting for a session
/// whose arbiter does not answer (for example a callback that never returns).
const STOP_GRACE: Duration = Duration::from_secs(1);

/// The tick that serves `config`: a quarter of its shortest timer, within bounds.
pub(crate) fn tick_for(config: &SessionConfig) -> Duration {
    let shortest = [config.read_timeout, config.write_timeout]
        .into_iter()
        .flatten()
        .fold(config.cron_period, Duration::min);
    (shortest / 4).clamp(MIN_TICK, MAX_TICK)
}

/// One session's timers, in process milliseconds (see `clock`). Socket-free.
#[derive(Debug, Clone)]
pub(crate) struct Timers {
    cron_period_ms: u64,
    read_timeout_ms: Option<u64>,
    write_timeout_ms: Option<u64>,
    next_cron_ms: u64,
    /// The last-read time a read timeout was reported for: reported once per silence,
    /// again only after a newer read started a new one.
    read_reported: Option<u64>,
    /// The stall start a write timeout was reported for, likewise.
    write_reported: Option<u64>,
}

impl Timers {
    pub(crate) fn new(config: &SessionConfig, now_ms: u64) -> Self {
        let ms = |d: Duration| d.as_millis().max(1) as u64;
        Timers {
            cron_period_ms: ms(config.cron_period),
            read_timeout_ms: config.read_timeout.map(ms),
            write_timeout_ms: config.write_timeout.map(ms),
            next_cron_ms: now_ms + ms(config.cron_period),
            read_reported: None,
            write_reported: None,
        }
    }

    /// What is due at `now_ms`, given when the session last read and since when its
    /// writes have been stalled (0: not stalled). Timeouts come before cron.
    pub(crate) fn due(
        &mut self,
        now_ms: u64,
        last_read_ms: u64,
        stalled_ms: u64,
    ) -> Option<Control> {
        if let Some(limit) = self.write_timeout_ms {
            let new_stall = self.write_reported != Some(stalled_ms);
            if stalled_ms != 0 && new_stall && now_ms.saturating_sub(stalled_ms) >= limit {
                self.write_reported = Some(stalled_ms);
                return Some(Control::WriteTimeout);
            }
        }
        if let Some(limit) = self.read_timeout_ms {
            let new_silence = self.read_reported != Some(last_read_ms);
            if new_silence && now_ms.saturating_sub(last_read_ms) >= limit {
                self.read_reported = Some(last_read_ms);
                return Some(Control::ReadTimeout);
            }
        }
        if now_ms >= self.next_cron_ms {
            // A late tick fires once, then the schedule resumes from now: no bursts.
            self.next_cron_ms += self.cron_period_ms;
            if self.next_cron_ms <= now_ms {
                self.next_cron_ms = now_ms + self.cron_period_ms;
            }
            return Some(Control::Cron);
        }
        None
    }
}

struct Watched {
    shared: Arc<SessionShared>,
    control: Recipient<Control>,
    timers: Timers,
    opened_ms: u64,
}

/// A client's re-dial state: the supervisor alone decides when to dial, so there is one
/// owner of the dial state and never more than `wanted` sessions or dials. Rule: one
/// owner of dialing, so two dialers can never serve one slot, and a stop cancels any
/// pending backoff at once (getty once ran two reconnections at once for one slot).
pub(crate) struct Redial {
    /// The connection number.
    pub(crate) wanted: usize,
    /// Starts one dial for a slot (it spawns the connect and never blocks).
    pub(crate) dial: Box<dyn Fn(SessionSlot)>,
    pub(crate) backoff: Backoff,
    pub(crate) events: Option<EventHook>,
    pub(crate) timer: Option<SpawnHandle>,
    /// Failed dials in a row after which the client gives up; `None`: never.
    pub(crate) max_failed_dials: Option<u32>,
    /// Dials that failed since the last one that opened a session.
    pub(crate) failed_in_a_row: u32,
    /// Set once the client gave up: it dials no more.
    pub(crate) gave_up: bool,
    /// Set once the first dial round started: dials from then on are reconnects.
    pub(crate) dialed: bool,
}

/// A dial failed before a session existed.
pub(crate) struct DialFailed(pub(crate) Error);

impl Message for DialFailed {
    type Result = ();
}

/// A session started: watch it.
pub(crate) struct Register {
    pub(crate) shared: Arc<SessionShared>,
    /// A handle for the client's `SessionUp` event (clients only).
    pub(crate) session: Option<AnySession>,
    pub(crate) control: Recipient<Control>,
}

impl Message for Register {
    type Result = ();
}

/// A session (or a connection refused before it became one) is gone.
pub(crate) struct Gone(pub(crate) SessionId);

impl Message for Gone {
    type Result = ();
}

/// The server is draining: tell every session (and each that registers from now on);
/// resolves once none is left.
pub(crate) struct Drain;

impl Message for Drain {
    type Result = ();
}

/// Close every session gracefully; resolves once none is left.
pub(crate) struct Shutdown;

impl Message for Shutdown {
    type Result = ();
}

pub(crate) struct Supervisor {
    endpoint: Arc<EndpointShared>,
    sessions: HashMap<SessionId, Watched>,
    tick: Duration,
    ticker: Option<SpawnHandle>,
    /// Set once a stop began: who waits for the last session to go.
    stop_waiters: Option<Vec<oneshot::Sender<()>>>,
    /// Set once a drain began: who waits for the last session to go.
    drain_waiters: Option<Vec<oneshot::Sender<()>>>,
    redial: Option<Redial>,
    /// Runs once the stop is over (stops the endpoint's extra arbiters).
    on_stopped: Option<Box<dyn FnOnce()>>,
}

impl Supervisor {
    pub(crate) fn new(endpoint: Arc<EndpointShared>, default_config: &SessionConfig) -> Self {
        Supervisor {
            endpoint,
            sessions: HashMap::new(),
            tick: tick_for(default_config),
            ticker: None,
            stop_waiters: None,
            drain_waiters: None,
            redial: None,
            on_stopped: None,
        }
    }

    /// Makes this a client's supervisor: it keeps `redial.wanted` sessions.
    pub(crate) fn with_redial(mut self, redial: Redial) -> Self {
        self.redial = Some(redial);
        self
    }

    /// Runs `f` once the stop is over.
    pub(crate) fn on_stopped(mut self, f: impl FnOnce() + 'static) -> Self {
        self.on_stopped = Some(Box::new(f));
        self
    }

    fn emit(&self, event: ClientEvent) {
        if let Some(hook) = self.redial.as_ref().and_then(|r| r.events.as_ref()) {
            hook(event);
        }
    }

    /// Dials every missing connection now.
    fn dial_missing(&mut self, ctx: &mut Context<Self>) {
        if self.stop_waiters.is_some() {
            return;
        }
        let Some(redial) = self.redial.as_mut() else {
            return;
        };
        redial.timer = None;
        self.endpoint.metrics().reconnect_backoff.set(0.0);
        if redial.gave_up {
            return;
        }
        redial.backoff.new_round();
        let redialing = std::mem::replace(&mut redial.dialed, true);
        // `live` counts every slot from its dial to its end, and only this actor creates
        // slots, so this never dials past the connection number.
        let missing = redial.wanted.saturating_sub(self.endpoint.live());
        for _ in 0..missing {
            self.endpoint.count_attempt(redialing);
            (redial.dial)(SessionSlot::new(self.endpoint.clone(), ctx.address()));
        }
    }

    /// Schedules the next dial round, unless one is already scheduled.
    fn schedule_redial(&mut self, ctx: &mut Context<Self>) {
        if self.stop_waiters.is_some() {
            return;
        }
        let Some(redial) = self.redial.as_mut() else {
            return;
        };
        if redial.timer.is_none() && !redial.gave_up {
            let delay = redial.backoff.next_delay();
            tracing::debug!(?delay, "re-dial scheduled");
            let backoff = &self.endpoint.metrics().reconnect_backoff;
            backoff.set(delay.as_secs_f64());
            redial.timer = Some(ctx.run_later(delay, |act, ctx| act.dial_missing(ctx)));
        }
    }

    fn start_ticker(&mut self, ctx: &mut Context<Self>) {
        if let Some(old) = self.ticker.take() {
            ctx.cancel_future(old);
        }
        self.ticker = Some(ctx.run_interval(self.tick, |act, _| act.check_timers()));
    }

    fn check_timers(&mut self) {
        let now = clock::now_ms();
        for watched in self.sessions.values_mut() {
            let shared = &watched.shared;
            // A session held back (by the memory budget, or with its reader paused for
            // its write queue or backlog) learns it may go on when its logic actor runs
            // its write loop again; a session with nothing left to write has no reason
            // to, so it could wait for good after the budget or its queue freed (a
            // hostile peer's session then outlives every timeout). Rule: every tick
            // re-checks parked readers and has held-back sessions run their write loop
            // again (two atomic loads per session when none is held back).
            shared.release_budget_parked_reader();
            if shared.held_back() {
                watched.control.do_send(Control::Recheck);
            }
            if let Some(control) =
                watched
                    .timers
                    .due(now, shared.last_read_ms(), shared.write_stalled_ms())
            {
                // At most one message per session per tick; timeouts once per session.
                watched.control.do_send(control);
            }
        }
    }

    /// Once no session is left, answers whoever waits for a drain or a stop.
    fn finish_stop_if_empty(&mut self, ctx: &mut Context<Self>) {
        // `live` drops when a slot is released, just before its `Gone` is sent: wait for
        // the `Gone` of every watched session too, so each gets its SessionDown event.
        if self.endpoint.live() != 0 || !self.sessions.is_empty() {
            return;
        }
        // The list stays (empty): a session registered later is still told to drain.
        for waiter in self.drain_waiters.iter_mut().flat_map(std::mem::take) {
            let _ = waiter.send(());
        }
        if self.stop_waiters.is_some() {
            self.finish_stop(ctx);
        }
    }

    fn finish_stop(&mut self, ctx: &mut Context<Self>) {
        for waiter in self.stop_waiters.take().into_iter().flatten() {
            let _ = waiter.send(());
        }
        if let Some(f) = self.on_stopped.take() {
            f();
        }
        ctx.stop();
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.start_ticker(ctx);
        self.dial_missing(ctx);
    }
}

impl Handler<Register> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Register, ctx: &mut Context<Self>) {
        if self.stop_waiters.is_some() {
            // Accepted just before the stop: it closes like the others.
            msg.control.do_send(Control::Shutdown);
        } else if self.drain_waiters.is_some() {
            // Accepted just before the drain: it is told like the others.
            msg.control.do_send(Control::Drain);
        }
        let shared = msg.shared;
        let tick = tick_for(&shared.config);
        if tick < self.tick {
            self.tick = tick;
            self.start_ticker(ctx);
        }
        let now = clock::now_ms();
        let timers = Timers::new(&shared.config, now);
        let id = shared.id;
        self.sessions.insert(
            id,
            Watched {
                shared,
                control: msg.control,
                timers,
                opened_ms: now,
            },
        );
        if let Some(redial) = self.redial.as_mut() {
            redial.failed_in_a_row = 0; // a dial that opened a session: the server is there
        }
        if let Some(session) = msg.session {
            let peer = session.peer_addr().clone();
            self.emit(ClientEvent::SessionUp { id, peer, session });
        }
    }
}

impl Handler<Gone> for Supervisor {
    type Result = ();

    fn handle(&mut self, Gone(id): Gone, ctx: &mut Context<Self>) {
        let watched = self.sessions.remove(&id);
        if let Some(w) = &watched {
            self.emit(ClientEvent::SessionDown { id });
            tracing::debug!(%id, up_ms = clock::now_ms() - w.opened_ms, "session gone");
        }
        if self.stop_waiters.is_none() {
            if let Some(redial) = self.redial.as_mut() {
                // Only a session that stayed up proves the server healthy; a failed dial, a
                // refusal or a session that died young counts as a failed attempt (a
                // session counts from its dial, not from on_open), so none of them can
                // drive a hot loop.
                let stable_ms = redial.backoff.stable_after().as_millis() as u64;
                match watched {
                    Some(w) if clock::now_ms() - w.opened_ms >= stable_ms => redial.backoff.reset(),
                    _ => redial.backoff.fail(),
                }
                self.schedule_redial(ctx);
            }
        }
        self.finish_stop_if_empty(ctx);
    }
}

impl Handler<DialFailed> for Supervisor {
    type Result = ();

    fn handle(&mut self, DialFailed(error): DialFailed, ctx: &mut Context<Self>) {
        tracing::debug!(%error, "dial failed");
        self.emit(ClientEvent::DialFailed {
            error: error.clone(),
        });
        let Some(redial) = self.redial.as_mut() else {
            return;
        };
        redial.failed_in_a_row = redial.failed_in_a_row.saturating_add(1);
        let limit = redial.max_failed_dials;
        if redial.gave_up || !limit.is_some_and(|max| redial.failed_in_a_row >= max) {
            return;
        }
        // Rule: a bounded client stops dialing for good once its limit is met, and says
        // so once, with the error that ended it; the sessions it still has stay open.
        redial.gave_up = true;
        if let Some(timer) = redial.timer.take() {
            ctx.cancel_future(timer);
        }
        self.endpoint.metrics().reconnect_backoff.set(0.0);
        let failed_dials = redial.failed_in_a_row;
        self.endpoint.give_up();
        tracing::warn!(failed_dials, %error, "client gave up dialing");
        self.emit(ClientEvent::GaveUp {
            failed_dials,
            error,
        });
    }
}

impl Handler<Drain> for Supervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> ResponseFuture<()> {
        let (tx, rx) = oneshot::channel();
        if self.drain_waiters.is_none() {
            for watched in self.sessions.values() {
                watched.control.do_send(Control::Drain);
            }
        }
        self.drain_waiters.get_or_insert_with(Vec::new).push(tx);
        self.finish_stop_if_empty(ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> ResponseFuture<()> {
        let (tx, rx) = oneshot::channel();
        if self.stop_waiters.is_none() {
            self.endpoint.begin_stop();
            if let Some(timer) = self.redial.as_mut().and_then(|r| r.timer.take()) {
                ctx.cancel_future(timer); // no dial after a stop, even mid-backoff
                self.endpoint.metrics().reconnect_backoff.set(0.0);
            }
            let longest_wait = self
                .sessions
                .values()
                .map(|w| w.shared.config.wait_time)
                .max()
                .unwrap_or_default();
            for watched in self.sessions.values() {
                watched.control.do_send(Control::Shutdown);
            }
            ctx.run_later(longest_wait + STOP_GRACE, |act, ctx| {
                if act.stop_waiters.is_some() {
                    tracing::warn!(
                        sessions = act.sessions.len(),
                        "stop deadline passed with sessions still open; giving up on them"
                    );
                    act.finish_stop(ctx);
                }
            });
        }
        self.stop_waiters.get_or_insert_with(Vec::new).push(tx);
        self.finish_stop_if_empty(ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[cfg(test)]
mod tests;
