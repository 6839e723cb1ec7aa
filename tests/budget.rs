//! The endpoint memory budget under hostile load, over real processes: a crowd of peers
//! that send and never read against `echo_server --memory-budget 64`, while one
//! well-behaved peer keeps echoing. The server's memory stays within the budget's bound
//! plus its idle baseline plus a constant per connection (stated below), the good peer is served
//! throughout, the hostile sessions end with the write timeout (or, a few, when the
//! echo example closes them because the budget refused a reply), and afterwards the
//! server's sessions, sockets and buffered bytes return to what they were. RSS itself
//! does not fall back much: glibc's allocator keeps what was freed for reuse rather than
//! returning it to the OS, so the margin stated for it is the peak's bound (it never
//! grows after the attack ends), and further rounds of the attack reuse that memory.
//!
//! Sized for a 2-core machine: `GETTY_BUDGET_CONNS` (default 1,000) sets the crowd and
//! `GETTY_BUDGET_ROUNDS` (default 1) how many times it attacks.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::process::{example, first_line, ChildGuard};
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

const BUDGET_MIB: usize = 64;
const FRAME: usize = 1000;

/// How many peers attack at once.
fn crowd() -> usize {
    common::env_or("GETTY_BUDGET_CONNS", 1000)
}

/// Raises this process's open-file limit to its hard limit (children inherit it): the
/// crowd needs a socket each, here and in the server.
fn raise_fd_limit(need: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|cur| cur < need + 64) {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
    let now = getrlimit(Resource::Nofile).current;
    assert!(
        now.is_none_or(|cur| cur >= need + 64),
        "the open-file limit {now:?} is below the {need} sockets this test opens; \
         raise the hard limit (ulimit -Hn) or set GETTY_BUDGET_CONNS lower"
    );
}

/// A running `echo_server`, killed when dropped.
struct Server {
    child: ChildGuard,
    addr: String,
    log: Arc<std::sync::Mutex<Vec<String>>>,
    /// The latest `stats:` line the server printed.
    stats: Arc<std::sync::Mutex<String>>,
}

impl Server {
    fn start(transport: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(example("echo_server"))
            .args(["--transport", transport, "--addr", "127.0.0.1:0"])
            .args(["--memory-budget", &BUDGET_MIB.to_string()])
            .args(["--max-frame", "65536", "--stats-every", "0.2"])
            .args(extra)
            // The library's session endings, and the echo example's own closes.
            .env("RUST_LOG", "getty=debug,echo_server=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start echo_server");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stats = Arc::new(std::sync::Mutex::new(String::new()));
        let (lines, last_stats) = (log.clone(), stats.clone());
        // Only the lines that name an ending cause are kept (debug logs are many).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("session ending on error") || line.contains("cannot echo") {
                    lines.lock().unwrap().push(line);
                } else if line.starts_with("stats:") {
                    *last_stats.lock().unwrap() = line;
                }
            }
        });
        let child = ChildGuard::new(child);
        let line = first_line(stdout, Duration::from_secs(60));
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .expect("`listening on <addr>`")
            .to_owned();
        Server {
            child,
            addr,
            log,
            stats,
        }
    }

    /// A field of the server's latest `EndpointStats` line.
    fn stat(&self, field: &str) -> u64 {
        let line = self.stats.lock().unwrap().clone();
        let key = format!("{field}: ");
        line.split(&key)
            .nth(1)
            .and_then(|rest| rest.split([',', ' ', '}']).next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {line:?}"))
    }

    /// Waits (at most 10 s) until the server reports `open` sessions and no more
    /// buffered than those sessions' idle read buffers and a frame in flight each.
    async fn settle(&self, open: u64) {
        let idle = open * 16 * 1024;
        let settled = || self.stat("open_sessions") == open && self.stat("buffered_bytes") <= idle;
        if common::eventually(Duration::from_secs(10), settled).await {
            return;
        }
        let other: Vec<String> = self
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| !l.contains("write timeout"))
            .cloned()
            .collect();
        panic!(
            "the server did not settle: {}; endings other than the write timeout: {other:?}",
            self.stats.lock().unwrap()
        );
    }

    /// Resident memory now, in KiB.
    fn rss_kib(&self) -> u64 {
        rss_kib_of(self.child.id()).expect("VmRSS in /proc status")
    }

    /// Open file descriptors.
    fn fds(&self) -> usize {
        common::open_fds_of(self.child.id())
    }

    /// Up to 5 ending lines that are neither a write timeout nor a refused echo, for
    /// failure messages.
    fn other_endings(&self) -> Vec<String> {
        let log = self.log.lock().unwrap();
        let other = log
            .iter()
            .filter(|l| !l.contains("write timeout") && refused_echo(l).is_none());
        other.take(5).cloned().collect()
    }

    /// Sessions the echo example closed itself because a reply was refused, for the
    /// memory budget or a full write queue (it says so, then closes the session; a
    /// session may say so for several frames of one batch).
    fn refused_echoes(&self) -> usize {
        let log = self.log.lock().unwrap();
        let ids: std::collections::HashSet<&str> =
            log.iter().filter_map(|l| refused_echo(l)).collect();
        ids.len()
    }

    /// Sessions the server ended with an error whose text contains `what`.
    fn endings(&self, what: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("session ending on error") && l.contains(what))
            .count()
    }
}

