//! Unit tests of the close state machine: one per rule, and one that feeds it every
//! order of events to check that `on_close` is decided exactly once.

use super::{CloseMachine, Decision, Phase};
use crate::error::Error;
use crate::metrics::CloseCause;

/// A distinct error, told apart from others by its message.
fn err(name: &str) -> Error {
    Error::from(std::io::Error::other(name.to_owned()))
}

fn cause_is(machine: &CloseMachine, name: &str) -> bool {
    machine
        .cause()
        .is_some_and(|err| err.to_string().contains(name))
}

fn open() -> CloseMachine {
    let mut machine = CloseMachine::new();
    assert_eq!(machine.opened(), Decision::Continue);
    assert_eq!(machine.phase(), Phase::Open);
    machine
}

const ENDED: Decision = Decision::End { on_close: true };

/// The rest of a graceful close once it began: flushed, writer shut, ended.
fn flush_and_end(machine: &mut CloseMachine) {
    assert_eq!(machine.flushed(), Decision::ShutDownWriter);
    assert_eq!(
        machine.phase(),
        Phase::Closing,
        "still closing while the shutdown runs"
    );
    assert_eq!(machine.writer_shut(), ENDED);
    assert!(machine.is_closed());
}

#[test]
fn peer_eof_closes_gracefully_after_a_flush() {
    let mut machine = open();
    assert_eq!(
        machine.flushed(),
        Decision::Continue,
        "an open session keeps its writer"
    );
    assert_eq!(machine.peer_eof(true), Decision::Close);
    assert!(
        machine.cause().is_none(),
        "an EOF is no error: on_error is not called"
    );
    flush_and_end(&mut machine);
}

#[test]
fn peer_eof_with_replies_owed_waits_for_the_backlog_and_the_flush() {
    let mut machine = open();
    // Frames read before the EOF wait for room: the close waits for them.
    assert_eq!(machine.peer_eof(false), Decision::Continue);
    assert!(
        machine.is_open(),
        "the frames read before the EOF are still delivered"
    );
    assert_eq!(
        machine.reader_gone(false),
        Decision::Continue,
        "one end per reader"
    );
    assert_eq!(machine.backlog_drained(), Decision::Close);
    assert!(machine.cause().is_none());
    // The replies to them are flushed before the writer is shut.
    assert_eq!(machine.backlog_drained(), Decision::Continue);
    flush_and_end(&mut machine);
}

#[test]
fn backlog_drained_without_a_reader_end_changes_nothing() {
    let mut machine = open();
    assert_eq!(machine.backlog_drained(), Decision::Continue);
    assert!(machine.is_open());
}

#[test]
fn read_error_runs_on_error_then_on_close_once() {
    let mut machine = open();
    assert_eq!(machine.read_failed(err("reset"), true), Decision::Close);
    assert!(cause_is(&machine, "reset"), "on_error hears the read error");
    // Later errors neither begin another close nor replace the cause.
    assert_eq!(machine.failed(err("later")), Decision::Continue);
    assert_eq!(machine.reader_gone(true), Decision::Continue);
    assert!(cause_is(&machine, "reset"));
    flush_and_end(&mut machine);
    assert_eq!(machine.writer_shut(), Decision::Continue);
    assert_eq!(machine.deadline_passed(), Decision::Continue);
    assert_eq!(
        machine.stopped(),
        Decision::Continue,
        "on_close ran already"
    );
}

#[test]
fn read_error_behind_the_backlog_keeps_its_cause() {
    let mut machine = open();
    assert_eq!(machine.read_failed(err("reset"), false), Decision::Continue);
    assert!(
        machine.cause().is_none(),
        "nothing reported before the frames"
    );
    assert_eq!(machine.backlog_drained(), Decision::Close);
    assert!(cause_is(&machine, "reset"));
}

#[test]
fn a_panicking_callback_ends_the_session_with_its_panic() {
    let mut machine = open();
    assert_eq!(machine.callback_returned(Ok(())), Decision::Continue);
    assert_eq!(
        machine.callback_returned(Err(err("panic"))),
        Decision::Close
    );
    assert!(cause_is(&machine, "panic"));
    assert_eq!(
        machine.callback_returned(Err(err("again"))),
        Decision::Continue
    );
    assert!(cause_is(&machine, "panic"));
}

