//! permessage-deflate (RFC 7692): the extension's negotiation, and the compression of
//! one message's payload, done by flate2 (raw deflate, each message ending in a sync
//! flush whose `00 00 FF FF` tail is not sent).
//!
//! Without context takeover (the default) each message is compressed on its own, so a
//! session keeps no compressor state between messages: the compressor and decompressor
//! are one pair per thread (an arbiter's sessions take turns on its thread, and a message
//! is compressed or inflated in one call), reset for each message. With context takeover
//! each session keeps its own pair, which compresses small, similar messages (chat lines,
//! JSON events) several times better at the cost of that state per session (see
//! [`PerMessageDeflate::context_takeover`]).

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The tail a sync flush ends with, stripped from each compressed message (RFC 7692
/// §7.2.1) and put back before inflating.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The name of the extension in `Sec-WebSocket-Extensions`.
const NAME: &str = "permessage-deflate";

/// The permessage-deflate settings of a WebSocket endpoint (RFC 7692), set with
/// [`WsBuilder::per_message_deflate`](super::WsBuilder::per_message_deflate).
///
/// A server accepts the first offer it can honour; a client offers it and compresses if
/// the server accepts. Either side sends a message uncompressed when it is shorter than
/// the [threshold](Self::threshold) (RFC 7692 lets any message go either way), and a
/// compressed message from the peer is inflated within the session's max frame length:
/// one that would inflate past it ends the session (close code 1009) before more memory
/// is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerMessageDeflate {
    pub(crate) context_takeover: bool,
    pub(crate) threshold: usize,
    pub(crate) level: u32,
}

impl Default for PerMessageDeflate {
    fn default() -> Self {
        PerMessageDeflate {
            context_takeover: false,
            threshold: DEFAULT_DEFLATE_THRESHOLD,
            level: 6,
        }
    }
}

/// Messages shorter than this many bytes go uncompressed by default: deflate's own
/// header and end cost a few bytes, and a short message rarely repeats itself.
pub const DEFAULT_DEFLATE_THRESHOLD: usize = 64;

impl PerMessageDeflate {
    /// Compression without context takeover, level 6, threshold
    /// [`DEFAULT_DEFLATE_THRESHOLD`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps each direction's deflate context from one message to the next (RFC 7692
    /// context takeover). Messages that repeat what came before (chat lines, JSON with the
    /// same keys) then compress several times better (BENCHMARKS.md has figures), but
    /// each session holds a compressor and a decompressor for its whole life: about
    /// 300 KB, which 10,000 sessions turn into 3 GB. Default: off, and the sessions of a
    /// thread share one pair.
    pub fn context_takeover(mut self, on: bool) -> Self {
        self.context_takeover = on;
        self
    }

    /// Messages shorter than `bytes` go uncompressed. Default
    /// [`DEFAULT_DEFLATE_THRESHOLD`].
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// The deflate level, 0 (store) to 9 (smallest); higher values are clamped to 9.
    /// Default 6.
    pub fn level(mut self, level: u32) -> Self {
        self.level = level.min(9);
        self
    }

    /// The offer a client sends: without context takeover, both directions are asked to
    /// compress each message on its own.
    pub(crate) fn client_offer(&self) -> String {
        if self.context_takeover {
            NAME.to_owned()
        } else {
            format!("{NAME}; server_no_context_takeover; client_no_context_takeover")
        }
    }

