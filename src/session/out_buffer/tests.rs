//! Unit tests of the write queue: water marks, memory bounds, the thread's buffer
//! pool, acknowledgements, and message mode.

use super::pool::{IDLE_BUFFERS, POOLED_BUFFERS, POOLED_BUFFER_MAX};
use super::*;
use crate::codec::LengthDelimited;
use crate::ErrorKind;
use bytes::Bytes;

fn queue(high: usize, low: usize) -> OutBuffer<LengthDelimited> {
    OutBuffer::new(LengthDelimited::new(), SessionId::of(1), high, low)
}

#[test]
fn refuses_past_high_water_and_recovers_at_low_water() {
    let mut q = queue(10, 4);
    q.encode(Bytes::from_static(b"123456")).unwrap(); // 10 bytes on the wire
    assert!(!q.is_writable());
    let err = q.encode(Bytes::from_static(b"x")).unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::QueueFull {
            queued: 10,
            limit: 10,
            ..
        }
    ));
    q.consume(5);
    assert!(!q.is_writable(), "above low water");
    q.consume(1);
    assert!(q.is_writable());
    q.encode(Bytes::from_static(b"x")).unwrap();
}

/// Fills a queue with 1,000-byte frames until it refuses one; returns what it holds.
fn fill(q: &mut OutBuffer<LengthDelimited>) -> usize {
    for _ in 0..10_000 {
        if q.encode(Bytes::from(vec![7; 1000])).is_err() {
            return q.len();
        }
    }
    panic!("the queue never refused a write");
}

#[test]
fn a_full_queue_takes_no_more_memory_than_its_limit_and_one_frame() {
    let limit = 300_000; // not a power of two: doubling would overshoot to 512 KiB
    let mut q = queue(limit, limit / 2);
    let held = fill(&mut q);
    assert!(held >= limit && held < limit + 1004);
    assert!(q.memory() < limit + 1004, "{} bytes for {held}", q.memory());
    // What was queued is intact: drained in order, every frame whole.
    let mut seen = 0;
    while !q.is_empty() {
        let chunk = q.chunk();
        assert_eq!(&chunk[..4], &1000u32.to_be_bytes());
        q.consume(1004);
        seen += 1;
    }
    assert_eq!(seen * 1004, held);
}

#[test]
fn the_budget_cap_bounds_the_allocation_too() {
    let mut q = queue(1 << 20, 1 << 19);
    let cap = 100_000;
    q.set_budget_gate(BudgetGate {
        cap,
        share: cap,
        budget: 10 * cap,
    });
    let held = fill(&mut q);
    assert!(held >= cap && held < cap + 1004);
    assert!(q.memory() < cap + 1004, "{} bytes for {held}", q.memory());
}

fn pooled() -> usize {
    IDLE_BUFFERS.with(|pool| pool.borrow().len())
}

// Each test runs on a thread of its own, so each sees its own pool.
#[test]
fn an_emptied_queue_gives_its_buffer_to_the_next_queue_on_the_thread() {
    let mut first = queue(1 << 20, 1 << 19);
    first.encode(Bytes::from(vec![1; 1000])).unwrap();
    let allocation = first.chunk().as_ptr();
    first.consume(500);
    assert_eq!(pooled(), 0, "a queue with bytes left keeps its buffer");
    first.consume(504);
    assert_eq!(first.buf.capacity(), 0, "an empty queue holds no buffer");
    assert_eq!(pooled(), 1);
    let mut second = queue(1 << 20, 1 << 19);
    second.encode(Bytes::from_static(b"next")).unwrap();
    assert_eq!(second.chunk().as_ptr(), allocation);
    assert_eq!(second.chunk(), b"\0\0\0\x04next");
    assert_eq!(pooled(), 0);
}

