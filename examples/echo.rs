//! Self-contained demo: an echo server and clients in one process, on loopback.
//!
//! ```text
//! cargo run --release --example echo
//! ```
//! Starts a getty TCP server on a free port, runs 16 plain-tokio clients that each send
//! 20,000 pipelined 64-byte frames and check every echo, prints what happened and the
//! throughput, stops the server gracefully, and exits (0 only if every echo matched).

mod common;

use std::time::Instant;

use bytes::Bytes;
use common::Echo;
use futures::{SinkExt, StreamExt};
use getty::{LengthDelimited, TcpServer};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, FramedWrite};

const CLIENTS: usize = 16;
const FRAMES: usize = 20_000;
const SIZE: usize = 64;

/// One client: pipelines `FRAMES` frames and counts the echoes that match.
async fn client(addr: std::net::SocketAddr, id: usize) -> std::io::Result<usize> {
    let (read, write) = TcpStream::connect(addr).await?.into_split();
    let mut sink = FramedWrite::new(write, LengthDelimited::new());
    let mut echoes = FramedRead::new(read, LengthDelimited::new());
    let payload =
        move |seq: usize| Bytes::from(format!("{id:04}:{seq:08}:{}", "x".repeat(SIZE - 14)));
    let sender = actix_rt::spawn(async move {
        for seq in 0..FRAMES {
            sink.feed(payload(seq)).await?;
        }
        sink.flush().await?;
        Ok::<_, getty::Error>(sink)
    });
    let mut matched = 0;
    for seq in 0..FRAMES {
        match echoes.next().await {
            Some(Ok(echo)) if echo == payload(seq) => matched += 1,
            _ => break,
        }
    }
    // Keep the write half open until every echo is in, then let it close.
    drop(sender.await);
    Ok(matched)
}

#[actix::main]
async fn main() -> getty::Result<()> {
    let server = TcpServer::new("127.0.0.1:0")
        .start(|setup| {
            setup.set_name(format!("echo-{}", setup.peer_addr()));
            Ok((Echo, common::framing::Framing::new(None, 4096)))
        })
        .await?;
    let addr = server.inet_addr()?;
    println!("echo server listening on {addr}");

    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| actix_rt::spawn(client(addr, id)))
        .collect();
    let mut matched = 0;
    for c in clients {
        matched += c.await.ok().and_then(Result::ok).unwrap_or(0);
    }
    let secs = started.elapsed().as_secs_f64();
    let expected = CLIENTS * FRAMES;
    println!("{CLIENTS} clients sent {expected} frames of {SIZE} bytes; {matched} echoes matched");
    println!(
        "{:.0} echoes/s ({:.1} MB/s each way) in {secs:.2} s",
        matched as f64 / secs,
        (matched * (SIZE + 4)) as f64 / secs / 1e6
    );

    server.stop().await;
    let stats = server.stats();
    println!(
        "server stopped: {} sessions opened, {} closed, {} still live",
        stats.opened, stats.closed, stats.live_sessions
    );
    if matched != expected {
        eprintln!("some echoes were missing or wrong");
        std::process::exit(1);
    }
    Ok(())
}
