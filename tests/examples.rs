//! The examples' command lines are a contract: run them as a user would. Every peer here
//! is this crate's own example or Rust code in the test (std sockets, tokio-tungstenite);
//! the examples against programs that are not Rust are in `tests/interop.rs`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::process::{
    example, output_within, start_example_lines, start_listening_example, stdout_of_success,
    tls_cert_files, ChildGuard,
};
use common::scrape::{sample, scrape, scrape_until};

/// How long an example that runs to its end may take (they finish in seconds).
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Runs example `name` with `args` to its end, 120 s at most.
fn run_example(name: &str, args: &[&str]) -> Output {
    output_within(Command::new(example(name)).args(args), RUN_LIMIT)
}

/// Starts the echo_server example on a free loopback port with `extra` options.
fn start_echo_server(extra: &[&str]) -> (ChildGuard, String) {
    start_listening_example("echo_server", extra)
}

/// Runs echo_client with `args` to the end, asserts it succeeded, returns its stdout.
fn run_echo_client(args: &[&str]) -> String {
    stdout_of_success(&run_example("echo_client", args), "echo_client")
}

/// Runs echo_client with `args` and asserts that all `frames` came back, with no
/// reconnection and no error.
fn expect_every_echo(args: &[&str], frames: u64) {
    let summary = run_echo_client(args);
    let all = format!("sent={frames} received={frames} reconnects=0 errors=0");
    assert!(summary.contains(&all), "{summary}");
}

/// Runs echo_client with `args` (3 frames of 70,000 B, over the server's max frame
/// length) and asserts it fails: the session ends, and the client says so.
fn expect_refused_over_the_max(args: &[&str]) {
    let mut args = args.to_vec();
    args.extend(["--frames", "3", "--size", "70000", "--timeout", "10"]);
    let client = run_example("echo_client", &args);
    assert_eq!(
        client.status.code(),
        Some(1),
        "a refused frame is a failure"
    );
}

/// Runs echo_client with 8 connections x 2000 frames of 1000 B against `addr` (plus
/// `transport`'s options) and asserts that every frame came back, with no error.
fn expect_full_echo_load(addr: &str, transport: &[&str]) {
    let mut args = vec!["--addr", addr, "--conns", "8", "--frames", "2000"];
    args.extend(["--size", "1000", "--timeout", "60"]);
    args.extend(transport);
    expect_every_echo(&args, 16000);
}

#[test]
fn echo_client_checks_echo_server_and_sigterm_stops_it_cleanly() {
    let (mut server, addr) = start_echo_server(&["--threads", "2", "--max-frame", "65536"]);
    expect_full_echo_load(&addr, &[]);
    server.signal_and_expect_clean_exit("-TERM");
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
    expect_every_echo(&args, 4000);
    // Over the server's max frame length: the session ends, and the client says so.
    let mut args = vec!["--addr", &addr];
    args.extend(ws);
    expect_refused_over_the_max(&args);
    server.signal_and_expect_clean_exit("-TERM");
}

#[test]
fn ws_echo_client_checks_ws_echo_server_in_message_mode() {
    let ws = ["--transport", "ws", "--messages"];
    let mut args = vec!["--threads", "2", "--max-frame", "65536"];
    args.extend(ws);
    let (mut server, addr) = start_echo_server(&args);
    // Both sides with permessage-deflate, on a second server.
    let mut deflating = args.clone();
    deflating.push("--deflate");
    let (mut compressing, compressing_addr) = start_echo_server(&deflating);
    let mut deflated = vec![
        "--addr",
        &compressing_addr,
        "--conns",
        "4",
        "--frames",
        "300",
    ];
    deflated.extend(["--size", "500", "--deflate"]);
    deflated.extend(ws);
    expect_every_echo(&deflated, 1200);
    compressing.signal_and_expect_clean_exit("-TERM");
    // Text messages of 1,000 bytes, each echoed as one text message.
    let mut args = vec!["--addr", &addr, "--conns", "8", "--frames", "500"];
    args.extend(["--size", "1000", "--timeout", "60"]);
    args.extend(ws);
    expect_every_echo(&args, 4000);
    // With permessage-deflate offered (with context takeover): the server does not
    // compress (started without the option), and the run goes on uncompressed.
    let mut args = vec!["--addr", &addr, "--conns", "2", "--frames", "100"];
    args.extend(["--size", "300", "--deflate-context"]);
    args.extend(ws);
    expect_every_echo(&args, 200);
    // Binary messages are echoed as they came too: the codec-mode client's
    // length-delimited frames, one per message, come back whole.
    let args = ["--addr", &addr, "--transport", "ws", "--frames", "200"];
    expect_every_echo(&args, 200);
    // A message over the server's max frame length ends its session (1009): the client
    // says so.
    let mut args = vec!["--addr", &addr];
    args.extend(ws);
    expect_refused_over_the_max(&args);
    server.signal_and_expect_clean_exit("-TERM");
}

