//! The examples' wire format: length-delimited frames, optionally compressed frame by
//! frame (`--compress deflate|deflate-fast|deflate-best|deflate-huffman|snappy`).

use bytes::{Bytes, BytesMut};
use getty::codec::{Compressed, Compression};
use getty::LengthDelimited;
use tokio_util::codec::{Decoder, Encoder};

/// Length-delimited frames, plain (the yardstick's format) or each compressed on its own.
#[derive(Debug, Clone)]
pub enum Framing {
    /// 4-byte big-endian length + payload.
    Plain(LengthDelimited),
    /// The same frames, each compressed by the adapter.
    Compressed(Compressed<LengthDelimited>),
}

impl Framing {
    /// The framing `--compress` names (`None`: plain), for frames up to `max` bytes.
    pub fn new(compress: Option<Compression>, max: usize) -> Framing {
        let plain = LengthDelimited::with_max_frame_length(max);
        match compress {
            None => Framing::Plain(plain),
            // The compressed payload holds a whole inner frame: its 4-byte header too.
            Some(method) => Framing::Compressed(Compressed::new(plain, method, max + 4)),
        }
    }
}

/// The `--compress` option of `opts` (`None` when absent); exits 2 on a name it does
/// not know.
pub fn from_options(opts: &super::Options, usage: &str) -> Option<Compression> {
    let name = opts.opt::<String>("compress")?;
    let method = compression(&name);
    if method.is_none() {
        eprintln!(
            "unknown --compress {name:?}: deflate, deflate-fast, deflate-best, deflate-huffman or snappy\n{usage}"
        );
        std::process::exit(2);
    }
    method
}

/// Parses a `--compress` value.
pub fn compression(name: &str) -> Option<Compression> {
    match name {
        "deflate" => Some(Compression::Deflate),
        "deflate-fast" => Some(Compression::DeflateBestSpeed),
        "deflate-best" => Some(Compression::DeflateBestCompression),
        "deflate-huffman" => Some(Compression::DeflateHuffmanOnly),
        "snappy" => Some(Compression::Snappy),
        _ => None,
    }
}

impl Decoder for Framing {
    type Item = BytesMut;
    type Error = getty::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, getty::Error> {
        match self {
            Framing::Plain(codec) => codec.decode(src),
            Framing::Compressed(codec) => codec.decode(src),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, getty::Error> {
        match self {
            Framing::Plain(codec) => codec.decode_eof(src),
            Framing::Compressed(codec) => codec.decode_eof(src),
        }
    }
}

impl Encoder<Bytes> for Framing {
    type Error = getty::Error;

    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), getty::Error> {
        match self {
            Framing::Plain(codec) => codec.encode(frame, dst),
            Framing::Compressed(codec) => codec.encode(frame, dst),
        }
    }
}
