//! `redis-server` as the broker of a chat room spread over three `chat` processes
//! (`examples/common/broker.rs`): every member gets every other member's lines once and
//! in order; a broker killed and restarted partitions the room and then makes it whole,
//! with every line that did not cross reported; and, as figures, the room's fan-out rate
//! and the added latency of the broker hop. Each test starts its own `redis-server` on a
//! free port of 127.0.0.1, saving nothing.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::common::process::{start_listening_example, ChildGuard, TempDir};
use super::runs;

/// Processes of the room, and its members (spread round-robin over them).
const PROCESSES: usize = 3;
const MEMBERS: usize = 30;
/// The room's name: its channel on the broker.
const ROOM: &str = "interop";

// ---- the broker --------------------------------------------------------------------

/// A redis-server of the test's own, killed when dropped.
struct Redis {
    guard: Option<ChildGuard>,
    port: u16,
    dir: TempDir,
}

impl Redis {
    /// Starts redis-server on a free port of 127.0.0.1; panics naming the package if it
    /// is not installed.
    fn start(tag: &str) -> Redis {
        assert!(
            runs("redis-server", &["--version"]),
            "this test needs redis-server (Debian: apt-get install -y redis-server), as .ci/run does"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Redis {
            guard: None,
            port,
            dir: TempDir::new(tag),
        };
        redis.restart();
        redis
    }

    /// Starts (again) on the same port and waits, 10 s at most, until it answers PING.
    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &self.dir.path(""),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.guard = Some(ChildGuard::new(child));
        let start = Instant::now();
        while self.command(&["PING"]).as_deref() != Some("+PONG\r\n") {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server on port {} did not answer within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (SIGKILL: no goodbye to its clients but the kernel's).
    fn kill(&mut self) {
        drop(self.guard.take());
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends one command and returns the reply's bytes (one read: short replies only),
    /// or `None` if the broker is not there.
    fn command(&self, args: &[&str]) -> Option<String> {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request += &format!("${}\r\n{arg}\r\n", arg.len());
        }
        conn.write_all(request.as_bytes()).ok()?;
        let mut reply = vec![0; 512];
        let n = conn.read(&mut reply).ok()?;
        Some(String::from_utf8_lossy(&reply[..n]).into_owned())
    }

    /// Waits, `limit` at most, until `n` processes are subscribed to the room.
    fn wait_subscribers(&self, n: usize, limit: Duration) {
        let channel = format!("getty:room:{ROOM}");
        let want = format!(":{n}\r\n");
        let start = Instant::now();
        loop {
            let reply = self.command(&["PUBSUB", "NUMSUB", &channel]);
            if reply.as_deref().is_some_and(|r| r.ends_with(&want)) {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "{n} subscribers to {channel} within {limit:?}: {reply:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ---- the members -------------------------------------------------------------------

/// A member: a plain TCP line client of one chat process, and every line it got.
struct Member {
    process: usize,
    name: String,
    writer: OwnedWriteHalf,
    incoming: mpsc::UnboundedReceiver<(Instant, String)>,
    lines: Vec<(Instant, String)>,
}

impl Member {
    /// Joins the room at `addr` and reads its welcome (10 s at most).
    async fn join(addr: &str, process: usize) -> Member {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .expect("connect within 10 s")
            .expect("connect");
        let (reader, writer) = stream.into_split();
        let (tx, incoming) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let mut member = Member {
            process,
            name: String::new(),
            writer,
            incoming,
            lines: Vec::new(),
        };
        member
            .wait_for(Duration::from_secs(10), "welcome line", 1, |_| true)
            .await;
        let welcome = &member.lines[0].1;
        member.name = welcome
            .strip_prefix("* welcome, you are ")
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("a welcome line, got {welcome:?}"))
            .to_owned();
        member
    }

    async fn say(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("a member's line is written");
    }

    /// Reads lines until `want` of them (all so far included) pass `matches`, `limit`
    /// at most. Counts as it goes: a member may get tens of thousands of lines.
    async fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        want: usize,
        matches: impl Fn(&str) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + limit;
        let mut got = self.lines.iter().filter(|(_, l)| matches(l)).count();
        while got < want {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(line)) => {
                    got += usize::from(matches(&line.1));
                    self.lines.push(line);
                }
                Ok(None) => panic!(
                    "{}: the chat closed the connection, waiting for {what}",
                    self.name
                ),
                Err(_) => {
                    let tail = &self.lines[self.lines.len().saturating_sub(5)..];
                    panic!(
                        "{}: {got} of {want} {what} within {limit:?}; notices {:?}; last lines {tail:?}",
                        self.name,
                        self.notices()
                    )
                }
            }
        }
    }

    /// The room's notices so far but welcomes, joins and leaves.
    fn notices(&self) -> Vec<&str> {
        let usual = |l: &str| l.ends_with(" joined") || l.ends_with(" left");
        self.lines
            .iter()
            .map(|(_, l)| l.as_str())
            .filter(|l| l.starts_with("* ") && !l.starts_with("* welcome") && !usual(l))
            .collect()
    }

    /// Takes what has arrived so far without waiting.
    fn take_ready(&mut self) {
        while let Ok(line) = self.incoming.try_recv() {
            self.lines.push(line);
        }
    }

    /// Lines whose text is exactly `text`.
    fn count(&self, text: &str) -> usize {
        self.lines.iter().filter(|(_, l)| l == text).count()
    }

    /// Lines starting with `prefix`.
    fn count_prefix(&self, prefix: &str) -> usize {
        self.lines
            .iter()
            .filter(|(_, l)| l.starts_with(prefix))
            .count()
    }
}

/// A chat line `[NAME] TAG-J-K`: (member index J, K), if from the test's members.
fn parse(line: &str, tag: &str, names: &HashMap<String, usize>) -> Option<(usize, u64)> {
    let (name, text) = line.strip_prefix('[')?.split_once("] ")?;
    let mut parts = text.strip_prefix(tag)?.strip_prefix('-')?.split('-');
    let j: usize = parts.next()?.parse().ok()?;
    let k: u64 = parts.next()?.parse().ok()?;
    assert_eq!(names.get(name), Some(&j), "line {line:?} names its sender");
    Some((j, k))
}

/// Starts the room: a broker, three chat processes joined through it, 30 members.
async fn start_room(tag: &str) -> (Redis, Vec<ChildGuard>, Vec<Member>, HashMap<String, usize>) {
    let redis = Redis::start(tag);
    let url = redis.url();
    let mut chats = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..PROCESSES {
        let (chat, addr) = start_listening_example("chat", &["--broker", &url, "--room", ROOM]);
        chats.push(chat);
        addrs.push(addr);
    }
    // Lines published before a process subscribes are not for it: wait for all three.
    redis.wait_subscribers(PROCESSES, Duration::from_secs(20));
    let mut members = Vec::new();
    for i in 0..MEMBERS {
        members.push(Member::join(&addrs[i % PROCESSES], i % PROCESSES).await);
    }
    let names = members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.name.clone(), i))
        .collect::<HashMap<_, _>>();
    assert_eq!(names.len(), MEMBERS, "every member has a name of its own");
    (redis, chats, members, names)
}

/// A small deterministic generator of which member speaks next.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// `count` lines `TAG-J-K` from random members; returns how many each said.
async fn chatter(members: &mut [Member], tag: &str, count: usize, rng: &mut Rng) -> Vec<u64> {
    let mut said = vec![0u64; members.len()];
    for _ in 0..count {
        let j = rng.below(members.len());
        members[j].say(&format!("{tag}-{j}-{}", said[j])).await;
        said[j] += 1;
    }
    said
}

/// Waits until every member has every other member's `TAG` lines (60 s at most, in all),
/// then checks that each came exactly once, in its sender's order, and none of its own.
async fn expect_every_line(
    members: &mut [Member],
    names: &HashMap<String, usize>,
    tag: &str,
    said: &[u64],
) {
    wait_every_line(members, names, tag, said).await;
    // Anything extra (a copy) would have arrived by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, member) in members.iter_mut().enumerate() {
        member.take_ready();
        let mut next = vec![0u64; said.len()];
        for (_, line) in &member.lines {
            if let Some((j, k)) = parse(line, tag, names) {
                assert_ne!(i, j, "{}: its own line came back: {line}", member.name);
                assert_eq!(
                    k, next[j],
                    "{}: from member {j}, line {k} after {}",
                    member.name, next[j]
                );
                next[j] += 1;
            }
        }
        for (j, &n) in said.iter().enumerate() {
            let want = if i == j { 0 } else { n };
            assert_eq!(
                next[j], want,
                "{}: {tag} lines from member {j}",
                member.name
            );
        }
    }
}