#[test]
fn close_from_a_callback_closes_gracefully_once() {
    let mut machine = open();
    *machine.close_flag() = true;
    assert_eq!(machine.callback_returned(Ok(())), Decision::Close);
    assert!(machine.cause().is_none());
    // The flag stays set; later callbacks do not close again.
    assert!(*machine.close_flag());
    assert_eq!(machine.callback_returned(Ok(())), Decision::Continue);
    flush_and_end(&mut machine);
}

#[test]
fn close_inside_on_open_closes_once_open() {
    let mut machine = CloseMachine::new();
    *machine.close_flag() = true;
    assert_eq!(machine.opened(), Decision::Close);
    assert_eq!(machine.phase(), Phase::Closing);
    flush_and_end(&mut machine);
}

#[test]
fn a_refused_session_ends_without_on_close() {
    let mut machine = CloseMachine::new();
    // Nothing closes a session before on_open returned.
    assert_eq!(machine.stop(), Decision::Continue);
    assert_eq!(machine.failed(err("early")), Decision::Continue);
    assert_eq!(machine.flushed(), Decision::Continue);
    assert_eq!(machine.deadline_passed(), Decision::Continue);
    assert_eq!(machine.refused(), Decision::End { on_close: false });
    assert!(machine.is_closed());
    assert_eq!(
        machine.opened(),
        Decision::Continue,
        "a refused session never opens"
    );
    assert_eq!(machine.stopped(), Decision::Continue);
}

#[test]
fn stop_with_a_deadline_flushes_until_it_then_aborts() {
    let mut machine = open();
    assert_eq!(machine.stop(), Decision::Close);
    assert!(machine.cause().is_none(), "a stop is no error");
    assert_eq!(machine.stop(), Decision::Continue);
    // The peer reads nothing: no flush completes before the deadline.
    assert_eq!(machine.deadline_passed(), ENDED);
    assert_eq!(
        machine.flushed(),
        Decision::Continue,
        "nothing after the end"
    );
    assert_eq!(machine.writer_shut(), Decision::Continue);
}

#[test]
fn stop_flushed_before_the_deadline_ends_once() {
    let mut machine = open();
    assert_eq!(machine.stop(), Decision::Close);
    flush_and_end(&mut machine);
    assert_eq!(machine.deadline_passed(), Decision::Continue);
}

#[test]
fn write_timeout_closes_and_aborts_at_once() {
    let mut machine = open();
    assert_eq!(
        machine.write_timed_out(err("timeout")),
        Decision::CloseThenAbort
    );
    assert!(cause_is(&machine, "timeout"), "on_error hears the timeout");
    assert_eq!(machine.phase(), Phase::Closing);
    assert_eq!(machine.abort(), ENDED);
    assert_eq!(machine.write_timed_out(err("again")), Decision::Continue);
}

#[test]
fn write_failure_while_closing_aborts_with_its_error_if_none_yet() {
    let mut graceful = open();
    assert_eq!(graceful.stop(), Decision::Close);
    assert_eq!(graceful.write_failed(err("broken pipe")), ENDED);
    assert!(
        cause_is(&graceful, "broken pipe"),
        "queued writers hear the write error"
    );

    let mut failing = open();
    assert_eq!(failing.failed(err("first")), Decision::Close);
    assert_eq!(failing.write_failed(err("broken pipe")), ENDED);
    assert!(cause_is(&failing, "first"), "the first cause stays");
}

#[test]
fn an_owed_write_that_cannot_be_encoded_becomes_the_cause() {
    let mut machine = open();
    assert_eq!(machine.failed(err("read timeout")), Decision::Close);
    machine.owed_write_failed(err("encode one"));
    machine.owed_write_failed(err("encode two"));
    assert!(cause_is(&machine, "encode two"));
    // Outside a close beginning it changes nothing.
    let mut open = open();
    open.owed_write_failed(err("encode"));
    assert!(open.cause().is_none());
}

#[test]
fn an_error_after_eof_is_not_reported() {
    let mut machine = open();
    assert_eq!(machine.peer_eof(true), Decision::Close);
    assert_eq!(machine.failed(err("late")), Decision::Continue);
    assert_eq!(
        machine.read_failed(err("late read"), true),
        Decision::Continue
    );
    assert!(machine.cause().is_none());
    flush_and_end(&mut machine);
}

#[test]
fn a_stop_after_a_close_changes_nothing() {
    let mut machine = open();
    *machine.close_flag() = true;
    assert_eq!(machine.callback_returned(Ok(())), Decision::Close);
    assert_eq!(machine.stop(), Decision::Continue);
    assert_eq!(machine.deadline_passed(), ENDED);
    assert_eq!(machine.stop(), Decision::Continue);
}

