//! UDP multicast on loopback: three receivers in one process see every datagram one
//! sender sends to the group, and leaving the group stops delivery. Where the machine
//! cannot route multicast on loopback, each test prints `SKIPPED: <reason>` and returns.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{eventually, within, SECS5};
use getty::prelude::*;
use getty::{
    Datagram, Datagrams, EventListener, LengthDelimited, ServerHandle, Session, SessionContext,
    UdpServer,
};

/// How long a first datagram may take before we call multicast unroutable here.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// Records every frame with its source.
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<(SocketAddr, Bytes)>>>);

impl Inbox {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn frames(&self) -> Vec<(SocketAddr, Bytes)> {
        self.0.lock().unwrap().clone()
    }
}

struct Receiver(Inbox);

impl EventListener for Receiver {
    type Codec = Datagrams<LengthDelimited>;
    type Out = Datagram<Bytes>;

    fn on_message(&mut self, _: &mut SessionContext<'_, Self>, d: Datagram<BytesMut>) {
        self.0 .0.lock().unwrap().push((d.peer, d.frame.freeze()));
    }
}

/// Starts `server` with one listener that puts every datagram it receives in `inbox`.
async fn start(
    server: UdpServer,
    inbox: Inbox,
) -> getty::Result<(ServerHandle, Session<Datagram<Bytes>>)> {
    let server = server
        .start_shared(move |_| {
            Ok((
                Receiver(inbox.clone()),
                Datagrams::new(LengthDelimited::new()),
            ))
        })
        .await?;
    let session = server.shared_session().expect("the shared session");
    Ok((server, session))
}

/// A group and port for one test, distinct per process so parallel runs do not meet.
fn group_v4(last: u8) -> Ipv4Addr {
    let pid = std::process::id();
    Ipv4Addr::new(239, 255, (pid % 250) as u8, last)
}

#[actix::test]
async fn three_receivers_get_every_datagram_and_leaving_stops_delivery_v4() {
    let lo = Ipv4Addr::LOCALHOST;
    let group = group_v4(1);
    let inboxes = [Inbox::default(), Inbox::default(), Inbox::default()];
    let mut receivers = Vec::new();
    let mut port = 0;
    for inbox in &inboxes {
        let server = UdpServer::new(format!("0.0.0.0:{port}"))
            .reuse_address(true)
            .join_multicast_v4(group, lo);
        match start(server, inbox.clone()).await {
            Ok((handle, _)) => {
                port = handle.inet_addr().unwrap().port();
                receivers.push(handle);
            }
            Err(err) => {
                eprintln!("SKIPPED: cannot join {group} on loopback: {err}");
                return;
            }
        }
    }
    let sender = UdpServer::new("127.0.0.1:0")
        .multicast_interface_v4(lo)
        .multicast_loop(true)
        .multicast_ttl(1);
    let (sender, to_group) = start(sender, Inbox::default())
        .await
        .expect("sender starts");
    let dest = SocketAddr::new(IpAddr::V4(group), port);
    let send = |n: usize| {
        let to_group = to_group.clone();
        async move {
            to_group
                .write(Datagram::new(dest, Bytes::from(format!("datagram {n}"))))
                .await
        }
    };
    if let Err(err) = send(0).await {
        eprintln!("SKIPPED: cannot send to {dest} over loopback: {err}");
        return;
    }
    if !eventually(PROBE_WAIT, || inboxes[0].len() == 1).await {
        eprintln!("SKIPPED: nothing sent to {dest} arrived within {PROBE_WAIT:?}");
        return;
    }
    const N: usize = 20;
    for n in 1..N {
        send(n).await.expect("sent to the group");
    }
    let all = eventually(SECS5, || inboxes.iter().all(|i| i.len() == N)).await;
    let counts: Vec<usize> = inboxes.iter().map(Inbox::len).collect();
    assert!(all, "every receiver gets all {N} datagrams: {counts:?}");
    for inbox in &inboxes {
        for (n, (from, frame)) in inbox.frames().into_iter().enumerate() {
            assert_eq!(
                from,
                sender.inet_addr().unwrap(),
                "frames carry their source"
            );
            assert_eq!(frame, Bytes::from(format!("datagram {n}")));
        }
    }
    // Receiver 2 leaves: the others go on getting datagrams, it gets none.
    receivers[2].leave_multicast_v4(group, lo).expect("leave");
    for n in N..N + 5 {
        send(n).await.expect("sent to the group");
    }
    let rest = eventually(SECS5, || inboxes[..2].iter().all(|i| i.len() == N + 5)).await;
    assert!(rest, "members still get datagrams");
    tokio::time::sleep(Duration::from_millis(100)).await; // room for a stray delivery
    assert_eq!(inboxes[2].len(), N, "no datagram after leaving the group");
    for receiver in &receivers {
        within(SECS5, receiver.stop()).await;
    }
    within(SECS5, sender.stop()).await;
}

#[actix::test]
async fn a_receiver_gets_group_datagrams_v6_where_the_os_allows() {
    // Interface index 1 is loopback on Linux.
    let (lo, group) = (
        1u32,
        Ipv6Addr::new(0xff12, 0, 0, 0, 0, 0, 0x7e7, std::process::id() as u16),
    );
    let inbox = Inbox::default();
    let receiver = UdpServer::new("[::]:0").join_multicast_v6(group, lo);
    let (receiver, _) = match start(receiver, inbox.clone()).await {
        Ok(started) => started,
        Err(err) => {
            eprintln!("SKIPPED: cannot join {group} on loopback: {err}");
            return;
        }
    };
    let sender = UdpServer::new("[::1]:0")
        .multicast_interface_v6(lo)
        .multicast_loop(true)
        .multicast_ttl(1);
    let (sender, to_group) = match start(sender, Inbox::default()).await {
        Ok(started) => started,
        Err(err) => {
            eprintln!("SKIPPED: no IPv6 loopback socket: {err}");
            receiver.stop().await;
            return;
        }
    };
    let dest = SocketAddr::new(IpAddr::V6(group), receiver.inet_addr().unwrap().port());
    let frame = Bytes::from_static(b"v6");
    if let Err(err) = to_group.write(Datagram::new(dest, frame.clone())).await {
        eprintln!("SKIPPED: cannot send to {dest} over loopback: {err}");
    } else if !eventually(PROBE_WAIT, || inbox.len() == 1).await {
        eprintln!("SKIPPED: nothing sent to {dest} arrived within {PROBE_WAIT:?}");
    } else {
        assert_eq!(inbox.frames()[0].1, frame);
    }
    receiver.stop().await;
    sender.stop().await;
}
