//! Arbitrary bytes, cut into reads where the input says, through `LengthDelimited` as the
//! session reader drives it: no panic, every frame within the max, and never more than
//! one frame in progress left undecoded.
#![no_main]

use bytes::BytesMut;
use getty::LengthDelimited;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

const MAX: usize = 1024;

fuzz_target!(|input: &[u8]| {
    // The first byte sets the read size (1..=256 bytes), the rest is the stream.
    let Some((&step, wire)) = input.split_first() else {
        return;
    };
    let step = usize::from(step) + 1;
    let mut codec = LengthDelimited::with_max_frame_length(MAX);
    let mut buf = BytesMut::new();
    for read in wire.chunks(step) {
        buf.extend_from_slice(read);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => assert!(frame.len() <= MAX),
                Ok(None) => break,
                Err(_) => return, // the session would end here, with on_error
            }
        }
        assert!(buf.len() <= MAX + 64, "{} bytes undecoded", buf.len());
    }
    let _ = codec.decode_eof(&mut buf);
});