#[test]
fn stopped_ends_a_session_nothing_else_ended() {
    let mut open = open();
    assert_eq!(open.stopped(), ENDED);
    let mut opening = CloseMachine::new();
    assert_eq!(opening.stopped(), Decision::End { on_close: false });
}

/// Every event the logic actor may report, applied by index.
fn apply(machine: &mut CloseMachine, event: usize) -> Decision {
    match event {
        0 => machine.peer_eof(true),
        1 => machine.peer_eof(false),
        2 => machine.read_failed(err("read"), true),
        3 => machine.reader_gone(true),
        4 => machine.backlog_drained(),
        5 => machine.failed(err("error")),
        6 => {
            *machine.close_flag() = true;
            machine.callback_returned(Ok(()))
        }
        7 => machine.callback_returned(Err(err("panic"))),
        8 => machine.stop(),
        9 => machine.write_failed(err("write")),
        10 => machine.write_timed_out(err("timeout")),
        11 => machine.flushed(),
        12 => machine.writer_shut(),
        13 => machine.deadline_passed(),
        _ => machine.abort(),
    }
}
const EVENTS: usize = 15;

/// Feeds every sequence of up to four events to an open session (and to one still
/// opening), then the actor's stop: `on_close` is decided exactly once, `on_error`'s
/// close begins at most once, and nothing is decided after the end.
#[test]
fn on_close_is_decided_exactly_once_whatever_the_order() {
    for opened in [true, false] {
        let mut sequence = vec![0; 4];
        for n in 0..EVENTS.pow(4) {
            let mut rest = n;
            for slot in &mut sequence {
                *slot = rest % EVENTS;
                rest /= EVENTS;
            }
            let mut machine = CloseMachine::new();
            if opened {
                assert_eq!(machine.opened(), Decision::Continue);
            }
            let mut decisions: Vec<Decision> =
                sequence.iter().map(|&e| apply(&mut machine, e)).collect();
            decisions.push(machine.stopped());
            let ends: Vec<usize> = (decisions.iter().enumerate())
                .filter(|(_, d)| matches!(d, Decision::End { .. }))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(ends.len(), 1, "{sequence:?}: {decisions:?}");
            assert!(
                decisions[ends[0] + 1..]
                    .iter()
                    .all(|d| *d == Decision::Continue),
                "{sequence:?}: {decisions:?}"
            );
            let closes = (decisions.iter())
                .filter(|d| matches!(d, Decision::Close | Decision::CloseThenAbort))
                .count();
            assert!(closes <= 1, "{sequence:?}: {decisions:?}");
            assert_eq!(
                decisions[ends[0]],
                Decision::End { on_close: opened },
                "{sequence:?}"
            );
        }
    }
}

#[test]
fn what_began_the_close_is_its_cause_for_the_metrics() {
    let mut machine = open();
    assert_eq!(machine.peer_eof(true), Decision::Close);
    assert_eq!(machine.closed_by(), CloseCause::PeerEof);
    // A write that fails while closing does not change what began the close.
    assert_eq!(machine.write_failed(err("reset")), ENDED);
    assert_eq!(machine.closed_by(), CloseCause::PeerEof);

    let mut machine = open();
    assert_eq!(machine.peer_eof(false), Decision::Continue);
    assert_eq!(machine.backlog_drained(), Decision::Close);
    assert_eq!(machine.closed_by(), CloseCause::PeerEof);

    let mut machine = open();
    assert_eq!(machine.source_stopped(false), Decision::Continue);
    assert_eq!(machine.backlog_drained(), Decision::Close);
    assert_eq!(
        machine.closed_by(),
        CloseCause::Stop,
        "a demultiplexer stopped"
    );

    let mut machine = open();
    assert_eq!(machine.stop(), Decision::Close);
    assert_eq!(machine.peer_eof(true), Decision::Continue);
    assert_eq!(machine.closed_by(), CloseCause::Stop, "the stop came first");

    let mut machine = open();
    let timeout = Error::read_timeout(std::time::Duration::from_secs(1));
    assert_eq!(machine.failed(timeout), Decision::Close);
    assert_eq!(machine.closed_by(), CloseCause::ReadTimeout);

    let mut machine = open();
    assert_eq!(machine.read_failed(err("reset"), true), Decision::Close);
    assert_eq!(machine.closed_by(), CloseCause::Io);

    let mut machine = open();
    assert_eq!(machine.stopped(), ENDED, "its arbiter stopped it");
    assert_eq!(machine.closed_by(), CloseCause::Stop);
}