/// The session (`session#N`) of a log line saying the echo example could not echo for
/// the memory budget or a full write queue.
fn refused_echo(line: &str) -> Option<&str> {
    let refused = line.contains("cannot echo")
        && (line.contains("memory budget spent") || line.contains("write queue full"));
    let at = line.find("session#").filter(|_| refused)?;
    let id = &line[at..];
    let end = id[8..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(id.len(), |n| n + 8);
    Some(&id[..end])
}

/// A frame's payload of [`FRAME`] bytes starting with `seq`, so a good peer can check
/// what comes back.
fn frame(seq: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(FRAME);
    b.put_u64(seq);
    b.put_bytes(b'x', FRAME - 8);
    b.freeze()
}

/// The resident memory of process `pid` in KiB (`VmRSS` in its /proc status); `None`
/// once it is gone.
fn rss_kib_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Samples the server's RSS every 50 ms until `stop`; returns the peak in KiB.
fn sample_peak(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_kib_of(pid).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(50));
        }
        peak
    })
}

/// How the peers reach the server.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Transport {
    Tcp,
    /// One frame per binary message, at `/ws`.
    Ws,
    /// One frame per datagram, a session per peer.
    Udp,
}

/// 64 length-prefixed frames: what a hostile peer sends at a time.
fn burst() -> Bytes {
    let mut burst = BytesMut::new();
    for i in 0..64 {
        burst.put_u32(FRAME as u32);
        burst.put_slice(&frame(i));
    }
    burst.freeze()
}

/// Completes a WebSocket upgrade to `/ws` over `stream`.
async fn upgrade(stream: &mut TcpStream, addr: &str) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    let request = common::ws::upgrade_request("/ws", addr, 13);
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    if head.starts_with(b"HTTP/1.1 101") {
        Ok(())
    } else {
        Err(std::io::Error::other("upgrade refused"))
    }
}

/// One masked binary WebSocket message (a client's) carrying `payload`, with the zero
/// mask key, so the payload goes as it is.
fn ws_binary_message(payload: &[u8]) -> Bytes {
    let mut msg = BytesMut::new();
    msg.put_u8(0x82); // FIN, binary
    assert!(payload.len() < 65536);
    msg.put_u8(0x80 | 126);
    msg.put_u16(payload.len() as u16);
    msg.put_u32(0); // mask key
    msg.put_slice(payload);
    msg.freeze()
}

/// Sends frames as fast as the server takes them and never reads, until the server ends
/// the connection (or `limit` passes). Returns whether the server ended it.
async fn hostile_stream(transport: Transport, addr: String, limit: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect(&addr).await else {
        return false;
    };
    let data = match transport {
        Transport::Ws => {
            if upgrade(&mut stream, &addr).await.is_err() {
                return false;
            }
            ws_binary_message(&burst())
        }
        _ => burst(),
    };
    let flood = async {
        loop {
            if stream.write_all(&data).await.is_err() {
                return true;
            }
        }
    };
    tokio::time::timeout(limit, flood).await.unwrap_or(false)
}

