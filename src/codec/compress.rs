//! A codec adapter that compresses each frame of another codec on its own (getty's
//! compress types): deflate at one of its levels or Huffman-only, or snappy.
//!
//! Wire format of one frame: a method byte (0 stored, 1 deflate in the zlib format of
//! RFC 1950, 2 snappy's raw block format), a 4-byte big-endian payload length, then the
//! payload: what the inner codec encoded for the frame, compressed or as it is. A frame
//! is decodable on its own, over a byte stream or as one datagram or message.

use bytes::{Buf, BufMut, BytesMut};
use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};
use miniz_oxide::deflate::core::{
    self, create_comp_flags_from_zip_params, CompressionStrategy, CompressorOxide, TDEFLFlush,
    TDEFLStatus,
};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::{BoxError, Error};

/// Method byte and payload length.
const HEADER: usize = 5;
const STORED: u8 = 0;
const DEFLATE: u8 = 1;
const SNAPPY: u8 = 2;

/// Frames whose encoding is shorter than this go stored by default: compressing them
/// costs more than it saves.
pub const DEFAULT_COMPRESS_THRESHOLD: usize = 256;

/// How [`Compressed`] compresses (getty's `CompressType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Deflate at zlib's default level, 6 (getty's `CompressZip`).
    Deflate,
    /// Deflate at level 1 (getty's `CompressBestSpeed`).
    DeflateBestSpeed,
    /// Deflate at level 9 (getty's `CompressBestCompression`).
    DeflateBestCompression,
    /// Deflate with Huffman coding only, no string matching (getty's `CompressHuffman`):
    /// the cheapest deflate, for data with few repeats.
    DeflateHuffmanOnly,
    /// Snappy (getty's `CompressSnappy`): less compression, much less CPU.
    Snappy,
}

impl Compression {
    fn deflate_level(self) -> Option<flate2::Compression> {
        match self {
            Compression::Deflate => Some(flate2::Compression::default()),
            Compression::DeflateBestSpeed => Some(flate2::Compression::fast()),
            Compression::DeflateBestCompression => Some(flate2::Compression::best()),
            Compression::DeflateHuffmanOnly | Compression::Snappy => None,
        }
    }
}

/// Wraps codec `C`: each frame `C` encodes is compressed on its own (when it is at least
/// the threshold long and compressing makes it shorter), and each frame read is
/// decompressed, then decoded by `C`.
///
/// Decompression is bounded: a frame that would inflate past `max_frame_length` is an
/// [`ErrorKind::FrameTooLong`](crate::ErrorKind::FrameTooLong) for its session, found
/// before the memory is spent (a deflate stream is inflated at most that far; a snappy
/// block's announced length is checked before anything is allocated).
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use getty::codec::{Compressed, Compression};
/// use getty::LengthDelimited;
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = Compressed::new(LengthDelimited::new(), Compression::Deflate, 4096);
/// let text = Bytes::from("getty ".repeat(100));
/// let mut wire = BytesMut::new();
/// codec.encode(text.clone(), &mut wire).unwrap();
/// assert!(wire.len() < text.len() / 4, "600 bytes of text shrink");
/// assert_eq!(codec.decode(&mut wire).unwrap().unwrap(), text);
/// ```
pub struct Compressed<C> {
    inner: C,
    method: Compression,
    threshold: usize,
    max_frame_length: usize,
    /// What the inner codec encoded for the frame being written.
    encoded: BytesMut,
    /// Payload length of the frame being read, and its method, once its header is read.
    pending: Option<(u8, usize)>,
    deflate: Option<Compress>,
    /// The Huffman-only compressor (miniz_oxide's own; flate2 has no strategies).
    huffman: Option<Box<CompressorOxide>>,
    inflate: Option<Decompress>,
}

impl<C: std::fmt::Debug> std::fmt::Debug for Compressed<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressed")
            .field("inner", &self.inner)
            .field("method", &self.method)
            .field("threshold", &self.threshold)
            .field("max_frame_length", &self.max_frame_length)
            .finish_non_exhaustive()
    }
}

