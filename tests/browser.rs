//! A real browser as the WebSocket client: headless Chromium runs a page whose
//! JavaScript sends length-delimited frames to the WebSocket echo server and checks every
//! echo. The page is served by this test on 127.0.0.1, and reports back to it by HTTP.
//!
//! Needs `chromium` on the PATH (Debian package `chromium`; `.ci/run` installs it).

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use bytes::{Bytes, BytesMut};
use getty::ws::WsServer;
use getty::{EventListener, LengthDelimited, SessionContext};
use tokio::sync::mpsc;

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
ws.onclose = (ev) => report(`echoed=${{echoed}}&messages=${{messages}}&bad=${{bad}}&code=${{ev.code}}`);
</script></body></html>"#
    )
}

/// Chromium, stopped (SIGTERM, then SIGKILL) when dropped.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium() -> String {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if found {
            return name.to_owned();
        }
    }
    panic!(
        "this test needs a real browser: install Debian's chromium \
         (apt-get install -y chromium), as .ci/run does"
    );
}

#[actix_rt::test]
async fn headless_chromium_round_trips_binary_frames_with_the_ws_echo_server() {
    let browser_bin = chromium();
    let server = WsServer::new("127.0.0.1:0")
        .path("/ws")
        .workers(1)
        .start(|setup| {
            let max = setup.config().max_frame_length;
            Ok((Echo, LengthDelimited::with_max_frame_length(max)))
        })
        .await
        .expect("ws server starts");
    let ws_url = format!("ws://{}/ws", server.local_addr());

    // The page's own HTTP server: serves it, and takes its report.
    let (tx, mut reports) = mpsc::unbounded_channel::<String>();
    let tx = web::Data::new(Mutex::new(tx));
    let html = page(&ws_url);
    let http = HttpServer::new(move || {
        let html = html.clone();
        App::new()
            .app_data(tx.clone())
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

    let profile = std::env::temp_dir().join(format!("getty-chromium-{}", std::process::id()));
    let browser = Browser(
        Command::new(&browser_bin)
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
    assert_eq!(
        report,
        format!("echoed={FRAMES}&messages={FRAMES}&bad=0&code=1000"),
        "every frame echoed intact, one message each, closed normally"
    );
    // The browser's close ran the handshake: the session closed once, without error.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.stats().closed < 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = server.stats();
    assert_eq!((stats.opened, stats.closed, stats.live_sessions), (1, 1, 0));
    http_handle.stop(false).await;
    server.stop().await;
    let _ = std::fs::remove_dir_all(profile);
}