/// A UDP peer that sends datagrams (one frame each) for `secs` and never reads; the
/// server's echoes to it are dropped by its full receive buffer.
async fn hostile_udp(addr: String, secs: Duration) {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0").await else {
        return;
    };
    let mut datagram = BytesMut::new();
    datagram.put_u32(FRAME as u32);
    datagram.put_slice(&frame(0));
    let end = Instant::now() + secs;
    while Instant::now() < end {
        // A full send buffer just makes it wait; errors (ICMP reports) are ignored.
        let _ = socket.send_to(&datagram, &addr).await;
        tokio::task::yield_now().await;
    }
}

/// What the well-behaved peer saw.
#[derive(Debug, Default)]
struct Served {
    worst: Duration,
    echoes: u64,
    /// UDP datagrams whose echo did not come within 1 s (loopback UDP drops datagrams
    /// when the server's socket buffer is full; the next one goes out regardless).
    lost: u64,
}

/// One well-behaved peer: echoes a frame every 20 ms until `stop`, and times each.
async fn good_peer(transport: Transport, addr: String, stop: Arc<AtomicBool>) -> Served {
    match transport {
        Transport::Udp => good_udp(addr, stop).await,
        Transport::Tcp => {
            let stream = TcpStream::connect(&addr).await.expect("good peer connects");
            stream.set_nodelay(true).unwrap();
            let framed = tokio_util::codec::Framed::new(stream, getty::LengthDelimited::new());
            good_framed(framed, stop, Bytes::from, |frame: BytesMut| {
                Some(frame.freeze())
            })
            .await
        }
        Transport::Ws => {
            use actix_http::ws::{Codec, Frame, Message};
            let mut stream = TcpStream::connect(&addr).await.expect("good peer connects");
            stream.set_nodelay(true).unwrap();
            upgrade(&mut stream, &addr).await.expect("upgrade");
            let framed = tokio_util::codec::Framed::new(stream, Codec::new().client_mode());
            let to_message = |payload: Bytes| {
                let mut msg = BytesMut::new();
                msg.put_u32(payload.len() as u32);
                msg.put_slice(&payload);
                Message::Binary(msg.freeze())
            };
            let from_frame = |frame: Frame| match frame {
                Frame::Binary(b) if b.len() >= 4 => Some(b.slice(4..)),
                _ => None, // pings and the like
            };
            good_framed(framed, stop, to_message, from_frame).await
        }
    }
}

/// The good peer over a framed stream: `to_item` makes what it sends of a payload,
/// `payload_of` finds the payload in what comes back (`None`: not an echo, skip it).
async fn good_framed<S, In, Out>(
    mut framed: S,
    stop: Arc<AtomicBool>,
    to_item: impl Fn(Bytes) -> Out,
    payload_of: impl Fn(In) -> Option<Bytes>,
) -> Served
where
    S: futures::Sink<Out>
        + futures::Stream<Item = Result<In, <S as futures::Sink<Out>>::Error>>
        + Unpin,
    <S as futures::Sink<Out>>::Error: std::fmt::Debug,
{
    let mut served = Served::default();
    while !stop.load(Ordering::Relaxed) && served.echoes < 100_000 {
        let n = served.echoes;
        let sent = Instant::now();
        framed
            .send(to_item(frame(n)))
            .await
            .expect("good peer sends");
        let echo = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let item = framed
                    .next()
                    .await
                    .expect("an echo before EOF")
                    .expect("a frame");
                if let Some(payload) = payload_of(item) {
                    return payload;
                }
            }
        })
        .await
        .expect("an echo within 5 s");
        assert_eq!(&echo[..8], &n.to_be_bytes()[..], "its own echo");
        served.worst = served.worst.max(sent.elapsed());
        served.echoes += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    served
}