impl<C: Clone> Clone for Compressed<C> {
    fn clone(&self) -> Self {
        // The (de)compressor states are per direction and made again on first use.
        Compressed {
            inner: self.inner.clone(),
            method: self.method,
            threshold: self.threshold,
            max_frame_length: self.max_frame_length,
            encoded: BytesMut::new(),
            pending: None,
            deflate: None,
            huffman: None,
            inflate: None,
        }
    }
}

impl<C> Compressed<C> {
    /// Wraps `inner`, compressing with `method`, refusing frames that are (or would
    /// inflate to) more than `max_frame_length` bytes of the inner codec's encoding
    /// (give it the session's max frame length, plus room for the inner codec's header
    /// if it has one). Frames under [`DEFAULT_COMPRESS_THRESHOLD`] bytes go stored.
    pub fn new(inner: C, method: Compression, max_frame_length: usize) -> Self {
        Compressed {
            inner,
            method,
            threshold: DEFAULT_COMPRESS_THRESHOLD,
            max_frame_length: max_frame_length.min(u32::MAX as usize),
            encoded: BytesMut::new(),
            pending: None,
            deflate: None,
            huffman: None,
            inflate: None,
        }
    }

    /// Frames whose encoding is shorter than `bytes` go stored (a method byte says so),
    /// so small frames pay no compression. Default [`DEFAULT_COMPRESS_THRESHOLD`].
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// The wrapped codec.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// Compresses `self.encoded` after a header into `dst`; false (and `dst` as it was)
    /// when that would not be shorter than storing it.
    fn put_compressed(&mut self, dst: &mut BytesMut) -> Result<bool, Error> {
        let input = &self.encoded[..];
        let (method, body) = match self.method.deflate_level() {
            Some(level) => {
                let deflate = self
                    .deflate
                    .get_or_insert_with(|| Compress::new(level, true));
                deflate.reset();
                // Worth it only if shorter than the input: stop there.
                let mut out = Vec::with_capacity(input.len());
                let status = deflate
                    .compress_vec(input, &mut out, FlushCompress::Finish)
                    .map_err(|err| Error::from_encode(std::io::Error::other(err)))?;
                if status != Status::StreamEnd {
                    return Ok(false); // the output would not fit in the input's length
                }
                (DEFLATE, out)
            }
            None if self.method == Compression::DeflateHuffmanOnly => {
                let huffman = self.huffman.get_or_insert_with(|| {
                    // Window bits > 0: the zlib header and checksum, as flate2 writes them.
                    let strategy = CompressionStrategy::HuffmanOnly as i32;
                    Box::new(CompressorOxide::new(create_comp_flags_from_zip_params(
                        6, 15, strategy,
                    )))
                });
                huffman.reset();
                let mut out = vec![0; input.len()];
                let (status, _, written) =
                    core::compress(huffman, input, &mut out, TDEFLFlush::Finish);
                if status != TDEFLStatus::Done {
                    return Ok(false); // it would not fit in the input's length
                }
                out.truncate(written);
                (DEFLATE, out)
            }
            None => {
                let out = snap::raw::Encoder::new()
                    .compress_vec(input)
                    .map_err(|err| Error::from_encode(std::io::Error::other(err)))?;
                (SNAPPY, out)
            }
        };
        if body.len() >= input.len() {
            return Ok(false);
        }
        dst.reserve(HEADER + body.len());
        dst.put_u8(method);
        dst.put_u32(body.len() as u32);
        dst.put_slice(&body);
        Ok(true)
    }

