//! The echo-checking client listener shared by `echo_client` and `soak`: keeps frames
//! in flight on its session, checks each echo, and accounts for every frame. Its frames
//! are length-delimited bytes ([`Framed`]) or, for WebSocket message mode, text
//! messages ([`Texts`]).

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use getty::transport::ws::TextMessages;
use getty::{EventListener, Session, SessionContext};

/// Counters shared by every session of the run.
#[derive(Default)]
pub struct Tally {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Written, then lost with their session: reported failed by `on_close`.
    pub lost: AtomicU64,
    /// Refused by a write (queue full, closing): never counted as sent.
    pub refused: AtomicU64,
    pub wrong: AtomicU64,
    /// Frames still allowed to be sent (frames mode); `u64::MAX` in duration mode.
    pub budget: AtomicU64,
    /// Set when the run is over: no new frames.
    pub done: AtomicBool,
}

impl Tally {
    fn take_budget(&self) -> bool {
        !self.done.load(Relaxed)
            && self
                .budget
                .fetch_update(Relaxed, Relaxed, |b| b.checked_sub(1))
                .is_ok()
    }
    pub fn settled(&self) -> bool {
        self.sent.load(Relaxed) == self.received.load(Relaxed) + self.lost.load(Relaxed)
    }
}

/// Frame `seq` of session `sid`: both numbers, then a pattern, `size` bytes in all.
pub fn frame(sid: u64, seq: u64, size: usize) -> Bytes {
    let mut buf = BytesMut::with_capacity(size.max(16));
    buf.put_u64(sid);
    buf.put_u64(seq);
    buf.extend((16..size).map(|i| (i as u64 ^ seq ^ sid) as u8));
    buf.truncate(size);
    buf.freeze()
}

/// Text message `seq` of session `sid`: both numbers in hex, then letters, `size` bytes
/// in all (at least the 32 of the numbers).
pub fn text(sid: u64, seq: u64, size: usize) -> String {
    let mut text = format!("{sid:016x}{seq:016x}");
    text.extend((text.len()..size).map(|i| (b'a' + ((i as u64 ^ seq) % 26) as u8) as char));
    text
}

/// What a [`Pinger`] sends and how it checks an echo.
pub trait Wire: 'static {
    /// The session's codec.
    type Codec: getty::Codec<Self::Out, Item = Self::Item>;
    /// A frame as sent.
    type Out: Send + 'static;
    /// A frame as received.
    type Item: Send + 'static;
    /// Frame `seq` of session `sid`, `size` bytes.
    fn frame(sid: u64, seq: u64, size: usize) -> Self::Out;
    /// Whether `echo` is frame `seq` of session `sid`.
    fn is_echo(echo: &Self::Item, sid: u64, seq: u64, size: usize) -> bool;
}

/// Length-delimited bytes (see [`frame`]), with or without compression.
pub struct Framed;

impl Wire for Framed {
    type Codec = super::framing::Framing;
    type Out = Bytes;
    type Item = BytesMut;
    fn frame(sid: u64, seq: u64, size: usize) -> Bytes {
        frame(sid, seq, size)
    }
    fn is_echo(echo: &BytesMut, sid: u64, seq: u64, size: usize) -> bool {
        echo == &frame(sid, seq, size)
    }
}

/// WebSocket text messages (see [`text`]), one per frame.
pub struct Texts;

impl Wire for Texts {
    type Codec = TextMessages;
    type Out = String;
    type Item = String;
    fn frame(sid: u64, seq: u64, size: usize) -> String {
        text(sid, seq, size)
    }
    fn is_echo(echo: &String, sid: u64, seq: u64, size: usize) -> bool {
        *echo == text(sid, seq, size)
    }
}

/// Keeps `depth` frames in flight on its session and checks each echo against them.
pub struct Pinger<W: Wire = Framed> {
    tally: Arc<Tally>,
    size: usize,
    depth: usize,
    next_seq: u64,
    in_flight: VecDeque<u64>,
    _wire: PhantomData<W>,
}

impl Pinger<Framed> {
    /// A listener that keeps `depth` length-delimited frames of `size` bytes in flight.
    pub fn new(tally: Arc<Tally>, size: usize, depth: usize) -> Self {
        Pinger::with_wire(tally, size, depth)
    }
}

impl<W: Wire> Pinger<W> {
    /// A listener that keeps `depth` frames of `W` of `size` bytes in flight.
    pub fn with_wire(tally: Arc<Tally>, size: usize, depth: usize) -> Self {
        Pinger {
            tally,
            size,
            depth,
            next_seq: 0,
            in_flight: VecDeque::new(),
            _wire: PhantomData,
        }
    }
}

impl<W: Wire> Pinger<W> {
    fn send_next(&mut self, session: &mut SessionContext<'_, Self>) {
        if !self.tally.take_budget() {
            return;
        }
        let sid = session.id().get();
        match session.write(W::frame(sid, self.next_seq, self.size)) {
            Ok(()) => {
                self.tally.sent.fetch_add(1, Relaxed);
                self.in_flight.push_back(self.next_seq);
                self.next_seq += 1;
            }
            Err(_) => {
                self.tally.refused.fetch_add(1, Relaxed);
            }
        }
    }
}

impl<W: Wire> EventListener for Pinger<W> {
    type Codec = W::Codec;
    type Out = W::Out;

    fn on_open(&mut self, session: &mut SessionContext<'_, Self>) -> getty::Result<()> {
        for _ in 0..self.depth {
            self.send_next(session);
        }
        Ok(())
    }

    fn on_message(&mut self, session: &mut SessionContext<'_, Self>, echo: W::Item) {
        let sid = session.id().get();
        match self.in_flight.pop_front() {
            Some(seq) if W::is_echo(&echo, sid, seq, self.size) => {
                self.tally.received.fetch_add(1, Relaxed);
                self.send_next(session);
            }
            Some(_) => {
                self.tally.wrong.fetch_add(1, Relaxed);
                self.tally.lost.fetch_add(1, Relaxed);
                session.close();
            }
            None => {
                self.tally.wrong.fetch_add(1, Relaxed); // an echo nobody asked for
                session.close();
            }
        }
    }

    fn on_close(&mut self, _: &Session<W::Out>) {
        // The library reports, the caller decides: these frames are lost, not resent.
        self.tally
            .lost
            .fetch_add(self.in_flight.len() as u64, Relaxed);
        self.in_flight.clear();
    }
}
