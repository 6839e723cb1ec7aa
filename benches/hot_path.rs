//! Hot-path benchmarks: decoding and encoding batches of small frames; a whole session
//! (read, decode, dispatch to the listener, encode, write) over an in-memory pipe, with
//! no kernel and no second thread, per frame and per batch; and a pipelined echo through
//! a real getty server over loopback; 1 KiB text frames through the compressing codec
//! adapter, none against deflate against snappy; and the in-memory session with no
//! metrics recorder installed against the same with a Prometheus recorder.
//!
//! `cargo bench --bench hot_path`. For comparisons with raw tokio and plain actix, use
//! `../shared/yardstick` against `examples/echo_server` (see README).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::{SinkExt, StreamExt};
use getty::prelude::*;
use getty::transport::{Address, Connection};
use getty::{EventListener, LengthDelimited, Server, SessionContext, TcpServer};
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};

const FRAMES: usize = 256;
const SIZE: usize = 64;

fn wire(frames: usize) -> BytesMut {
    let mut wire = BytesMut::with_capacity(frames * (SIZE + 4));
    for i in 0..frames {
        wire.put_u32(SIZE as u32);
        wire.put_bytes(i as u8, SIZE);
    }
    wire
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("length_delimited");
    group.throughput(Throughput::Elements(FRAMES as u64));
    let template = wire(FRAMES);
    group.bench_function("decode 256 x 64 B", |b| {
        let mut codec = LengthDelimited::new();
        b.iter(|| {
            let mut src = template.clone();
            let mut n = 0;
            while let Some(frame) = codec.decode(&mut src).unwrap() {
                n += frame.len();
            }
            n
        })
    });
    let payload = Bytes::from(vec![7u8; SIZE]);
    group.bench_function("encode 256 x 64 B", |b| {
        let mut codec = LengthDelimited::new();
        let mut dst = BytesMut::with_capacity(FRAMES * (SIZE + 4));
        b.iter(|| {
            dst.clear();
            for _ in 0..FRAMES {
                codec.encode(payload.clone(), &mut dst).unwrap();
            }
            dst.len()
        })
    });
    group.finish();
}

struct Echo;

impl EventListener for Echo {
    type Codec = LengthDelimited;
    type Out = Bytes;
    fn on_message(&mut self, s: &mut SessionContext<'_, Self>, frame: BytesMut) {
        let _ = s.write(frame.freeze());
    }
}

/// A one-arbiter echo server on its own thread, for the life of the bench process.
fn spawn_server() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix::System::new().block_on(async move {
            let server = TcpServer::new("127.0.0.1:0")
                .workers(1)
                .start(|_| Ok((Echo, LengthDelimited::new())))
                .await
                .expect("bench server starts");
            tx.send(server.inet_addr().unwrap()).expect("bench alive");
            futures::future::pending::<()>().await;
        })
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("server address")
}

fn echo(c: &mut Criterion) {
    let addr = spawn_server();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut sink, mut echoes) = rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (r, w) = stream.into_split();
        (
            FramedWrite::new(w, LengthDelimited::new()),
            FramedRead::new(r, LengthDelimited::new()),
        )
    });
    let payload = Bytes::from(vec![1u8; SIZE]);
    let mut group = c.benchmark_group("tcp_echo");
    for depth in [1usize, 64] {
        group.throughput(Throughput::Elements(depth as u64));
        group.bench_function(format!("{depth} pipelined x 64 B"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        for _ in 0..depth {
                            sink.feed(payload.clone()).await.unwrap();
                        }
                        sink.flush().await.unwrap();
                        for _ in 0..depth {
                            echoes.next().await.unwrap().unwrap();
                        }
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

/// The client's two halves of an in-memory echo session.
type PipeClient = (
    FramedWrite<tokio::io::WriteHalf<tokio::io::DuplexStream>, LengthDelimited>,
    FramedRead<tokio::io::ReadHalf<tokio::io::DuplexStream>, LengthDelimited>,
);

/// Starts an echo server (one arbiter, this thread) on `system` and connects it to a
/// tokio duplex pipe; returns the client's ends of the pipe.
fn pipe_echo(system: &actix::SystemRunner) -> PipeClient {
    let (connect, incoming) = futures::channel::mpsc::unbounded();
    system.block_on(async move {
        // Kept running by the system between measurements.
        let server = Server::new()
            .kind("pipe")
            .workers(1)
            .serve(incoming.map(Ok), |_| Ok((Echo, LengthDelimited::new())))
            .expect("no option it cannot honour");
        std::mem::forget(server);
        let (ours, theirs) = tokio::io::duplex(256 * 1024);
        let conn = Connection::new(theirs, Address::other("server"), Address::other("bench"));
        connect.unbounded_send(conn).expect("server running");
        let (r, w) = tokio::io::split(ours);
        (
            FramedWrite::new(w, LengthDelimited::new()),
            FramedRead::new(r, LengthDelimited::new()),
        )
    })
}

/// Times `iters` rounds of `depth` pipelined 64-byte frames and their echoes.
fn pipe_rounds(
    system: &actix::SystemRunner,
    client: &mut PipeClient,
    depth: usize,
    iters: u64,
) -> Duration {
    let (sink, echoes) = client;
    let payload = Bytes::from(vec![1u8; SIZE]);
    system.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            for _ in 0..depth {
                sink.feed(payload.clone()).await.unwrap();
            }
            sink.flush().await.unwrap();
            for _ in 0..depth {
                echoes.next().await.unwrap().unwrap();
            }
        }
        start.elapsed()
    })
}