    /// A server's answer to the client's offers (the values of its
    /// `Sec-WebSocket-Extensions` headers): the first permessage-deflate offer it can
    /// honour, as the header to send back and what was agreed. `None` when there is none:
    /// the connection goes on uncompressed.
    pub(crate) fn accept<'a>(
        &self,
        offers: impl IntoIterator<Item = &'a str>,
    ) -> Option<(String, Agreed)> {
        let offer = offers
            .into_iter()
            .flat_map(|header| header.split(','))
            .filter_map(|ext| Params::parse(ext, NAME))
            .find(|p| p.valid && matches!(p.server_max_window_bits, None | Some(15)))?;
        // We compress with context only if we want to and the client lets us; we ask the
        // client to compress without it unless we keep a decompressor per session.
        let ours = self.context_takeover && !offer.server_no_context_takeover;
        let theirs = self.context_takeover && !offer.client_no_context_takeover;
        let mut answer = NAME.to_owned();
        if !ours {
            answer.push_str("; server_no_context_takeover");
        }
        if !theirs {
            answer.push_str("; client_no_context_takeover");
        }
        Some((
            answer,
            Agreed {
                settings: *self,
                compress_context: ours,
                inflate_context: theirs,
            },
        ))
    }

    /// A client's reading of the server's answer (its `Sec-WebSocket-Extensions`
    /// headers) to [`client_offer`](Self::client_offer): `Ok(None)` when the server did
    /// not accept, `Err` when it answered something the client cannot honour (RFC 7692:
    /// the client then fails the connection).
    pub(crate) fn agreed<'a>(
        &self,
        answers: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<Agreed>, String> {
        let mut agreed = None;
        for ext in answers.into_iter().flat_map(|h| h.split(',')) {
            let Some(p) = Params::parse(ext, NAME) else {
                let name = ext.split(';').next().unwrap_or_default().trim();
                return Err(format!(
                    "the server answered an extension not offered: {name}"
                ));
            };
            if !p.valid || agreed.is_some() || p.client_max_window_bits.is_some() {
                return Err(format!(
                    "a permessage-deflate answer this client cannot honour: {ext}"
                ));
            }
            let theirs_without_context = p.server_no_context_takeover;
            let ours_without_context = p.client_no_context_takeover;
            let both_without = theirs_without_context && ours_without_context;
            if !self.context_takeover && !both_without {
                return Err("the server kept a context this client asked it to drop".to_owned());
            }
            agreed = Some(Agreed {
                settings: *self,
                compress_context: self.context_takeover && !ours_without_context,
                inflate_context: !theirs_without_context,
            });
        }
        Ok(agreed)
    }
}

/// What the two sides agreed on for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Agreed {
    settings: PerMessageDeflate,
    /// This side keeps its compression context between messages.
    compress_context: bool,
    /// The peer keeps its context: inflating needs this session's own decompressor.
    inflate_context: bool,
}

impl Agreed {
    /// The compressing half, for the side that writes.
    pub(crate) fn deflater(&self) -> Deflater {
        Deflater {
            own: self
                .compress_context
                .then(|| Box::new(Compress::new(level(self.settings.level), false))),
            level: self.settings.level,
            threshold: self.settings.threshold,
        }
    }

    /// The inflating half, for the side that reads.
    pub(crate) fn inflater(&self) -> Inflater {
        Inflater {
            own: self
                .inflate_context
                .then(|| Box::new(Decompress::new(false))),
        }
    }
}

fn level(level: u32) -> Compression {
    Compression::new(level.min(9))
}

/// The parameters of one offered or accepted permessage-deflate (RFC 7692 §7.1).
#[derive(Debug, Default)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: the parameter without a value (a client saying it supports it).
    client_max_window_bits: Option<Option<u8>>,
    /// No unknown, repeated or malformed parameter.
    valid: bool,
}

impl Params {
    /// The parameters of `ext` if it is the extension `name`.
    fn parse(ext: &str, name: &str) -> Option<Params> {
        let mut parts = ext.split(';').map(str::trim);
        if !parts.next()?.eq_ignore_ascii_case(name) {
            return None;
        }
        let mut p = Params {
            valid: true,
            ..Params::default()
        };
        for param in parts {
            let (key, value) = match param.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                None => (param, None),
            };
            let bits = value.map(|v| v.parse::<u8>().ok().filter(|b| (8..=15).contains(b)));
            let ok = match (key.to_ascii_lowercase().as_str(), value) {
                ("server_no_context_takeover", None) => {
                    !std::mem::replace(&mut p.server_no_context_takeover, true)
                }
                ("client_no_context_takeover", None) => {
                    !std::mem::replace(&mut p.client_no_context_takeover, true)
                }
                ("server_max_window_bits", Some(_)) => match bits.flatten() {
                    Some(b) => p.server_max_window_bits.replace(b).is_none(),
                    None => false,
                },
                ("client_max_window_bits", None) => {
                    p.client_max_window_bits.replace(None).is_none()
                }
                ("client_max_window_bits", Some(_)) => match bits.flatten() {
                    Some(b) => p.client_max_window_bits.replace(Some(b)).is_none(),
                    None => false,
                },
                _ => false,
            };
            p.valid &= ok;
        }
        Some(p)
    }
}

