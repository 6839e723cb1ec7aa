//! What permessage-deflate's context takeover costs in memory: the resident set of
//! 1,000 compressor and decompressor pairs (flate2, level 6, raw deflate), each used for
//! one chat line as a session's would be, divided by 1,000. A session with context
//! takeover keeps one pair for its life; without it, the sessions of a thread share one.
//!
//! ```text
//! cargo bench --bench deflate_memory
//! ```

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// The resident set of this process in KiB (0 where /proc is missing).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

fn main() {
    const PAIRS: u64 = 1_000;
    let line = br#"{"type":"chat","room":"lobby","from":"user3","text":"message number 1: the game starts in five minutes, ready?","ts":1733100000137}"#;
    let before = rss_kib();
    let mut pairs = Vec::new();
    for _ in 0..PAIRS {
        let mut compress = Compress::new(Compression::new(6), false);
        let mut decompress = Decompress::new(false);
        let mut packed = Vec::with_capacity(256);
        let mut unpacked = Vec::with_capacity(256);
        let packing = compress.compress_vec(line, &mut packed, FlushCompress::Sync);
        let unpacking = decompress.decompress_vec(&packed, &mut unpacked, FlushDecompress::Sync);
        assert!(packing.is_ok() && unpacking.is_ok() && unpacked == line);
        pairs.push((compress, decompress));
    }
    let after = rss_kib();
    println!(
        "deflate context per session (compressor + decompressor, used once): {} KiB \
         (resident set of {PAIRS} pairs)",
        after.saturating_sub(before) / PAIRS
    );
    drop(pairs);
}
