//! Recovery over one WAL segment file, damaged in any way (`Wal::open`'s per-file replay:
//! record framing, checksums, torn tails, `RecoveryMode`). Input: a flags byte (bit 0: the
//! newest file; bit 1: `SkipCorrupt`; bit 2: repair the checksums first, so that the fuzzer
//! reaches the bodies), the snapshot's sequence number (one byte), then the file.
//!
//! Asserts: applied records have increasing sequence numbers above the snapshot's; only the
//! newest file is ever cut, and never where a valid record newer than the last applied one
//! follows (that would drop acknowledged writes); and recovery is idempotent: replaying the
//! file cut to its valid prefix (what start-up leaves on disk) succeeds, applies the same
//! records and cuts nothing.
#![no_main]

use akidb_fuzz::{fix_wal_checksums, same_wal_op, valid_wal_record_after};
use akidb_storage::fuzzing::wal_replay_segment;
use akidb_storage::wal::RecoveryMode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [flags, after, file @ ..] = data else {
        return;
    };
    let newest = flags & 1 != 0;
    let mode = if flags & 2 != 0 {
        RecoveryMode::SkipCorrupt
    } else {
        RecoveryMode::Strict
    };
    let after = u64::from(*after);
    let mut file = file.to_vec();
    if flags & 4 != 0 {
        fix_wal_checksums(&mut file);
    }
    let Ok(first) = wal_replay_segment(&file, newest, mode, after) else {
        return;
    };
    let good = first.good_len as usize;
    assert!(good <= file.len());
    if !newest {
        assert_eq!(good, file.len(), "only the newest file may be cut");
    }
    let mut last = after;
    for (seq, _) in &first.applied {
        assert!(*seq > last, "record {seq} applied after {last}");
        last = *seq;
    }
    assert_eq!(first.report.last_seq, last);
    if let Some(p) = (good..file.len()).find(|&p| valid_wal_record_after(&file, p, last)) {
        panic!("cut at {good}, but a valid record newer than {last} is at {p}");
    }
    assert_eq!(first.report.records, first.applied.len() as u64);

    let again = wal_replay_segment(&file[..good], newest, mode, after)
        .expect("the prefix recovery kept replays");
    assert_eq!(again.good_len as usize, good, "a second start-up cut more");
    assert_eq!(again.report.torn_tails, 0);
    assert_eq!(again.applied.len(), first.applied.len());
    for ((s1, op1), (s2, op2)) in first.applied.iter().zip(&again.applied) {
        assert_eq!(s1, s2);
        assert!(same_wal_op(op1, op2));
    }
});