thread_local! {
    /// The compressors (one per level) and the decompressor that the sessions of this
    /// thread share when they keep no context.
    static SHARED: RefCell<(Vec<Option<Compress>>, Decompress)> =
        RefCell::new(((0..10).map(|_| None).collect(), Decompress::new(false)));
}

/// Compresses the messages one side writes.
#[derive(Debug)]
pub(crate) struct Deflater {
    /// This session's compressor, with context takeover.
    own: Option<Box<Compress>>,
    level: u32,
    threshold: usize,
}

impl Deflater {
    /// The payload of `message` compressed, or `None` to send it as it is (shorter than
    /// the threshold).
    pub(crate) fn compress(&mut self, payload: &[u8]) -> Option<Bytes> {
        if payload.len() < self.threshold {
            return None;
        }
        let mut out = Vec::with_capacity(payload.len() / 2 + 16);
        match &mut self.own {
            Some(compress) => deflate(compress, payload, &mut out),
            None => SHARED.with(|shared| {
                let compressors = &mut shared.borrow_mut().0;
                let compress = compressors[self.level as usize]
                    .get_or_insert_with(|| Compress::new(level(self.level), false));
                compress.reset();
                deflate(compress, payload, &mut out)
            }),
        }
        Some(Bytes::from(out))
    }
}

/// Deflates `payload` with a sync flush onto `out`, without the flush's tail.
fn deflate(compress: &mut Compress, payload: &[u8], out: &mut Vec<u8>) {
    let start = compress.total_in();
    loop {
        let done = (compress.total_in() - start) as usize;
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(64));
        }
        // Writing into a Vec's spare room cannot fail for a raw deflate stream.
        let _ = compress.compress_vec(&payload[done..], out, FlushCompress::Sync);
        // Done once all the input is in and the flush had room to finish.
        if (compress.total_in() - start) as usize == payload.len() && out.len() < out.capacity() {
            break;
        }
    }
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// It inflates past the bound (the inflated bytes so far).
    TooLong(usize),
    /// It is not valid deflate data.
    Invalid(String),
}

/// Inflates the compressed messages one side reads.
#[derive(Debug)]
pub(crate) struct Inflater {
    /// This session's decompressor, when the peer keeps its context.
    own: Option<Box<Decompress>>,
}

impl Inflater {
    /// Inflates one message's payload, at most `bound` bytes of it.
    pub(crate) fn inflate(
        &mut self,
        payload: &[u8],
        bound: usize,
    ) -> Result<BytesMut, InflateError> {
        match &mut self.own {
            Some(decompress) => inflate(decompress, payload, bound),
            None => SHARED.with(|shared| {
                let decompress = &mut shared.borrow_mut().1;
                decompress.reset(false);
                inflate(decompress, payload, bound)
            }),
        }
    }
}

/// Inflates `payload` and the sync-flush tail, never holding more than `bound` + 1
/// inflated bytes: a message that would inflate past `bound` is refused there, however
/// far it would go.
fn inflate(d: &mut Decompress, payload: &[u8], bound: usize) -> Result<BytesMut, InflateError> {
    let most = bound.saturating_add(1);
    let mut out = Vec::with_capacity(payload.len().saturating_mul(2).max(64).min(most));
    for input in [payload, &TAIL[..]] {
        let start = d.total_in();
        loop {
            let done = (d.total_in() - start) as usize;
            if out.len() == out.capacity() {
                if out.len() > bound {
                    return Err(InflateError::TooLong(out.len()));
                }
                // Grow by doubling, never past one byte over the bound.
                let room = out.capacity().min(most - out.len()).max(1);
                out.reserve_exact(room);
            }
            let status = d
                .decompress_vec(&input[done..], &mut out, FlushDecompress::Sync)
                .map_err(|err| InflateError::Invalid(err.to_string()))?;
            if out.len() > bound {
                return Err(InflateError::TooLong(out.len()));
            }
            let consumed = (d.total_in() - start) as usize == input.len();
            if status == Status::StreamEnd || (consumed && out.len() < out.capacity()) {
                break;
            }
        }
    }
    // Room for the kind byte a message-mode session appends, without a copy.
    out.reserve_exact(1);
    Ok(BytesMut::from(Bytes::from(out)))
}

#[cfg(test)]
mod tests;
