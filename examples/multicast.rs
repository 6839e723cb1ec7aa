//! UDP multicast: several receivers in one process join a group, one sender sends
//! numbered datagrams to it, and every receiver must see every one.
//!
//! ```text
//! cargo run --example multicast -- [--receivers N] [--datagrams M] \
//!     [--group 239.255.0.77] [--interface 127.0.0.1]
//! ```
//! Prints one line per receiver (`receiver <i>: <count>/<M> from <sender>`) and exits 0
//! when each got all M datagrams in order, 1 if any missed one, 2 for bad options, and 3
//! when this machine cannot do multicast on that interface (join or send failed, or the
//! first datagram never arrived), with the reason.
//!
//! The receivers share one port (`reuse_address`) and join the group on the interface;
//! the sender sends from that interface with loopback on, so all of it stays on this
//! host with the default interface, 127.0.0.1.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::exit;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::Options;
use getty::prelude::*;
use getty::{Datagram, Datagrams, EventListener, LengthDelimited, SessionContext, UdpServer};

const USAGE: &str =
    "usage: multicast [--receivers N] [--datagrams M] [--group IPV4] [--interface IPV4]";

/// What one receiver got: the numbers of the datagrams, and their source.
#[derive(Default)]
struct Got {
    numbers: Vec<u64>,
    from: Option<SocketAddr>,
}

/// Records each datagram's number and source.
struct Receiver(Arc<Mutex<Got>>);

impl EventListener for Receiver {
    type Codec = Datagrams<LengthDelimited>;
    type Out = Datagram<Bytes>;

    fn on_message(&mut self, _: &mut SessionContext<'_, Self>, d: Datagram<BytesMut>) {
        let number: Option<u64> = std::str::from_utf8(&d.frame)
            .ok()
            .and_then(|s| s.parse().ok());
        let mut got = self.0.lock().unwrap_or_else(|p| p.into_inner());
        got.numbers.extend(number);
        got.from = Some(d.peer);
    }
}

fn unavailable(reason: impl std::fmt::Display) -> ! {
    println!("multicast unavailable: {reason}");
    exit(3);
}

#[actix::main]
async fn main() {
    let opts = Options::parse(&["receivers", "datagrams", "group", "interface"], USAGE);
    let receivers: usize = opts.get("receivers", 3);
    let datagrams: u64 = opts.get("datagrams", 100);
    let group: Ipv4Addr = opts.get("group", Ipv4Addr::new(239, 255, 0, 77));
    let interface: Ipv4Addr = opts.get("interface", Ipv4Addr::LOCALHOST);

    let mut inboxes = Vec::new();
    let mut handles = Vec::new();
    let mut port = 0;
    for _ in 0..receivers {
        let got = Arc::new(Mutex::new(Got::default()));
        let inbox = got.clone();
        let started = UdpServer::new(format!("0.0.0.0:{port}"))
            .reuse_address(true)
            .join_multicast_v4(group, interface)
            .start_shared(move |_| {
                Ok((
                    Receiver(inbox.clone()),
                    Datagrams::new(LengthDelimited::new()),
                ))
            })
            .await;
        match started {
            Ok(handle) => {
                port = handle.inet_addr().map_or(0, |addr| addr.port());
                handles.push(handle);
                inboxes.push(got);
            }
            Err(err) => unavailable(format!("cannot join {group} on {interface}: {err}")),
        }
    }
    let sender = UdpServer::new(SocketAddr::new(IpAddr::V4(interface), 0).to_string())
        .multicast_interface_v4(interface)
        .multicast_loop(true)
        .multicast_ttl(1)
        .start_shared(|_| {
            Ok((
                Receiver(Arc::default()),
                Datagrams::new(LengthDelimited::new()),
            ))
        })
        .await;
    let sender = match sender {
        Ok(sender) => sender,
        Err(err) => unavailable(format!("cannot bind a sender on {interface}: {err}")),
    };
    let Some(to_group) = sender.shared_session::<Datagram<Bytes>>() else {
        unavailable("the sender's session is not of its listener's type".to_owned())
    };
    let dest = SocketAddr::new(IpAddr::V4(group), port);
    println!(
        "{receivers} receivers on {dest}; sending {datagrams} datagrams from {}",
        sender.local_addr()
    );

    let count = |i: usize| inboxes[i].lock().map_or(0, |g| g.numbers.len() as u64);
    for n in 0..datagrams {
        if let Err(err) = to_group
            .write(Datagram::new(dest, Bytes::from(n.to_string())))
            .await
        {
            unavailable(format!("cannot send to {dest}: {err}"));
        }
        if n == 0 {
            // The first datagram tells whether multicast works here at all.
            let deadline = Instant::now() + Duration::from_secs(2);
            while count(0) == 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if count(0) == 0 {
                unavailable(format!("nothing sent to {dest} arrived within 2 s"));
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while (0..receivers).any(|i| count(i) < datagrams) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut missed = false;
    for (i, inbox) in inboxes.iter().enumerate() {
        let got = inbox.lock().unwrap_or_else(|p| p.into_inner());
        let in_order = got.numbers.iter().copied().eq(0..datagrams);
        missed |= !in_order;
        let from = got.from.map_or("nobody".to_owned(), |a| a.to_string());
        println!(
            "receiver {i}: {}/{datagrams} from {from}",
            got.numbers.len()
        );
    }
    for handle in &handles {
        handle.stop().await;
    }
    sender.stop().await;
    if missed {
        eprintln!("multicast: a receiver missed datagrams");
        exit(1);
    }
}