    /// Inflates a deflate payload to at most `max_frame_length` bytes.
    fn inflate(&mut self, payload: &[u8]) -> Result<BytesMut, Error> {
        let max = self.max_frame_length;
        let inflate = self.inflate.get_or_insert_with(|| Decompress::new(true));
        inflate.reset(true);
        // Room grows with what comes out, never past the bound (+1 to see it crossed).
        let mut out = Vec::with_capacity(payload.len().saturating_mul(4).min(max + 1));
        loop {
            let before = inflate.total_in() as usize;
            let produced = out.len();
            let status = inflate
                .decompress_vec(&payload[before..], &mut out, FlushDecompress::None)
                .map_err(Error::from_decode)?;
            if out.len() > max {
                return Err(Error::frame_too_long(out.len(), max));
            }
            if status == Status::StreamEnd {
                break;
            }
            let stuck = inflate.total_in() as usize == before && out.len() == produced;
            if out.len() == out.capacity() {
                let room = out.capacity().max(64).min(max + 1 - out.len());
                out.reserve_exact(room);
            } else if stuck || inflate.total_in() as usize == payload.len() {
                return Err(Error::from_decode(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "truncated deflate stream in a compressed frame",
                )));
            }
        }
        Ok(BytesMut::from(&out[..]))
    }

    /// Decompresses a snappy payload, its announced length checked first.
    fn unsnap(&self, payload: &[u8]) -> Result<BytesMut, Error> {
        let max = self.max_frame_length;
        let len = snap::raw::decompress_len(payload).map_err(Error::from_decode)?;
        if len > max {
            return Err(Error::frame_too_long(len, max));
        }
        let mut out = vec![0; len];
        snap::raw::Decoder::new()
            .decompress(payload, &mut out)
            .map_err(Error::from_decode)?;
        Ok(BytesMut::from(&out[..]))
    }
}

impl<C, T> Encoder<T> for Compressed<C>
where
    C: Encoder<T, Error: Into<BoxError>>,
{
    type Error = Error;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), Error> {
        self.encoded.clear();
        self.inner
            .encode(item, &mut self.encoded)
            .map_err(Error::from_encode)?;
        let len = self.encoded.len();
        if len > self.max_frame_length {
            return Err(Error::frame_too_long(len, self.max_frame_length));
        }
        if len >= self.threshold && self.put_compressed(dst)? {
            return Ok(());
        }
        dst.reserve(HEADER + len);
        dst.put_u8(STORED);
        dst.put_u32(len as u32);
        dst.put_slice(&self.encoded);
        Ok(())
    }
}

