//! Property tests of the built-in codecs as the reader drives them: any split of a byte
//! stream into reads yields the same frames, and no input panics or grows the buffer
//! past its bound.

use bytes::{BufMut, Bytes, BytesMut};
use getty::{ErrorKind, LengthDelimited, RawBytes};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

/// The reader's bound on an undecoded frame: the max plus the header allowance.
const ALLOWANCE: usize = 64;

/// Feeds `wire` to `codec` cut at `cuts`, decoding all it can after each piece, as the
/// session reader does; then `decode_eof`. Returns the frames, or the first error.
fn drive<D>(
    codec: &mut D,
    wire: &[u8],
    cuts: &[usize],
    bound: usize,
) -> Result<Vec<D::Item>, D::Error>
where
    D: Decoder,
{
    let mut frames = Vec::new();
    let mut buf = BytesMut::new();
    let mut at = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.sort_unstable();
    points.push(wire.len());
    for point in points {
        buf.extend_from_slice(&wire[at..point.max(at)]);
        at = point.max(at);
        while let Some(frame) = codec.decode(&mut buf)? {
            frames.push(frame);
        }
        assert!(
            buf.len() <= bound,
            "{} bytes undecoded, bound {bound}",
            buf.len()
        );
    }
    while let Some(frame) = codec.decode_eof(&mut buf)? {
        frames.push(frame);
    }
    Ok(frames)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_split_yields_the_same_frames(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..2000), 0..40),
        cuts in prop::collection::vec(any::<usize>(), 0..64),
    ) {
        let mut wire = BytesMut::new();
        let mut enc = LengthDelimited::with_max_frame_length(4096);
        for p in &payloads {
            enc.encode(Bytes::copy_from_slice(p), &mut wire).unwrap();
        }
        let mut codec = LengthDelimited::with_max_frame_length(4096);
        let frames = drive(&mut codec, &wire, &cuts, 4096 + ALLOWANCE).unwrap();
        let frames: Vec<Vec<u8>> = frames.into_iter().map(|f| f.to_vec()).collect();
        prop_assert_eq!(frames, payloads);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        wire in prop::collection::vec(any::<u8>(), 0..4096),
        cuts in prop::collection::vec(any::<usize>(), 0..32),
    ) {
        const MAX: usize = 256;
        let mut codec = LengthDelimited::with_max_frame_length(MAX);
        let mut buf = BytesMut::new();
        let mut at = 0;
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        points.sort_unstable();
        points.push(wire.len());
        'feed: for point in points {
            let point = point.max(at);
            buf.extend_from_slice(&wire[at..point]);
            at = point;
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => prop_assert!(frame.len() <= MAX),
                    Ok(None) => break,
                    Err(err) => {
                        prop_assert!(matches!(err.kind(), ErrorKind::FrameTooLong { max: MAX, .. }), "{err:?}");
                        break 'feed;
                    }
                }
            }
            // What stays undecoded is at most one frame in progress: its header is
            // checked before its payload is buffered.
            prop_assert!(buf.len() <= MAX + ALLOWANCE, "{} bytes undecoded", buf.len());
        }
    }

    #[test]
    fn raw_bytes_passes_everything_through_in_bounded_chunks(
        wire in prop::collection::vec(any::<u8>(), 0..8192),
        cuts in prop::collection::vec(any::<usize>(), 0..32),
        max in 1usize..1024,
    ) {
        let mut codec = RawBytes::with_max_chunk(max);
        let frames = drive(&mut codec, &wire, &cuts, usize::MAX / 4).unwrap();
        prop_assert!(frames.iter().all(|f| !f.is_empty() && f.len() <= max));
        let joined: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        prop_assert_eq!(joined, wire);
    }
}

#[test]
fn encode_then_decode_round_trips_a_max_size_frame() {
    let mut codec = LengthDelimited::with_max_frame_length(1 << 16);
    let mut wire = BytesMut::new();
    let payload = Bytes::from(vec![0xab; 1 << 16]);
    codec.encode(payload.clone(), &mut wire).unwrap();
    wire.put_u8(0); // the start of a next header
    let frame = codec.decode(&mut wire).unwrap().unwrap();
    assert_eq!(frame, payload);
    assert_eq!(wire.len(), 1);
}