/// The session's own cost: client and server share one actix system on this thread and
/// talk through a tokio duplex pipe handed to [`Server::serve`], so what is measured is
/// the reader actor, the hop to the logic actor, the listener, the write queue and the
/// pipe, with no syscall.
fn session_in_memory(c: &mut Criterion) {
    let system = actix::System::new();
    let mut client = pipe_echo(&system);
    let mut group = c.benchmark_group("session_in_memory");
    for depth in [1usize, 16, FRAMES] {
        group.throughput(Throughput::Elements(depth as u64));
        group.bench_function(format!("{depth} pipelined x 64 B"), |b| {
            b.iter_custom(|iters| pipe_rounds(&system, &mut client, depth, iters))
        });
    }
    group.finish();
}

/// What the metrics cost on the session's hot path: the in-memory echo with no recorder
/// installed (every metric handle a no-op), then, in a session started after a
/// Prometheus recorder was installed (the endpoint registers its handles at start),
/// with every update recorded. Run last: the recorder stays installed for the process.
fn metrics_overhead(c: &mut Criterion) {
    let system = actix::System::new();
    let mut group = c.benchmark_group("metrics");
    let mut client = pipe_echo(&system);
    for depth in [1usize, 16] {
        group.throughput(Throughput::Elements(depth as u64));
        group.bench_function(format!("no recorder, {depth} pipelined x 64 B"), |b| {
            b.iter_custom(|iters| pipe_rounds(&system, &mut client, depth, iters))
        });
    }
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let page = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the bench's only recorder");
    let mut client = pipe_echo(&system);
    for depth in [1usize, 16] {
        group.throughput(Throughput::Elements(depth as u64));
        group.bench_function(
            format!("prometheus recorder, {depth} pipelined x 64 B"),
            |b| b.iter_custom(|iters| pipe_rounds(&system, &mut client, depth, iters)),
        );
    }
    group.finish();
    // What the recorded session's page says, as a check that it recorded.
    let frames = page
        .render()
        .lines()
        .find(|l| l.starts_with("getty_frames_received_total"))
        .map(str::to_owned);
    println!("recorded: {frames:?}");
}

/// 1 KiB text-like frames (JSON chat lines from a small vocabulary, as a chat or a
/// dashboard sends), each different.
fn text_frames(n: usize) -> Vec<Bytes> {
    const WORDS: [&str; 16] = [
        "hello", "room", "players", "ready", "match", "score", "lobby", "queue", "joined", "left",
        "team", "red", "blue", "round", "win", "map",
    ];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let mut line = String::new();
            while line.len() < 1024 {
                let r = next();
                line.push_str(&format!(
                    "{{\"user\":\"u{}\",\"ts\":{},\"text\":\"{} {} {}\"}}\n",
                    r % 1000,
                    1_733_100_000_000 + i as u64 * 37 + r % 100,
                    WORDS[(r >> 8) as usize % 16],
                    WORDS[(r >> 16) as usize % 16],
                    WORDS[(r >> 24) as usize % 16],
                ));
            }
            line.truncate(1024);
            Bytes::from(line)
        })
        .collect()
}

/// Round trips (encode, then decode) of 1 KiB text-like frames through the plain codec
/// and through `Compressed` with each method; the bytes on the wire per frame are printed
/// once, before the timings.
fn compression(c: &mut Criterion) {
    use getty::codec::{Compressed, Compression};
    const MAX: usize = 64 * 1024;
    let frames = text_frames(64);
    let mut group = c.benchmark_group("compression, 1 KiB text frames");
    group.throughput(Throughput::Elements(frames.len() as u64));
    fn round_trip<C>(codec: &mut C, frames: &[Bytes], wire: &mut BytesMut) -> usize
    where
        C: Encoder<Bytes> + Decoder<Item = BytesMut>,
        <C as Encoder<Bytes>>::Error: std::fmt::Debug,
        <C as Decoder>::Error: std::fmt::Debug,
    {
        wire.clear();
        for f in frames {
            codec.encode(f.clone(), wire).unwrap();
        }
        let on_wire = wire.len();
        while let Some(frame) = codec.decode(wire).unwrap() {
            std::hint::black_box(frame);
        }
        on_wire
    }
    let mut wire = BytesMut::new();
    let mut plain = LengthDelimited::with_max_frame_length(MAX);
    let bytes = round_trip(&mut plain, &frames, &mut wire);
    println!("bytes on the wire per frame: none {}", bytes / frames.len());
    group.bench_function("none", |b| {
        b.iter(|| round_trip(&mut plain, &frames, &mut wire))
    });
    for (name, method) in [
        ("deflate", Compression::Deflate),
        ("deflate best speed", Compression::DeflateBestSpeed),
        (
            "deflate best compression",
            Compression::DeflateBestCompression,
        ),
        ("deflate huffman only", Compression::DeflateHuffmanOnly),
        ("snappy", Compression::Snappy),
    ] {
        let mut codec = Compressed::new(LengthDelimited::with_max_frame_length(MAX), method, MAX);
        let bytes = round_trip(&mut codec, &frames, &mut wire);
        println!(
            "bytes on the wire per frame: {name} {}",
            bytes / frames.len()
        );
        group.bench_function(name, |b| {
            b.iter(|| round_trip(&mut codec, &frames, &mut wire))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    codec,
    compression,
    session_in_memory,
    echo,
    metrics_overhead
);
criterion_main!(benches);