impl<C> Decoder for Compressed<C>
where
    C: Decoder<Error: Into<BoxError>>,
{
    type Item = C::Item;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<C::Item>, Error> {
        let (method, len) = match self.pending {
            Some(pending) => pending,
            None => {
                if src.len() < HEADER {
                    return Ok(None);
                }
                let method = src.get_u8();
                let len = src.get_u32() as usize;
                // A compressed payload is shorter than what it holds, and a stored one is
                // what it holds, so the bound applies to the payload too.
                if len > self.max_frame_length {
                    return Err(Error::frame_too_long(len, self.max_frame_length));
                }
                self.pending = Some((method, len));
                (method, len)
            }
        };
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        self.pending = None;
        let payload = src.split_to(len);
        let mut plain = match method {
            STORED => payload,
            DEFLATE => self.inflate(&payload)?,
            SNAPPY => self.unsnap(&payload)?,
            other => {
                return Err(Error::from_decode(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("unknown compression method {other}"),
                )))
            }
        };
        match self
            .inner
            .decode_eof(&mut plain)
            .map_err(Error::from_decode)?
        {
            Some(item) if plain.is_empty() => Ok(Some(item)),
            _ => Err(Error::from_decode(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a compressed frame must hold exactly one frame of the inner codec",
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LengthDelimited;
    use bytes::Bytes;

    fn text(n: usize) -> Bytes {
        let words = "the quick brown fox jumps over the lazy dog ";
        Bytes::from(words.repeat(n / words.len() + 1)[..n].to_owned())
    }

    fn codec(method: Compression) -> Compressed<LengthDelimited> {
        Compressed::new(
            LengthDelimited::with_max_frame_length(1 << 20),
            method,
            (1 << 20) + 4,
        )
    }

    const ALL: [Compression; 5] = [
        Compression::Deflate,
        Compression::DeflateBestSpeed,
        Compression::DeflateBestCompression,
        Compression::DeflateHuffmanOnly,
        Compression::Snappy,
    ];

    #[test]
    fn every_method_round_trips_and_shrinks_text_each_frame_on_its_own() {
        for method in ALL {
            let mut c = codec(method);
            let mut wire = BytesMut::new();
            let frames = [text(1024), text(5000), Bytes::from_static(b"tiny")];
            for f in &frames {
                c.encode(f.clone(), &mut wire).unwrap();
            }
            // Huffman coding alone finds no repeats: text shrinks to its entropy only.
            let bound = match method {
                Compression::DeflateHuffmanOnly => 6028 * 3 / 4,
                _ => 6028 / 2,
            };
            assert!(wire.len() < bound, "{method:?}: {} bytes", wire.len());
            assert_eq!(
                wire[0],
                if method == Compression::Snappy {
                    SNAPPY
                } else {
                    DEFLATE
                }
            );
            // Split anywhere: a byte stream delivers frames in pieces.
            let mut stream = BytesMut::new();
            let mut got = Vec::new();
            for chunk in wire.chunks(7) {
                stream.extend_from_slice(chunk);
                while let Some(frame) = c.decode(&mut stream).unwrap() {
                    got.push(frame.freeze());
                }
            }
            assert_eq!(got, frames, "{method:?}");
        }
    }

    #[test]
    fn small_and_incompressible_frames_go_stored() {
        let mut c = codec(Compression::Deflate);
        let mut wire = BytesMut::new();
        c.encode(Bytes::from_static(b"hello"), &mut wire).unwrap();
        assert_eq!(wire[0], STORED);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..2000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let mut wire = BytesMut::new();
        c.encode(Bytes::from(noise.clone()), &mut wire).unwrap();
        assert_eq!(wire[0], STORED, "compressing would not make it shorter");
        assert_eq!(&c.decode(&mut wire).unwrap().unwrap()[..], &noise[..]);
    }

    #[test]
    fn a_deflate_bomb_is_refused_at_the_bound_without_inflating_it() {
        // 1 GiB of zeros would deflate to about 1 MiB; 4 MiB of zeros is 4 KiB.
        let zeros = vec![0u8; 4 << 20];
        let bomb = {
            let mut d = Compress::new(flate2::Compression::best(), true);
            let mut out = Vec::with_capacity(64 << 10);
            d.compress_vec(&zeros, &mut out, FlushCompress::Finish)
                .unwrap();
            out
        };
        assert!(bomb.len() < 8 << 10, "{}", bomb.len());
        let mut wire = BytesMut::new();
        wire.put_u8(DEFLATE);
        wire.put_u32(bomb.len() as u32);
        wire.put_slice(&bomb);
        let mut c = Compressed::new(LengthDelimited::new(), Compression::Deflate, 64 << 10);
        let err = c.decode(&mut wire).unwrap_err();
        assert!(
            matches!(err.kind(), crate::ErrorKind::FrameTooLong { max, .. } if *max == 64 << 10),
            "{err}"
        );
    }

    #[test]
    fn a_snappy_block_announcing_too_much_is_refused_before_allocating() {
        let mut payload = Vec::new();
        // Snappy's header: the uncompressed length as a varint, here 1 GiB.
        let mut n: u64 = 1 << 30;
        while n >= 0x80 {
            payload.push((n as u8) | 0x80);
            n >>= 7;
        }
        payload.push(n as u8);
        payload.extend_from_slice(&[0; 8]);
        let mut wire = BytesMut::new();
        wire.put_u8(SNAPPY);
        wire.put_u32(payload.len() as u32);
        wire.put_slice(&payload);
        let mut c = Compressed::new(LengthDelimited::new(), Compression::Snappy, 4096);
        let err = c.decode(&mut wire).unwrap_err();
        assert!(
            matches!(err.kind(), crate::ErrorKind::FrameTooLong { len, .. } if *len == 1 << 30),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        let mut c = codec(Compression::Deflate);
        for bytes in [
            &b"\x01\0\0\0\x03abc"[..],
            b"\x02\0\0\0\x02\xff\xff",
            b"\x07\0\0\0\0",
            b"\0\0\0\0\x02ab",
        ] {
            let mut wire = BytesMut::from(bytes);
            let err = c.decode(&mut wire).unwrap_err();
            assert!(
                matches!(err.kind(), crate::ErrorKind::Decode { .. }),
                "{bytes:?}: {err}"
            );
        }
    }
}