/// A ws_chat member: a tokio-tungstenite client (a WebSocket implementation that is not
/// this crate's, nor actix's).
type Member = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Joins the ws_chat room at `addr`; returns the member and its welcome line.
async fn join_chat(addr: &str) -> (Member, String) {
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .expect("connect within 10 s")
    .expect("connect");
    let (mut ws, response) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tcp),
    )
    .await
    .expect("upgrade within 10 s")
    .expect("upgrade");
    assert_eq!(response.status(), 101);
    let welcome = next_chat_line(&mut ws).await;
    (ws, welcome)
}

/// The next line the room sends a member: one text message, no framing inside (pings
/// and pongs skipped), 10 s at most.
async fn next_chat_line(ws: &mut Member) -> String {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => return text.as_str().to_owned(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a line as a text message, got {other:?}"),
            }
        }
    })
    .await
    .expect("a line within 10 s")
}

/// The session id a welcome line gives: `* welcome, you are ID; N others here`.
fn member_id(welcome: &str) -> String {
    welcome
        .strip_prefix("* welcome, you are ")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("a welcome line, got {welcome:?}"))
        .to_owned()
}

#[tokio::test]
async fn ws_chat_serves_its_page_and_broadcasts_to_every_other_member() {
    use futures::SinkExt;
    use std::io::{Read, Write};
    use tokio_tungstenite::tungstenite::Message;
    let (mut server, addr) = start_listening_example("ws_chat", &[]);
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
    // Message mode: the page takes text messages as strings, nothing to decode.
    assert!(
        !page.contains("binaryType") && !page.contains("TextDecoder"),
        "{page}"
    );

    let (mut alice, welcome) = join_chat(&addr).await;
    assert!(welcome.ends_with("; 0 others here"), "{welcome}");
    let (mut bob, welcome) = join_chat(&addr).await;
    assert!(welcome.ends_with("; 1 others here"), "{welcome}");
    let bob_id = member_id(&welcome);
    let (mut carol, welcome) = join_chat(&addr).await;
    assert!(welcome.ends_with("; 2 others here"), "{welcome}");
    let carol_id = member_id(&welcome);
    assert_eq!(
        next_chat_line(&mut alice).await,
        format!("* {bob_id} joined")
    );
    assert_eq!(
        next_chat_line(&mut alice).await,
        format!("* {carol_id} joined")
    );
    assert_eq!(
        next_chat_line(&mut bob).await,
        format!("* {carol_id} joined")
    );

    // Members send text, as the page's browsers do; every other member gets the line.
    alice.send(Message::text("hello room")).await.unwrap();
    let line = next_chat_line(&mut bob).await;
    assert!(line.ends_with("] hello room"), "{line}");
    let alice_id = line[1..].split(']').next().unwrap().to_owned();
    assert_eq!(next_chat_line(&mut carol).await, line);
    // ... and not its sender: alice's next line is bob's answer.
    bob.send(Message::text("hi alice")).await.unwrap();
    assert_eq!(
        next_chat_line(&mut alice).await,
        format!("[{bob_id}] hi alice")
    );
    assert_eq!(
        next_chat_line(&mut carol).await,
        format!("[{bob_id}] hi alice")
    );

    tokio::time::timeout(Duration::from_secs(10), alice.close(None))
        .await
        .expect("close within 10 s")
        .expect("close sent");
    assert_eq!(next_chat_line(&mut bob).await, format!("* {alice_id} left"));
    assert_eq!(
        next_chat_line(&mut carol).await,
        format!("* {alice_id} left")
    );
    drop((bob, carol));
    server.signal_and_expect_clean_exit("-TERM");
}

