//! The examples' command lines are a contract: run them as a user would.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The example binaries `cargo test` built next to this test.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} not built (cargo test builds examples)",
        path.display()
    );
    path
}

/// Waits at most `limit` for the child to exit; kills it and panics if it does not.
fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("process did not exit within {limit:?}");
}

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts example `name` (on a free port unless `extra` gives `--addr`) and returns the
/// address it prints as `listening on <addr>`.
fn start_listening_example(name: &str, extra: &[&str]) -> (Server, String) {
    let mut args = vec!["--addr", "127.0.0.1:0"];
    args.extend_from_slice(extra); // a later --addr wins
    let mut child = Command::new(example(name))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{name} prints its address"));
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("`listening on <addr>`")
        .to_owned();
    (server, addr)
}

fn start_echo_server(extra: &[&str]) -> (Server, String) {
    start_listening_example("echo_server", extra)
}

fn signal(server: &Server, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &server.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Sends `sig` to the example server and asserts it exits 0 within 20 s.
fn signal_and_expect_clean_exit(server: &mut Server, sig: &str) {
    signal(server, sig);
    let status = wait_exit(&mut server.0, Duration::from_secs(20));
    assert!(status.success(), "echo_server exit status {status:?}");
}

/// Runs echo_client with `args` to the end, asserts it succeeded, returns its stdout.
fn run_echo_client(args: &[&str]) -> String {
    let client = Command::new(example("echo_client"))
        .args(args)
        .output()
        .expect("run echo_client");
    let summary = String::from_utf8_lossy(&client.stdout).into_owned();
    assert!(
        client.status.success(),
        "echo_client failed: {summary} {}",
        String::from_utf8_lossy(&client.stderr)
    );
    summary
}

/// Runs echo_client with 8 connections x 2000 frames of 1000 B against `addr` (plus
/// `transport`'s options) and asserts that every frame came back, with no error.
fn expect_full_echo_load(addr: &str, transport: &[&str]) {
    let mut args = vec!["--addr", addr, "--conns", "8", "--frames", "2000"];
    args.extend(["--size", "1000", "--timeout", "60"]);
    args.extend(transport);
    let summary = run_echo_client(&args);
    assert!(
        summary.contains("sent=16000 received=16000 reconnects=0 errors=0"),
        "{summary}"
    );
}

#[test]
fn echo_client_checks_echo_server_and_sigterm_stops_it_cleanly() {
    let (mut server, addr) = start_echo_server(&["--threads", "2", "--max-frame", "65536"]);
    expect_full_echo_load(&addr, &[]);
    signal_and_expect_clean_exit(&mut server, "-TERM");
}

#[test]
fn ws_echo_client_checks_ws_echo_server_over_a_custom_path() {
    let ws = ["--transport", "ws", "--path", "/echo"];
    let mut args = vec!["--threads", "2", "--max-frame", "65536"];
    args.extend(ws);
    let (mut server, addr) = start_echo_server(&args);
    let mut args = vec![
        "--addr",
        &addr,
        "--conns",
        "8",
        "--frames",
        "500",
        "--size",
        "1000",
        "--timeout",
        "60",
    ];
    args.extend(ws);
    let summary = run_echo_client(&args);
    assert!(
        summary.contains("sent=4000 received=4000 reconnects=0 errors=0"),
        "{summary}"
    );
    // Over the server's max frame length: the session ends, and the client says so.
    let client = Command::new(example("echo_client"))
        .args(["--addr", &addr, "--frames", "3", "--size", "70000"])
        .args(["--timeout", "10"])
        .args(ws)
        .output()
        .expect("run echo_client");
    assert_eq!(
        client.status.code(),
        Some(1),
        "a refused frame is a failure"
    );
    signal_and_expect_clean_exit(&mut server, "-TERM");
}

/// A WebSocket client that is not this crate: Python's `websockets` package (Debian's
/// `python3-websockets`; `.ci/run` installs it).
const PYTHON_WS_CLIENT: &str = r#"
import asyncio, struct, sys, websockets
async def main(url):
    async with websockets.connect(url, max_size=None) as ws:
        frames = [bytes((i + j) & 0xff for j in range((i * 53) % 3000 + 1)) for i in range(100)]
        for f in frames:
            await ws.send(struct.pack('>I', len(f)) + f)
        for f in frames:
            msg = await asyncio.wait_for(ws.recv(), 10)
            assert isinstance(msg, bytes), 'a binary message'
            assert msg == struct.pack('>I', len(f)) + f, 'one intact frame per message'
    print('python websockets ok', len(frames))
asyncio.run(main(sys.argv[1]))
"#;

#[test]
fn python_websockets_round_trips_with_ws_echo_server() {
    let python = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|py| {
            Command::new(py)
                .args(["-c", "import websockets"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("python3 with the websockets package (apt-get install -y python3-websockets)");
    let (mut server, addr) = start_echo_server(&["--transport", "ws", "--path", "/echo"]);
    let out = Command::new(python)
        .args(["-c", PYTHON_WS_CLIENT, &format!("ws://{addr}/echo")])
        .output()
        .expect("run python");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("python websockets ok 100"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    signal_and_expect_clean_exit(&mut server, "-TERM");
}

const PYTHON_CHAT: &str = r#"
import asyncio, sys, websockets
async def main(url):
    async def member():
        ws = await websockets.connect(url)
        welcome = (await asyncio.wait_for(ws.recv(), 10)).decode()
        assert welcome.startswith('* welcome'), welcome
        return ws
    alice = await member()
    bob = await member()
    carol = await member()
    joined = (await asyncio.wait_for(bob.recv(), 10)).decode()
    assert 'joined' in joined, joined
    await alice.send('hello room\n')
    for other in (bob, carol):
        line = (await asyncio.wait_for(other.recv(), 10)).decode()
        assert line.endswith('] hello room\n'), line
    await alice.close()
    left = (await asyncio.wait_for(bob.recv(), 10)).decode()
    assert 'left' in left, left
    await bob.close()
    await carol.close()
    print('chat ok')
asyncio.run(main(sys.argv[1]))
"#;

#[test]
fn ws_chat_serves_its_page_and_broadcasts_to_every_other_member() {
    use std::io::{Read, Write};
    let (server, addr) = start_listening_example("ws_chat", &[]);
    let mut http = std::net::TcpStream::connect(&addr).expect("connect");
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    http.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut page = String::new();
    http.read_to_string(&mut page).expect("the page");
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("new WebSocket"),
        "{page}"
    );
    let out = Command::new("/usr/bin/python3")
        .args(["-c", PYTHON_CHAT, &format!("ws://{addr}/ws")])
        .output()
        .expect("run python3 (with python3-websockets)");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("chat ok"),
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    signal(&server, "-TERM");
    let mut server = server;
    assert!(wait_exit(&mut server.0, Duration::from_secs(20)).success());
}

#[test]
fn echo_client_fails_on_frames_over_the_server_max_and_sigint_stops_it() {
    let (mut server, addr) = start_echo_server(&["--max-frame", "100"]);
    let client = Command::new(example("echo_client"))
        .args([
            "--addr",
            &addr,
            "--frames",
            "10",
            "--size",
            "101",
            "--timeout",
            "10",
        ])
        .output()
        .expect("run echo_client");
    assert_eq!(
        client.status.code(),
        Some(1),
        "a refused frame is a failure"
    );
    signal_and_expect_clean_exit(&mut server, "-INT");
}

#[test]
fn echo_server_read_timeout_closes_idle_connections() {
    use std::io::Read;
    let (_server, addr) = start_echo_server(&["--read-timeout", "0.2"]);
    let mut idle = std::net::TcpStream::connect(&addr).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1];
    let start = Instant::now();
    assert_eq!(
        idle.read(&mut buf).expect("EOF, not a client-side timeout"),
        0
    );
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn echo_demo_runs_and_reports() {
    let out = Command::new(example("echo")).output().expect("run echo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("320000 echoes matched"), "{text}");
    assert!(text.contains("0 still live"), "{text}");
}

#[test]
fn bad_options_exit_with_status_2() {
    let out = Command::new(example("echo_server"))
        .args(["--bogus", "1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(example("echo_client"))
        .args(["--conns", "many"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(example("echo_server"))
        .args(["--transport", "carrier-pigeon"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn echo_client_duration_rides_out_two_server_restarts() {
    let (mut server, addr) = start_echo_server(&[]);
    let client = Command::new(example("echo_client"))
        .args([
            "--addr",
            &addr,
            "--conns",
            "3",
            "--duration",
            "10",
            "--reconnect-interval",
            "100",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start echo_client");
    let port = addr.rsplit(':').next().unwrap().to_owned();
    // Each life lasts 2.5 s: long enough for the sessions to come back and count as
    // healthy (ten intervals), so each outage starts from a fresh backoff; the last life
    // leaves 4 s for the final reconnect.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(2500));
        signal(&server, "-TERM");
        assert!(wait_exit(&mut server.0, Duration::from_secs(20)).success());
        std::thread::sleep(Duration::from_millis(500));
        let (restarted, again) = start_echo_server(&["--addr", &format!("127.0.0.1:{port}")]);
        assert_eq!(again, addr, "restarted on the same port");
        server = restarted;
    }
    let out = client.wait_with_output().expect("echo_client finishes");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let summary = text.lines().last().expect("summary line");
    let field = |name: &str| -> u64 {
        let value = summary
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .expect(name);
        value.parse().expect("a number")
    };
    assert!(
        field("received") > 0 && field("sent") >= field("received"),
        "{summary}"
    );
    assert_eq!(
        field("reconnects"),
        6,
        "three sessions re-dialed after each of two restarts: {text}"
    );
    assert_eq!(text.matches("session up:").count(), 9, "{text}");
}

#[test]
fn heartbeat_demo_closes_the_hung_session_and_the_client_reconnects() {
    let out = Command::new(example("heartbeat"))
        .output()
        .expect("run heartbeat");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let order = [
        "stops sending pings",
        "silent for",
        "closing it",
        " down\n",
        " up\n",
        "done:",
    ];
    let mut at = 0;
    for step in order {
        let found = text[at..]
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} missing or out of order in:\n{text}"));
        at += found;
    }
    assert_eq!(text.matches(" up\n").count(), 2, "one re-dial: {text}");
}

#[test]
fn rpc_client_gets_every_reply_from_rpc_server() {
    let (server, addr) = start_listening_example("rpc_server", &["--workers", "2"]);
    let out = Command::new(example("rpc_client"))
        .args([
            "--addr",
            &addr,
            "--calls",
            "2000",
            "--in-flight",
            "16",
            "--slow-every",
            "100",
        ])
        .output()
        .expect("run rpc_client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("calls=2000 ok=2000 timeouts=0 errors=0 calls_per_s="),
        "{text}"
    );
    signal(&server, "-TERM");
    let mut server = server;
    assert!(wait_exit(&mut server.0, Duration::from_secs(20)).success());
}

#[test]
fn chat_room_broadcasts_a_line_to_every_other_member() {
    use std::io::Write;
    let (server, addr) = start_listening_example("chat", &[]);
    let connect = || {
        let s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut welcome = String::new();
        reader.read_line(&mut welcome).unwrap();
        assert!(welcome.starts_with("* welcome"), "{welcome}");
        (s, reader)
    };
    let (mut alice, alice_in) = connect();
    let (_bob, mut bob_in) = connect();
    let (_carol, mut carol_in) = connect();
    let next_line = |r: &mut BufReader<std::net::TcpStream>| {
        let mut l = String::new();
        if let Err(e) = r.read_line(&mut l) {
            panic!("read failed: {e}; got so far {l:?}");
        }
        l
    };
    let l = next_line(&mut bob_in);
    assert!(l.contains("joined"), "bob sees carol join: {l}");
    alice.write_all(b"hello room\n").unwrap();
    assert!(next_line(&mut bob_in).ends_with("] hello room\n"));
    assert!(next_line(&mut carol_in).ends_with("] hello room\n"));
    drop((alice, alice_in)); // both handles of the socket: now it closes
    assert!(next_line(&mut bob_in).contains("left"));
    signal(&server, "-TERM");
    let mut server = server;
    assert!(wait_exit(&mut server.0, Duration::from_secs(20)).success());
}

#[test]
fn echo_client_and_server_over_a_unix_socket_and_the_file_goes_on_stop() {
    let path = std::env::temp_dir().join(format!("getty-example-{}.sock", std::process::id()));
    let path_arg = path.to_str().expect("utf-8 temp path");
    let (mut server, listening) =
        start_echo_server(&["--transport", "unix", "--path", path_arg, "--threads", "2"]);
    assert_eq!(listening, path_arg);
    let summary = run_echo_client(&[
        "--transport",
        "unix",
        "--path",
        path_arg,
        "--conns",
        "4",
        "--frames",
        "1000",
    ]);
    assert!(
        summary.contains("sent=4000 received=4000 reconnects=0 errors=0"),
        "{summary}"
    );
    signal_and_expect_clean_exit(&mut server, "-TERM");
    assert!(!path.exists(), "socket file removed on a graceful stop");
}

#[test]
fn echo_client_checks_echo_server_over_tls_with_a_tls_cert_certificate() {
    let dir = std::env::temp_dir().join(format!("getty-examples-tls-{}", std::process::id()));
    let made = Command::new(example("tls_cert"))
        .arg("--dir")
        .arg(&dir)
        .output()
        .expect("run tls_cert");
    assert!(made.status.success(), "{made:?}");
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (cert, key, ca) = (file("cert.pem"), file("key.pem"), file("ca.pem"));
    let (mut server, addr) =
        start_echo_server(&["--threads", "2", "--tls-cert", &cert, "--tls-key", &key]);
    let run_client = |extra: &[&str]| {
        Command::new(example("echo_client"))
            .args(["--addr", &addr, "--conns", "4", "--frames", "500"])
            .args(["--tls-ca", &ca])
            .args(extra)
            .output()
            .expect("run echo_client")
    };
    let client = run_client(&["--timeout", "60"]);
    let summary = String::from_utf8_lossy(&client.stdout);
    assert!(
        client.status.success(),
        "echo_client over TLS failed: {summary} {}",
        String::from_utf8_lossy(&client.stderr)
    );
    assert!(
        summary.contains("sent=2000 received=2000 reconnects=0 errors=0"),
        "{summary}"
    );
    // A name the certificate does not have: every dial fails with a TLS error.
    let client = run_client(&["--tls-server-name", "elsewhere.example", "--timeout", "1"]);
    assert!(!client.status.success());
    let stderr = String::from_utf8_lossy(&client.stderr);
    assert!(
        stderr.contains(
            "dial failed: TLS error: invalid peer certificate: \
             certificate not valid for name \"elsewhere.example\""
        ),
        "{stderr}"
    );
    signal_and_expect_clean_exit(&mut server, "-TERM");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn udp_echo_client_checks_udp_echo_server_and_sigterm_stops_it() {
    let (mut server, addr) = start_echo_server(&["--transport", "udp"]);
    expect_full_echo_load(&addr, &["--transport", "udp"]);
    signal_and_expect_clean_exit(&mut server, "-TERM");
}

#[test]
fn udp_echo_server_answers_a_plain_socket_peer_and_ignores_its_garbage() {
    // A peer that is not this crate: a std socket speaking the framing by hand.
    let (_server, addr) = start_echo_server(&["--transport", "udp", "--max-frame", "1000"]);
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 2048];
    for (i, payload) in [&b"hello"[..], b"", &[9u8; 1000][..]]
        .into_iter()
        .enumerate()
    {
        // Garbage first each time (a truncated frame, then one over --max-frame): no
        // answer, and the next good frame is still echoed.
        let garbage: &[u8] = if i % 2 == 0 {
            b"\0\0\0\x09abc"
        } else {
            b"\0\0\x10\0"
        };
        peer.send_to(garbage, &addr).expect("send");
        let mut datagram = (payload.len() as u32).to_be_bytes().to_vec();
        datagram.extend_from_slice(payload);
        peer.send_to(&datagram, &addr).expect("send");
        let (n, from) = peer.recv_from(&mut buf).expect("an echo");
        assert_eq!(from.to_string(), addr);
        assert_eq!(&buf[..n], &datagram[..], "echo of frame {i}");
    }
}

#[test]
fn multicast_example_every_receiver_gets_every_datagram() {
    let out = Command::new(example("multicast"))
        .args(["--receivers", "3", "--datagrams", "100"])
        .output()
        .expect("run multicast");
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(3) {
        eprintln!("SKIPPED: {}", text.trim());
        return;
    }
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches(": 100/100 from ").count(), 3, "{text}");
}

#[test]
fn ws_echo_client_checks_ws_echo_server_over_wss() {
    let dir = std::env::temp_dir().join(format!("getty-examples-wss-{}", std::process::id()));
    let made = Command::new(example("tls_cert"))
        .arg("--dir")
        .arg(&dir)
        .output()
        .expect("run tls_cert");
    assert!(made.status.success(), "{made:?}");
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (cert, key, ca) = (file("cert.pem"), file("key.pem"), file("ca.pem"));
    let (mut server, addr) = start_echo_server(&[
        "--transport",
        "ws",
        "--threads",
        "2",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    let client = Command::new(example("echo_client"))
        .args(["--transport", "ws", "--addr", &addr, "--conns", "4"])
        .args(["--frames", "500", "--tls-ca", &ca, "--timeout", "60"])
        .output()
        .expect("run echo_client");
    let summary = String::from_utf8_lossy(&client.stdout);
    assert!(
        client.status.success(),
        "echo_client over wss failed: {summary} {}",
        String::from_utf8_lossy(&client.stderr)
    );
    assert!(
        summary.contains("sent=2000 received=2000 reconnects=0 errors=0"),
        "{summary}"
    );
    signal(&server, "-TERM");
    assert!(wait_exit(&mut server.0, Duration::from_secs(20)).success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn python_socket_peer_round_trips_frames_with_the_udp_echo_server() {
    // A peer that is not this crate nor Rust: Python's socket module, one
    // length-prefixed frame per datagram.
    let (_server, addr) = start_echo_server(&["--transport", "udp"]);
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let script = r#"
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
for i in range(100):
    payload = b"py-%d-" % i + bytes(i)
    datagram = struct.pack(">I", len(payload)) + payload
    s.sendto(datagram, (host, port))
    echo, source = s.recvfrom(65536)
    assert echo == datagram, (i, echo)
    assert source == (host, port), source
print("python udp ok 100")
"#;
    let out = Command::new("python3")
        .args(["-c", script, host, port])
        .output()
        .expect("python3 on the PATH");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("python udp ok 100"), "{text}");
}
