//! Hostile peers over real sockets: each loses at most its own session, with the right
//! error, while the other sessions keep echoing.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use getty::{ErrorKind, SessionConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Starts an echo server with `config` and one well-behaved client that has echoed once.
async fn server_with_bystander(
    config: SessionConfig,
) -> (getty::ServerHandle, std::sync::Arc<Log>, Client) {
    let (server, log, _) = start_probe_server(Behaviour::echo(), config).await;
    let mut bystander = connect(&server).await;
    round_trip(&mut bystander, b"bystander").await;
    (server, log, bystander)
}

/// The last two events of the newest session, once it closed.
async fn ending_of_newest(log: &Log) -> Vec<Event> {
    log.wait_for(SECS5, "the hostile session closes", |e| {
        e.iter().filter(|(_, ev)| *ev == Event::Close).count() == 1
    })
    .await;
    let newest = log.sessions().last().unwrap().id();
    let events = log.of(newest);
    events[events.len().saturating_sub(2)..].to_vec()
}

/// Asserts that the well-behaved client still gets 20 echoes: the hostile peer ended only
/// its own session.
async fn bystander_still_echoes(bystander: &mut Client) {
    for i in 0..20 {
        let payload = format!("still here {i}");
        assert_eq!(
            round_trip(bystander, payload.as_bytes()).await,
            payload.as_bytes()
        );
    }
}

#[actix::test]
async fn garbage_bytes_end_only_their_session() {
    let (server, log, mut bystander) = server_with_bystander(SessionConfig::default()).await;
    let mut peer = TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    // Not a frame: read as a header it announces about 1.9 GB.
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x70)
        .collect();
    let _ = peer.write_all(&garbage).await; // the server may close before it is all sent
    let ending = ending_of_newest(&log).await;
    assert!(
        matches!(&ending[..], [error, Event::Close]
            if error.is_error(|k| matches!(k, ErrorKind::FrameTooLong { .. }))),
        "{ending:?}"
    );
    bystander_still_echoes(&mut bystander).await;
    server.stop().await;
}

#[actix::test]
async fn a_frame_written_one_byte_at_a_time_arrives_whole() {
    let (server, log, mut bystander) = server_with_bystander(SessionConfig::default()).await;
    let stream = TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let mut client = tokio_util::codec::Framed::new(stream, getty::LengthDelimited::new());
    let payload = b"split into single bytes on the wire";
    let mut wire = (payload.len() as u32).to_be_bytes().to_vec();
    wire.extend_from_slice(payload);
    for byte in &wire {
        client.get_mut().write_all(&[*byte]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    use futures::StreamExt;
    let echo = within(SECS5, client.next()).await.unwrap().unwrap();
    assert_eq!(&echo[..], payload);
    let id = log.sessions().last().unwrap().id();
    assert_eq!(
        log.of(id),
        vec![Event::Open, Event::Message(Bytes::from_static(payload))]
    );
    bystander_still_echoes(&mut bystander).await;
    server.stop().await;
}

#[actix::test]
async fn a_slow_loris_meets_the_read_timeout() {
    let mut config = SessionConfig::default();
    config.read_timeout = Some(Duration::from_millis(1500));
    let (server, log, mut bystander) = server_with_bystander(config).await;
    let mut loris = TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    loris.set_nodelay(true).unwrap();
    // A 100-byte frame, one byte every 300 ms: bytes keep coming, no frame ever ends.
    let started = Instant::now();
    let trickle = async {
        loris.write_all(&100u32.to_be_bytes()).await?;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            loris.write_all(b"x").await?;
        }
        Ok::<_, std::io::Error>(())
    };
    // The bystander sends a frame every 200 ms, so its own read timeout never fires.
    let chatty = async {
        for i in 0..15 {
            round_trip(&mut bystander, format!("ping {i}").as_bytes()).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let trickle = within(Duration::from_secs(40), trickle);
    let (_, ending, ()) = futures::join!(trickle, ending_of_newest_after(&log, 2), chatty);
    assert!(
        matches!(&ending[..], [error, Event::Close]
            if error.is_error(|k| matches!(k, ErrorKind::ReadTimeout { .. }))),
        "{ending:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed at the timeout, not at the end of the trickle"
    );
    bystander_still_echoes(&mut bystander).await;
    server.stop().await;
}

/// Like [`ending_of_newest`], for the session opened as number `nth` (1-based).
async fn ending_of_newest_after(log: &Log, nth: usize) -> Vec<Event> {
    log.wait_for(Duration::from_secs(10), "the hostile session closes", |e| {
        e.iter().filter(|(_, ev)| *ev == Event::Open).count() >= nth
            && e.iter().any(|(_, ev)| *ev == Event::Close)
    })
    .await;
    let id = log.sessions()[nth - 1].id();
    let events = log.of(id);
    events[events.len().saturating_sub(2)..].to_vec()
}

#[actix::test]
async fn a_reset_in_the_middle_of_a_frame_is_an_io_error() {
    let (server, log, mut bystander) = server_with_bystander(SessionConfig::default()).await;
    let mut peer = TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    peer.write_all(&[0, 0, 0, 100, 1, 2, 3]).await.unwrap(); // 3 of 100 bytes
    tokio::time::sleep(Duration::from_millis(50)).await;
    peer.set_zero_linger().unwrap();
    drop(peer); // RST
    let ending = ending_of_newest(&log).await;
    assert!(
        matches!(&ending[..], [error, Event::Close]
            if error.is_error(|k| matches!(k, ErrorKind::Io { .. }))),
        "{ending:?}"
    );
    bystander_still_echoes(&mut bystander).await;
    server.stop().await;
}

#[actix::test]
async fn a_four_gigabyte_length_prefix_costs_nothing_and_ends_only_its_session() {
    let (server, log, mut bystander) = server_with_bystander(SessionConfig::default()).await;
    let mut peer = TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    peer.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
    let ending = ending_of_newest(&log).await;
    assert!(
        matches!(&ending[..], [error, Event::Close]
            if error.is_error(|k| matches!(k, ErrorKind::FrameTooLong { .. }))),
        "{ending:?}"
    );
    let session = log.sessions().last().unwrap().clone();
    assert_eq!(
        session.stats().bytes_read,
        4,
        "refused from the header alone"
    );
    bystander_still_echoes(&mut bystander).await;
    server.stop().await;
}

#[actix::test]
async fn a_truncated_frame_then_eof_ends_only_its_session() {
    let (server, log, mut bystander) = server_with_bystander(SessionConfig::default()).await;
    let mut peer = TcpStream::connect(server.inet_addr().unwrap())
        .await
        .unwrap();
    peer.write_all(&[0, 0, 0, 9, b'h', b'a', b'l', b'f'])
        .await
        .unwrap();
    peer.shutdown().await.unwrap();
    let ending = ending_of_newest(&log).await;
    assert!(
        matches!(&ending[..], [error, Event::Close]
            if error.is_error(|k| matches!(k, ErrorKind::Decode { .. }))),
        "{ending:?}"
    );
    bystander_still_echoes(&mut bystander).await;
    server.stop().await;
}
