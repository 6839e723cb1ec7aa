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
use crate::metrics::EndpointMetrics;
use crate::session::{AnySession, Control, SessionId, SessionShared, SessionStats};
use crate::SessionConfig;

pub(crate) use timers::{tick_for, Timers};

/// Shortest time between two reports of the sessions' traffic to the endpoint's metrics.
const TRAFFIC_PERIOD_MS: u64 = 200;
/// Time granted past the longest wait time before a stop stops waiting for a session
/// whose arbiter does not answer (for example a callback that never returns).
const STOP_GRACE: Duration = Duration::from_secs(1);

struct Watched {
    shared: Arc<SessionShared>,
    control: Recipient<Control>,
    timers: Timers,
    opened_ms: u64,
    /// The session's counters as last added to the endpoint's metrics.
    reported: SessionStats,
}

impl Watched {
    /// Adds what the session's counters gained since the last report to `metrics`.
    fn report_traffic(&mut self, metrics: &EndpointMetrics) {
        metrics.add_traffic(self.shared.stats.snapshot(), &mut self.reported);
    }
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
    /// When the sessions' traffic is next due to be reported, in `clock` milliseconds.
    next_traffic_ms: u64,
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
            next_traffic_ms: 0,
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
        // Rule: the sessions' traffic reaches the metrics from here, off their hot path
        // (which does no metric work at all): every session's counters at most every
        // TRAFFIC_PERIOD_MS, and once more when it is gone.
        let traffic = now >= self.next_traffic_ms;
        if traffic {
            self.next_traffic_ms = now + TRAFFIC_PERIOD_MS;
        }
        let metrics = self.endpoint.metrics();
        for watched in self.sessions.values_mut() {
            if traffic {
                watched.report_traffic(metrics);
            }
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
                reported: SessionStats::default(),
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
        let mut watched = self.sessions.remove(&id);
        if let Some(w) = &mut watched {
            w.report_traffic(self.endpoint.metrics());
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
        if redial.gave_up || limit.is_none_or(|max| redial.failed_in_a_row < max) {
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

mod timers;

#[cfg(test)]
mod tests;
