//! The deflate unit tests: messages, bombs, and both sides of the negotiation.
use super::*;

fn agreed(context: bool) -> Agreed {
    let settings = PerMessageDeflate::new()
        .context_takeover(context)
        .threshold(0);
    Agreed {
        settings,
        compress_context: context,
        inflate_context: context,
    }
}

#[test]
fn messages_round_trip_with_and_without_context() {
    for context in [false, true] {
        let (mut deflater, mut inflater) = (agreed(context).deflater(), agreed(context).inflater());
        let line = br#"{"type":"chat","room":"lobby","from":"user42","text":"hello everyone"}"#;
        let mut sizes = Vec::new();
        for i in 0..20 {
            let mut msg = line.to_vec();
            msg.extend_from_slice(format!("{i}").as_bytes());
            let packed = deflater.compress(&msg).expect("over the threshold");
            sizes.push(packed.len());
            assert!(!packed.ends_with(&TAIL), "the flush tail is not sent");
            let unpacked = inflater.inflate(&packed, 1 << 20).unwrap();
            assert_eq!(&unpacked[..], &msg[..], "context {context}");
        }
        if context {
            // Later messages refer back to earlier ones: far smaller than the first.
            assert!(sizes[19] * 3 < sizes[0], "{sizes:?}");
        } else {
            assert!(sizes.iter().all(|&s| s + 6 > sizes[0]), "{sizes:?}");
        }
    }
}

#[test]
fn short_messages_go_uncompressed_and_empty_ones_round_trip() {
    let mut deflater = Agreed {
        settings: PerMessageDeflate::new(),
        compress_context: false,
        inflate_context: false,
    }
    .deflater();
    assert_eq!(
        deflater.compress(&[b'a'; DEFAULT_DEFLATE_THRESHOLD - 1]),
        None
    );
    assert!(deflater
        .compress(&[b'a'; DEFAULT_DEFLATE_THRESHOLD])
        .is_some());
    let packed = agreed(false).deflater().compress(b"").unwrap();
    assert_eq!(
        &agreed(false).inflater().inflate(&packed, 10).unwrap()[..],
        b""
    );
}

#[test]
fn a_bomb_is_refused_at_the_bound_without_inflating_it() {
    // 1 GiB of zeros deflates to about 1 MiB; compress 64 MiB of it (64 KiB).
    let zeros = vec![0u8; 64 << 20];
    let bomb = agreed(false).deflater().compress(&zeros).unwrap();
    assert!(bomb.len() < 128 * 1024, "{}", bomb.len());
    let err = agreed(false)
        .inflater()
        .inflate(&bomb, 1 << 20)
        .unwrap_err();
    assert!(
        matches!(err, InflateError::TooLong(n) if n > 1 << 20),
        "{err:?}"
    );
}

#[test]
fn garbage_is_invalid() {
    let err = agreed(false)
        .inflater()
        .inflate(&[0xff; 32], 1000)
        .unwrap_err();
    assert!(matches!(err, InflateError::Invalid(_)), "{err:?}");
    // The shared decompressor is fine for the next message.
    let packed = agreed(false).deflater().compress(b"after garbage").unwrap();
    assert_eq!(
        &agreed(false).inflater().inflate(&packed, 100).unwrap()[..],
        b"after garbage"
    );
}

#[test]
fn a_server_accepts_the_first_offer_it_can_honour() {
    let config = PerMessageDeflate::new();
    // Chromium's offer.
    let chromium = ["permessage-deflate; client_max_window_bits"];
    let (answer, agreed) = config.accept(chromium).unwrap();
    assert_eq!(
        answer,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    assert!(!agreed.compress_context && !agreed.inflate_context);
    // A smaller server window cannot be honoured: the next offer is taken.
    let offers = ["permessage-deflate; server_max_window_bits=10, permessage-deflate"];
    assert!(config.accept(offers).is_some());
    assert!(config
        .accept(["permessage-deflate; server_max_window_bits=10"])
        .is_none());
    // Unknown, repeated and malformed parameters, and other extensions.
    for offer in [
        "permessage-deflate; x_unknown",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; client_max_window_bits=99",
        "x-webkit-deflate-frame",
    ] {
        assert!(config.accept([offer]).is_none(), "{offer}");
    }
    assert!(config.accept([]).is_none());
    // With context takeover, the client keeps its context unless it said otherwise.
    let keep = PerMessageDeflate::new().context_takeover(true);
    let (answer, agreed) = keep.accept(["permessage-deflate"]).unwrap();
    assert_eq!(answer, "permessage-deflate");
    assert!(agreed.compress_context && agreed.inflate_context);
    let (answer, _) = keep
        .accept(["permessage-deflate; server_no_context_takeover"])
        .unwrap();
    assert_eq!(answer, "permessage-deflate; server_no_context_takeover");
}

#[test]
fn a_client_reads_the_answer_to_its_offer() {
    let config = PerMessageDeflate::new();
    assert_eq!(
        config.client_offer(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    let answer = ["permessage-deflate; server_no_context_takeover; client_no_context_takeover"];
    let agreed = config.agreed(answer).unwrap().unwrap();
    assert!(!agreed.compress_context && !agreed.inflate_context);
    assert_eq!(
        config.agreed([]).unwrap(),
        None,
        "not accepted: uncompressed"
    );
    for bad in [
        "permessage-deflate", // keeps the context this client asked it to drop
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=10",
        "x-other",
    ] {
        assert!(config.agreed([bad]).is_err(), "{bad}");
    }
    let keep = PerMessageDeflate::new().context_takeover(true);
    let agreed = keep
        .agreed(["permessage-deflate; server_max_window_bits=12"])
        .unwrap()
        .unwrap();
    assert!(agreed.compress_context && agreed.inflate_context);
}