/// Waits until every member has as many `TAG` lines as the others said (60 s at most).
async fn wait_every_line(
    members: &mut [Member],
    names: &HashMap<String, usize>,
    tag: &str,
    said: &[u64],
) {
    let total: u64 = said.iter().sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    for (i, member) in members.iter_mut().enumerate() {
        let want = (total - said[i]) as usize;
        let left = deadline.saturating_duration_since(Instant::now());
        member
            .wait_for(left, &format!("lines {tag}"), want, |l| {
                parse(l, tag, names).is_some()
            })
            .await;
    }
}

/// Signals every chat to stop and expects each to exit 0.
fn stop(chats: &mut [ChildGuard]) {
    for chat in chats.iter_mut() {
        chat.signal_and_expect_clean_exit("-TERM");
    }
}

/// Three chat processes, 30 members, 1,000 lines from random members: each member gets
/// every other member's lines once, in order, and not its own. Then the broker is killed
/// for 2 s: the processes stay up, every member is told the room is partitioned, lines
/// said meanwhile reach the members of their own process only and their senders are told
/// how many did not reach the others; once the broker is back the room says it is whole,
/// and 300 more lines reach everyone again. Last, a burst beyond the publish queue: every
/// line crosses or is reported to its sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs redis-server (Debian: apt-get install redis-server)"]
async fn chat_room_spans_three_processes_through_redis_and_survives_its_restart() {
    let (mut redis, mut chats, mut members, names) = start_room("interop-redis-room").await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    let said = chatter(&mut members, "a", 1000, &mut rng).await;
    expect_every_line(&mut members, &names, "a", &said).await;
    let deliveries: u64 = (0..MEMBERS).map(|i| 1000 - said[i]).sum();
    println!("phase 1: {MEMBERS} members on {PROCESSES} processes, 1000 lines, {deliveries} deliveries, each once and in order");

    // The broker goes away.
    let killed = Instant::now();
    redis.kill();
    let partitioned = "* room partitioned: ";
    for member in members.iter_mut() {
        member
            .wait_for(Duration::from_secs(10), "partition notice", 1, |l| {
                l.starts_with(partitioned)
            })
            .await;
    }
    let notice = members[0]
        .lines
        .iter()
        .find(|(_, l)| l.starts_with(partitioned))
        .unwrap()
        .1
        .clone();
    println!("after the kill, every member got: {notice}");
    // Meanwhile members 0, 1 and 2 (one on each process) say 5 lines each.
    let outage_said: Vec<u64> = (0..MEMBERS)
        .map(|j| if j < PROCESSES { 5 } else { 0 })
        .collect();
    for (j, member) in members.iter_mut().take(PROCESSES).enumerate() {
        for k in 0..5 {
            member.say(&format!("o-{j}-{k}")).await;
        }
    }
    // They reach the members of their own process, and only those.
    for (i, member) in members.iter_mut().enumerate() {
        let want = if i < PROCESSES { 0 } else { 5 };
        member
            .wait_for(Duration::from_secs(10), "outage lines", want, |l| {
                parse(l, "o", &names).is_some()
            })
            .await;
    }
    for chat in chats.iter_mut() {
        assert!(
            chat.child().try_wait().expect("wait").is_none(),
            "a chat process died with the broker"
        );
    }

    // The broker comes back on the same port after 2 s.
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(killed.elapsed())).await;
    redis.restart();
    let restarted = Instant::now();
    redis.wait_subscribers(PROCESSES, Duration::from_secs(30));
    for member in members.iter_mut() {
        member
            .wait_for(Duration::from_secs(30), "whole-again notice", 1, |l| {
                l == "* room whole again"
            })
            .await;
    }
    println!("whole again {:?} after the restart", restarted.elapsed());
    for member in members.iter_mut().take(PROCESSES) {
        member
            .wait_for(Duration::from_secs(10), "not-delivered report", 1, |l| {
                l == "* 5 lines not delivered to other servers"
            })
            .await;
    }
    println!("each outage sender got: * 5 lines not delivered to other servers");

    // Whole again: every line reaches every other member.
    let said = chatter(&mut members, "r", 300, &mut rng).await;
    expect_every_line(&mut members, &names, "r", &said).await;

    for chat in chats.iter_mut() {
        assert!(
            chat.child().try_wait().expect("wait").is_none(),
            "a chat process died"
        );
    }
    // Who saw what: the outage lines stayed on their process, every member was told once
    // each way, and nothing else went wrong.
    for (i, member) in members.iter().enumerate() {
        for (j, &n) in outage_said.iter().enumerate() {
            let got = member
                .lines
                .iter()
                .filter(|(_, l)| parse(l, "o", &names).is_some_and(|(s, _)| s == j))
                .count() as u64;
            let want = if i != j && member.process == members[j].process {
                n
            } else {
                0
            };
            assert_eq!(got, want, "{}: outage lines from member {j}", member.name);
        }
        assert_eq!(
            member.count_prefix(partitioned),
            1,
            "{}: partition notices",
            member.name
        );
        assert_eq!(member.count("* room whole again"), 1, "{}", member.name);
        let reports = member.count("* 5 lines not delivered to other servers");
        assert_eq!(
            reports,
            usize::from(i < PROCESSES),
            "{}: reports",
            member.name
        );
        for unexpected in [
            "* you missed",
            "may not have reached",
            "did not reach this one",
        ] {
            assert!(
                member.lines.iter().all(|(_, l)| !l.contains(unexpected)),
                "{}: {unexpected:?} in {:?}",
                member.name,
                member
                    .lines
                    .iter()
                    .filter(|(_, l)| l.contains(unexpected))
                    .collect::<Vec<_>>()
            );
        }
    }
    println!("phase 3: 300 lines, each once and in order, after the restart");

    burst_beyond_the_publish_queue(&mut members, &names).await;
    for chat in chats.iter_mut() {
        assert!(
            chat.child().try_wait().expect("wait").is_none(),
            "a chat process died"
        );
    }
    stop(&mut chats);
    drop(redis);
}

