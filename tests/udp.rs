//! UDP endpoints over real loopback sockets: the unconnected server (one session, frames
//! with their peer), per-peer sessions, and the connected client.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use getty::prelude::*;
use getty::{
    Datagram, Datagrams, Error, ErrorKind, EventListener, LengthDelimited, ServerHandle, Session,
    SessionConfig, SessionContext, SessionId, UdpClient, UdpServer,
};
use tokio::net::UdpSocket;

/// Length-delimited bytes of one frame.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut wire = (payload.len() as u32).to_be_bytes().to_vec();
    wire.extend_from_slice(payload);
    wire
}

/// A loopback peer that is not this crate: a plain tokio socket.
async fn peer() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.expect("bind a peer")
}

/// Receives one datagram (5 s at most).
async fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 70_000];
    let (n, from) = within(SECS5, socket.recv_from(&mut buf))
        .await
        .expect("recv");
    buf.truncate(n);
    (buf, from)
}

/// What the unconnected server's listener saw.
#[derive(Default)]
struct Seen {
    frames: Mutex<Vec<(SocketAddr, Bytes)>>,
    errors: Mutex<Vec<Error>>,
    closes: Mutex<usize>,
}

/// Echoes each frame to the peer that sent it, and records everything.
struct DatagramEcho(Arc<Seen>);

impl EventListener for DatagramEcho {
    type Codec = Datagrams<LengthDelimited>;
    type Out = Datagram<Bytes>;

    fn on_message(&mut self, s: &mut SessionContext<'_, Self>, d: Datagram<BytesMut>) {
        let payload = d.frame.freeze();
        self.0
            .frames
            .lock()
            .unwrap()
            .push((d.peer, payload.clone()));
        s.write(Datagram::new(d.peer, payload))
            .expect("echo queued");
    }

    fn on_error(&mut self, session: &Session<Datagram<Bytes>>, error: &Error) {
        assert_eq!(
            error.session(),
            Some(session.id()),
            "errors name their session"
        );
        self.0.errors.lock().unwrap().push(error.clone());
    }

    fn on_close(&mut self, _: &Session<Datagram<Bytes>>) {
        *self.0.closes.lock().unwrap() += 1;
    }
}

/// Starts `server` with a listener that echoes every datagram to its sender and records
/// what it saw in the returned [`Seen`].
async fn start_datagram_echo(
    server: UdpServer,
) -> (ServerHandle, Session<Datagram<Bytes>>, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let handle = server
        .start_shared(move |_| {
            Ok((
                DatagramEcho(s.clone()),
                Datagrams::new(LengthDelimited::new()),
            ))
        })
        .await
        .expect("udp server starts");
    let session = handle.shared_session().expect("the shared session");
    (handle, session, seen)
}

#[actix::test]
async fn unconnected_server_echoes_to_each_peer_and_counts_datagrams() {
    let (server, session, seen) = start_datagram_echo(UdpServer::new("127.0.0.1:0")).await;
    let peers = [peer().await, peer().await, peer().await, peer().await];
    const EACH: usize = 20;
    for round in 0..EACH {
        for (i, p) in peers.iter().enumerate() {
            let payload = format!("peer {i} frame {round}");
            p.send_to(&frame(payload.as_bytes()), server.inet_addr().unwrap())
                .await
                .unwrap();
        }
    }
    for (i, p) in peers.iter().enumerate() {
        let mut got = Vec::new();
        for _ in 0..EACH {
            let (datagram, from) = recv(p).await;
            assert_eq!(from, server.inet_addr().unwrap());
            got.push(String::from_utf8(datagram[4..].to_vec()).unwrap());
        }
        for round in 0..EACH {
            let want = format!("peer {i} frame {round}");
            assert!(got.contains(&want), "peer {i} missed {want:?}: {got:?}");
        }
    }
    let frames = seen.frames.lock().unwrap().clone();
    assert_eq!(frames.len(), 4 * EACH);
    for (from, payload) in &frames {
        let i = usize::from(payload[5] - b'0'); // "peer {i} ..."

        assert_eq!(
            *from,
            peers[i].local_addr().unwrap(),
            "frame tagged with its peer"
        );
    }
    let wire: u64 = frames.iter().map(|(_, p)| 4 + p.len() as u64).sum();
    wait_until(SECS5, "writes counted", || {
        session.stats().bytes_written == wire
    })
    .await;
    let stats = session.stats();
    assert_eq!(stats.frames_read, 4 * EACH as u64);
    assert_eq!(stats.bytes_read, wire, "payload bytes, no envelope");
    assert_eq!(stats.frames_written, 4 * EACH as u64);
    assert_eq!(stats.soft_errors, 0);
    assert_eq!(
        session.peer_addr().to_string(),
        "*",
        "the shared session has no one peer"
    );
    server.stop().await;
    assert_eq!(*seen.closes.lock().unwrap(), 1);
    assert!(session.is_closed());
}

