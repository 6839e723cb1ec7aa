//! Unit tests of `supervisor`.

use super::timers::{MAX_TICK, MIN_TICK};
use super::*;

fn config(cron_ms: u64, read_ms: Option<u64>, write_ms: Option<u64>) -> SessionConfig {
    SessionConfig {
        cron_period: Duration::from_millis(cron_ms),
        read_timeout: read_ms.map(Duration::from_millis),
        write_timeout: write_ms.map(Duration::from_millis),
        ..SessionConfig::default()
    }
}

#[test]
fn cron_fires_each_period_without_bursts() {
    let mut t = Timers::new(&config(100, None, None), 1000);
    assert_eq!(t.due(1099, 1000, 0), None);
    assert_eq!(t.due(1100, 1000, 0), Some(Control::Cron));
    assert_eq!(t.due(1150, 1000, 0), None);
    assert_eq!(t.due(1200, 1000, 0), Some(Control::Cron));
    // Five periods late: one tick, then back on a period from now.
    assert_eq!(t.due(1750, 1000, 0), Some(Control::Cron));
    assert_eq!(t.due(1760, 1000, 0), None);
}

#[test]
fn timeouts_fire_once_and_win_over_cron() {
    let mut t = Timers::new(&config(10, Some(50), Some(30)), 0);
    assert_eq!(t.due(40, 0, 20), Some(Control::Cron)); // stalled 20 ms < 30 ms
    assert_eq!(t.due(60, 0, 20), Some(Control::WriteTimeout));
    assert_eq!(
        t.due(1000, 0, 20),
        Some(Control::ReadTimeout),
        "read timeout still due"
    );
    assert_eq!(
        t.due(1001, 0, 20),
        Some(Control::Cron),
        "each timeout reported once"
    );
    assert_eq!(
        t.due(1400, 0, 1300),
        Some(Control::WriteTimeout),
        "a new stall is new"
    );
    let mut t = Timers::new(&config(10, Some(50), None), 0);
    assert_eq!(t.due(49, 0, 0), Some(Control::Cron));
    assert_eq!(t.due(50, 0, 0), Some(Control::ReadTimeout));
}

#[test]
fn reads_push_the_read_timeout_back() {
    let mut t = Timers::new(&config(1_000_000, Some(50), None), 0);
    assert_eq!(t.due(80, 40, 0), None);
    assert_eq!(t.due(90, 40, 0), Some(Control::ReadTimeout));
}

#[test]
fn tick_follows_the_shortest_timer() {
    assert_eq!(tick_for(&SessionConfig::default()), MAX_TICK);
    assert_eq!(
        tick_for(&config(100, None, None)),
        Duration::from_millis(25)
    );
    assert_eq!(tick_for(&config(1, None, None)), MIN_TICK);
}
