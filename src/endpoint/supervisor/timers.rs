//! The supervisor's clock work, socket-free: the tick that serves a session config, and
//! each session's cron and timeout schedule.

use std::time::Duration;

use crate::session::Control;
use crate::SessionConfig;

/// Shortest and longest supervisor tick. Timers fire within one tick of being due.
pub(super) const MIN_TICK: Duration = Duration::from_millis(5);
pub(super) const MAX_TICK: Duration = Duration::from_millis(250);

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
