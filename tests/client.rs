//! The TCP client keeps N sessions, re-dials with a bounded backoff, and stops cleanly.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use getty::prelude::*;
use getty::{ClientEvent, ErrorKind, SessionConfig, TcpClient, TcpServer};

/// A TCP client of `server`, for the test to set its options on.
fn client_of(server: &getty::ServerHandle) -> TcpClient {
    TcpClient::new(server.inet_addr().unwrap().to_string())
}

/// A loopback port with nothing listening on it.
fn dead_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}

const MS50: Duration = Duration::from_millis(50);

#[actix::test]
async fn n_sessions_come_up_and_come_back_after_the_server_kills_them() {
    const N: usize = 3;
    let (server, server_log, _) =
        start_probe_server(Behaviour::echo(), SessionConfig::default()).await;
    let (client, _log) = start_probe_client(
        client_of(&server)
            .connections(N)
            .reconnect_interval(MS50)
            .max_reconnect_interval(Duration::from_millis(400)),
        Behaviour::default(),
    );
    wait_until(SECS5, "N sessions", || client.stats().open_sessions == N).await;
    for round in 0..3 {
        let before = server.stats().opened;
        for s in server_log.sessions().iter().filter(|s| !s.is_closed()) {
            s.close();
        }
        // Sample while the client re-dials: never more than N sessions or dials at once.
        let deadline = Instant::now() + SECS5;
        loop {
            let stats = client.stats();
            assert!(stats.live_sessions <= N, "round {round}: {stats:?}");
            if server.stats().opened >= before + N as u64 && stats.open_sessions == N {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: not back to {N}: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    client.stop().await;
    server.stop().await;
}

#[actix::test]
async fn the_client_rides_out_a_server_restart_on_the_same_port() {
    let (server, _, _) = start_probe_server(Behaviour::echo(), SessionConfig::default()).await;
    let addr = server.inet_addr().unwrap();
    let events = ClientEvents::default();
    let (client, log) = start_probe_client(
        TcpClient::new(addr.to_string())
            .connections(2)
            .reconnect_interval(MS50)
            .max_reconnect_interval(Duration::from_millis(400))
            .on_event(events.hook()),
        Behaviour::default(),
    );
    wait_until(SECS5, "2 sessions", || client.stats().open_sessions == 2).await;
    server.stop().await;
    wait_until(SECS5, "sessions lost", || client.stats().open_sessions == 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // down for a while: dials fail
    let failures_while_down = client.stats().connect_failures;
    assert!(failures_while_down >= 1);
    let (server, _, _) = start_probe_server_with(
        TcpServer::new(addr.to_string()).workers(1),
        Behaviour::echo(),
        SessionConfig::default(),
    )
    .await;
    // Within the backoff cap (400 ms) plus slack, both sessions are back.
    wait_until(SECS5, "2 sessions again", || {
        client.stats().open_sessions == 2
    })
    .await;
    for s in log.sessions().iter().filter(|s| !s.is_closed()) {
        s.write(Bytes::from_static(b"after restart"))
            .await
            .expect("writes go out again");
    }
    assert_eq!((events.ups(), events.downs()), (4, 2), "{:?}", events.all());
    assert!(events.dial_failures() >= 1);
    client.stop().await;
    server.stop().await;
}

#[actix::test]
async fn dials_to_a_dead_port_back_off_instead_of_spinning() {
    let client = TcpClient::new(dead_port())
        .reconnect_interval(MS50)
        .max_reconnect_interval(Duration::from_millis(400));
    let (client, _) = start_probe_client(client, Behaviour::default());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = client.stats();
    eprintln!("dead port, 2 s: {stats:?}");
    // Rounds at about 0, 50, 150, 350, 750, 1150, 1550, 1950 ms (jitter makes them a bit
    // earlier): 8, so 12 leaves slack for a slow machine, and a spin would be thousands.
    assert!((4..=12).contains(&stats.connect_attempts), "{stats:?}");
    assert!(
        stats.connect_failures + 1 >= stats.connect_attempts,
        "{stats:?}"
    );
    assert_eq!(stats.open_sessions, 0);
    client.stop().await;
}

#[actix::test]
async fn a_server_that_refuses_in_on_open_makes_the_client_back_off() {
    let (server, _, _) = start_probe_server(
        Behaviour {
            refuse: true,
            ..Default::default()
        },
        SessionConfig::default(),
    )
    .await;
    let (client, log) = start_probe_client(
        client_of(&server)
            .reconnect_interval(MS50)
            .max_reconnect_interval(Duration::from_millis(400)),
        Behaviour::default(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = client.stats();
    eprintln!(
        "refusing server, 2 s: {stats:?}, server {:?}",
        server.stats()
    );
    assert!((4..=12).contains(&stats.connect_attempts), "{stats:?}");
    assert!(server.stats().refused <= 12, "{:?}", server.stats());
    // Each client session opened, saw EOF, and closed once: on_close for every on_open.
    assert_eq!(
        log.count(&Event::Open),
        log.count(&Event::Close) + client.stats().open_sessions
    );
    client.stop().await;
    server.stop().await;
}

#[actix::test]
async fn stop_during_a_long_backoff_resolves_at_once_and_dials_no_more() {
    let client = TcpClient::new(dead_port())
        .reconnect_interval(Duration::from_millis(100))
        .max_reconnect_interval(Duration::from_secs(30));
    let (client, _) = start_probe_client(client, Behaviour::default());
    wait_until(SECS5, "a few failed rounds", || {
        client.stats().connect_failures >= 4
    })
    .await;
    // The next round is now 1.6 s or more away.
    let started = Instant::now();
    within(Duration::from_secs(1), client.stop()).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    let attempts = client.stats().connect_attempts;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        client.stats().connect_attempts,
        attempts,
        "no dial after stop"
    );
}

/// Rules: no lock is held across a close, and stop and re-dial are messages to one
/// supervisor; every failure feeds the same backoff. So stopping while sessions fail and
/// re-dial never deadlocks.
#[actix::test]
async fn stop_while_sessions_fail_and_redial_never_hangs() {
    let behaviour = Behaviour {
        close_on: Some(b"x"),
        echo: true,
        ..Default::default()
    };
    let (server, _, _) = start_probe_server(behaviour, SessionConfig::default()).await;
    for round in 0..20 {
        let mut config = SessionConfig::default();
        config.wait_time = Duration::from_millis(200);
        let (client, log) = start_probe_client(
            client_of(&server)
                .connections(4)
                .reconnect_interval(Duration::from_millis(5))
                .max_reconnect_interval(Duration::from_millis(20))
                .session_config(config),
            Behaviour::default(),
        );
        // Make the server drop sessions as they come, while the client re-dials.
        for _ in 0..5 {
            for s in log.sessions().iter().filter(|s| !s.is_closed()) {
                let _ = s.write(Bytes::from_static(b"x")).await;
            }
            tokio::time::sleep(Duration::from_millis(3 + round % 7)).await;
        }
        within(Duration::from_secs(2), client.stop()).await;
        assert_eq!(client.stats().live_sessions, 0, "round {round}");
        assert_eq!(
            log.count(&Event::Open),
            log.count(&Event::Close),
            "round {round}: on_close for each"
        );
    }
    wait_until(SECS5, "server sessions gone", || {
        server.stats().live_sessions == 0
    })
    .await;
    server.stop().await;
}

#[actix::test]
async fn writes_on_a_closed_client_session_return_closed() {
    let (server, server_log, _) =
        start_probe_server(Behaviour::default(), SessionConfig::default()).await;
    let (client, log) = start_probe_client(
        client_of(&server).reconnect_interval(Duration::from_secs(5)),
        Behaviour::default(),
    );
    wait_until(SECS5, "open", || client.stats().open_sessions == 1).await;
    let session = log.sessions()[0].clone();
    assert!(session.write(Bytes::from_static(b"one")).await.is_ok());
    server_log
        .wait_for(SECS5, "frame", |e| {
            e.iter()
                .any(|(_, ev)| *ev == Event::Message(Bytes::from_static(b"one")))
        })
        .await;
    server_log.sessions()[0].close();
    within(SECS5, session.closed()).await;
    let err = session.write(Bytes::from_static(b"two")).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Closed), "{err:?}");
    client.stop().await;
    server.stop().await;
}

#[actix::test]
async fn dropping_the_last_handle_stops_the_client() {
    let (server, _, _) = start_probe_server(Behaviour::default(), SessionConfig::default()).await;
    let (client, log) = start_probe_client(client_of(&server).connections(2), Behaviour::default());
    wait_until(SECS5, "2 sessions", || server.stats().open_sessions == 2).await;
    let copy = client.clone();
    drop(client);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        server.stats().open_sessions,
        2,
        "a clone still holds the client"
    );
    drop(copy);
    wait_until(SECS5, "client sessions closed", || {
        server.stats().open_sessions == 0
    })
    .await;
    wait_until(SECS5, "on_close for each", || log.count(&Event::Close) == 2).await;
    let opened = server.stats().opened;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        server.stats().opened,
        opened,
        "no re-dial after the client stopped"
    );
    server.stop().await;
}

/// `SessionUp` carries the session's handle and address, and `ClientHandle::sessions`
/// lists the open sessions: an application can write to a client's sessions from
/// outside the callbacks, and after a reconnect it meets the new session in both.
#[actix::test]
async fn session_up_carries_the_handle_and_the_client_lists_its_sessions() {
    let (server, server_log, _) = start_probe_server(
        Behaviour {
            quiet: false,
            ..Default::default()
        },
        SessionConfig::default(),
    )
    .await;
    let ups = Rc::new(RefCell::new(Vec::new()));
    let seen = ups.clone();
    let (client, _log) = start_probe_client(
        client_of(&server)
            .connections(2)
            .reconnect_interval(MS50)
            .on_event(move |event| {
                if let ClientEvent::SessionUp { id, peer, session } = event {
                    assert_eq!(session.id(), id);
                    seen.borrow_mut().push((peer, session));
                }
            }),
        Behaviour::default(),
    );
    wait_until(SECS5, "2 sessions", || client.stats().open_sessions == 2).await;
    let listed = client.sessions();
    assert_eq!(listed.len(), 2);
    assert_eq!(ups.borrow().len(), 2);
    let up_now: Vec<_> = ups.borrow().clone();
    for (peer, session) in &up_now {
        assert_eq!(peer.to_string(), server.inet_addr().unwrap().to_string());
        assert!(listed.iter().any(|s| s.id() == session.id()));
        assert!(session.downcast::<String>().is_none(), "not its frame type");
        let typed = session.downcast::<Bytes>().expect("a Bytes session");
        typed
            .write(Bytes::from_static(b"from outside"))
            .await
            .unwrap();
    }
    server_log
        .wait_for(SECS5, "both writes", |e| {
            e.iter()
                .filter(|(_, ev)| *ev == Event::Message(Bytes::from_static(b"from outside")))
                .count()
                == 2
        })
        .await;

    // Lose one: the list drops it, the re-dialed one joins it and its SessionUp.
    let first = listed[0].clone();
    first.close();
    first.downcast::<Bytes>().unwrap().closed().await;
    wait_until(SECS5, "re-dialed", || {
        let now = client.sessions();
        now.len() == 2 && now.iter().all(|s| s.id() != first.id())
    })
    .await;
    assert_eq!(ups.borrow().len(), 3);
    let newest = ups.borrow()[2].1.clone();
    assert!(client.sessions().iter().any(|s| s.id() == newest.id()));
    client.stop().await;
    assert!(client.sessions().is_empty(), "none open after stop");
    server.stop().await;
}

/// `local_addr` binds every dial: the server sees the client's connections come from the
/// address and port given, the first one and the re-dial after the server closed it.
#[actix::test]
async fn a_client_with_a_local_address_dials_from_it_and_again_after_a_loss() {
    let (server, server_log, _) =
        start_probe_server(Behaviour::echo(), SessionConfig::default()).await;
    let local: std::net::SocketAddr = dead_port().parse().unwrap();
    let (client, _log) = start_probe_client(
        client_of(&server)
            .local_addr(local)
            .reconnect_interval(MS50),
        Behaviour::default(),
    );
    let first = server_log.first_session().await;
    assert_eq!(first.peer_addr(), &getty::Address::Inet(local));
    first.close();
    wait_until(SECS5, "the re-dial", || {
        server.stats().opened == 2 && client.stats().open_sessions == 1
    })
    .await;
    let sessions = server_log.sessions();
    let second = sessions
        .iter()
        .find(|s| !s.is_closed())
        .expect("a live session");
    assert_eq!(second.peer_addr(), &getty::Address::Inet(local));
    client.stop().await;
    server.stop().await;
}

/// Failover: the first address is dead, so every dial ends on the second, and each
/// session's `SessionUp` names the server it reached.
#[actix::test]
async fn a_dead_first_server_fails_over_to_the_next() {
    let (server, _, _) = start_probe_server(Behaviour::echo(), SessionConfig::default()).await;
    let live = server.inet_addr().unwrap();
    let events = ClientEvents::default();
    let (client, _) = start_probe_client(
        TcpClient::new(dead_port())
            .add_server(live.to_string())
            .connections(2)
            .reconnect_interval(MS50)
            .on_event(events.hook()),
        Behaviour::default(),
    );
    wait_until(SECS5, "two sessions", || client.stats().open_sessions == 2).await;
    let peers: Vec<_> = events
        .all()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::SessionUp { peer, .. } => Some(peer),
            _ => None,
        })
        .collect();
    assert_eq!(peers.len(), 2);
    assert!(peers.iter().all(|p| *p == live), "{peers:?}");
    let stats = client.stats();
    assert_eq!(
        (stats.connect_attempts, stats.connect_failures),
        (2, 0),
        "one dial per session, each failing over within itself: {stats:?}"
    );
    within(SECS5, client.stop()).await;
    server.stop().await;
}