/// The good peer over UDP: sends a frame and waits for its echo, again and again until
/// `stop` (100,000 frames at most).
async fn good_udp(addr: String, stop: Arc<AtomicBool>) -> Served {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.connect(&addr).await.expect("connect");
    let mut served = Served::default();
    let mut buf = vec![0u8; 2 * FRAME];
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) && n < 100_000 {
        let mut datagram = BytesMut::new();
        datagram.put_u32(FRAME as u32);
        datagram.put_slice(&frame(n));
        let sent = Instant::now();
        socket.send(&datagram).await.expect("send");
        let echoed = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                let got = socket.recv(&mut buf).await.expect("recv");
                if got >= 12 && buf[4..12] == n.to_be_bytes() {
                    return;
                }
            }
        })
        .await;
        match echoed {
            Ok(()) => {
                served.worst = served.worst.max(sent.elapsed());
                served.echoes += 1;
            }
            Err(_) => served.lost += 1,
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    served
}

/// The bound the peak must keep over the idle baseline, in KiB: the most the budget
/// lets the sessions hold (1.25 budgets, see `getty`'s budget rule), plus a constant per
/// connection for what it does not count or counts late, plus 32 MiB for the allocator's
/// slack (memory freed by one thread's arena that another cannot reuse, and
/// fragmentation left by earlier rounds).
///
/// The constant per connection, TCP and UDP: the socket's and session's own state (about
/// 15 KiB idle, measured with the yardstick's idle run) and one batch read ahead and
/// echoed between two reports of a session (a quarter of a 64 KiB share each way:
/// 32 KiB); 48 KiB in all.
///
/// WebSocket adds what actix-web's HTTP layer holds for a connection whose peer floods,
/// which its constants size and no option of ours can change: its dispatcher reads up to
/// 128 KiB ahead (`MAX_BUFFER_SIZE`, in a buffer that grows by doubling, so up to
/// 256 KiB), queues up to 32 KiB more for the request payload, and buffers up to 32 KiB
/// of writes plus one body chunk (64 KiB); and the reader's frame buffer holds a
/// partial frame (up to the 64 KiB max frame here) and one of those read-ahead chunks.
/// About 700 KiB at worst; a heap profile (valgrind massif, 200 flooding connections)
/// put them at 820 KiB a connection with the allocator's rounding; 1 MiB is stated.
fn peak_bound_kib(transport: Transport, conns: usize) -> u64 {
    let per_connection_kib = match transport {
        Transport::Ws => 1024,
        Transport::Tcp | Transport::Udp => 48,
    };
    (BUDGET_MIB as u64) * 1024 * 5 / 4 + per_connection_kib * conns as u64 + 32 * 1024
}

/// How many attacks in a row.
fn rounds() -> usize {
    common::env_or("GETTY_BUDGET_ROUNDS", 1)
}

