//! Faults: stopping a server under load loses nothing it accepted.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use getty::prelude::*;
use getty::{SessionConfig, TcpServer};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, FramedWrite};

#[actix::test]
async fn a_stop_under_load_flushes_every_accepted_frame_and_closes_every_session() {
    const CLIENTS: usize = 16;
    let behaviour = Behaviour::quiet_echo();
    let server = TcpServer::new("127.0.0.1:0").workers(2);
    let (server, log, _) =
        start_probe_server_with(server, behaviour, SessionConfig::default()).await;
    let addr = server.inet_addr().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let received = received.clone();
            tokio::spawn(async move {
                let (read, write) = TcpStream::connect(addr).await.unwrap().into_split();
                let mut sink = FramedWrite::new(write, getty::LengthDelimited::new());
                let mut echoes = FramedRead::new(read, getty::LengthDelimited::new());
                // Send until the server goes away; count every echo until its EOF.
                let sender = tokio::spawn(async move {
                    let mut i = 0u64;
                    while sink.send(Bytes::from(format!("{c}:{i}"))).await.is_ok() {
                        i += 1;
                    }
                });
                while let Some(Ok(_)) = echoes.next().await {
                    received.fetch_add(1, Ordering::Relaxed);
                }
                sender.abort();
            })
        })
        .collect();
    wait_until(SECS5, "all sessions open and echoing", || {
        server.stats().open_sessions == CLIENTS && received.load(Ordering::Relaxed) > 10_000
    })
    .await;
    within(Duration::from_secs(10), server.stop()).await;
    for c in clients {
        within(Duration::from_secs(10), c).await.unwrap();
    }
    let accepted: u64 = log
        .sessions()
        .iter()
        .map(|s| s.stats().frames_written)
        .sum();
    let got = received.load(Ordering::Relaxed);
    eprintln!("stopped under load: {accepted} echoes accepted for writing, {got} received");
    assert_eq!(
        got, accepted,
        "every frame accepted for writing reached its peer"
    );
    assert_eq!(log.count(&Event::Open), CLIENTS);
    assert_eq!(
        log.count(&Event::Close),
        CLIENTS,
        "on_close once for each session"
    );
    assert_eq!(server.stats().live_sessions, 0);
}
