//! The compressing codec adapter over real sockets: the same listener echoes compressed
//! frames over TCP, UDP and WebSocket, and a decompression bomb ends only the session
//! that sent it.

mod common;

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use futures::{SinkExt, StreamExt};
use getty::codec::{Compressed, Compression};
use getty::prelude::*;
use getty::transport::ws::{WsClient, WsServer};
use getty::{ErrorKind, LengthDelimited, SessionConfig, SessionContext, TcpServer, UdpServer};
use tokio_util::codec::{Decoder, Encoder, Framed};

const MAX: usize = 64 * 1024;

/// The codec both ends use: length-delimited frames, each compressed on its own.
fn codec(method: Compression) -> Compressed<LengthDelimited> {
    Compressed::new(LengthDelimited::with_max_frame_length(MAX), method, MAX + 4)
}

/// Echoes every frame (or only records it, on the client side); records what ends its
/// session.
struct Echo(Arc<Log>, bool);

impl EventListener for Echo {
    type Codec = Compressed<LengthDelimited>;
    type Out = Bytes;
    fn on_open(&mut self, s: &mut SessionContext<'_, Self>) -> getty::Result<()> {
        self.0.push(s.id(), Event::Open);
        Ok(())
    }
    fn on_message(&mut self, s: &mut SessionContext<'_, Self>, frame: BytesMut) {
        if self.1 {
            s.write(frame.freeze()).expect("echo accepted");
        } else {
            self.0.push(s.id(), Event::Message(frame.freeze()));
        }
    }
    fn on_error(&mut self, s: &getty::Session<Bytes>, error: &getty::Error) {
        self.0.push(s.id(), Event::Error(error.clone()));
    }
    fn on_close(&mut self, s: &getty::Session<Bytes>) {
        self.0.push(s.id(), Event::Close);
    }
}

/// Sessions that echo (`echo`) or record what they receive, over the codec of `method`.
fn hook(
    log: Arc<Log>,
    method: Compression,
    echo: bool,
) -> impl Fn(&mut getty::SessionSetup) -> getty::Result<(Echo, Compressed<LengthDelimited>)>
       + Send
       + Sync
       + 'static {
    move |_| Ok((Echo(log.clone(), echo), codec(method)))
}

/// Text-like frames of a few sizes, the small one under the threshold.
fn frames() -> Vec<Bytes> {
    let line = "frame of text that compresses well, as chat and JSON do. ";
    [10, 1024, 20_000]
        .iter()
        .map(|n| Bytes::from(line.repeat(n / line.len() + 1)[..*n].to_owned()))
        .collect()
}

#[actix::test]
async fn compressed_frames_echo_over_tcp_with_every_method() {
    for method in [
        Compression::Deflate,
        Compression::DeflateBestSpeed,
        Compression::DeflateBestCompression,
        Compression::DeflateHuffmanOnly,
        Compression::Snappy,
    ] {
        let log = Arc::new(Log::default());
        // The session's reader bounds what it buffers of one frame by its max frame
        // length: the compressed frames of this test are up to 20 KB.
        let server = TcpServer::new("127.0.0.1:0")
            .workers(1)
            .session_config(SessionConfig::default().max_frame_length(MAX))
            .start(hook(log.clone(), method, true))
            .await
            .expect("server");
        let stream = tokio::net::TcpStream::connect(server.inet_addr().unwrap())
            .await
            .unwrap();
        let mut peer = Framed::new(stream, codec(method));
        for frame in frames() {
            peer.send(frame.clone()).await.unwrap();
            let echo = within(SECS5, peer.next()).await.expect("echo").unwrap();
            assert_eq!(echo, frame, "{method:?}");
        }
        server.stop().await;
    }
}