#[actix::test]
async fn bad_datagrams_from_one_peer_are_reported_and_others_are_still_served() {
    let (server, session, seen) =
        start_datagram_echo(UdpServer::new("127.0.0.1:0").max_datagram_size(1024)).await;
    let (bad, good) = (peer().await, peer().await);
    let to = server.inet_addr().unwrap();
    let truncated = b"\0\0\0\x09abc".to_vec(); // announces 9, carries 3
    let left_over = b"\0\0\0\x01ab".to_vec(); // one frame and a stray byte
    let oversized = frame(&[7u8; 1500]); // past the 1024-byte max datagram
    let empty = Vec::new();
    for garbage in [&truncated, &left_over, &oversized, &empty] {
        bad.send_to(garbage, to).await.unwrap();
        good.send_to(&frame(b"still here"), to).await.unwrap();
        let (echo, _) = recv(&good).await;
        assert_eq!(echo, frame(b"still here"));
    }
    wait_until(SECS5, "four errors", || {
        seen.errors.lock().unwrap().len() == 4
    })
    .await;
    // Three decode errors and one frame too long, in any order.
    let errors = seen.errors.lock().unwrap().clone();
    let decode = errors
        .iter()
        .filter(|e| matches!(e.kind(), ErrorKind::Decode { .. }))
        .count();
    let too_long = errors
        .iter()
        .filter(|e| matches!(e.kind(), ErrorKind::FrameTooLong { .. }))
        .count();
    assert_eq!((errors.len(), decode, too_long), (4, 3, 1), "{errors:?}");
    assert_eq!(session.stats().soft_errors, 4);
    // The decoder starts over after a bad datagram: the bad peer is served again too.
    bad.send_to(&frame(b"sorry"), to).await.unwrap();
    assert_eq!(recv(&bad).await.0, frame(b"sorry"));
    assert!(!session.is_closed());
    assert_eq!(
        *seen.closes.lock().unwrap(),
        0,
        "no on_close for a bad datagram"
    );
    server.stop().await;
    assert_eq!(*seen.closes.lock().unwrap(), 1);
}

#[actix::test]
async fn unconnected_writes_past_the_max_or_without_a_peer_are_refused_and_send_errors_fail_only_their_write(
) {
    let (server, session, seen) =
        start_datagram_echo(UdpServer::new("127.0.0.1:0").max_datagram_size(100)).await;
    let p = peer().await;
    let to = p.local_addr().unwrap();
    // 96 bytes of payload + 4 of header = 100: fits. One more does not.
    session
        .write(Datagram::new(to, Bytes::from(vec![1u8; 96])))
        .await
        .expect("a datagram at the max is sent");
    assert_eq!(recv(&p).await.0.len(), 100);
    let err = session
        .write(Datagram::new(to, Bytes::from(vec![1u8; 97])))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::FrameTooLong {
                len: 101,
                max: 100,
                ..
            }
        ),
        "{err}"
    );
    let err = session
        .write_bytes(Bytes::from_static(b"raw"))
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Encode { .. }), "{err}");
    // The OS refuses to send an IPv6 destination on an IPv4 socket: that write fails,
    // on_error hears it, and the session goes on.
    let nowhere: SocketAddr = "[::1]:9".parse().unwrap();
    let err = session
        .write(Datagram::new(nowhere, Bytes::from_static(b"x")))
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Io { .. }), "{err}");
    session
        .write(Datagram::new(to, Bytes::from_static(b"after")))
        .await
        .expect("the session goes on");
    assert_eq!(recv(&p).await.0, frame(b"after"));
    let errors = seen.errors.lock().unwrap().clone();
    assert!(
        matches!(errors.as_slice(), [e] if matches!(e.kind(), ErrorKind::Io { .. })),
        "{errors:?}"
    );
    assert_eq!(session.stats().soft_errors, 1);
    assert!(!session.is_closed());
    server.stop().await;
}