/// Lines each member says at once in the burst: 30,000 per process, far more than the
/// publish queue holds.
const BURST: u64 = 3000;

/// The sum of N over `* N lines not delivered to other servers` in `lines`.
fn not_delivered(lines: &[(Instant, String)]) -> u64 {
    lines
        .iter()
        .filter_map(|(_, l)| l.strip_suffix(" lines not delivered to other servers"))
        .filter_map(|n| n.strip_prefix("* ")?.parse::<u64>().ok())
        .sum()
}

/// Every member says BURST lines at once, faster than the broker may take them. What did
/// not fit the publish queue is reported to its sender (after `* room partitioned: the
/// broker is too slow`, once half the queue is free); everything else reaches every
/// member of the other processes once and in order, the same lines at each; the members
/// of the sender's process get all of them.
async fn burst_beyond_the_publish_queue(members: &mut [Member], names: &HashMap<String, usize>) {
    let n = members.len();
    let marks: Vec<usize> = members.iter().map(|m| m.lines.len()).collect();
    let writers = members
        .iter_mut()
        .enumerate()
        .map(|(j, m)| {
            let lines = (0..BURST)
                .map(|k| format!("b-{j}-{k}\n"))
                .collect::<String>();
            let writer = &mut m.writer;
            async move { writer.write_all(lines.as_bytes()).await }
        })
        .collect::<Vec<_>>();
    for result in futures::future::join_all(writers).await {
        result.expect("burst written");
    }
    // got[i][j]: member j's burst lines member i received, in arrival order; counted as
    // they arrive (each member gets tens of thousands).
    let mut got = vec![vec![Vec::<u64>::new(); n]; n];
    let mut scanned = marks.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for (i, m) in members.iter_mut().enumerate() {
            m.take_ready();
            for (_, line) in &m.lines[scanned[i]..] {
                if let Some((j, k)) = parse(line, "b", names) {
                    got[i][j].push(k);
                }
            }
            scanned[i] = m.lines.len();
        }
        let unsent: Vec<u64> = (0..n)
            .map(|j| not_delivered(&members[j].lines[marks[j]..]))
            .collect();
        // Every line is accounted for: received by every other member, or reported to
        // its sender as not delivered to the other servers.
        let accounted = (0..n).all(|i| {
            (0..n).all(|j| {
                let count = got[i][j].len() as u64;
                match (i == j, members[i].process == members[j].process) {
                    (true, _) => count == 0,
                    (false, true) => count == BURST,
                    (false, false) => count + unsent[j] == BURST,
                }
            })
        });
        if accounted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the burst was not accounted for within 60 s: unsent {unsent:?}, notices {:?}",
            members.iter().map(Member::notices).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // a copy would be here by now
    let mut reported = 0;
    for (i, m) in members.iter_mut().enumerate() {
        m.take_ready();
        for (_, line) in &m.lines[scanned[i]..] {
            assert!(
                parse(line, "b", names).is_none(),
                "{}: a burst line after all were in: {line}",
                m.name
            );
        }
    }
    for j in 0..n {
        let unsent = not_delivered(&members[j].lines[marks[j]..]);
        reported += unsent;
        let mut crossed: Option<&Vec<u64>> = None;
        for i in 0..n {
            let lines = &got[i][j];
            let name = &members[i].name;
            assert!(
                lines.windows(2).all(|w| w[0] < w[1]),
                "{name}: burst of {j} out of order or twice"
            );
            if members[i].process != members[j].process {
                // What crossed, crossed to every member of the other processes.
                match crossed {
                    None => crossed = Some(lines),
                    Some(first) => {
                        assert_eq!(first, lines, "{name}: the lines of {j} that crossed")
                    }
                }
            }
        }
    }
    let total = BURST * n as u64;
    let partitioned = members
        .iter()
        .enumerate()
        .filter(|(i, m)| {
            m.lines[marks[*i]..]
                .iter()
                .any(|(_, l)| l.starts_with("* room partitioned: the broker is too slow"))
        })
        .count();
    println!(
        "burst: {total} lines at once, {} crossed, {reported} reported to their senders as not delivered to other servers; {partitioned} members told `* room partitioned: the broker is too slow`",
        total - reported
    );
    for (i, m) in members.iter().enumerate() {
        let after = &m.lines[marks[i]..];
        let slow = after
            .iter()
            .filter(|(_, l)| l.starts_with("* room partitioned"))
            .count();
        let whole = after
            .iter()
            .filter(|(_, l)| l == "* room whole again")
            .count();
        assert_eq!(slow, whole, "{}: each partition ends whole", m.name);
        for unexpected in [
            "* you missed",
            "may not have reached",
            "did not reach this one",
        ] {
            assert!(
                after.iter().all(|(_, l)| !l.contains(unexpected)),
                "{}: {unexpected:?} after the burst",
                m.name
            );
        }
    }
}

