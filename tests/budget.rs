//! The endpoint memory budget under hostile load, over real processes: a crowd of peers
//! that send and never read against `echo_server --memory-budget 64`, while one
//! well-behaved peer keeps echoing. The server's memory stays within the budget's bound
//! plus its idle baseline plus a small constant per connection, the good peer is served
//! throughout, the hostile sessions end with the write timeout, and afterwards the
//! server's sessions, sockets and buffered bytes return to what they were. RSS itself
//! does not fall back much: glibc's allocator keeps what was freed for reuse rather than
//! returning it to the OS, so the margin stated for it is the peak's bound (it never
//! grows after the attack ends), and further rounds of the attack reuse that memory.
//!
//! Sized for a 2-core machine: `GETTY_BUDGET_CONNS` (default 1,000) sets the crowd and
//! `GETTY_BUDGET_ROUNDS` (default 1) how many times it attacks.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const BUDGET_MIB: usize = 64;
const FRAME: usize = 1000;

fn crowd() -> usize {
    std::env::var("GETTY_BUDGET_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
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
        now.map_or(true, |cur| cur >= need + 64),
        "the open-file limit {now:?} is below the {need} sockets this test opens; \
         raise the hard limit (ulimit -Hn) or set GETTY_BUDGET_CONNS lower"
    );
}

/// The `echo_server` example, built by this test's cargo if it is not yet.
fn echo_server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join("examples").join("echo_server");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", "echo_server"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --example echo_server failed");
    }
    path
}