#[test]
fn a_refused_write_to_an_empty_queue_leaves_no_buffer_held() {
    let mut q = queue(1 << 20, 1 << 19);
    q.encode(Bytes::from_static(b"x")).unwrap();
    q.consume(5);
    let too_long = Bytes::from(vec![0; LengthDelimited::new().max_frame_length() + 1]);
    assert!(q.encode(too_long).is_err());
    assert_eq!(q.buf.capacity(), 0);
    assert_eq!(pooled(), 1);
    let mut m = queue(1 << 20, 1 << 19)
        .preserve_messages(true)
        .limit_messages(Some(MessageLimit {
            max: 2,
            overhead: 0,
        }));
    assert!(m.encode(Bytes::from_static(b"long")).is_err());
    assert_eq!(m.buf.capacity(), 0);
    assert_eq!(
        pooled(),
        1,
        "the message queue took the pooled buffer and gave it back"
    );
}

#[test]
fn a_buffer_written_whole_goes_back_with_its_start_in_place() {
    let mut first = queue(1 << 20, 1 << 19);
    first.encode(Bytes::from(vec![1; 1000])).unwrap();
    let allocation = first.chunk().as_ptr();
    first.consume(1004);
    assert!(!first.start_moved, "one whole write moves no start");
    let mut second = queue(1 << 20, 1 << 19);
    second.encode(Bytes::from(vec![2; 1000])).unwrap();
    assert_eq!(second.chunk().as_ptr(), allocation);
    second.consume(4);
    second.consume(1000);
    assert!(!second.start_moved, "released with the buffer");
    let mut third = queue(1 << 20, 1 << 19);
    third.encode(Bytes::from_static(b"x")).unwrap();
    assert_eq!(
        third.chunk().as_ptr(),
        allocation,
        "after a partial write the pool took the room before the start back"
    );
}

#[test]
fn the_pool_keeps_a_few_buffers_of_bounded_size() {
    let mut queues: Vec<_> = (0..POOLED_BUFFERS + 2)
        .map(|_| queue(1 << 20, 1 << 19))
        .collect();
    for q in &mut queues {
        q.encode(Bytes::from(vec![2; 100])).unwrap();
    }
    for q in &mut queues {
        q.consume(104);
    }
    assert_eq!(pooled(), POOLED_BUFFERS);
    give_buffer(BytesMut::with_capacity(POOLED_BUFFER_MAX + 1), false);
    assert_eq!(pooled(), POOLED_BUFFERS);
    IDLE_BUFFERS.with(|pool| pool.borrow_mut().clear());
    give_buffer(BytesMut::with_capacity(POOLED_BUFFER_MAX + 1), false);
    assert_eq!(pooled(), 0, "a buffer past the size bound is freed");
}

#[test]
fn acks_resolve_when_their_bytes_are_written() {
    let mut q = queue(100, 50);
    q.encode(Bytes::from_static(b"ab")).unwrap(); // 6 bytes
    let (tx1, mut rx1) = oneshot::channel();
    q.ack_when_written(tx1);
    q.encode(Bytes::from_static(b"cd")).unwrap(); // 6 more
    let (tx2, mut rx2) = oneshot::channel();
    q.ack_when_written(tx2);
    q.consume(5);
    assert!(rx1.try_recv().is_err());
    q.consume(1);
    assert!(matches!(rx1.try_recv(), Ok(Ok(()))));
    assert!(rx2.try_recv().is_err());
    q.fail(&Error::closed(SessionId::of(1)));
    assert!(matches!(rx2.try_recv(), Ok(Err(e)) if matches!(e.kind(), ErrorKind::Closed)));
    assert!(q.encode(Bytes::from_static(b"x")).unwrap_err().is_closed());
}

#[test]
fn message_mode_yields_one_message_per_chunk() {
    let mut q = queue(1000, 500).preserve_messages(true);
    q.encode(Bytes::from_static(b"ab")).unwrap();
    q.encode_all(vec![Bytes::from_static(b"c"), Bytes::from_static(b"def")])
        .unwrap();
    assert!(q.encode_all(vec![Bytes::from(vec![0; 200])]).is_ok());
    q.push_raw(b"raw").unwrap();
    let mut sizes = Vec::new();
    while !q.is_empty() {
        let n = q.chunk().len();
        sizes.push(n);
        q.consume(n);
    }
    assert_eq!(sizes, [6, 5, 7, 204, 3]);
    assert_eq!(q.chunk(), b"");
}

