//! The interop suite: this crate's endpoints against real peers that are not Rust —
//! headless Chromium, Python's `websockets` package and `socket` module,
//! `openssl s_client`, and `redis-server` as the broker of a chat room spread over three
//! processes (`interop/chat_broker.rs`) — and against the kernel itself, whose loopback a
//! keepalive test takes down in a network namespace of its own (as root, with `ip` and
//! `nsenter`). They are programs a fresh machine does not have, so every test here
//! is `#[ignore]`d with the package it needs, and the default `cargo test` lists them as
//! ignored. Run them with
//!
//! ```text
//! apt-get install -y chromium python3-websockets python3-snappy openssl redis-server   # Debian; .ci/run does it
//! cargo test --test interop -- --ignored
//! ```
//!
//! (`cargo test -- --include-ignored` runs them with everything else). A missing peer is
//! a failure that names the package to install, never a skip. The example binaries they
//! talk to are built on demand, so this target also runs on its own.

#[path = "interop/chat_broker.rs"]
mod chat_broker;
mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use bytes::{Bytes, BytesMut};
use common::process::{
    output_within, start_listening_example, stdout_of_success, tls_cert_files, wait_exit,
    ChildGuard,
};
use getty::prelude::*;
use getty::transport::ws::{PerMessageDeflate, WsServer};
use getty::{EventListener, LengthDelimited, SessionContext};
use tokio::sync::mpsc;

/// Whether `program args` starts and exits 0 within 30 s (false if it is not installed).
fn runs(program: &str, args: &[&str]) -> bool {
    let Ok(mut child) = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    wait_exit(&mut child, Duration::from_secs(30)).success()
}

/// A python3 that can import `module`: Debian's `/usr/bin/python3` first (where apt puts
/// `python3-websockets`), then the one on the PATH. Panics with `install` if none can.
fn python_with(module: &str, install: &str) -> &'static str {
    ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|py| runs(py, &["-c", &format!("import {module}")]))
        .unwrap_or_else(|| {
            panic!("this test needs python3 with the `{module}` module: {install}, as .ci/run does")
        })
}

// ---- headless Chromium as the WebSocket client ----------------------------------------

/// Frames the page sends (and expects back).
const FRAMES: usize = 200;

struct Echo;

impl EventListener for Echo {
    type Codec = LengthDelimited;
    type Out = Bytes;

    fn on_message(&mut self, session: &mut SessionContext<'_, Self>, frame: BytesMut) {
        session.write(frame.freeze()).expect("echo queued");
    }
}

/// The page: sends FRAMES frames of varied sizes, each a 4-byte big-endian length and a
/// payload, checks that every echo comes back intact, one binary message per frame, then
/// closes with 1000 and reports.
fn page(ws_url: &str) -> String {
    format!(
        r#"<!doctype html>
<html><body><pre id="result">running</pre>
<script>
const FRAMES = {FRAMES};
const expected = [];
function frame(i) {{
  const size = (i * 37) % 2000 + 1;
  const buf = new Uint8Array(4 + size);
  new DataView(buf.buffer).setUint32(0, size);
  for (let j = 0; j < size; j++) buf[4 + j] = (i + j) & 0xff;
  return buf;
}}
function report(params) {{
  document.getElementById('result').textContent = params;
  fetch('/report?' + params).catch(() => {{}});
}}
let pending = new Uint8Array(0), echoed = 0, messages = 0, bad = 0;
const ws = new WebSocket('{ws_url}');
ws.binaryType = 'arraybuffer';
ws.onopen = () => {{
  for (let i = 0; i < FRAMES; i++) {{ const f = frame(i); expected.push(f); ws.send(f); }}
}};
ws.onmessage = (ev) => {{
  if (!(ev.data instanceof ArrayBuffer)) {{ bad++; return; }}
  messages++;
  const data = new Uint8Array(ev.data);
  const joined = new Uint8Array(pending.length + data.length);
  joined.set(pending); joined.set(data, pending.length);
  pending = joined;
  while (pending.length >= 4) {{
    const len = new DataView(pending.buffer, pending.byteOffset).getUint32(0);
    if (pending.length < 4 + len) break;
    const got = pending.subarray(0, 4 + len), want = expected[echoed];
    if (!want || want.length !== got.length || want.some((b, k) => b !== got[k])) bad++;
    echoed++;
    pending = pending.slice(4 + len);
  }}
  if (echoed === FRAMES) ws.close(1000, 'done');
}};
ws.onerror = () => report('error=1');
ws.onclose = (ev) => report(`echoed=${{echoed}}&messages=${{messages}}&bad=${{bad}}&code=${{ev.code}}&extensions=${{encodeURIComponent(ws.extensions)}}`);
</script></body></html>"#
    )
}

