//! A client across repeated kill -9 of its server: it reconnects each time and leaks no
//! socket. Its own test binary, so the file-descriptor count is this test's alone.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::process::{start_example, ChildGuard};
use common::{open_fds, wait_until};
use getty::prelude::*;
use getty::{EventListener, LengthDelimited, SessionContext, TcpClient};

/// The echo_server example on `addr`, and the address it listens on.
fn echo_server(addr: &str) -> (ChildGuard, String) {
    start_example("echo_server", &["--addr", addr, "--threads", "1"])
}

struct Quiet;

impl EventListener for Quiet {
    type Codec = LengthDelimited;
    type Out = Bytes;
    fn on_open(&mut self, s: &mut SessionContext<'_, Self>) -> getty::Result<()> {
        s.write(Bytes::from_static(b"hello"))
    }
    fn on_message(&mut self, _: &mut SessionContext<'_, Self>, _: BytesMut) {}
}

#[actix::test]
async fn the_client_reconnects_after_each_kill_9_and_leaks_no_descriptor() {
    const N: usize = 4;
    let (mut server, addr) = echo_server("127.0.0.1:0");
    let client = TcpClient::new(addr.clone())
        .connections(N)
        .reconnect_interval(Duration::from_millis(50))
        .max_reconnect_interval(Duration::from_millis(400))
        .start(|_| Ok((Quiet, LengthDelimited::new())));
    wait_until(Duration::from_secs(10), "N sessions", || {
        client.stats().open_sessions == N
    })
    .await;
    let fds_before = open_fds();
    for round in 0..3 {
        server.child().kill().expect("kill -9"); // SIGKILL: no graceful anything
        server.child().wait().unwrap();
        wait_until(Duration::from_secs(10), "sessions lost", || {
            client.stats().open_sessions == 0
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await; // a few failed dials
        let (restarted, again) = echo_server(&addr);
        assert_eq!(again, addr, "round {round}: same port");
        server = restarted;
        wait_until(Duration::from_secs(10), "N sessions again", || {
            client.stats().open_sessions == N
        })
        .await;
        assert!(client.stats().live_sessions <= N);
    }
    let fds_after = open_fds();
    eprintln!(
        "fds before {fds_before}, after three kill -9 rounds {fds_after}; {:?}",
        client.stats()
    );
    assert!(
        fds_after <= fds_before,
        "descriptors leaked: {fds_before} -> {fds_after}"
    );
    client.stop().await;
    assert_eq!(client.stats().live_sessions, 0);
    drop(server); // killed
}
