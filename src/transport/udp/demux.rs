//! The per-peer UDP server's demultiplexer: reads the one socket, routes each datagram
//! to its peer's session, and makes sessions for new peers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::codec::Plain;
use super::datagram_reader::{is_retry, received, DatagramReader, Incoming, QueueSource};
use super::handle::Counters;
use super::socket::{DatagramWriter, Destination};
use crate::endpoint::supervisor::Supervisor;
use crate::endpoint::{prepare_session, EndpointShared, SessionFactory, SessionSlot};
use crate::listener::EventListener;
use crate::session::{start_session, ItemReader, SessionShared};
use crate::SessionConfig;

/// How often the demultiplexer forgets peers whose session has ended.
const SWEEP_PERIOD: Duration = Duration::from_secs(1);
/// Pause after a receive error that is not about one datagram, so the loop cannot spin.
const RECV_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Owns the per-peer server's socket: reads every datagram and routes it to its peer's
/// session, making sessions for new peers. It never waits for a session: a full queue
/// drops the datagram.
pub(crate) struct Demux<L: EventListener> {
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) local_addr: SocketAddr,
    pub(crate) hook: Arc<SessionFactory<L>>,
    pub(crate) config: SessionConfig,
    pub(crate) max_datagram: usize,
    pub(crate) max_peers: usize,
    pub(crate) peer_queue: usize,
    /// Each peer's queue, and its session's shared state (for the memory budget).
    pub(crate) peers: HashMap<SocketAddr, (mpsc::Sender<Incoming>, Arc<SessionShared>)>,
    pub(crate) endpoint: Arc<EndpointShared>,
    pub(crate) supervisor: Addr<Supervisor>,
    pub(crate) counters: Arc<Counters>,
}

impl<L: EventListener> Demux<L> {
    /// Reads and routes datagrams until `stop` fires.
    pub(crate) async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut scratch = vec![0u8; self.max_datagram.saturating_add(1)];
        let mut sweep = tokio::time::interval(SWEEP_PERIOD);
        loop {
            let got = tokio::select! {
                biased;
                _ = &mut stop => return,
                _ = sweep.tick() => {
                    self.peers.retain(|_, (queue, _)| !queue.is_closed());
                    continue;
                }
                got = self.socket.recv_from(&mut scratch) => got,
            };
            match got {
                Ok((n, peer)) => {
                    self.counters.datagrams.fetch_add(1, Relaxed);
                    self.counters.bytes.fetch_add(n as u64, Relaxed);
                    self.route(peer, received(peer, &scratch[..n], self.max_datagram));
                }
                Err(err) if is_retry(&err) => {}
                Err(err) => {
                    // An unconnected socket reports no ICMP errors; anything here is
                    // about the socket, not one peer.
                    self.counters.recv_errors.fetch_add(1, Relaxed);
                    self.endpoint.metrics().udp_receive_errors.increment(1);
                    tracing::warn!(%err, "udp receive failed; pausing");
                    tokio::select! {
                        _ = &mut stop => return,
                        _ = tokio::time::sleep(RECV_ERROR_PAUSE) => {}
                    }
                }
            }
        }
    }

    fn route(&mut self, peer: SocketAddr, incoming: Incoming) {
        let incoming = match self.peers.get(&peer) {
            None => incoming,
            Some((queue, shared)) => {
                let len = incoming.datagram_len();
                let pending = shared.pending_in.load(Relaxed);
                // The endpoint's memory budget is spent and this peer holds its share:
                // UDP may lose datagrams, and this one goes, as for a full queue.
                if len > 0 && shared.charge.over_share(shared.charge.held().max(pending)) {
                    self.count_dropped();
                    tracing::debug!(%peer, "memory budget spent; datagram dropped");
                    return;
                }
                shared.pending_in.fetch_add(len, Relaxed);
                match queue.try_send(incoming) {
                    Ok(()) => return,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        shared.pending_in.fetch_sub(len, Relaxed);
                        self.count_dropped();
                        tracing::debug!(%peer, "peer session queue full; datagram dropped");
                        return;
                    }
                    // Its session ended (idle, closed, refused by on_open): start over.
                    Err(mpsc::error::TrySendError::Closed(incoming)) => {
                        shared.pending_in.fetch_sub(len, Relaxed);
                        self.peers.remove(&peer);
                        incoming
                    }
                }
            }
        };
        self.open(peer, incoming);
    }

    /// Counts a datagram dropped, in the server's stats and its metrics.
    fn count_dropped(&self) {
        self.counters.dropped.fetch_add(1, Relaxed);
        self.endpoint.metrics().udp_dropped.increment(1);
    }

    /// Makes a session for a new peer, with `first` as its first datagram.
    fn open(&mut self, peer: SocketAddr, first: Incoming) {
        if self.endpoint.live() >= self.max_peers {
            self.endpoint.count_refused();
            tracing::debug!(%peer, max = self.max_peers, "max peers reached; datagram dropped");
            return;
        }
        let slot = SessionSlot::new(self.endpoint.clone(), self.supervisor.clone());
        let Some((setup, listener, codec, slot)) = prepare_session(
            &*self.hook,
            "udp-peer",
            self.local_addr.into(),
            peer.into(),
            self.config.clone(),
            slot,
        ) else {
            return;
        };
        let first_len = first.datagram_len();
        let (queue, datagrams) = mpsc::channel(self.peer_queue);
        if queue.try_send(first).is_err() {
            // Cannot happen (a fresh queue has room); the datagram would be lost.
            self.count_dropped();
        }
        let destination = Destination::Peer(peer);
        let writer =
            DatagramWriter::for_session(self.socket.clone(), destination, self.max_datagram);
        let session = start_session(
            setup,
            listener,
            codec,
            slot,
            writer,
            ItemReader(|codec, shared: Arc<SessionShared>, batches| {
                let source = QueueSource {
                    queue: datagrams,
                    shared: shared.clone(),
                };
                DatagramReader::new(source, Plain(codec), shared, batches)
            }),
        );
        // Counted now that the session exists; its reader has not run yet (it starts on
        // this thread once this returns), so it cannot have taken the datagram off.
        session.shared().pending_in.fetch_add(first_len, Relaxed);
        self.peers.insert(peer, (queue, session.shared().clone()));
    }
}
