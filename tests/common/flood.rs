//! A peer that floods a listener which consumes slowly, and a measure of how far the
//! server reads ahead of it: shared by `tests/limits.rs` (100 MiB over TCP) and
//! `tests/transports.rs` (the same over every stream transport), which differ only in
//! sizes and in how the peer connects.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::SinkExt;
use getty::{Session, SessionConfig};
use tokio::io::AsyncWrite;
use tokio_util::codec::FramedWrite;

use super::{wait_until, within, Behaviour, Log};

/// The sizes and pace of one flood.
pub struct Flood {
    /// Bytes of each frame's payload (also the session's max frame length).
    pub frame: usize,
    /// Frames the peer sends.
    pub frames: usize,
    /// How long the listener sleeps on each frame while it is slow.
    pub delay: Duration,
    /// Per-frame allowance added to the read-ahead bound for the read buffer's rounding.
    pub slack: u64,
    /// Samples of the read-ahead, one every 50 ms, before the listener is let go fast.
    pub samples: usize,
}

/// What one flood measured.
pub struct Measured {
    /// The most the server had read beyond what the listener consumed, over the samples.
    pub worst: u64,
    /// What it may read ahead at most.
    pub bound: u64,
    /// Frames the listener had consumed when it was let go fast.
    pub delivered_while_slow: u64,
    /// The flooded session.
    pub session: Session<Bytes>,
}

impl Flood {
    /// A session config for the flood: frames up to [`Flood::frame`], a read queue of 4.
    pub fn config(&self) -> SessionConfig {
        let mut config = SessionConfig::default();
        config.max_frame_length = self.frame;
        config.read_queue = 4;
        config
    }

    /// A quiet probe that starts slow: it sleeps [`Flood::delay`] on every frame (blocking
    /// its arbiter) until the flood lets it go.
    pub fn behaviour(&self) -> Behaviour {
        let behaviour = Behaviour {
            quiet: true,
            delay: self.delay,
            ..Default::default()
        };
        behaviour.slow.store(true, Ordering::Relaxed);
        behaviour
    }

    /// Floods the server's one session from a peer that `connect` opens, samples how far
    /// the server reads ahead of the slow listener, then lets the listener go fast and
    /// waits for every frame. Asserts that flow control held the peer back, that the
    /// read-ahead stayed within its bound, and that every byte arrived.
    ///
    /// The slow listener blocks the server's arbiter (the calling thread) while it
    /// sleeps, so the peer and the sampling run on a thread and runtime of their own.
    pub async fn run<C, F, S>(
        &self,
        connect: C,
        log: Arc<Log>,
        behaviour: Arc<Behaviour>,
    ) -> Measured
    where
        C: FnOnce() -> F + Send + 'static,
        F: Future<Output = S>,
        S: AsyncWrite + Unpin + Send + 'static,
    {
        let (frame, frames, slack, samples) = (self.frame, self.frames, self.slack, self.samples);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let b = behaviour.clone();
        let peer = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let stream = connect().await;
                let mut sink =
                    FramedWrite::new(stream, getty::LengthDelimited::with_max_frame_length(frame));
                let flood = tokio::spawn(async move {
                    for i in 0..frames {
                        sink.feed(Bytes::from(vec![(i % 256) as u8; frame]))
                            .await
                            .unwrap();
                    }
                    sink.flush().await.unwrap();
                    sink
                });
                let session = log.first_session().await;
                // What the server may hold for this session beyond what the listener
                // consumed: the read queue's batches, the one being handed over, the
                // backlog and the read buffer, each at most two frames (one read
                // completes at most the frame it waits for and the start of the next).
                let wire = (frame + 4) as u64;
                let bound = (session.config().read_queue as u64 + 4) * 2 * (wire + slack);
                let mut worst = 0;
                for _ in 0..samples {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    // Consumed first: what is read after it can only make the gap larger.
                    let consumed = b.delivered.load(Ordering::Relaxed) * wire;
                    worst = worst.max(session.stats().bytes_read.saturating_sub(consumed));
                }
                let held_back = !flood.is_finished();
                let delivered_while_slow = b.delivered.load(Ordering::Relaxed);
                // Let the listener go fast: the rest arrives, nothing lost.
                b.slow.store(false, Ordering::Relaxed);
                let mut sink = within(Duration::from_secs(60), flood).await.unwrap();
                // A graceful end: the peer's last bytes must arrive, whatever the
                // transport (a QUIC connection dropped at once loses those in flight).
                within(Duration::from_secs(60), sink.close()).await.unwrap();
                drop(sink);
                let _ = tx.send((
                    held_back,
                    Measured {
                        worst,
                        bound,
                        delivered_while_slow,
                        session,
                    },
                ));
            })
        });
        let (held_back, measured) = within(Duration::from_secs(90), rx).await.unwrap();
        peer.join().unwrap();
        let Measured { worst, bound, .. } = measured;
        eprintln!(
            "read ahead of the listener at most {worst} bytes (bound {bound}); {} frames \
             delivered while slow",
            measured.delivered_while_slow
        );
        assert!(held_back, "flow control holds the flooding peer back");
        assert!(
            worst <= bound,
            "read ahead of the listener by {worst} bytes, bound {bound}"
        );
        wait_until(Duration::from_secs(30), "everything delivered", || {
            behaviour.delivered.load(Ordering::Relaxed) == frames as u64
        })
        .await;
        assert_eq!(
            measured.session.stats().bytes_read,
            frames as u64 * (frame + 4) as u64
        );
        measured
    }
}
