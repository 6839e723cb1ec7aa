//! What is particular to Unix domain sockets: the socket file's life, and a client that
//! re-dials across server restarts. (Echo, close causes and backpressure over Unix
//! sockets are in `transports.rs`, shared with the other transports.)

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::rig::socket_path;
use common::*;
use getty::prelude::*;
use getty::{UnixClient, UnixServer};

/// Starts a one-worker echoing probe server on the Unix socket `path`.
async fn start_echo(path: &std::path::Path) -> getty::Result<getty::ServerHandle> {
    UnixServer::new(path)
        .workers(1)
        .start(Probe::hook(
            Default::default(),
            std::sync::Arc::new(Behaviour::echo()),
        ))
        .await
}

#[actix::test]
async fn a_stale_socket_file_is_a_clear_error_unless_removal_is_asked_for() {
    let path = socket_path();
    // A crashed run: bound, never cleaned up.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let err = start_echo(&path).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("stale socket file"), "{text}");
    assert!(text.contains("remove_stale_socket"), "{text}");
    let server = UnixServer::new(&path)
        .workers(1)
        .remove_stale_socket(true)
        .start(Probe::hook(Default::default(), Default::default()))
        .await
        .expect("starts after removing the stale file");
    server.stop().await;
    assert!(!path.exists(), "removed on stop");
}

#[actix::test]
async fn a_live_server_or_a_plain_file_at_the_path_is_never_removed() {
    let path = socket_path();
    let first = start_echo(&path).await.unwrap();
    let err = UnixServer::new(&path)
        .remove_stale_socket(true)
        .start(Probe::hook(Default::default(), Default::default()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already listening"), "{err}");
    // The first server is unharmed.
    let mut client = common::rig::Connector::Unix(path.clone()).framed().await;
    use futures::{SinkExt, StreamExt};
    client.send(Bytes::from_static(b"ok")).await.unwrap();
    assert_eq!(
        within(SECS5, client.next()).await.unwrap().unwrap(),
        &b"ok"[..]
    );
    first.stop().await;

    std::fs::write(&path, b"not a socket").unwrap();
    let err = UnixServer::new(&path)
        .remove_stale_socket(true)
        .start(Probe::hook(Default::default(), Default::default()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
    std::fs::remove_file(&path).unwrap();
}

#[actix::test]
async fn the_client_redials_after_the_server_restarts() {
    let path = socket_path();
    let server = start_echo(&path).await.unwrap();
    let events = ClientEvents::default();
    let (log, hook) = probe_client_hook(Behaviour::default());
    let client = UnixClient::new(&path)
        .connections(2)
        .reconnect_interval(Duration::from_millis(50))
        .on_event(events.hook())
        .start(hook);
    wait_until(SECS5, "2 sessions", || client.stats().open_sessions == 2).await;
    for session in log.sessions() {
        assert!(
            session.name().starts_with("unix-client:"),
            "{}",
            session.name()
        );
        assert_eq!(session.peer_addr().unix_path(), Some(path.as_path()));
    }

    server.stop().await;
    wait_until(SECS5, "sessions lost", || client.stats().open_sessions == 0).await;
    // Down for a while: dials fail (no socket file), with backoff, not a busy loop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let failures = client.stats().connect_failures;
    assert!(failures >= 1, "dials failed while the server was down");
    assert!(failures < 60, "{failures} dials in 300 ms is a busy loop");

    let again = start_echo(&path).await.unwrap();
    wait_until(Duration::from_secs(15), "2 sessions again", || {
        client.stats().open_sessions == 2
    })
    .await;
    assert_eq!(log.count(&Event::Open), 4);
    assert_eq!(log.count(&Event::Close), 2);
    assert_eq!(events.ups(), 4);
    client.stop().await;
    assert_eq!(log.count(&Event::Close), 4);
    again.stop().await;
    assert!(!path.exists());
}