/// The name of the installed Chromium command; panics saying how to install one.
fn chromium() -> String {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if runs("sh", &["-c", &format!("command -v {name}")]) {
            return name.to_owned();
        }
    }
    panic!(
        "this test needs a real browser: install Debian's chromium \
         (apt-get install -y chromium), as .ci/run does"
    );
}

/// A real browser as the WebSocket client: headless Chromium runs a page whose JavaScript
/// sends length-delimited frames to the WebSocket echo server and checks every echo. The
/// page is served by this test on 127.0.0.1, and reports back to it by HTTP.
#[actix_rt::test]
#[ignore = "interop: needs chromium (Debian: apt-get install chromium)"]
async fn headless_chromium_round_trips_binary_frames_with_the_ws_echo_server() {
    let browser_bin = chromium();
    // Without permessage-deflate (Chromium's offer declined), then with it.
    for deflate in [None, Some(PerMessageDeflate::new())] {
        let mut server = WsServer::new("127.0.0.1:0").path("/ws").workers(1);
        if let Some(deflate) = deflate {
            server = server.per_message_deflate(deflate);
        }
        let server = server
            .start(|setup| {
                let max = setup.config().max_frame_length;
                Ok((Echo, LengthDelimited::with_max_frame_length(max)))
            })
            .await
            .expect("ws server starts");
        let ws_url = format!("ws://{}/ws", server.inet_addr().unwrap());

        let (report, _) = report_of_page_in_chromium(&browser_bin, page(&ws_url)).await;
        let extensions = match deflate {
            None => "",
            Some(_) => {
                "permessage-deflate%3B%20server_no_context_takeover%3B%20client_no_context_takeover"
            }
        };
        assert_eq!(
            report,
            format!("echoed={FRAMES}&messages={FRAMES}&bad=0&code=1000&extensions={extensions}"),
            "every frame echoed intact, one message each, closed normally"
        );
        // The browser's close ran the handshake: the session closed once, without error.
        common::eventually(Duration::from_secs(5), || server.stats().closed >= 1).await;
        let stats = server.stats();
        assert_eq!((stats.opened, stats.closed, stats.live_sessions), (1, 1, 0));
        server.stop().await;
    }
}

/// What a page's WebSocket upgrade to `/offered` on its own server asked for: the
/// `Sec-WebSocket-Extensions` header the browser sent (the upgrade is refused).
#[derive(Default)]
struct Offered(Mutex<Option<String>>);

