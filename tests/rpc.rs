//! The request/response example's client: replies matched by id, out of order, with
//! clean timeouts and prompt failure when the session drops.

mod common;
#[path = "../examples/rpc/mod.rs"]
mod rpc;

use std::time::{Duration, Instant};

use common::*;
use getty::pool::WorkerPool;
use getty::prelude::*;
use getty::{EventListener, ServerHandle, Session, SessionContext, TcpServer};
use rpc::{CallError, JsonCodec, Request, Response, RpcClient};

/// Offloads requests to a pool that works `work_ms` then answers; body "drop" closes
/// the session instead, body "ignore" gets no answer.
struct Server(WorkerPool<Request, Response>);

impl EventListener for Server {
    type Codec = JsonCodec<Request, Response>;
    type Out = Response;
    fn on_message(&mut self, session: &mut SessionContext<'_, Self>, request: Request) {
        match request.body.as_str() {
            "drop" => session.close(),
            "ignore" => {}
            _ => self
                .0
                .try_submit(session.session(), request)
                .expect("pool has room"),
        }
    }
}

/// An RPC server whose `workers` pool threads sleep each request's `work_ms`, then
/// answer with its body.
async fn start_server(workers: usize) -> ServerHandle {
    let pool = WorkerPool::start(workers, |request: Request, session: &Session<Response>| {
        std::thread::sleep(Duration::from_millis(request.work_ms));
        let _ = session.write_blocking(Response {
            id: request.id,
            result: Ok(request.body),
        });
    });
    TcpServer::new("127.0.0.1:0")
        .workers(1)
        .start(move |_| Ok((Server(pool.clone()), JsonCodec::default())))
        .await
        .unwrap()
}

/// An RPC client of `server`, once its session is up (5 s at most).
async fn connected_client(server: &ServerHandle) -> RpcClient {
    let client = RpcClient::start(&server.inet_addr().unwrap().to_string());
    wait_until(SECS5, "client connected", || client.connected()).await;
    client
}

#[actix::test]
async fn replies_are_matched_by_id_even_out_of_order() {
    let server = start_server(2).await;
    let client = connected_client(&server).await;
    let slow = client.call("slow".into(), 300, SECS5);
    let fast = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let reply = client.call("fast".into(), 0, SECS5).await;
        (reply, Instant::now())
    };
    let ((slow, slow_at), (fast, fast_at)) =
        futures::join!(async { (slow.await, Instant::now()) }, fast);
    assert_eq!(slow.unwrap().result.as_deref(), Ok("slow"));
    assert_eq!(fast.unwrap().result.as_deref(), Ok("fast"));
    assert!(fast_at < slow_at, "the fast reply overtook the slow one");
    client.stop().await;
    server.stop().await;
}

#[actix::test]
async fn a_call_times_out_cleanly() {
    let server = start_server(1).await;
    let client = connected_client(&server).await;
    let started = Instant::now();
    let result = client
        .call("ignore".into(), 0, Duration::from_millis(100))
        .await;
    assert!(matches!(result, Err(CallError::Timeout)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        client.in_flight(),
        0,
        "a timed-out call leaves nothing behind"
    );
    // The session is still fine for the next call.
    assert_eq!(
        client
            .call("next".into(), 0, SECS5)
            .await
            .unwrap()
            .result
            .as_deref(),
        Ok("next")
    );
    client.stop().await;
    server.stop().await;
}

#[actix::test]
async fn pending_calls_fail_at_once_when_the_session_drops() {
    let server = start_server(1).await;
    let client = connected_client(&server).await;
    let long = Duration::from_secs(30);
    let pending: Vec<_> = (0..5)
        .map(|i| client.call(format!("slow {i}"), 2_000, long))
        .collect();
    let dropper = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.call("drop".into(), 0, long).await
    };
    let started = Instant::now();
    let (results, dropped) = futures::join!(futures::future::join_all(pending), dropper);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "failed at once, not at the 30 s timeout"
    );
    assert!(matches!(dropped, Err(CallError::Closed)), "{dropped:?}");
    // Calls already answered before the drop may have succeeded; none may hang or vanish.
    for r in &results {
        assert!(matches!(r, Err(CallError::Closed)), "{r:?}");
    }
    assert_eq!(client.in_flight(), 0);
    client.stop().await;
    server.stop().await;
}
