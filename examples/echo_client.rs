//! Echo client: sends frames on several connections and checks every echo.
//!
//! ```text
//! cargo run --release --example echo_client -- --addr 127.0.0.1:7000 \
//!     [--conns N] [--frames M] [--size S] [--timeout SECS]
//! ```
//! Sends M frames of S bytes on each of N connections (pipelined), checks that every
//! echo comes back unchanged and in order, prints a summary, and exits 0 only if every
//! echo matched (1 otherwise, 2 for bad options). Defaults: 1 connection, 1000 frames,
//! 64 bytes, 30 s timeout.

mod common;

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::Options;
use futures::{SinkExt, StreamExt};
use getty::LengthDelimited;
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, FramedWrite};

const USAGE: &str =
    "usage: echo_client --addr HOST:PORT [--conns N] [--frames M] [--size S] [--timeout SECS]";

/// Frame `seq` of connection `conn`: the two numbers, then a byte pattern, `size` bytes in all.
fn frame(conn: u32, seq: u32, size: usize) -> Bytes {
    let mut buf = BytesMut::with_capacity(size.max(8));
    buf.put_u32(conn);
    buf.put_u32(seq);
    buf.extend((8..size).map(|i| (i as u32 ^ seq) as u8));
    buf.truncate(size);
    buf.freeze()
}

/// Sends `frames` frames on one connection and checks the echoes; the count that matched.
async fn run_connection(addr: String, conn: u32, frames: u32, size: usize) -> Result<u32, String> {
    let stream = TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (read, write) = stream.into_split();
    let codec = LengthDelimited::with_max_frame_length(size.max(8));
    let mut sink = FramedWrite::new(write, codec.clone());
    let mut echoes = FramedRead::new(read, codec);
    let sender = tokio::spawn(async move {
        for seq in 0..frames {
            sink.feed(frame(conn, seq, size)).await?;
        }
        sink.flush().await
    });
    let mut matched = 0;
    for seq in 0..frames {
        match echoes.next().await {
            Some(Ok(echo)) if echo == frame(conn, seq, size) => matched += 1,
            Some(Ok(_)) => {
                return Err(format!(
                    "conn {conn}: echo {seq} differs from what was sent"
                ))
            }
            Some(Err(e)) => return Err(format!("conn {conn}: {e}")),
            None => return Err(format!("conn {conn}: closed after {matched} echoes")),
        }
    }
    match sender.await {
        Ok(Ok(())) => Ok(matched),
        Ok(Err(e)) => Err(format!("conn {conn}: send: {e}")),
        Err(e) => Err(format!("conn {conn}: sender: {e}")),
    }
}

#[tokio::main]
async fn main() {
    let opts = Options::parse(&["addr", "conns", "frames", "size", "timeout"], USAGE);
    let addr: String = opts.get("addr", "127.0.0.1:7000".to_owned());
    let conns: u32 = opts.get("conns", 1);
    let frames: u32 = opts.get("frames", 1000);
    let size: usize = opts.get("size", 64);
    let timeout = Duration::from_secs_f64(opts.get("timeout", 30.0));

    let started = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|conn| {
            tokio::spawn(tokio::time::timeout(
                timeout,
                run_connection(addr.clone(), conn, frames, size),
            ))
        })
        .collect();
    let mut matched = 0u64;
    let mut failures = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(Ok(n))) => matched += u64::from(n),
            Ok(Ok(Err(e))) => failures.push(e),
            Ok(Err(_)) => failures.push(format!("timed out after {timeout:?}")),
            Err(e) => failures.push(e.to_string()),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let expected = u64::from(conns) * u64::from(frames);
    println!(
        "{matched}/{expected} echoes matched on {conns} connections ({size} B frames) in {elapsed:.3} s, {:.0} frames/s",
        matched as f64 / elapsed
    );
    for failure in &failures {
        eprintln!("error: {failure}");
    }
    std::process::exit(if failures.is_empty() && matched == expected {
        0
    } else {
        1
    });
}
