//! Per-session traffic counters, readable from any thread at any time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of one session's traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Bytes read from the socket.
    pub bytes_read: u64,
    /// Frames decoded from those bytes.
    pub frames_read: u64,
    /// Bytes handed to the OS by successful socket writes.
    pub bytes_written: u64,
    /// Frames (and raw byte writes) accepted into the write queue.
    pub frames_written: u64,
    /// Errors reported to `on_error` that did not end the session: on a datagram
    /// transport, a bad, truncated or oversized datagram, an ICMP report, or a datagram
    /// the OS refused to send. Always 0 for byte streams.
    pub soft_errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    bytes_read: AtomicU64,
    frames_read: AtomicU64,
    bytes_written: AtomicU64,
    frames_written: AtomicU64,
    soft_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn add_bytes_read(&self, n: usize) {
        self.bytes_read.fetch_add(n as u64, Relaxed);
    }
    pub(crate) fn add_frames_read(&self, n: usize) {
        self.frames_read.fetch_add(n as u64, Relaxed);
    }
    pub(crate) fn add_bytes_written(&self, n: usize) {
        self.bytes_written.fetch_add(n as u64, Relaxed);
    }
    pub(crate) fn add_frames_written(&self, n: usize) {
        self.frames_written.fetch_add(n as u64, Relaxed);
    }
    pub(crate) fn add_soft_error(&self) {
        self.soft_errors.fetch_add(1, Relaxed);
    }
    pub(crate) fn snapshot(&self) -> SessionStats {
        SessionStats {
            bytes_read: self.bytes_read.load(Relaxed),
            frames_read: self.frames_read.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            frames_written: self.frames_written.load(Relaxed),
            soft_errors: self.soft_errors.load(Relaxed),
        }
    }
}
