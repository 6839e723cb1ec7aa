//! Arbitrary bytes through `RawBytes`: no panic, every chunk within its max, and the
//! chunks put together give back the input.
#![no_main]

use bytes::BytesMut;
use getty::RawBytes;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|input: &[u8]| {
    let Some((&max, wire)) = input.split_first() else {
        return;
    };
    let max = usize::from(max) + 1;
    let mut codec = RawBytes::with_max_chunk(max);
    let mut buf = BytesMut::from(wire);
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = codec.decode(&mut buf) {
        assert!(!chunk.is_empty() && chunk.len() <= max);
        out.extend_from_slice(&chunk);
    }
    assert_eq!(out, wire);
});