#[test]
fn message_mode_failed_batch_leaves_no_boundary() {
    let mut q = OutBuffer::new(
        LengthDelimited::with_max_frame_length(2),
        SessionId::of(1),
        100,
        50,
    )
    .preserve_messages(true);
    q.encode(Bytes::from_static(b"ok")).unwrap();
    let bad = vec![Bytes::from_static(b"a"), Bytes::from_static(b"too long")];
    assert!(q.encode_all(bad).is_err());
    q.encode(Bytes::from_static(b"z")).unwrap();
    assert_eq!(q.chunk(), b"\0\0\0\x02ok");
    q.consume(6);
    assert_eq!(q.chunk(), b"\0\0\0\x01z");
}

#[test]
fn message_limit_refuses_long_messages_and_queues_nothing() {
    let limit = MessageLimit {
        max: 6,
        overhead: 2,
    };
    let mut q = queue(1000, 500)
        .preserve_messages(true)
        .limit_messages(Some(limit));
    q.encode(Bytes::from_static(b"ab")).unwrap(); // 6 bytes past the envelope
    let err = q.encode(Bytes::from_static(b"abcde")).unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::FrameTooLong { len: 7, max: 6, .. }
    ));
    let many = vec![Bytes::from_static(b"a"), Bytes::from_static(b"abcdefgh")];
    assert!(q.encode_all(many).is_err());
    assert_eq!(q.message_overhead(), 2);
    let mut sizes = Vec::new();
    while !q.is_empty() {
        sizes.push(q.chunk().len());
        q.consume(q.chunk().len());
    }
    assert_eq!(sizes, [6]);
    let mut plain = queue(1000, 500)
        .preserve_messages(true)
        .limit_messages(Some(MessageLimit {
            max: 4,
            overhead: 0,
        }));
    assert!(plain.push_raw(&[0; 5]).is_err());
    plain.push_raw(&[0; 4]).unwrap();
}

#[test]
fn a_rejected_message_fails_only_the_write_that_queued_it() {
    let mut q = queue(1000, 500).preserve_messages(true);
    q.encode(Bytes::from_static(b"a")).unwrap(); // no ack: from a callback
    q.encode(Bytes::from_static(b"b")).unwrap();
    let (tx_b, mut rx_b) = oneshot::channel();
    q.ack_when_written(tx_b);
    q.encode_all(vec![Bytes::from_static(b"c"), Bytes::from_static(b"d")])
        .unwrap();
    let (tx_cd, mut rx_cd) = oneshot::channel();
    q.ack_when_written(tx_cd);
    let refused = Error::closed(SessionId::of(1));
    q.reject_message(&refused); // "a": nobody waits for it
    q.consume(5); // "b"
    assert!(matches!(rx_b.try_recv(), Ok(Ok(()))));
    q.reject_message(&refused); // "c"
    assert!(rx_cd.try_recv().is_err(), "waits for d");
    q.consume(5);
    assert!(matches!(rx_cd.try_recv(), Ok(Err(e)) if matches!(e.kind(), ErrorKind::Closed)));
    assert!(q.is_empty());
}

#[test]
fn raw_writes_are_refused_when_messages_need_an_envelope() {
    let limit = MessageLimit {
        max: 100,
        overhead: 3,
    };
    let mut q = queue(1000, 500)
        .preserve_messages(true)
        .limit_messages(Some(limit));
    assert!(matches!(q.push_raw(b"x"), Err(e) if matches!(e.kind(), ErrorKind::Encode { .. })));
    assert!(q.is_empty());
}

#[test]
fn encode_all_is_all_or_nothing() {
    let mut q = OutBuffer::new(
        LengthDelimited::with_max_frame_length(2),
        SessionId::of(1),
        100,
        50,
    );
    let err = q
        .encode_all(vec![
            Bytes::from_static(b"ok"),
            Bytes::from_static(b"too long"),
        ])
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::FrameTooLong { .. }));
    assert!(q.is_empty());
    assert_eq!(q.encode_all(vec![Bytes::from_static(b"a"); 3]).unwrap(), 3);
    assert_eq!(q.len(), 15);
}
