//! A Prometheus page fetched over plain HTTP/1.1 (a std socket, no HTTP library) and
//! read line by line: how the tests check what `echo_server --metrics-addr` serves.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The body of `GET /metrics` at `addr` (10 s at most); panics unless the answer is 200.
pub fn scrape(addr: &str) -> String {
    let mut http = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    http.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    http.write_all(request.as_bytes())
        .expect("send the request");
    let mut answer = String::new();
    http.read_to_string(&mut answer).expect("the answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The value of the sample `series` (a name with its labels, as the page writes them,
/// e.g. `getty_sessions_open{endpoint="tcp"}`) on `page`, if it is there.
pub fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// Scrapes `addr` every 50 ms until `cond` holds for the page (at most 400 times and
/// 20 s); returns that page, or panics naming `what`.
pub fn scrape_until(addr: &str, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    for _ in 0..400 {
        let page = scrape(addr);
        if cond(&page) {
            return page;
        }
        if start.elapsed() > Duration::from_secs(20) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: not seen at {addr} within 20 s:\n{}", scrape(addr));
}
