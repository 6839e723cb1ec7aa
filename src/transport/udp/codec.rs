//! Frames with their peer address: the codec adapter of an unconnected UDP session, and
//! the one-frame-per-datagram decoding every UDP session uses.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::{BoxError, Error};

/// A frame together with the address of its peer: what an unconnected UDP session
/// ([`UdpServer::start_shared`](crate::UdpServer::start_shared)) receives, and what it writes.
///
/// Received, `peer` is the datagram's source; written, it is the destination (a peer, or
/// a multicast group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram<T> {
    /// Where the datagram came from, or where it goes.
    pub peer: SocketAddr,
    /// The frame it carries.
    pub frame: T,
}

impl<T> Datagram<T> {
    /// A frame for (or from) `peer`.
    pub fn new(peer: SocketAddr, frame: T) -> Self {
        Datagram { peer, frame }
    }
}

/// Bytes of the address envelope [`Datagrams`] puts before each encoded frame: a family
/// tag, 16 address bytes, the port and the IPv6 scope id. It never reaches the wire: the
/// socket writer reads it to learn the destination and sends only the frame.
pub(crate) const ENVELOPE_LEN: usize = 1 + 16 + 2 + 4;

const TAG_V4: u8 = 4;
const TAG_V6: u8 = 6;

fn put_envelope(peer: SocketAddr, dst: &mut BytesMut) {
    dst.reserve(ENVELOPE_LEN);
    match peer {
        SocketAddr::V4(v4) => {
            dst.put_u8(TAG_V4);
            dst.put_slice(&v4.ip().octets());
            dst.put_bytes(0, 12);
            dst.put_u16(v4.port());
            dst.put_u32(0);
        }
        SocketAddr::V6(v6) => {
            dst.put_u8(TAG_V6);
            dst.put_slice(&v6.ip().octets());
            dst.put_u16(v6.port());
            dst.put_u32(v6.scope_id());
        }
    }
}

/// The address in an envelope made by `put_envelope`, if `src` starts with one.
pub(crate) fn parse_envelope(src: &[u8]) -> Option<SocketAddr> {
    let mut env = src.get(..ENVELOPE_LEN)?;
    let tag = env.get_u8();
    let mut octets = [0u8; 16];
    env.copy_to_slice(&mut octets);
    let port = env.get_u16();
    let scope = env.get_u32();
    match tag {
        TAG_V4 => {
            let ip = Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]);
            Some(SocketAddr::new(IpAddr::V4(ip), port))
        }
        TAG_V6 => {
            let ip = Ipv6Addr::from(octets);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope)))
        }
        _ => None,
    }
}

/// The codec adapter of an unconnected UDP session: wraps a codec of frames `F` and
/// `O` into one of [`Datagram<F>`] and [`Datagram<O>`], so a listener sees who sent each
/// frame and says where each reply goes.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use getty::{Datagram, Datagrams, EventListener, LengthDelimited, SessionContext};
///
/// /// Echoes every frame to the peer that sent it.
/// struct Echo;
///
/// impl EventListener for Echo {
///     type Codec = Datagrams<LengthDelimited>;
///     type Out = Datagram<Bytes>;
///
///     fn on_message(&mut self, s: &mut SessionContext<'_, Self>, d: Datagram<BytesMut>) {
///         let _ = s.write(Datagram::new(d.peer, d.frame.freeze()));
///     }
/// }
/// ```
///
/// The session decodes each datagram's payload with the inner codec (one frame per
/// datagram) and pairs it with the source address; it encodes a written frame with the
/// inner codec and sends it to the frame's address. As a plain tokio-util codec (outside a
/// session) it encodes an address envelope before each frame and decodes it back.
#[derive(Debug, Clone, Default)]
pub struct Datagrams<C> {
    inner: C,
    /// The address of the frame being decoded, once its envelope is read.
    peer: Option<SocketAddr>,
}

impl<C> Datagrams<C> {
    /// Wraps `inner`, the codec of each datagram's payload.
    pub fn new(inner: C) -> Self {
        Datagrams { inner, peer: None }
    }

    /// The codec of each datagram's payload.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// Unwraps the payload codec.
    pub fn into_inner(self) -> C {
        self.inner
    }
}

impl<C> Decoder for Datagrams<C>
where
    C: Decoder<Error: Into<BoxError>>,
{
    type Item = Datagram<C::Item>;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Error> {
        let peer = match self.peer {
            Some(peer) => peer,
            None => {
                if src.len() < ENVELOPE_LEN {
                    return Ok(None);
                }
                let envelope = src.split_to(ENVELOPE_LEN);
                let peer = parse_envelope(&envelope).ok_or_else(|| {
                    let msg = "bad datagram address envelope";
                    Error::from_decode(io::Error::new(io::ErrorKind::InvalidData, msg))
                })?;
                *self.peer.insert(peer)
            }
        };
        match self.inner.decode(src).map_err(Error::from_decode)? {
            Some(frame) => {
                self.peer = None;
                Ok(Some(Datagram { peer, frame }))
            }
            None => Ok(None),
        }
    }
}

impl<C, O> Encoder<Datagram<O>> for Datagrams<C>
where
    C: Encoder<O, Error: Into<BoxError>>,
{
    type Error = Error;

    fn encode(&mut self, item: Datagram<O>, dst: &mut BytesMut) -> Result<(), Error> {
        put_envelope(item.peer, dst);
        self.inner
            .encode(item.frame, dst)
            .map_err(Error::from_encode)
    }
}