/// One attack: `conns` peers that flood and never read. Stream peers go on until the
/// server ends them; UDP peers (which the server cannot end) flood for 6 s. Returns how
/// many the server ended.
async fn attack(transport: Transport, addr: &str, conns: usize) -> usize {
    let ended = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (addr, ended) = (addr.to_owned(), ended.clone());
        tasks.push(tokio::spawn(async move {
            if transport == Transport::Udp {
                hostile_udp(addr, Duration::from_secs(6)).await;
            } else if hostile_stream(transport, addr, Duration::from_secs(60)).await {
                ended.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.expect("hostile peer");
    }
    ended.load(Ordering::Relaxed)
}

/// One scenario at a time: each takes the machine's two cores and a socket per peer.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The whole scenario over `transport` (see the module docs).
async fn crowd_against_budget(transport: Transport) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let conns = crowd();
    raise_fd_limit(2 * conns as u64 + 16);
    // A WebSocket connection holds more memory of actix-web's that the budget does not
    // see (see `peak_bound_kib`), so its crowd is smaller by default.
    let conns = if transport == Transport::Ws {
        conns.min(200)
    } else {
        conns
    };
    let (name, extra): (&str, &[&str]) = match transport {
        Transport::Tcp => ("tcp", &["--threads", "2"]),
        Transport::Ws => ("ws", &["--threads", "2", "--path", "/ws"]),
        // Idle peers' sessions expire 2 s after their flood, so the server settles.
        Transport::Udp => ("udp", &["--read-timeout", "2"]),
    };
    let server = Server::start(name, extra);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline_kib = server.rss_kib();
    let fds_before = server.fds();

    let stop = Arc::new(AtomicBool::new(false));
    // The good peer runs on a thread and runtime of its own, so what it measures is the
    // server, not this process's crowd of hostile tasks.
    let good = {
        let (addr, stop) = (server.addr.clone(), stop.clone());
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(good_peer(transport, addr, stop))
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    for round in 1..=rounds() {
        let sampling = Arc::new(AtomicBool::new(false));
        let sampler = sample_peak(server.child.id(), sampling.clone());
        let ended = attack(transport, &server.addr, conns).await;
        if transport != Transport::Udp {
            assert_eq!(
                ended,
                conns,
                "{name} round {round}: the server ended every hostile peer; server: {}",
                server.stats.lock().unwrap()
            );
        }
        // Only the good peer's session is left, and nothing more than it holds.
        server.settle(1).await;
        sampling.store(true, Ordering::Relaxed);
        let peak = sampler.join().expect("sampler");
        let (fds, after) = (server.fds(), server.rss_kib());
        eprintln!(
            "{name} round {round}: {conns} hostile peers, budget {BUDGET_MIB} MiB: RSS \
             baseline {baseline_kib} KiB, peak {peak} KiB (+{} KiB, bound +{} KiB), after \
             {after} KiB; server sockets {fds_before} before, {fds} after",
            peak - baseline_kib,
            peak_bound_kib(transport, conns),
        );
        // The good peer's connection (and, over WebSocket, the duplicate of its socket
        // that lets the server shut it, see `ws::pipe`).
        let good_fds = if transport == Transport::Ws { 2 } else { 1 };
        assert!(
            fds <= fds_before + good_fds,
            "{name} round {round}: sockets {fds_before} before, {fds} after"
        );
        assert!(
            peak - baseline_kib <= peak_bound_kib(transport, conns),
            "{name} round {round}: RSS peak {peak} KiB is more than {} KiB over the baseline {baseline_kib} KiB",
            peak_bound_kib(transport, conns)
        );
        assert!(
            after <= peak,
            "{name} round {round}: RSS grew after the attack: {peak} KiB, then {after} KiB"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let served = good.join().expect("good peer");
    eprintln!("{name} good peer: {served:?}");
    if transport != Transport::Udp {
        // Most end with the write timeout; a few are closed by the echo example first,
        // when the budget (or the write queue) refused its reply.
        let (timeouts, refused) = (server.endings("write timeout"), server.refused_echoes());
        eprintln!("{name}: {timeouts} sessions ended with the write timeout, {refused} after a refused echo");
        assert_eq!(
            timeouts + refused,
            rounds() * conns,
            "each hostile {name} session ended with the write timeout or a refused echo; \
             other endings: {:?}",
            server.other_endings()
        );
    }
    assert!(
        served.worst < Duration::from_secs(1),
        "the good {name} peer waited {:?} for an echo",
        served.worst
    );
    assert!(
        served.echoes > 20,
        "the good {name} peer was served throughout: {served:?}"
    );
    assert!(
        served.lost <= served.echoes / 4,
        "the good {name} peer lost more than a quarter of its datagrams: {served:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_crowd_that_never_reads_stays_within_the_budget_and_a_good_peer_is_served() {
    crowd_against_budget(Transport::Tcp).await;
}

/// Over WebSocket the budget bounds what the sessions hold; actix-web's own buffers for
/// each connection are a larger constant (see `peak_bound_kib`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_crowd_that_never_reads_stays_within_the_budget_and_a_good_peer_is_served() {
    crowd_against_budget(Transport::Ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_crowd_of_peers_stays_within_the_budget_and_a_good_peer_is_served() {
    crowd_against_budget(Transport::Udp).await;
}

#[test]
fn refused_echo_lines_name_their_session() {
    let line = "\u{1b}[33m WARN\u{1b}[0m echo_server::common: cannot echo; closing the session \
                err=session#42: memory budget spent: 1 bytes held";
    assert_eq!(refused_echo(line), Some("session#42"));
    let full = "WARN cannot echo; closing the session err=session#7: write queue full: 9 bytes";
    assert_eq!(refused_echo(full), Some("session#7"));
    assert_eq!(
        refused_echo("WARN cannot echo err=session#7: session closed"),
        None
    );
    assert_eq!(
        refused_echo("DEBUG session ending on error err=session#7: write timeout"),
        None
    );
}
