//! Per-session limits and timers, with getty's defaults where getty has one.

use std::time::Duration;

use crate::defaults::*;

/// Bytes allowed on top of `max_frame_length` for a codec's own header when the reader
/// bounds an undecoded frame (codecs that check lengths themselves stop earlier).
pub const FRAME_HEADER_ALLOWANCE: usize = 64;

/// Limits and timers of one session.
///
/// Endpoints take a default for all their sessions, and the `new_session` hook can change
/// it per session. Every field documents its default, which [`SessionConfig::default`]
/// gives.
///
/// Set fields with the chained setters (each documents its default), or assign the
/// public fields directly:
///
/// ```
/// use std::time::Duration;
/// let config = getty::SessionConfig::default()
///     .max_frame_length(64 * 1024)
///     .read_timeout(Duration::from_secs(30))
///     .cron_period(Duration::from_secs(10));
/// assert_eq!(config.read_timeout, Some(Duration::from_secs(30)));
/// assert_eq!(config.wait_time, getty::defaults::DEFAULT_WAIT_TIME);
///
/// let mut config = config;
/// config.write_timeout = None; // the fields are public too
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Longest frame the session reads, in payload bytes. Default 4 KiB (getty's).
    ///
    /// Built-in codecs check it against the frame header. For any codec, the reader also
    /// ends the session with [`ErrorKind::FrameTooLong`](crate::ErrorKind::FrameTooLong)
    /// once an undecoded frame holds more than `max_frame_length` +
    /// [`FRAME_HEADER_ALLOWANCE`] bytes, so the read buffer never grows past that.
    pub max_frame_length: usize,
    /// Close the session with [`ErrorKind::ReadTimeout`](crate::ErrorKind::ReadTimeout)
    /// when no whole frame has arrived for this long (bytes that do not complete a frame do
    /// not count, so a peer trickling bytes cannot hold the session; allow the time a
    /// max-size frame takes to arrive). Default `None` (no limit): getty's read timeout
    /// only woke its read loop; here it is a real idle limit, so it is opt-in.
    pub read_timeout: Option<Duration>,
    /// Close the session with [`ErrorKind::WriteTimeout`](crate::ErrorKind::WriteTimeout)
    /// when bytes are queued and none could be written for this long (the peer does not
    /// read). Default 5 s. `None` disables it (the high-water mark still bounds memory).
    pub write_timeout: Option<Duration>,
    /// Period of [`on_cron`](crate::EventListener::on_cron). Default 60 s (getty's).
    pub cron_period: Duration,
    /// How long a graceful close waits for queued bytes to be written before it shuts the
    /// socket anyway. Default 3 s (getty's).
    pub wait_time: Duration,
    /// Read queue: how many batches of decoded frames may wait for the logic actor. When
    /// it is full the reader stops reading, so a slow listener slows the peer through TCP
    /// flow control. Default 16; at least 1.
    pub read_queue: usize,
    /// Hand-over queue: how many frames written through [`Session`](crate::Session)
    /// handles (from other actors or threads) may wait for the session's logic actor to
    /// encode them into the write queue. They wait there while the write queue is at its
    /// high-water mark, and while the logic actor has not run yet: an actor that fans a
    /// burst out to sessions on its own arbiter fills this queue before any of them can
    /// take a frame. `try_write` past it fails with
    /// [`ErrorKind::HandoffFull`](crate::ErrorKind::HandoffFull); `write` waits for room. A
    /// frame here is never dropped for room. Default 1,024 frames; at least 1.
    pub handoff_queue: usize,
    /// Write queue high-water mark in bytes: a write that finds at least this many bytes
    /// queued fails with [`ErrorKind::QueueFull`](crate::ErrorKind::QueueFull) and queues
    /// nothing. Default 256 KiB.
    pub write_high_water: usize,
    /// Write queue low-water mark in bytes: once the queue falls to this, the session is
    /// writable again (see [`Session::is_writable`](crate::Session::is_writable)).
    /// Default 64 KiB; at most `write_high_water`.
    pub write_low_water: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
            read_timeout: None,
            write_timeout: Some(DEFAULT_WRITE_TIMEOUT),
            cron_period: DEFAULT_CRON_PERIOD,
            wait_time: DEFAULT_WAIT_TIME,
            read_queue: DEFAULT_READ_QUEUE,
            handoff_queue: DEFAULT_HANDOFF_QUEUE,
            write_high_water: DEFAULT_WRITE_HIGH_WATER,
            write_low_water: DEFAULT_WRITE_LOW_WATER,
        }
    }
}