#[actix::test]
async fn compressed_frames_echo_over_udp_and_websocket() {
    // UDP: one compressed frame per datagram.
    let log = Arc::new(Log::default());
    let server = UdpServer::new("127.0.0.1:0")
        .start_per_peer(hook(log.clone(), Compression::Snappy, true))
        .await
        .expect("udp server");
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server.inet_addr().unwrap()).await.unwrap();
    let mut c = codec(Compression::Snappy);
    for frame in frames() {
        let mut datagram = BytesMut::new();
        c.encode(frame.clone(), &mut datagram).unwrap();
        socket.send(&datagram).await.unwrap();
        let mut buf = vec![0; 70_000];
        let n = within(SECS5, socket.recv(&mut buf)).await.unwrap();
        let mut reply = BytesMut::from(&buf[..n]);
        assert_eq!(c.decode(&mut reply).unwrap().unwrap(), frame);
    }
    server.stop().await;

    // WebSocket: the library's own client and server, compressed frames in binary
    // messages.
    let log = Arc::new(Log::default());
    let server = WsServer::new("127.0.0.1:0")
        .workers(1)
        .path("/ws")
        .start(hook(log.clone(), Compression::Deflate, true))
        .await
        .expect("ws server");
    let client_log = Arc::new(Log::default());
    let client = WsClient::new(format!("ws://{}/ws", server.inet_addr().unwrap())).start(hook(
        client_log.clone(),
        Compression::Deflate,
        false,
    ));
    wait_until(SECS5, "the client session", || {
        client.stats().open_sessions == 1
    })
    .await;
    let session = client.sessions()[0].downcast::<Bytes>().expect("Bytes");
    for frame in frames() {
        session.write(frame).await.expect("sent");
    }
    let want: Vec<Event> = frames().into_iter().map(Event::Message).collect();
    wait_until(SECS5, "three echoes", || {
        client_log
            .events()
            .iter()
            .filter(|(_, e)| matches!(e, Event::Message(_)))
            .count()
            == 3
    })
    .await;
    let got: Vec<Event> = client_log
        .events()
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| matches!(e, Event::Message(_)))
        .collect();
    assert_eq!(got, want);
    within(SECS5, client.stop()).await;
    server.stop().await;
}

/// A 4 KiB frame that would inflate to 4 MiB ends its own session with FrameTooLong;
/// another session of the same server goes on echoing.
#[actix::test]
async fn a_decompression_bomb_ends_only_its_session() {
    let log = Arc::new(Log::default());
    let server = TcpServer::new("127.0.0.1:0")
        .workers(1)
        .session_config(SessionConfig::default().max_frame_length(MAX))
        .start(hook(log.clone(), Compression::Deflate, true))
        .await
        .expect("server");
    let addr = server.inet_addr().unwrap();
    let good_stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut good = Framed::new(good_stream, codec(Compression::Deflate));

    // The bomb: LengthDelimited's encoding of 4 MiB of zeros, deflated.
    let mut inner = BytesMut::new();
    LengthDelimited::with_max_frame_length(8 << 20)
        .encode(Bytes::from(vec![0u8; 4 << 20]), &mut inner)
        .unwrap();
    let zlib = {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&inner).unwrap();
        z.finish().unwrap()
    };
    assert!(zlib.len() < 8 * 1024, "a small bomb: {} bytes", zlib.len());
    let mut wire = BytesMut::new();
    wire.put_u8(1); // deflate
    wire.put_u32(zlib.len() as u32);
    wire.put_slice(&zlib);
    let mut bomber = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut bomber, &wire)
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::io::AsyncReadExt::read_to_end(&mut bomber, &mut rest);
    within(SECS5, read)
        .await
        .expect("the server closes the bomber's connection");

    let frame = frames()[2].clone();
    good.send(frame.clone()).await.unwrap();
    assert_eq!(within(SECS5, good.next()).await.unwrap().unwrap(), frame);
    let too_long = log
        .events()
        .iter()
        .filter(|(_, e)| matches!(e, Event::Error(err) if matches!(err.kind(), ErrorKind::FrameTooLong { .. })))
        .count();
    assert_eq!(too_long, 1, "{:?}", log.events());
    assert_eq!(server.stats().open_sessions, 1);
    server.stop().await;
}