#[test]
fn echo_client_fails_on_frames_over_the_server_max_and_sigint_stops_it() {
    let (mut server, addr) = start_echo_server(&["--max-frame", "100"]);
    let client = run_example(
        "echo_client",
        &[
            "--addr",
            &addr,
            "--frames",
            "10",
            "--size",
            "101",
            "--timeout",
            "10",
        ],
    );
    assert_eq!(
        client.status.code(),
        Some(1),
        "a refused frame is a failure"
    );
    server.signal_and_expect_clean_exit("-INT");
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
    let text = stdout_of_success(&run_example("echo", &[]), "echo");
    assert!(text.contains("320000 echoes matched"), "{text}");
    assert!(text.contains("0 still live"), "{text}");
}

#[test]
fn echo_client_and_server_speak_compressed_frames() {
    for method in ["deflate", "snappy"] {
        let (_server, addr) = start_echo_server(&["--compress", method]);
        let text = run_echo_client(&[
            "--addr",
            &addr,
            "--compress",
            method,
            "--frames",
            "200",
            "--size",
            "1024",
        ]);
        assert!(text.contains("200 echoes matched"), "{method}: {text}");
    }
    let out = run_example("echo_server", &["--compress", "zip"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown method is a bad option"
    );
}

#[test]
fn bad_options_exit_with_status_2() {
    let out = run_example("echo_server", &["--bogus", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run_example("echo_client", &["--conns", "many"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run_example("echo_server", &["--transport", "carrier-pigeon"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Starts echo_client with `args` on a thread of its own (it runs for a while, against
/// servers the test restarts meanwhile); join the thread for its output (60 s at most).
fn spawn_echo_client(args: Vec<String>) -> std::thread::JoinHandle<std::process::Output> {
    std::thread::spawn(move || {
        output_within(
            Command::new(example("echo_client")).args(args),
            Duration::from_secs(60),
        )
    })
}

/// The number after `name=` in echo_client's summary line.
fn summary_field(summary: &str, name: &str) -> u64 {
    let value = summary
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} in {summary:?}"));
    value.parse().expect("a number")
}

#[test]
fn echo_client_duration_rides_out_two_server_restarts() {
    let (mut server, addr) = start_echo_server(&[]);
    let args = [
        "--addr",
        &addr,
        "--conns",
        "3",
        "--duration",
        "10",
        "--reconnect-interval",
        "100",
    ]
    .map(String::from);
    let client = spawn_echo_client(args.to_vec());
    let port = addr.rsplit(':').next().unwrap().to_owned();
    // Each life lasts 2.5 s: long enough for the sessions to come back and count as
    // healthy (ten intervals), so each outage starts from a fresh backoff; the last life
    // leaves 4 s for the final reconnect.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(2500));
        server.signal_and_expect_clean_exit("-TERM");
        std::thread::sleep(Duration::from_millis(500));
        let (restarted, again) = start_echo_server(&["--addr", &format!("127.0.0.1:{port}")]);
        assert_eq!(again, addr, "restarted on the same port");
        server = restarted;
    }
    let out = client.join().expect("echo_client finishes within 60 s");
    let text = stdout_of_success(&out, "echo_client");
    let summary = text.lines().last().expect("summary line");
    let field = |name: &str| summary_field(summary, name);
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

/// A rolling restart over real processes: a pool of 8 connections under continuous load
/// for 12 s; at 3 s a second server binds the same port (`--reuse-port`); at 5 s the first
/// gets SIGUSR2, drains and exits within its deadline. Every connection is re-established
/// on the new process (the only one left), no dial fails, and every frame sent is either
/// echoed or reported failed to its sender, no more than the frames in flight at the
/// hand-over.
#[test]
fn rolling_restart_hands_every_connection_to_the_new_process() {
    const CONNS: u64 = 8;
    const DEPTH: u64 = 16;
    let reuse = [
        "--reuse-port",
        "true",
        "--drain-secs",
        "3",
        "--threads",
        "1",
    ];
    let (mut old, addr) = start_echo_server(&reuse);
    let args = [
        "--addr",
        &addr,
        "--conns",
        &CONNS.to_string(),
        "--depth",
        &DEPTH.to_string(),
        "--duration",
        "12",
        "--reconnect-interval",
        "100",
    ]
    .map(String::from);
    let client = spawn_echo_client(args.to_vec());
    std::thread::sleep(Duration::from_secs(3));
    let mut new_args = vec!["--addr", addr.as_str()];
    new_args.extend_from_slice(&reuse);
    let (_new, again) = start_echo_server(&new_args);
    assert_eq!(again, addr, "the new process binds the same address");
    std::thread::sleep(Duration::from_secs(2));
    old.signal("-USR2");
    assert!(
        old.wait_exit(Duration::from_secs(3 + 2)).success(),
        "the old process exits 0 within its drain deadline"
    );

    let out = client.join().expect("echo_client finishes within 60 s");
    let text = stdout_of_success(&out, "echo_client");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("dial failed"),
        "no failed connect: {stderr}"
    );
    let summary = text.lines().last().expect("summary line");
    let field = |name: &str| summary_field(summary, name);
    let (sent, received, errors) = (field("sent"), field("received"), field("errors"));
    assert_eq!(sent, received + errors, "nothing silently lost: {summary}");
    assert!(
        errors <= CONNS * DEPTH,
        "at most the frames in flight: {summary}"
    );
    assert_eq!(
        field("reconnects"),
        CONNS,
        "each connection re-established once: {text}"
    );
    assert_eq!(
        text.matches("session up:").count() as u64,
        2 * CONNS,
        "{text}"
    );
    println!("rolling restart: {summary}");
}

#[test]
fn heartbeat_demo_closes_the_hung_session_and_the_client_reconnects() {
    let text = stdout_of_success(&run_example("heartbeat", &[]), "heartbeat");
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
    let (mut server, addr) = start_listening_example("rpc_server", &["--workers", "2"]);
    let out = run_example(
        "rpc_client",
        &[
            "--addr",
            &addr,
            "--calls",
            "2000",
            "--in-flight",
            "16",
            "--slow-every",
            "100",
        ],
    );
    let text = stdout_of_success(&out, "rpc_client");
    assert!(
        text.contains("calls=2000 ok=2000 timeouts=0 errors=0 calls_per_s="),
        "{text}"
    );
    server.signal_and_expect_clean_exit("-TERM");
}

#[test]
fn chat_room_broadcasts_a_line_to_every_other_member() {
    use std::io::Write;
    let (mut server, addr) = start_listening_example("chat", &[]);
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
    server.signal_and_expect_clean_exit("-TERM");
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
    server.signal_and_expect_clean_exit("-TERM");
    assert!(!path.exists(), "socket file removed on a graceful stop");
}

#[test]
fn echo_client_checks_echo_server_over_tls_with_a_tls_cert_certificate() {
    let dir = tls_cert_files("examples-tls");
    let (cert, key, ca) = (
        dir.path("cert.pem"),
        dir.path("key.pem"),
        dir.path("ca.pem"),
    );
    let (mut server, addr) =
        start_echo_server(&["--threads", "2", "--tls-cert", &cert, "--tls-key", &key]);
    let run_client = |extra: &[&str]| {
        let mut args = vec!["--addr", &addr, "--conns", "4", "--frames", "500"];
        args.extend(["--tls-ca", &ca]);
        args.extend(extra);
        run_example("echo_client", &args)
    };
    let summary = stdout_of_success(&run_client(&["--timeout", "60"]), "echo_client over TLS");
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
    server.signal_and_expect_clean_exit("-TERM");
}

#[test]
fn quic_echo_client_checks_quic_echo_server_with_given_and_self_signed_certificates() {
    let dir = tls_cert_files("examples-quic");
    let (cert, key, ca) = (
        dir.path("cert.pem"),
        dir.path("key.pem"),
        dir.path("ca.pem"),
    );
    let quic = ["--transport", "quic"];
    let mut args = vec!["--threads", "2", "--tls-cert", &cert, "--tls-key", &key];
    args.extend(quic);
    let (mut server, addr) = start_echo_server(&args);
    expect_full_echo_load(&addr, &["--transport", "quic", "--tls-ca", &ca]);
    server.signal_and_expect_clean_exit("-TERM");
    // Without certificate options the server makes a self-signed one, which the client
    // trusts through the file the server wrote.
    let (mut server, addr) = start_echo_server(&quic);
    expect_full_echo_load(&addr, &quic);
    server.signal_and_expect_clean_exit("-TERM");
}

#[test]
fn udp_echo_client_checks_udp_echo_server_and_sigterm_stops_it() {
    let (mut server, addr) = start_echo_server(&["--transport", "udp"]);
    expect_full_echo_load(&addr, &["--transport", "udp"]);
    server.signal_and_expect_clean_exit("-TERM");
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
    let out = run_example("multicast", &["--receivers", "3", "--datagrams", "100"]);
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(3) {
        eprintln!("SKIPPED: {}", text.trim());
        return;
    }
    let text = stdout_of_success(&out, "multicast");
    assert_eq!(text.matches(": 100/100 from ").count(), 3, "{text}");
}

#[test]
fn ws_echo_client_checks_ws_echo_server_over_wss() {
    let dir = tls_cert_files("examples-wss");
    let (cert, key, ca) = (
        dir.path("cert.pem"),
        dir.path("key.pem"),
        dir.path("ca.pem"),
    );
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
    let mut args = vec!["--transport", "ws", "--addr", &addr, "--conns", "4"];
    args.extend(["--frames", "500", "--tls-ca", &ca, "--timeout", "60"]);
    let summary = stdout_of_success(&run_example("echo_client", &args), "echo_client over wss");
    assert!(
        summary.contains("sent=2000 received=2000 reconnects=0 errors=0"),
        "{summary}"
    );
    server.signal_and_expect_clean_exit("-TERM");
}

/// echo_server --metrics-addr over `transport` (plus `extra` options), whose metrics
/// are labelled with the transport's name: scraped before, during and after a 3 s
/// echo_client run of 4 connections, the counters move while the load runs, add up to
/// the client's own count after it, and the open-sessions gauge returns to 0 once the
/// sessions close, each for `cause`.
fn metrics_follow_echo_load(transport: &str, extra: &[&str], cause: &str) {
    let endpoint = transport;
    let mut args = vec!["--transport", transport, "--addr", "127.0.0.1:0"];
    args.extend(["--metrics-addr", "127.0.0.1:0"]);
    args.extend(extra);
    let (mut server, addr, more) = start_example_lines("echo_server", &args, 1);
    let metrics = more[0]
        .strip_prefix("metrics on http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("`metrics on http://HOST:PORT/metrics`, got {more:?}"))
        .to_owned();
    let series = |name: &str| format!("{name}{{endpoint=\"{endpoint}\"}}");
    let value = |page: &str, name: &str| {
        sample(page, &series(name)).unwrap_or_else(|| panic!("{} on\n{page}", series(name)))
    };
    let page = scrape(&metrics);
    assert_eq!(value(&page, "getty_frames_received_total"), 0.0, "{page}");
    assert_eq!(value(&page, "getty_sessions_open"), 0.0, "{page}");

    let client = ["--transport", transport, "--addr", &addr, "--conns", "4"];
    let client = [&client[..], &["--duration", "3", "--size", "100"]].concat();
    let client = spawn_echo_client(client.iter().map(|a| a.to_string()).collect());
    let page = scrape_until(&metrics, "four sessions echoing", |page| {
        sample(page, &series("getty_sessions_open")) == Some(4.0)
            && sample(page, &series("getty_frames_received_total")) > Some(0.0)
    });
    let during = value(&page, "getty_frames_received_total");
    scrape_until(&metrics, "more frames while the load runs", |page| {
        sample(page, &series("getty_frames_received_total")) > Some(during)
    });

    let out = client.join().expect("echo_client finishes within 60 s");
    let text = stdout_of_success(&out, "echo_client");
    let summary = text.lines().last().expect("summary line");
    assert_eq!(summary_field(summary, "errors"), 0, "{summary}");
    // Traffic is counted every 200 ms and as each session goes: wait for both.
    let sent = summary_field(summary, "sent") as f64;
    let page = scrape_until(&metrics, "every session closed and counted", |page| {
        sample(page, &series("getty_sessions_open")) == Some(0.0)
            && sample(page, &series("getty_frames_sent_total")) == Some(sent)
    });
    let closed =
        format!("getty_sessions_closed_total{{endpoint=\"{endpoint}\",cause=\"{cause}\"}}");
    assert_eq!(sample(&page, &closed), Some(4.0), "{page}");
    assert_eq!(value(&page, "getty_sessions_opened_total"), 4.0);
    let received = value(&page, "getty_frames_received_total");
    assert_eq!(received, sent, "{summary}");
    server.signal_and_expect_clean_exit("-TERM");
}

#[test]
fn echo_server_metrics_are_scraped_while_tcp_echo_load_runs() {
    metrics_follow_echo_load("tcp", &[], "peer_eof");
}

#[test]
fn echo_server_metrics_are_scraped_while_ws_echo_load_runs() {
    metrics_follow_echo_load("ws", &[], "peer_eof");
}

#[test]
fn echo_server_metrics_are_scraped_while_udp_echo_load_runs() {
    // UDP peers never hang up: their sessions end at the idle timeout.
    metrics_follow_echo_load("udp", &["--read-timeout", "1"], "read_timeout");
}