impl SessionConfig {
    /// Sets [`max_frame_length`](Self::max_frame_length): the longest frame read, in
    /// payload bytes. Default 4 KiB.
    pub fn max_frame_length(mut self, bytes: usize) -> Self {
        self.max_frame_length = bytes;
        self
    }

    /// Sets [`read_timeout`](Self::read_timeout): close the session when no whole frame
    /// arrived for `after`. Default none.
    pub fn read_timeout(mut self, after: Duration) -> Self {
        self.read_timeout = Some(after);
        self
    }

    /// Sets [`write_timeout`](Self::write_timeout) (`None` disables it): close the
    /// session when queued bytes made no progress for that long. Default 5 s.
    pub fn write_timeout(mut self, after: Option<Duration>) -> Self {
        self.write_timeout = after;
        self
    }

    /// Sets [`cron_period`](Self::cron_period): the period of `on_cron`. Default 60 s.
    pub fn cron_period(mut self, period: Duration) -> Self {
        self.cron_period = period;
        self
    }

    /// Sets [`wait_time`](Self::wait_time): how long a graceful close flushes. Default 3 s.
    pub fn wait_time(mut self, wait: Duration) -> Self {
        self.wait_time = wait;
        self
    }

    /// Sets [`read_queue`](Self::read_queue), in batches of frames. Default 16.
    pub fn read_queue(mut self, batches: usize) -> Self {
        self.read_queue = batches;
        self
    }

    /// Sets [`handoff_queue`](Self::handoff_queue), in frames. Default 1,024.
    pub fn handoff_queue(mut self, frames: usize) -> Self {
        self.handoff_queue = frames;
        self
    }

    /// Sets the write queue's high- and low-water marks in bytes (see
    /// [`write_high_water`](Self::write_high_water)). Default 256 KiB and 64 KiB.
    pub fn write_water_marks(mut self, high: usize, low: usize) -> Self {
        self.write_high_water = high;
        self.write_low_water = low;
        self
    }

    /// The config with every field brought into its valid range: queues of at least 1,
    /// a low-water mark no higher than the high-water mark, a cron period of at least 1 ms.
    pub(crate) fn normalized(mut self) -> Self {
        self.read_queue = self.read_queue.max(1);
        self.handoff_queue = self.handoff_queue.max(1);
        self.write_high_water = self.write_high_water.max(1);
        self.write_low_water = self.write_low_water.min(self.write_high_water);
        self.cron_period = self.cron_period.max(Duration::from_millis(1));
        self
    }

    /// Most bytes the reader may hold for one undecoded frame.
    pub(crate) fn read_buffer_bound(&self) -> usize {
        self.max_frame_length.saturating_add(FRAME_HEADER_ALLOWANCE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_set_what_they_name_and_nothing_else() {
        let c = SessionConfig::default()
            .max_frame_length(1)
            .read_timeout(Duration::from_secs(2))
            .write_timeout(None)
            .cron_period(Duration::from_secs(3))
            .wait_time(Duration::from_secs(4))
            .read_queue(5)
            .handoff_queue(6)
            .write_water_marks(7, 8);
        let by_hand = SessionConfig {
            max_frame_length: 1,
            read_timeout: Some(Duration::from_secs(2)),
            write_timeout: None,
            cron_period: Duration::from_secs(3),
            wait_time: Duration::from_secs(4),
            read_queue: 5,
            handoff_queue: 6,
            write_high_water: 7,
            write_low_water: 8,
        };
        assert_eq!(c, by_hand);
    }

    #[test]
    fn normalized_fixes_ranges() {
        let c = SessionConfig {
            read_queue: 0,
            handoff_queue: 0,
            write_high_water: 10,
            write_low_water: 100,
            cron_period: Duration::ZERO,
            ..SessionConfig::default()
        }
        .normalized();
        assert_eq!(c.read_queue, 1);
        assert_eq!(c.handoff_queue, 1);
        assert_eq!(c.write_low_water, 10);
        assert_eq!(c.cron_period, Duration::from_millis(1));
    }
}