// ---- figures -----------------------------------------------------------------------

/// The `p`-th percentile of sorted `xs`.
fn percentile(xs: &[Duration], p: f64) -> Duration {
    xs[((xs.len() - 1) as f64 * p).round() as usize]
}

/// Figures for BENCHMARKS.md (run with `--release --nocapture`): the rate at which the
/// three-process room fans lines out to 30 members, all of them sending at once, and the
/// latency of a line to a member of its sender's process (no broker) and of another
/// (through the broker), at a steady 1,000 lines/s. Checks that nothing was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs redis-server (Debian: apt-get install redis-server)"]
async fn chat_room_over_redis_fan_out_figures() {
    let (redis, mut chats, mut members, names) = start_room("interop-redis-figures").await;
    let per_member: u64 = if cfg!(debug_assertions) { 200 } else { 1000 };

    // Throughput: in each round every member says ROUND lines as fast as its socket takes
    // them (1,000 per process, within the publish queue: a longer burst makes the room
    // report the broker too slow), and the next round starts once all have arrived.
    const ROUND: u64 = 100;
    let start = Instant::now();
    let mut said = vec![0; MEMBERS];
    while said[0] < per_member {
        let writers = members
            .iter_mut()
            .enumerate()
            .map(|(j, m)| {
                let lines = (said[j]..said[j] + ROUND)
                    .map(|k| format!("t-{j}-{k}\n"))
                    .collect::<String>();
                let writer = &mut m.writer;
                async move { writer.write_all(lines.as_bytes()).await }
            })
            .collect::<Vec<_>>();
        for result in futures::future::join_all(writers).await {
            result.expect("lines written");
        }
        said.iter_mut().for_each(|n| *n += ROUND);
        wait_every_line(&mut members, &names, "t", &said).await;
    }
    let last = members
        .iter()
        .filter_map(|m| {
            m.lines
                .iter()
                .rev()
                .find(|(_, l)| parse(l, "t", &names).is_some())
                .map(|(t, _)| *t)
        })
        .max()
        .expect("lines arrived");
    let secs = (last - start).as_secs_f64();
    expect_every_line(&mut members, &names, "t", &said).await;
    let lines = per_member * MEMBERS as u64;
    let deliveries = lines * (MEMBERS as u64 - 1);
    println!(
        "fan-out: {lines} lines from {MEMBERS} members on {PROCESSES} processes, {deliveries} deliveries in {secs:.2} s: {:.0} lines/s in, {:.0} deliveries/s out",
        lines as f64 / secs,
        deliveries as f64 / secs
    );

    // Latency: one member of each process says a line every 3 ms (1,000 lines/s in all),
    // stamped with its send time.
    let count: u64 = if cfg!(debug_assertions) { 300 } else { 3000 };
    let epoch = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_micros(1000));
    for n in 0..count {
        ticker.tick().await;
        let j = (n % PROCESSES as u64) as usize;
        let micros = epoch.elapsed().as_micros();
        members[j]
            .say(&format!("l-{j}-{}-{micros}", n / PROCESSES as u64))
            .await;
    }
    let mut said = vec![0u64; MEMBERS];
    for (j, s) in said.iter_mut().enumerate().take(PROCESSES) {
        *s = count / PROCESSES as u64 + u64::from((j as u64) < count % PROCESSES as u64);
    }
    expect_every_line(&mut members, &names, "l", &said).await;
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    for member in &members {
        for (at, line) in &member.lines {
            if let Some((j, _)) = parse(line, "l", &names) {
                let micros: u64 = line
                    .rsplit('-')
                    .next()
                    .and_then(|m| m.parse().ok())
                    .expect("a stamp");
                let latency = at.saturating_duration_since(epoch + Duration::from_micros(micros));
                if members[j].process == member.process {
                    local.push(latency);
                } else {
                    remote.push(latency);
                }
            }
        }
    }
    local.sort();
    remote.sort();
    let (l50, l99, r50, r99) = (
        percentile(&local, 0.5),
        percentile(&local, 0.99),
        percentile(&remote, 0.5),
        percentile(&remote, 0.99),
    );
    println!(
        "latency at 1000 lines/s: same process p50 {l50:?} p99 {l99:?} ({} deliveries); through the broker p50 {r50:?} p99 {r99:?} ({} deliveries); the broker hop adds p50 {:?} p99 {:?}",
        local.len(),
        remote.len(),
        r50.saturating_sub(l50),
        r99.saturating_sub(l99)
    );
    for member in &members {
        assert!(
            member.lines.iter().all(
                |(_, l)| !l.starts_with("* room partitioned") && !l.starts_with("* you missed")
            ),
            "{}: a line was not delivered",
            member.name
        );
    }
    stop(&mut chats);
    drop(redis);
}
