//! The read side of a UDP session: datagrams in (from a socket, or from the
//! demultiplexer's queue for one peer), batches of frames and per-datagram errors out.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures::Stream;
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::codec::DecodeDatagram;
use crate::error::Error;
use crate::session::{BatchPool, Inbound, SessionShared};

/// Most datagrams one batch gathers before it goes to the logic actor, so one busy
/// socket cannot hold the arbiter.
const MAX_BATCH: usize = 64;
/// Receive errors in a row (with no datagram between them) after which a UDP session
/// takes its socket for broken and ends; fewer are reported one by one through
/// `on_error` and the session goes on (ICMP reports arrive as receive errors on a
/// connected socket).
pub const MAX_ERRORS_IN_A_ROW: u32 = 32;

/// What a datagram source yields.
pub(crate) enum Incoming {
    /// One datagram, whole.
    Datagram { peer: SocketAddr, bytes: BytesMut },
    /// A datagram (or an ICMP report) that went wrong: reported, and reading goes on.
    Soft(Error),
    /// The source is broken: the session ends with this error.
    Failed(Error),
}

impl Incoming {
    /// Bytes of the datagram it carries (0 for an error).
    pub(crate) fn datagram_len(&self) -> usize {
        match self {
            Incoming::Datagram { bytes, .. } => bytes.len(),
            Incoming::Soft(_) | Incoming::Failed(_) => 0,
        }
    }
}

/// Where a UDP session's datagrams come from.
pub(crate) trait DatagramSource: Unpin + 'static {
    /// The next datagram; `Ready(None)` once there will be no more.
    fn poll_datagram(&mut self, cx: &mut Context<'_>) -> Poll<Option<Incoming>>;

    /// Whether the source's end is this side's doing (a stop), not the peer's.
    fn ends_by_stop(&self) -> bool {
        false
    }
}

/// Receives from a socket into a buffer one byte longer than the max datagram size, so
/// a datagram over the size is seen (as filling the buffer) and refused.
pub(crate) struct SocketSource {
    socket: Arc<UdpSocket>,
    scratch: Box<[u8]>,
    max: usize,
    errors_in_a_row: u32,
}

impl SocketSource {
    pub(crate) fn new(socket: Arc<UdpSocket>, max_datagram: usize) -> Self {
        SocketSource {
            socket,
            scratch: vec![0; max_datagram.saturating_add(1)].into_boxed_slice(),
            max: max_datagram,
            errors_in_a_row: 0,
        }
    }
}

/// What a receive of `n` bytes from `peer` into a buffer of `max + 1` bytes means.
pub(crate) fn received(peer: SocketAddr, data: &[u8], max: usize) -> Incoming {
    if data.len() > max {
        return Incoming::Soft(Error::frame_too_long(data.len(), max));
    }
    Incoming::Datagram {
        peer,
        bytes: BytesMut::from(data),
    }
}

/// Whether a receive error is worth trying again at once.
pub(crate) fn is_retry(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    )
}

impl DatagramSource for SocketSource {
    fn poll_datagram(&mut self, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        loop {
            let mut buf = ReadBuf::new(&mut self.scratch);
            return match self.socket.poll_recv_from(cx, &mut buf) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(peer)) => {
                    self.errors_in_a_row = 0;
                    Poll::Ready(Some(received(peer, buf.filled(), self.max)))
                }
                Poll::Ready(Err(err)) if is_retry(&err) => continue,
                Poll::Ready(Err(err)) => {
                    self.errors_in_a_row += 1;
                    if self.errors_in_a_row >= MAX_ERRORS_IN_A_ROW {
                        Poll::Ready(Some(Incoming::Failed(err.into())))
                    } else {
                        Poll::Ready(Some(Incoming::Soft(err.into())))
                    }
                }
            };
        }
    }
}

/// One peer's datagrams, as the demultiplexer routes them. Ends when it drops the
/// sending side (the server is stopping). The demultiplexer counts each datagram's bytes
/// in the session's `pending_in` (for the memory budget) as it queues it; they come off
/// here as the reader takes it.
pub(crate) struct QueueSource {
    pub(crate) queue: mpsc::Receiver<Incoming>,
    pub(crate) shared: Arc<SessionShared>,
}