/// Serves `html` on 127.0.0.1, opens it in headless Chromium, and returns the query
/// string of the page's first `GET /report?...` (60 s at most), with the extensions the
/// browser offered if the page tried a WebSocket to `/offered`.
async fn report_of_page_in_chromium(browser_bin: &str, html: String) -> (String, Option<String>) {
    // The page's own HTTP server: serves it, and takes its report.
    let (tx, mut reports) = mpsc::unbounded_channel::<String>();
    let tx = web::Data::new(Mutex::new(tx));
    let offered = web::Data::new(Offered::default());
    let seen = offered.clone();
    let http = HttpServer::new(move || {
        let html = html.clone();
        App::new()
            .app_data(tx.clone())
            .app_data(seen.clone())
            .route(
                "/offered",
                web::get().to(
                    |req: actix_web::HttpRequest, offered: web::Data<Offered>| async move {
                        let header = req.headers().get("sec-websocket-extensions");
                        let value = header.and_then(|v| v.to_str().ok()).unwrap_or_default();
                        *offered.0.lock().unwrap() = Some(value.to_owned());
                        HttpResponse::BadRequest().finish()
                    },
                ),
            )
            .route(
                "/",
                web::get().to(move || {
                    let html = html.clone();
                    async move { HttpResponse::Ok().content_type("text/html").body(html) }
                }),
            )
            .route(
                "/report",
                web::get().to(
                    |req: actix_web::HttpRequest,
                     tx: web::Data<Mutex<mpsc::UnboundedSender<String>>>| async move {
                        let _ = tx.lock().unwrap().send(req.query_string().to_owned());
                        HttpResponse::Ok().finish()
                    },
                ),
            )
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .expect("page server binds");
    let page_addr = http.addrs()[0];
    let http = http.run();
    let http_handle = http.handle();
    actix_rt::spawn(http);

    let profile = std::env::temp_dir().join(format!(
        "getty-chromium-{}-{}",
        std::process::id(),
        page_addr.port()
    ));
    let browser = ChildGuard::terminate_on_drop(
        Command::new(browser_bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("http://{page_addr}/"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {browser_bin}: {e}")),
    );
    let report = tokio::time::timeout(Duration::from_secs(60), reports.recv())
        .await
        .expect("the page reports within 60 s")
        .expect("a report");
    drop(browser);
    http_handle.stop(false).await;
    let _ = std::fs::remove_dir_all(profile);
    let offered = offered.0.lock().unwrap().clone();
    (report, offered)
}

/// The page of the ws_chat test: first tries a WebSocket to its own server's `/offered`
/// (which records the extensions the browser offers, and refuses), then joins the room
/// at `ws_url`, says hello once welcomed, and reports, once it heard `lines` lines: how
/// many came as JavaScript strings, how many ended with a newline, the extensions the
/// server accepted, and every line.
fn chat_page(ws_url: &str, lines: usize) -> String {
    format!(
        r#"<!doctype html>
<html><body><pre id="result">running</pre>
<script>
const got = [];
let strings = 0, newlines = 0;
function report(params) {{
  document.getElementById('result').textContent = params;
  fetch('/report?' + params).catch(() => {{}});
}}
const probe = new WebSocket(`ws://${{location.host}}/offered`);
probe.onclose = () => {{
const ws = new WebSocket('{ws_url}');
ws.onmessage = (ev) => {{
  if (typeof ev.data === 'string') strings++;
  if (String(ev.data).endsWith('\n')) newlines++;
  got.push(String(ev.data));
  if (got.length === 1) ws.send('hello from chromium');
  if (got.length === {lines}) {{
    const lines = encodeURIComponent(got.join('|'));
    report(`strings=${{strings}}&newlines=${{newlines}}&extensions=${{ws.extensions}}&lines=${{lines}}`);
    ws.close(1000);
  }}
}};
ws.onerror = () => report('error=1');
}};
</script></body></html>"#
    )
}

/// The next text message `member` gets (pings and pongs skipped), 60 s at most.
async fn next_text(
    member: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> String {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let next = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match member.next().await {
                Some(Ok(Message::Text(text))) => return text.as_str().to_owned(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    });
    next.await.expect("a line within 60 s")
}

/// The ws_chat example with a real browser in its room: Chromium (which offers
/// permessage-deflate in every handshake; the server accepts no extension, and the
/// handshake goes through) sends a plain text line, which a tokio-tungstenite member
/// gets as one text message, and gets the member's answer as a JavaScript string with no
/// newline.
#[actix_rt::test]
#[ignore = "interop: needs chromium (Debian: apt-get install chromium)"]
async fn headless_chromium_chats_in_plain_text_with_the_ws_chat_example() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let browser_bin = chromium();
    let (mut chat, addr) = start_listening_example("ws_chat", &[]);
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (mut member, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tcp)
        .await
        .expect("upgrade");
    let welcome = next_text(&mut member).await;
    assert!(welcome.starts_with("* welcome"), "{welcome}");
    // The browser: welcome, then (after its hello) the member's answer: 2 lines.
    let browser =
        report_of_page_in_chromium(&browser_bin, chat_page(&format!("ws://{addr}/ws"), 2));
    let member_side = async {
        let joined = next_text(&mut member).await;
        assert!(joined.ends_with(" joined"), "{joined}");
        let hello = next_text(&mut member).await;
        assert!(
            hello.ends_with("] hello from chromium"),
            "one text message: {hello:?}"
        );
        member.send(Message::text("hi browser")).await.unwrap();
    };
    let ((report, offered), ()) = futures::join!(browser, member_side);
    let offered = offered.expect("the page tried /offered first");
    assert!(
        offered.contains("permessage-deflate"),
        "Chromium offers permessage-deflate: {offered:?}"
    );
    let lines = report.split("&lines=").nth(1).expect("lines in the report");
    assert!(
        report.starts_with("strings=2&newlines=0&extensions=&lines="),
        "text arrives as strings, no newline, no extension: {report}"
    );
    assert!(
        lines.ends_with("%5D%20hi%20browser"),
        "the member's line: {lines}"
    );
    chat.signal_and_expect_clean_exit("-TERM");
}

/// Offers permessage-deflate (the `websockets` default), checks it was agreed, and
/// round-trips JSON chat lines as text and a run of zeros as binary, each whole.
const PYTHON_DEFLATE_CLIENT: &str = r#"
import asyncio, json, sys, websockets
async def main(url):
    async with websockets.connect(url, max_size=None, open_timeout=10) as ws:
        names = [e.name for e in ws.extensions]
        assert names == ['permessage-deflate'], names
        lines = [json.dumps({'type': 'chat', 'from': f'user{i % 7}', 'text': f'line {i}: ready?'}) for i in range(200)]
        for line in lines + [bytes(30000)]:
            await ws.send(line)
            echo = await asyncio.wait_for(ws.recv(), 10)
            assert echo == line, (line, echo)
    print('python deflate ok', len(lines) + 1)
asyncio.run(main(sys.argv[1]))
"#;

/// permessage-deflate against an implementation that is not this crate: Python's
/// `websockets` offers it, `echo_server --messages` accepts it (each message on its own,
/// then with context takeover), and every message comes back whole.
#[test]
#[ignore = "interop: needs python3-websockets (Debian: apt-get install python3-websockets)"]
fn python_websockets_compresses_with_the_message_mode_echo_server() {
    let python = python_with("websockets", "apt-get install -y python3-websockets");
    for deflate in ["--deflate", "--deflate-context"] {
        let args = [
            "--transport",
            "ws",
            "--messages",
            "--max-frame",
            "65536",
            deflate,
        ];
        let (mut server, addr) = start_listening_example("echo_server", &args);
        let out = output_within(
            Command::new(python).args(["-c", PYTHON_DEFLATE_CLIENT, &format!("ws://{addr}/ws")]),
            Duration::from_secs(60),
        );
        let text = stdout_of_success(&out, "python websockets with permessage-deflate");
        assert!(text.contains("python deflate ok 201"), "{deflate}: {text}");
        server.signal_and_expect_clean_exit("-TERM");
    }
}

// ---- RFC 6455 cases from Python ----------------------------------------------------------

/// The server-side RFC 6455 cases of `tests/ws_rfc6455.rs` again, from outside Rust:
/// Python's `websockets` for what a library sends, hand-built frames over a plain Python
/// socket for what none would (see the script).
#[test]
#[ignore = "interop: needs python3-websockets (Debian: apt-get install python3-websockets)"]
fn python_runs_the_rfc6455_cases_against_the_message_mode_echo_server() {
    let python = python_with("websockets", "apt-get install -y python3-websockets");
    let args = ["--transport", "ws", "--messages", "--max-frame", "1000"];
    let (mut server, addr) = start_listening_example("echo_server", &args);
    let out = output_within(
        Command::new(python).args(["-c", include_str!("interop/ws_rfc6455.py"), &addr]),
        Duration::from_secs(120),
    );
    let text = stdout_of_success(&out, "python RFC 6455 cases");
    assert!(text.contains("rfc6455 ok 20"), "{text}");
    server.signal_and_expect_clean_exit("-TERM");
}

// ---- Python's websockets package as the WebSocket client ------------------------------

/// Sends 100 length-prefixed frames of varied sizes, one binary message each, and checks
/// that each comes back intact as one binary message.
const PYTHON_WS_CLIENT: &str = r#"
import asyncio, struct, sys, websockets
async def main(url):
    async with websockets.connect(url, max_size=None, open_timeout=10) as ws:
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
#[ignore = "interop: needs python3-websockets (Debian: apt-get install python3-websockets)"]
fn python_websockets_round_trips_with_ws_echo_server() {
    let python = python_with("websockets", "apt-get install -y python3-websockets");
    let (mut server, addr) =
        start_listening_example("echo_server", &["--transport", "ws", "--path", "/echo"]);
    let out = output_within(
        Command::new(python).args(["-c", PYTHON_WS_CLIENT, &format!("ws://{addr}/echo")]),
        Duration::from_secs(60),
    );
    let text = stdout_of_success(&out, "python websockets client");
    assert!(text.contains("python websockets ok 100"), "{text}");
    server.signal_and_expect_clean_exit("-TERM");
}

// ---- Python's socket module as the UDP peer --------------------------------------------

#[test]
#[ignore = "interop: needs python3 (Debian: apt-get install python3)"]
fn python_socket_peer_round_trips_frames_with_the_udp_echo_server() {
    // One length-prefixed frame per datagram, from the source the reply must come from.
    let python = python_with("socket", "apt-get install -y python3");
    let (mut server, addr) = start_listening_example("echo_server", &["--transport", "udp"]);
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
    let out = output_within(
        Command::new(python).args(["-c", script, host, port]),
        Duration::from_secs(60),
    );
    let text = stdout_of_success(&out, "python udp peer");
    assert!(text.contains("python udp ok 100"), "{text}");
    server.signal_and_expect_clean_exit("-TERM");
}

// ---- Python's zlib and Google's snappy against the compressed framing ------------------

/// Sends 20 frames compressed by a Python library, reads each echo (compressed by the
/// server), and checks it. argv: host, port, then `zlib` (method byte 1, the zlib format)
/// or `snappy` (method byte 2, snappy's raw block format).
const PYTHON_COMPRESSED_PEER: &str = r#"
import importlib, socket, struct, sys
name = sys.argv[3]
lib = importlib.import_module(name)
if name == "zlib":
    method_byte, pack, unpack = 1, lambda b: lib.compress(b, 6), lib.decompress
else:
    method_byte, pack, unpack = 2, lib.compress, lib.uncompress
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
def read_exactly(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        assert chunk, "server closed"
        data += chunk
    return data
compressed = 0
for i in range(20):
    text = (b'{"user":"py","n":%d,"text":"hello from %s"}\n' % (i, name.encode())) * 40
    inner = struct.pack(">I", len(text)) + text
    body = pack(inner)
    s.sendall(bytes([method_byte]) + struct.pack(">I", len(body)) + body)
    method, length = struct.unpack(">BI", read_exactly(5))
    payload = read_exactly(length)
    if method == method_byte:
        compressed += 1
        payload = unpack(payload)
    else:
        assert method == 0, method
    assert payload == inner, (i, payload[:40])
assert compressed == 20, compressed
print("python %s ok 20" % name)
"#;

/// Runs [`PYTHON_COMPRESSED_PEER`] with the Python `module` against echo_server
/// `--compress compress`.
fn python_round_trips_compressed_frames(module: &str, install: &str, compress: &str) {
    let python = python_with(module, install);
    let (mut server, addr) = start_listening_example("echo_server", &["--compress", compress]);
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let out = output_within(
        Command::new(python).args(["-c", PYTHON_COMPRESSED_PEER, host, port, module]),
        Duration::from_secs(60),
    );
    let text = stdout_of_success(&out, &format!("python {module} peer"));
    assert!(text.contains(&format!("python {module} ok 20")), "{text}");
    server.signal_and_expect_clean_exit("-TERM");
}

/// Frames compressed by `Compressed` (deflate, zlib format) inflate with Python's `zlib`,
/// and frames Python deflates inflate here: echo_server `--compress deflate` gets a
/// frame zlib compressed and its echo, compressed by the server, is inflated by zlib.
#[test]
#[ignore = "interop: needs python3 (Debian: apt-get install python3)"]
fn python_zlib_reads_and_writes_the_deflate_framing() {
    python_round_trips_compressed_frames("zlib", "apt-get install -y python3", "deflate");
}

/// Frames compressed by `Compressed` with snappy (its raw block format) uncompress with
/// `python3-snappy`, a binding of Google's reference library, and blocks it compresses
/// uncompress here: echo_server `--compress snappy` gets a frame the reference library
/// compressed, and its echo, compressed by the server, is uncompressed by the library.
#[test]
#[ignore = "interop: needs python3-snappy (Debian: apt-get install python3-snappy)"]
fn python_snappy_reads_and_writes_the_snappy_framing() {
    python_round_trips_compressed_frames("snappy", "apt-get install -y python3-snappy", "snappy");
}

// ---- openssl s_client as the TLS client -------------------------------------------------

#[test]
#[ignore = "interop: needs the openssl command (Debian: apt-get install openssl)"]
fn openssl_s_client_round_trips_a_frame_with_the_echo_server_example() {
    assert!(
        runs("openssl", &["version"]),
        "this test needs the `openssl` command (Debian: apt-get install -y openssl), as .ci/run does"
    );
    // A CA and a certificate for localhost it signed, from the tls_cert example.
    let dir = tls_cert_files("interop-openssl");
    let (cert, key, ca) = (
        dir.path("cert.pem"),
        dir.path("key.pem"),
        dir.path("ca.pem"),
    );
    let (server, addr) = start_listening_example(
        "echo_server",
        &["--threads", "1", "--tls-cert", &cert, "--tls-key", &key],
    );

    let mut s_client = Command::new("openssl")
        .args(["s_client", "-connect", &addr, "-servername", "localhost"])
        .args([
            "-quiet",
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
        ])
        .args(["-CAfile", &ca])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start openssl s_client");
    let payload = b"hello from openssl";
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    let mut stdin = s_client.stdin.take().unwrap();
    stdin.write_all(&frame).unwrap();
    stdin.flush().unwrap();
    let mut out = s_client.stdout.take().unwrap();
    let mut err = s_client.stderr.take().unwrap();
    let s_client = ChildGuard::new(s_client);
    let (tx, rx) = std::sync::mpsc::channel();
    let want = frame.len();
    std::thread::spawn(move || {
        let mut echoed = vec![0u8; want];
        let _ = tx.send(out.read_exact(&mut echoed).map(|_| echoed));
    });
    let echoed = rx.recv_timeout(Duration::from_secs(20));
    drop(stdin);
    drop(s_client); // killed: its stderr is at its end
    let mut stderr = String::new();
    let _ = err.read_to_string(&mut stderr);
    match echoed {
        Ok(Ok(echoed)) => assert_eq!(echoed, frame, "the frame comes back whole"),
        other => {
            panic!("no echo from echo_server via openssl s_client: {other:?}; stderr: {stderr}")
        }
    }
    drop(server);
}

// ---- the kernel as the peer that vanishes: TCP keepalive -------------------------------

/// Runs `args` inside the network namespace at `ns`; panics with what it said if it fails.
fn in_namespace(ns: &str, args: &[&str]) {
    let out = Command::new("nsenter")
        .arg(format!("--net={ns}"))
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("nsenter (util-linux) {args:?}: {err}"));
    assert!(
        out.status.success(),
        "nsenter {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A listener that keeps what ends its session.
struct Watch(std::sync::Arc<Mutex<Vec<getty::Error>>>);

impl EventListener for Watch {
    type Codec = LengthDelimited;
    type Out = Bytes;
    fn on_message(&mut self, s: &mut SessionContext<'_, Self>, frame: BytesMut) {
        if let Err(err) = s.write(frame.freeze()) {
            panic!("echo refused: {err}");
        }
    }
    fn on_error(&mut self, _: &getty::Session<Bytes>, error: &getty::Error) {
        self.0.lock().unwrap().push(error.clone());
    }
}

/// A peer that vanishes (its host gone, a NAT that forgot the flow) sends nothing, not
/// even a reset; only keepalive finds it on an idle connection. The test gives its
/// thread a network namespace of its own and takes its loopback down under an open,
/// idle session: every packet is then lost, as with a vanished host. (A stopped peer
/// process would not do: its kernel still answers keepalive probes.) Before that, the
/// same idle session must outlive three times the keepalive bound, its probes answered.
#[actix_rt::test]
#[ignore = "interop: needs root and nsenter/ip (Debian: apt-get install util-linux iproute2)"]
async fn tcp_keepalive_ends_a_session_whose_peer_vanished_and_spares_a_live_idle_one() {
    // Only this thread (the test's actix runtime) moves to the new namespace. The call is
    // safe for a network namespace; rustix marks it unsafe only for file tables.
    #[allow(deprecated)]
    rustix::thread::unshare(rustix::thread::UnshareFlags::NEWNET)
        .expect("unshare(CLONE_NEWNET): this test must run as root, as in CI");
    let tid = rustix::thread::gettid().as_raw_nonzero();
    let ns = format!("/proc/{}/task/{tid}/ns/net", std::process::id());
    in_namespace(&ns, &["ip", "link", "set", "lo", "up"]);

    let keepalive = getty::transport::Keepalive {
        idle: Duration::from_secs(1),
        interval: Duration::from_secs(1),
        retries: 1,
    };
    let bound = keepalive.detection_bound();
    let errors = std::sync::Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let server = getty::TcpServer::new("127.0.0.1:0")
        .workers(1)
        .keepalive(keepalive)
        .user_timeout(bound)
        .start(move |_| Ok((Watch(seen.clone()), LengthDelimited::new())))
        .await
        .expect("server in the namespace");
    let addr = server.inet_addr().unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut peer = tokio_util::codec::Framed::new(stream, LengthDelimited::new());
    futures::SinkExt::send(&mut peer, Bytes::from_static(b"hello"))
        .await
        .unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut peer));
    assert!(matches!(echo.await, Ok(Some(Ok(_)))), "first echo");

    // Idle but alive: the kernel answers every probe, and the session stays.
    tokio::time::sleep(3 * bound).await;
    assert_eq!(server.stats().open_sessions, 1, "an idle live peer is kept");
    assert!(
        errors.lock().unwrap().is_empty(),
        "{:?}",
        errors.lock().unwrap()
    );

    // Vanished: nothing gets through any more.
    in_namespace(&ns, &["ip", "link", "set", "lo", "down"]);
    let down = std::time::Instant::now();
    let limit = bound + Duration::from_secs(5);
    while server.stats().open_sessions == 1 && down.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let detected = down.elapsed();
    println!("keepalive {keepalive:?}: vanished peer found after {detected:?} (bound {bound:?})");
    assert_eq!(server.stats().open_sessions, 0, "the session ended");
    let errors = errors.lock().unwrap().clone();
    assert!(
        matches!(
            errors.as_slice(),
            [err] if matches!(err.kind(), getty::ErrorKind::Io { source, .. } if source.kind() == std::io::ErrorKind::TimedOut)
        ),
        "one I/O error, timed out: {errors:?}"
    );
    assert!(detected <= bound + Duration::from_secs(2), "{detected:?}");
    drop(peer);
    server.stop().await;
}