/// Round robin: a pool of four over two servers puts two sessions on each.
#[actix::test]
async fn round_robin_spreads_the_pool_over_the_servers() {
    let (a, _, _) = start_probe_server(Behaviour::echo(), SessionConfig::default()).await;
    let (b, _, _) = start_probe_server(Behaviour::echo(), SessionConfig::default()).await;
    let (client, _) = start_probe_client(
        client_of(&a)
            .add_server(b.inet_addr().unwrap().to_string())
            .spread(getty::Spread::RoundRobin)
            .connections(4),
        Behaviour::default(),
    );
    wait_until(SECS5, "four sessions", || client.stats().open_sessions == 4).await;
    wait_until(SECS5, "two on each server", || {
        a.stats().open_sessions == 2 && b.stats().open_sessions == 2
    })
    .await;
    within(SECS5, client.stop()).await;
    a.stop().await;
    b.stop().await;
}

/// A bounded client gives up after its limit of failed dials in a row: one `GaveUp`
/// with the last error, `gave_up` in its stats, and no dial after it.
#[actix::test]
async fn a_client_with_max_reconnect_attempts_gives_up_and_says_so() {
    let events = ClientEvents::default();
    let (client, _) = start_probe_client(
        TcpClient::new(dead_port())
            .reconnect_interval(Duration::from_millis(5))
            .max_reconnect_interval(Duration::from_millis(20))
            .max_reconnect_attempts(3)
            .on_event(events.hook()),
        Behaviour::default(),
    );
    wait_until(SECS5, "gave up", || client.stats().gave_up).await;
    let gave_up: Vec<_> = events
        .all()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::GaveUp {
                failed_dials,
                error,
            } => Some((failed_dials, error)),
            _ => None,
        })
        .collect();
    assert_eq!(gave_up.len(), 1, "{gave_up:?}");
    assert_eq!(gave_up[0].0, 3);
    assert!(
        matches!(gave_up[0].1.kind(), ErrorKind::Io { source, .. } if source.kind() == std::io::ErrorKind::ConnectionRefused),
        "{:?}",
        gave_up[0].1
    );
    assert_eq!(events.dial_failures(), 3);
    // Ten times the longest backoff later, still no fourth dial.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = client.stats();
    assert_eq!(
        (stats.connect_attempts, stats.connect_failures),
        (3, 3),
        "{stats:?}"
    );
    within(SECS5, client.stop()).await;
}