/// How a UDP session turns one datagram into one frame.
pub(crate) trait DecodeDatagram: Clone + 'static {
    /// The frame type.
    type Item: Send + 'static;
    /// Decodes the whole of `datagram`, from `peer`, as exactly one frame.
    fn decode_datagram(
        &mut self,
        peer: SocketAddr,
        datagram: &mut BytesMut,
    ) -> Result<Self::Item, Error>;
}

/// A codec whose frames come without their address (a connected socket, or one peer's
/// session, where the peer is the session's).
#[derive(Clone)]
pub(crate) struct Plain<D>(pub(crate) D);

impl<D> DecodeDatagram for Plain<D>
where
    D: Decoder<Item: Send + 'static, Error: Into<BoxError>> + Clone + 'static,
{
    type Item = D::Item;

    fn decode_datagram(
        &mut self,
        _: SocketAddr,
        datagram: &mut BytesMut,
    ) -> Result<D::Item, Error> {
        decode_whole(&mut self.0, datagram)
    }
}

impl<C> DecodeDatagram for Datagrams<C>
where
    C: Decoder<Item: Send + 'static, Error: Into<BoxError>> + Clone + 'static,
{
    type Item = Datagram<C::Item>;

    fn decode_datagram(
        &mut self,
        peer: SocketAddr,
        datagram: &mut BytesMut,
    ) -> Result<Self::Item, Error> {
        let frame = decode_whole(&mut self.inner, datagram)?;
        Ok(Datagram { peer, frame })
    }
}

fn bad_datagram(msg: String) -> Error {
    Error::from_decode(io::Error::new(io::ErrorKind::InvalidData, msg))
}

/// Decodes `datagram` as exactly one frame: the end of the datagram is the end of the
/// input (`decode_eof`), and bytes left over after the frame are an error.
pub(crate) fn decode_whole<D>(decoder: &mut D, datagram: &mut BytesMut) -> Result<D::Item, Error>
where
    D: Decoder<Error: Into<BoxError>>,
{
    let len = datagram.len();
    let frame = match decoder.decode(datagram).map_err(Error::from_decode)? {
        Some(frame) => frame,
        None => decoder
            .decode_eof(datagram)
            .map_err(Error::from_decode)?
            .ok_or_else(|| bad_datagram(format!("a {len}-byte datagram holds no frame")))?,
    };
    if !datagram.is_empty() {
        let left = datagram.len();
        return Err(bad_datagram(format!(
            "{left} of the datagram's {len} bytes are left over after its frame"
        )));
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::LengthDelimited;
    use crate::ErrorKind;
    use bytes::Bytes;

    #[test]
    fn envelope_round_trips_both_families() {
        let peers: [SocketAddr; 3] = [
            "127.0.0.1:9".parse().unwrap(),
            "[::1]:65535".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 7, 0, 3)),
        ];
        for peer in peers {
            let mut buf = BytesMut::new();
            put_envelope(peer, &mut buf);
            assert_eq!(buf.len(), ENVELOPE_LEN);
            assert_eq!(parse_envelope(&buf), Some(peer));
        }
        assert_eq!(parse_envelope(&[9; ENVELOPE_LEN]), None);
        assert_eq!(parse_envelope(&[4; 3]), None);
    }

    #[test]
    fn datagrams_codec_round_trips_as_a_plain_codec() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let mut codec = Datagrams::new(LengthDelimited::new());
        let mut wire = BytesMut::new();
        codec
            .encode(Datagram::new(peer, Bytes::from_static(b"hi")), &mut wire)
            .unwrap();
        assert_eq!(wire.len(), ENVELOPE_LEN + 4 + 2);
        let mut part = wire.split_to(ENVELOPE_LEN + 3);
        assert_eq!(codec.decode(&mut part).unwrap(), None);
        part.unsplit(wire);
        let got = codec.decode(&mut part).unwrap().unwrap();
        assert_eq!(got.peer, peer);
        assert_eq!(&got.frame[..], b"hi");
    }

    #[test]
    fn one_frame_per_datagram() {
        let mut codec = LengthDelimited::new();
        let mut ok = BytesMut::from(&b"\0\0\0\x02hi"[..]);
        assert_eq!(&decode_whole(&mut codec, &mut ok).unwrap()[..], b"hi");
        let mut left_over = BytesMut::from(&b"\0\0\0\x01ab"[..]);
        assert!(matches!(
            decode_whole(&mut codec, &mut left_over),
            Err(e) if matches!(e.kind(), ErrorKind::Decode { .. })
        ));
        let mut truncated = BytesMut::from(&b"\0\0\0\x09abc"[..]);
        let mut fresh = LengthDelimited::new();
        assert!(matches!(
            decode_whole(&mut fresh, &mut truncated),
            Err(e) if matches!(e.kind(), ErrorKind::Decode { .. })
        ));
        let mut empty = BytesMut::new();
        assert!(matches!(
            decode_whole(&mut LengthDelimited::new(), &mut empty),
            Err(e) if matches!(e.kind(), ErrorKind::Decode { .. })
        ));
        let mut huge = BytesMut::from(&b"\xff\0\0\0"[..]);
        assert!(matches!(
            decode_whole(&mut LengthDelimited::new(), &mut huge),
            Err(e) if matches!(e.kind(), ErrorKind::FrameTooLong { .. })
        ));
    }

    #[test]
    fn lines_end_with_the_datagram() {
        let mut lines = tokio_util::codec::LinesCodec::new();
        let mut datagram = BytesMut::from(&b"no newline"[..]);
        assert_eq!(
            decode_whole(&mut lines, &mut datagram).unwrap(),
            "no newline"
        );
    }
}