impl DatagramSource for QueueSource {
    fn poll_datagram(&mut self, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        let next = self.queue.poll_recv(cx);
        if let Poll::Ready(Some(Incoming::Datagram { bytes, .. })) = &next {
            self.shared
                .pending_in
                .fetch_sub(bytes.len(), Ordering::Relaxed);
        }
        next
    }

    /// The queue ends when the demultiplexer stops: no UDP peer ends a session.
    fn ends_by_stop(&self) -> bool {
        true
    }
}

/// A stream of [`Inbound`] items for the reader actor: each datagram decoded as one
/// frame, frames gathered in batches, and every bad datagram an `Inbound::Warn`.
pub(crate) struct DatagramReader<Dec: DecodeDatagram, Src> {
    source: Src,
    decoder: Dec,
    /// A fresh decoder, to start over after a datagram that failed mid-frame.
    pristine: Dec,
    shared: Arc<SessionShared>,
    /// Where batch vectors come from: the logic actor gives each back once delivered.
    batches: BatchPool<Dec::Item>,
    /// What comes right after the batch just yielded.
    next: Option<Inbound<Dec::Item>>,
    done: bool,
}

impl<Dec: DecodeDatagram, Src> DatagramReader<Dec, Src> {
    pub(crate) fn new(
        source: Src,
        decoder: Dec,
        shared: Arc<SessionShared>,
        batches: BatchPool<Dec::Item>,
    ) -> Self {
        DatagramReader {
            source,
            pristine: decoder.clone(),
            decoder,
            shared,
            batches,
            next: None,
            done: false,
        }
    }

    /// Yields `batch` (with `then` after it), or `then` alone when the batch is empty.
    fn emit(
        &mut self,
        batch: Vec<Dec::Item>,
        then: Option<Inbound<Dec::Item>>,
    ) -> Poll<Option<Inbound<Dec::Item>>> {
        if batch.is_empty() {
            self.batches.give(batch);
            return match then {
                Some(item) => Poll::Ready(Some(item)),
                None if self.done => Poll::Ready(None),
                None => Poll::Pending,
            };
        }
        self.shared.note_forwarded(0);
        self.shared.note_frames(batch.len());
        self.next = then;
        Poll::Ready(Some(Inbound::Frames(batch, self.shared.forwarded_upto())))
    }
}

// No field is structurally pinned.
impl<Dec: DecodeDatagram, Src> Unpin for DatagramReader<Dec, Src> {}

impl<Dec: DecodeDatagram, Src: DatagramSource> Stream for DatagramReader<Dec, Src> {
    type Item = Inbound<Dec::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(item) = this.next.take() {
            return Poll::Ready(Some(item));
        }
        if this.done {
            return Poll::Ready(None);
        }
        let mut batch = this.batches.take(0);
        loop {
            if batch.len() >= MAX_BATCH {
                return this.emit(batch, None);
            }
            // The write queue is full: read no more until it drains. The kernel's
            // receive buffer holds what comes meanwhile, and drops what it cannot hold.
            if this.shared.poll_read_allowed(cx).is_pending() {
                return this.emit(batch, None);
            }
            let incoming = match this.source.poll_datagram(cx) {
                Poll::Pending => return this.emit(batch, None),
                Poll::Ready(None) => {
                    this.done = true;
                    let end = this.source.ends_by_stop().then_some(Inbound::Stopped);
                    return this.emit(batch, end);
                }
                Poll::Ready(Some(incoming)) => incoming,
            };
            match incoming {
                Incoming::Datagram { peer, mut bytes } => {
                    this.shared.note_read(bytes.len());
                    match this.decoder.decode_datagram(peer, &mut bytes) {
                        Ok(frame) => batch.push(frame),
                        Err(err) => {
                            tracing::debug!(%peer, %err, "bad datagram");
                            this.decoder = this.pristine.clone();
                            return this.emit(batch, Some(Inbound::Warn(err)));
                        }
                    }
                }
                Incoming::Soft(err) => return this.emit(batch, Some(Inbound::Warn(err))),
                Incoming::Failed(err) => {
                    this.done = true;
                    return this.emit(batch, Some(Inbound::Failed(err)));
                }
            }
        }
    }
}
