//! The servers a client dials: one address or several, tried in order (failover) or in
//! turn (round robin). Names are resolved again on every dial, so a server that moved is
//! found at its new address.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// How a client with several server addresses uses them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Spread {
    /// Every dial tries the addresses in the order given and takes the first that
    /// answers: the first server gets the whole pool while it is up, the next ones stand
    /// by. The default.
    #[default]
    Failover,
    /// Each dial starts at the next address in turn (then tries the others in order if
    /// that one does not answer), so the pool is spread evenly over the servers.
    RoundRobin,
}

/// The server addresses of a client and how it uses them; set through
/// [`ServerListBuilder`].
#[derive(Debug, Clone)]
pub struct ServerList {
    addrs: Vec<Arc<str>>,
    spread: Spread,
    /// The next starting address, for round robin; shared by every dial of the client.
    next: Arc<AtomicUsize>,
}

impl ServerList {
    /// A list of one address.
    pub(crate) fn new(addr: &str) -> Self {
        ServerList {
            addrs: vec![Arc::from(addr)],
            spread: Spread::default(),
            next: Arc::default(),
        }
    }

    /// The addresses, in the order given.
    pub fn addresses(&self) -> &[Arc<str>] {
        &self.addrs
    }

    /// How the client uses them.
    pub fn spread(&self) -> Spread {
        self.spread
    }

    /// The addresses one dial tries, in order.
    pub(crate) fn order(&self) -> impl Iterator<Item = &Arc<str>> {
        let n = self.addrs.len();
        let start = match self.spread {
            Spread::Failover => 0,
            Spread::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % n.max(1),
        };
        (0..n).map(move |i| &self.addrs[(start + i) % n])
    }

    /// One dial: `connect` to each address of [`order`](Self::order) until one
    /// succeeds; the last error when none does.
    pub(crate) async fn dial<T, F, Fut>(&self, mut connect: F) -> Result<T>
    where
        F: FnMut(Arc<str>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut last = None;
        for addr in self.order() {
            match connect(addr.clone()).await {
                Ok(connected) => return Ok(connected),
                Err(err) => {
                    tracing::debug!(%addr, %err, "server did not answer; trying the next");
                    last = Some(err);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::config("a client with no server address")))
    }
}

/// Several server addresses for a client that dials addresses (TCP, UDP, WebSocket):
/// the one given to `new` first, then each added here, used as [`spread`](Self::spread)
/// says.
pub trait ServerListBuilder: Sized {
    /// The server list this builder keeps.
    fn server_list(&mut self) -> &mut ServerList;

    /// Another server address (a URL for WebSocket), after those already given.
    fn add_server(mut self, addr: impl AsRef<str>) -> Self {
        self.server_list().addrs.push(Arc::from(addr.as_ref()));
        self
    }

    /// How the addresses are used. Default [`Spread::Failover`]. Sessions report the
    /// address they reached as their `peer_addr` (and in
    /// [`ClientEvent::SessionUp`](crate::ClientEvent::SessionUp)).
    fn spread(mut self, spread: Spread) -> Self {
        self.server_list().spread = spread;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Builder(ServerList);

    impl ServerListBuilder for Builder {
        fn server_list(&mut self) -> &mut ServerList {
            &mut self.0
        }
    }

    fn three(spread: Spread) -> ServerList {
        Builder(ServerList::new("a"))
            .add_server("b")
            .add_server("c")
            .spread(spread)
            .0
    }

    fn order(list: &ServerList) -> String {
        list.order().map(|a| a.to_string()).collect()
    }

    #[test]
    fn failover_always_starts_at_the_first_address() {
        let list = three(Spread::Failover);
        assert_eq!([order(&list), order(&list)], ["abc", "abc"]);
    }

    #[test]
    fn round_robin_starts_each_dial_at_the_next_address_and_wraps() {
        let list = three(Spread::RoundRobin);
        let clone = list.clone(); // every dial of one client shares the turn
        assert_eq!(
            [order(&list), order(&clone), order(&list), order(&list)],
            ["abc", "bca", "cab", "abc"]
        );
    }

    #[actix::test]
    async fn a_dial_takes_the_first_address_that_answers_or_reports_the_last_error() {
        let list = three(Spread::Failover);
        let tried = std::cell::RefCell::new(Vec::new());
        let got = list
            .dial(|addr| {
                tried.borrow_mut().push(addr.to_string());
                async move {
                    match &*addr {
                        "b" => Ok(addr),
                        _ => Err(Error::refused(format!("{addr} down"))),
                    }
                }
            })
            .await
            .expect("b answers");
        assert_eq!(&*got, "b");
        assert_eq!(*tried.borrow(), ["a", "b"]);
        let err = list
            .dial(|addr| async move { Err::<(), _>(Error::refused(format!("{addr} down"))) })
            .await
            .expect_err("none answers");
        assert!(err.to_string().contains("c down"), "{err}");
    }
}