/// A running `echo_server`, killed when dropped.
struct Server {
    child: Child,
    addr: String,
    log: Arc<std::sync::Mutex<Vec<String>>>,
    /// The latest `stats:` line the server printed.
    stats: Arc<std::sync::Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(transport: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(echo_server_binary())
            .args(["--transport", transport, "--addr", "127.0.0.1:0"])
            .args(["--memory-budget", &BUDGET_MIB.to_string()])
            .args(["--max-frame", "65536", "--stats-every", "0.2"])
            .args(extra)
            .env("RUST_LOG", "getty=debug")
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
                if line.contains("session ending on error") {
                    lines.lock().unwrap().push(line);
                } else if line.starts_with("stats:") {
                    *last_stats.lock().unwrap() = line;
                }
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("echo_server prints its address");
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let idle = open * 16 * 1024;
            if self.stat("open_sessions") == open && self.stat("buffered_bytes") <= idle {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
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

    fn status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// Resident memory now, in KiB.
    fn rss_kib(&self) -> u64 {
        self.status("VmRSS:")
    }

    /// Open file descriptors.
    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Sessions the server ended with an error whose text contains `what`.
    fn endings(&self, what: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(what))
            .count()
    }
}

fn frame(seq: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(FRAME);
    b.put_u64(seq);
    b.put_bytes(b'x', FRAME - 8);
    b.freeze()
}

/// Samples the server's RSS every 50 ms until `stop`; returns the peak in KiB.
fn sample_peak(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        let path = format!("/proc/{pid}/status");
        while !stop.load(Ordering::Relaxed) {
            if let Ok(status) = std::fs::read_to_string(&path) {
                let rss = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
                    .unwrap_or(0);
                peak = peak.max(rss);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        peak
    })
}

/// Sends length-prefixed 1,000-byte frames as fast as the socket takes them and never
/// reads, until the server ends the connection (or `limit` passes). Returns whether the
/// server ended it.
async fn hostile_tcp(addr: String, limit: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect(&addr).await else {
        return false;
    };
    let mut burst = BytesMut::new();
    for i in 0..64 {
        burst.put_u32(FRAME as u32);
        burst.put_slice(&frame(i));
    }
    let burst = burst.freeze();
    let flood = async {
        loop {
            if stream.write_all(&burst).await.is_err() {
                return true;
            }
        }
    };
    tokio::time::timeout(limit, flood).await.unwrap_or(false)
}

/// One well-behaved peer: echoes a frame every 20 ms, each within 1 s, until `stop`.
async fn good_tcp(addr: String, stop: Arc<AtomicBool>) -> (Duration, u64) {
    let stream = TcpStream::connect(&addr).await.expect("good peer connects");
    stream.set_nodelay(true).unwrap();
    let mut framed = tokio_util::codec::Framed::new(stream, getty::LengthDelimited::new());
    let mut worst = Duration::ZERO;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && n < 100_000 {
        let sent = Instant::now();
        framed.send(frame(n)).await.expect("good peer sends");
        let echo = tokio::time::timeout(Duration::from_secs(5), framed.next())
            .await
            .expect("an echo within 5 s")
            .expect("an echo before EOF")
            .expect("a frame");
        assert_eq!(&echo[..8], &n.to_be_bytes()[..], "its own echo");
        worst = worst.max(sent.elapsed());
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (worst, n)
}

/// The bound the peak must keep over the idle baseline, in KiB: the most the budget
/// lets the sessions hold (1.25 budgets, see `getty`'s budget rule), plus a constant per
/// connection for what it does not count or counts late: the socket's and session's own
/// state (about 15 KiB idle, measured with the yardstick's idle run) and one batch read
/// ahead and echoed between two reports of a session (a quarter of a 64 KiB share each
/// way: 32 KiB), plus 32 MiB for the allocator's slack (memory freed by one thread's
/// arena that another cannot reuse, and fragmentation left by earlier rounds).
fn peak_bound_kib(conns: usize) -> u64 {
    let per_connection_kib = 48;
    (BUDGET_MIB as u64) * 1024 * 5 / 4 + per_connection_kib * conns as u64 + 32 * 1024
}

fn rounds() -> usize {
    std::env::var("GETTY_BUDGET_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// One attack: `conns` peers that flood and never read, until the server ends each.
/// Returns how many the server ended.
async fn attack(addr: &str, conns: usize) -> usize {
    let ended = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (addr, ended) = (addr.to_owned(), ended.clone());
        tasks.push(tokio::spawn(async move {
            if hostile_tcp(addr, Duration::from_secs(60)).await {
                ended.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.expect("hostile peer");
    }
    ended.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_crowd_that_never_reads_stays_within_the_budget_and_a_good_peer_is_served() {
    let conns = crowd();
    raise_fd_limit(2 * conns as u64 + 16);
    let server = Server::start("tcp", &["--threads", "2"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline_kib = server.rss_kib();
    let fds_before = server.fds();

    let stop = Arc::new(AtomicBool::new(false));
    let good = tokio::spawn(good_tcp(server.addr.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    for round in 1..=rounds() {
        let sampling = Arc::new(AtomicBool::new(false));
        let sampler = sample_peak(server.child.id(), sampling.clone());
        let ended = attack(&server.addr, conns).await;
        assert_eq!(
            ended, conns,
            "round {round}: the server ended every hostile connection"
        );
        // Only the good peer's session is left, and nothing is buffered.
        server.settle(1).await;
        sampling.store(true, Ordering::Relaxed);
        let peak = sampler.join().expect("sampler");
        let fds = server.fds();
        eprintln!(
            "round {round}: {conns} hostile connections, budget {BUDGET_MIB} MiB: RSS \
             baseline {baseline_kib} KiB, peak {peak} KiB (+{} KiB, bound +{} KiB), now {} \
             KiB; server sockets {fds_before} before, {fds} after",
            peak - baseline_kib,
            peak_bound_kib(conns),
            server.rss_kib(),
        );
        assert!(
            fds <= fds_before + 1,
            "round {round}: sockets {fds_before} before, {fds} after"
        );
        assert!(
            peak - baseline_kib <= peak_bound_kib(conns),
            "round {round}: RSS peak {peak} KiB is more than {} KiB over the baseline {baseline_kib} KiB",
            peak_bound_kib(conns)
        );
        let after = server.rss_kib();
        assert!(
            after <= peak,
            "round {round}: RSS grew after the attack: {peak} KiB, then {after} KiB"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let (worst_echo, echoes) = good.await.expect("good peer");
    eprintln!("good peer: {echoes} echoes, worst {worst_echo:?}");
    assert_eq!(
        server.endings("write timeout"),
        rounds() * conns,
        "each hostile session ended with the write timeout"
    );
    assert!(
        worst_echo < Duration::from_secs(1),
        "the good peer waited {worst_echo:?} for an echo"
    );
    assert!(echoes > 20, "the good peer was served throughout");
}