/// Starts a per-peer echo server of probes; `refuse_port` names a peer the hook refuses.
async fn start_per_peer(server: UdpServer, refuse_port: Option<u16>) -> (ServerHandle, Arc<Log>) {
    let log = Arc::new(Log::default());
    let behaviour = Arc::new(Behaviour::echo());
    let l = log.clone();
    let handle = server
        .start_per_peer(move |setup| {
            if setup.peer_addr().inet().map(|a| a.port()) == refuse_port {
                return Err(Error::refused("not this one"));
            }
            let probe = Probe {
                log: l.clone(),
                behaviour: behaviour.clone(),
            };
            Ok((probe, LengthDelimited::new()))
        })
        .await
        .expect("per-peer server starts");
    (handle, log)
}

#[actix::test]
async fn per_peer_sessions_each_have_their_own_listener_and_peer() {
    let (server, log) = start_per_peer(UdpServer::new("127.0.0.1:0"), None).await;
    let peers = [peer().await, peer().await, peer().await];
    for round in 0..5 {
        for (i, p) in peers.iter().enumerate() {
            let payload = format!("{i}:{round}");
            p.send_to(&frame(payload.as_bytes()), server.inet_addr().unwrap())
                .await
                .unwrap();
            assert_eq!(
                recv(p).await.0,
                frame(payload.as_bytes()),
                "echo to its peer"
            );
        }
    }
    let sessions = log.sessions();
    assert_eq!(sessions.len(), 3, "one session per peer");
    for session in &sessions {
        let i = peers
            .iter()
            .position(|p| *session.peer_addr() == p.local_addr().unwrap())
            .expect("a session per peer address");
        let messages: Vec<Event> = log
            .of(session.id())
            .into_iter()
            .filter(|e| matches!(e, Event::Message(_)))
            .collect();
        let want: Vec<Event> = (0..5)
            .map(|r| Event::Message(Bytes::from(format!("{i}:{r}"))))
            .collect();
        assert_eq!(
            messages, want,
            "a listener sees only its own peer, in order"
        );
        assert_eq!(session.stats().frames_read, 5);
        assert_eq!(session.stats().bytes_written, 5 * 7);
        assert_eq!(*session.local_addr(), server.inet_addr().unwrap());
    }
    let udp = server.udp_stats();
    assert_eq!(udp.datagrams, 15);
    assert_eq!(udp.bytes, 15 * 7);
    assert_eq!(server.stats().open_sessions, 3);
    server.stop().await;
    assert_eq!(log.count(&Event::Close), 3, "on_close for every session");
    assert_eq!(server.stats().open_sessions, 0);
}

#[actix::test]
async fn per_peer_refusals_by_the_hook_and_by_the_bound_are_counted() {
    let refused_peer = peer().await;
    let refused_port = refused_peer.local_addr().unwrap().port();
    let (server, log) = start_per_peer(
        UdpServer::new("127.0.0.1:0")
            .max_connections(2)
            .peer_idle_timeout(Duration::from_millis(300)),
        Some(refused_port),
    )
    .await;
    let to = server.inet_addr().unwrap();
    // The hook refuses this peer at each of its datagrams.
    for _ in 0..3 {
        refused_peer
            .send_to(&frame(b"let me in"), to)
            .await
            .unwrap();
    }
    wait_until(SECS5, "three refusals", || server.stats().refused == 3).await;
    let (a, b, c) = (peer().await, peer().await, peer().await);
    for p in [&a, &b] {
        p.send_to(&frame(b"hi"), to).await.unwrap();
        assert_eq!(recv(p).await.0, frame(b"hi"));
    }
    // Past the bound: dropped and counted, no session, no answer.
    c.send_to(&frame(b"hi"), to).await.unwrap();
    wait_until(SECS5, "the bound refuses", || server.stats().refused == 4).await;
    assert_eq!(server.stats().open_sessions, 2);
    let mut buf = [0u8; 64];
    let silent = tokio::time::timeout(Duration::from_millis(100), c.recv_from(&mut buf)).await;
    assert!(silent.is_err(), "a refused peer gets nothing");
    // Once a and b expire, c gets in.
    wait_until(SECS5, "idle expiry", || server.stats().open_sessions == 0).await;
    c.send_to(&frame(b"now"), to).await.unwrap();
    assert_eq!(recv(&c).await.0, frame(b"now"));
    assert_eq!(log.count(&Event::Open), 3);
    server.stop().await;
}

