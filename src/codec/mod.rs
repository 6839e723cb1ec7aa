//! Codecs: how bytes become typed frames and back.
//!
//! A session's codec is any [`tokio_util::codec`] type that implements both
//! [`Decoder`] (bytes in, frames out) and [`Encoder`] (frames in, bytes out), unchanged:
//! the [`Codec`] trait is implemented for every such type. The reader actor owns one
//! clone of the codec for decoding and the logic actor another for encoding, so a codec
//! must be [`Clone`] (all of tokio-util's are).
//!
//! Two codecs ship with the crate:
//! - [`LengthDelimited`]: a 4-byte big-endian length, then that many payload bytes. The
//!   default wire format of the examples and of `../shared/yardstick`.
//! - [`RawBytes`]: no framing; every read yields the bytes that arrived.
//!
//! And one adapter: [`Compressed`] wraps any of them (or yours) and compresses each frame
//! on its own with deflate or snappy (getty's compress types), its decompression bounded
//! by the max frame length.
//!
//! ## Frame length bound
//! Whatever the codec, the reader never buffers more than the session's
//! [`max_frame_length`](crate::SessionConfig::max_frame_length) plus
//! [`FRAME_HEADER_ALLOWANCE`](crate::config::FRAME_HEADER_ALLOWANCE) bytes of one
//! undecoded frame: past that the session ends with
//! [`ErrorKind::FrameTooLong`](crate::ErrorKind::FrameTooLong). The built-in codecs go
//! further and refuse a frame as soon as its header announces a length over their limit.
//!
//! ## A user codec
//! ```
//! use tokio_util::codec::LinesCodec;
//! fn takes_a_codec<C: getty::Codec<String>>(_: C) {}
//! takes_a_codec(LinesCodec::new()); // tokio-util's codecs work as they are
//! ```

mod compress;
mod length_delimited;
mod raw;

pub use compress::{Compressed, Compression, DEFAULT_COMPRESS_THRESHOLD};
pub use length_delimited::LengthDelimited;
pub use raw::RawBytes;

use crate::error::BoxError;
use tokio_util::codec::{Decoder, Encoder};

/// A tokio-util codec usable by a session: decodes frames of type
/// `<Self as Decoder>::Item` and encodes frames of type `Out`.
///
/// Implemented for every type that meets the bounds; never implement it by hand.
pub trait Codec<Out>:
    Decoder<Item: Send + 'static, Error: Into<BoxError>>
    + Encoder<Out, Error: Into<BoxError>>
    + Clone
    + 'static
{
}

impl<T, Out> Codec<Out> for T where
    T: Decoder<Item: Send + 'static, Error: Into<BoxError>>
        + Encoder<Out, Error: Into<BoxError>>
        + Clone
        + 'static
{
}