#[actix::test]
async fn per_peer_idle_sessions_expire_with_one_on_close_and_come_back() {
    let (server, log) = start_per_peer(
        UdpServer::new("127.0.0.1:0").peer_idle_timeout(Duration::from_millis(200)),
        None,
    )
    .await;
    let p = peer().await;
    p.send_to(&frame(b"one"), server.inet_addr().unwrap())
        .await
        .unwrap();
    assert_eq!(recv(&p).await.0, frame(b"one"));
    let first = log.sessions()[0].id();
    log.wait_for(SECS5, "expiry", |e| {
        e.iter().any(|(_, ev)| *ev == Event::Close)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await; // room for a second on_close
    let events = log.of(first);
    assert!(
        matches!(
            events.as_slice(),
            [Event::Open, Event::Message(one), error, Event::Close]
                if one == &Bytes::from_static(b"one")
                    && error.is_error(|k| matches!(k, ErrorKind::ReadTimeout { .. }))
        ),
        "{events:?}"
    );
    // The peer's next datagram opens a new session.
    p.send_to(&frame(b"two"), server.inet_addr().unwrap())
        .await
        .unwrap();
    assert_eq!(recv(&p).await.0, frame(b"two"));
    let sessions = log.sessions();
    assert_eq!(sessions.len(), 2);
    assert_ne!(sessions[1].id(), first);
    assert_eq!(server.stats().closed, 1);
    server.stop().await;
    assert_eq!(log.count(&Event::Close), 2);
}

#[actix::test]
async fn per_peer_full_queue_drops_and_counts_without_holding_up_other_peers() {
    let (server, log) = start_per_peer(UdpServer::new("127.0.0.1:0").peer_queue(2), None).await;
    let (flood, calm) = (peer().await, peer().await);
    const BURST: u64 = 300;
    // Sent before the server's arbiter runs again: the demultiplexer finds a burst.
    for i in 0..BURST {
        flood
            .send_to(
                &frame(format!("{i}").as_bytes()),
                server.inet_addr().unwrap(),
            )
            .await
            .unwrap();
    }
    calm.send_to(&frame(b"calm"), server.inet_addr().unwrap())
        .await
        .unwrap();
    assert_eq!(recv(&calm).await.0, frame(b"calm"));
    wait_until(SECS5, "every datagram seen", || {
        server.udp_stats().datagrams == BURST + 1
    })
    .await;
    let flood_session = log
        .sessions()
        .into_iter()
        .find(|s| *s.peer_addr() == flood.local_addr().unwrap())
        .expect("the flooding peer has a session");
    let dropped = server.udp_stats().dropped;
    wait_until(SECS5, "read or dropped", || {
        flood_session.stats().frames_read + dropped == BURST
    })
    .await;
    assert!(dropped > 0, "a queue of 2 cannot hold a burst of {BURST}");
    server.stop().await;
}

#[actix::test]
async fn connected_client_echoes_runs_cron_and_counts() {
    let (server, _, _) = start_datagram_echo(UdpServer::new("127.0.0.1:0")).await;
    let mut config = SessionConfig::default();
    config.cron_period = Duration::from_millis(30);
    let client = UdpClient::new(server.inet_addr().unwrap().to_string()).session_config(config);
    let (client, log) = start_udp_probe_client(client);
    log.wait_for(SECS5, "open", |e| {
        e.iter().any(|(_, ev)| *ev == Event::Open)
    })
    .await;
    let session = log.sessions()[0].clone();
    assert_eq!(*session.peer_addr(), server.inet_addr().unwrap());
    for i in 0..10 {
        session
            .write(Bytes::from(format!("ping {i}")))
            .await
            .unwrap();
    }
    log.wait_for(SECS5, "echoes and crons", |e| {
        let echoes = e
            .iter()
            .filter(|(_, ev)| matches!(ev, Event::Message(_)))
            .count();
        let crons = e.iter().filter(|(_, ev)| *ev == Event::Cron).count();
        echoes == 10 && crons >= 2
    })
    .await;
    let stats = session.stats();
    assert_eq!((stats.frames_written, stats.frames_read), (10, 10));
    assert_eq!(stats.bytes_written, 10 * 10);
    assert_eq!(stats.bytes_read, 10 * 10);
    assert!(session.last_active().elapsed() < SECS5);
    client.stop().await;
    assert_eq!(log.count(&Event::Close), 1);
    server.stop().await;
}

/// Starts `client` with plain probes (recording, not echoing) as its sessions' listeners.
fn start_udp_probe_client(client: UdpClient) -> (getty::ClientHandle, Arc<Log>) {
    let (log, hook) = probe_client_hook(Behaviour::default());
    (client.start(hook), log)
}

#[actix::test]
async fn client_of_a_closed_port_hears_port_unreachable_and_keeps_its_session() {
    let closed = peer().await;
    let addr = closed.local_addr().unwrap();
    drop(closed); // nobody listens there now: the kernel answers with ICMP
    let (client, log) = start_udp_probe_client(UdpClient::new(addr.to_string()));
    log.wait_for(SECS5, "open", |e| {
        e.iter().any(|(_, ev)| *ev == Event::Open)
    })
    .await;
    let session = log.sessions()[0].clone();
    let mut write_errors = 0;
    for _ in 0..20 {
        if let Err(err) = session.write(Bytes::from_static(b"anyone?")).await {
            assert!(matches!(err.kind(), ErrorKind::Io { .. }), "{err}");
            write_errors += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    log.wait_for(SECS5, "an io error", |e| {
        e.iter()
            .any(|(_, ev)| ev.is_error(|k| matches!(k, ErrorKind::Io { .. })))
    })
    .await;
    assert!(
        !session.is_closed(),
        "port unreachable does not end a UDP session"
    );
    assert_eq!(log.count(&Event::Close), 0);
    let reported = log
        .events()
        .iter()
        .filter(|(_, ev)| ev.is_error(|k| matches!(k, ErrorKind::Io { .. })))
        .count() as u64;
    assert_eq!(session.stats().soft_errors, reported);
    assert!(
        reported >= write_errors,
        "every failed write was also reported"
    );
    assert_eq!(client.stats().open_sessions, 1);
    client.stop().await;
    assert_eq!(log.count(&Event::Close), 1);
}

#[actix::test]
async fn client_writes_past_the_max_datagram_are_frame_too_long() {
    let (server, _, seen) = start_datagram_echo(UdpServer::new("127.0.0.1:0")).await;
    let client = UdpClient::new(server.inet_addr().unwrap().to_string()).max_datagram_size(64);
    let (client, log) = start_udp_probe_client(client);
    log.wait_for(SECS5, "open", |e| {
        e.iter().any(|(_, ev)| *ev == Event::Open)
    })
    .await;
    let session = log.sessions()[0].clone();
    let err = session.write(Bytes::from(vec![0u8; 61])).await.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::FrameTooLong {
                len: 65,
                max: 64,
                ..
            }
        ),
        "{err}"
    );
    session
        .write(Bytes::from(vec![0u8; 60]))
        .await
        .expect("64 bytes fit");
    wait_until(SECS5, "the server got it", || {
        seen.frames.lock().unwrap().len() == 1
    })
    .await;
    assert!(!session.is_closed());
    client.stop().await;
    server.stop().await;
}

#[actix::test]
async fn stop_closes_every_session_once_and_releases_the_sockets() {
    let (per_peer, log) = start_per_peer(UdpServer::new("127.0.0.1:0"), None).await;
    let (shared, shared_session, seen) = start_datagram_echo(UdpServer::new("127.0.0.1:0")).await;
    let (client, client_log) =
        start_udp_probe_client(UdpClient::new(shared.inet_addr().unwrap().to_string()));
    let peers = [peer().await, peer().await, peer().await];
    for p in &peers {
        p.send_to(&frame(b"x"), per_peer.inet_addr().unwrap())
            .await
            .unwrap();
        recv(p).await;
    }
    client_log
        .wait_for(SECS5, "client open", |e| {
            e.iter().any(|(_, ev)| *ev == Event::Open)
        })
        .await;
    let client_addr = client_log.sessions()[0]
        .local_addr()
        .inet()
        .expect("an internet address");
    let ids: Vec<SessionId> = log.sessions().iter().map(|s| s.id()).collect();
    per_peer.stop().await;
    client.stop().await;
    shared.stop().await;
    let mut closes: HashMap<SessionId, usize> = HashMap::new();
    for (id, event) in log.events() {
        if event == Event::Close {
            *closes.entry(id).or_default() += 1;
        }
    }
    for id in ids {
        assert_eq!(closes.get(&id), Some(&1), "{id} closed once");
    }
    assert_eq!(client_log.count(&Event::Close), 1);
    assert_eq!(*seen.closes.lock().unwrap(), 1);
    assert!(shared_session.is_closed());
    // Every socket is closed: each address can be bound again without SO_REUSEADDR.
    for addr in [
        per_peer.inet_addr().unwrap(),
        shared.inet_addr().unwrap(),
        client_addr,
    ] {
        let mut rebound = None;
        for _ in 0..100 {
            if let Ok(s) = std::net::UdpSocket::bind(addr) {
                rebound = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(rebound.is_some(), "{addr} still bound after stop");
    }
}
