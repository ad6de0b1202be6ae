//! A snapshot segment file (`seg-<id>.pts`, `AKSEG01`/`AKSEG02`), decoded as a stream as
//! `snapshot::load` decodes it. Asserts that what decodes is consistent (one key, payload and
//! tombstone per point, `dim` values each; sparse vectors checked as on write) and re-encodes
//! to a file that decodes to the same segment (vectors bit for bit), canonically.
#![no_main]

use akidb_fuzz::same_segment;
use akidb_storage::fuzzing::{snapshot_segment_decode, snapshot_segment_encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((seg, deleted)) = snapshot_segment_decode(data) else {
        return;
    };
    // The header: magic (8), id (8), point count (8), dimension (4).
    let dim = u32::from_le_bytes(data[24..28].try_into().unwrap()) as usize;
    let n = seg.keys.len();
    assert_eq!(seg.len(), n);
    assert_eq!(seg.payloads.len(), n);
    assert_eq!(deleted.len(), n);
    // (A file whose vectors are in a vector file is refused by this entry point.)
    assert!(seg.vectors.mapped().is_none());
    assert_eq!(seg.vectors.values(), n * dim);
    let file = snapshot_segment_encode(&seg, &deleted, dim);
    let (back, back_deleted) = snapshot_segment_decode(&file).expect("an encoded segment decodes");
    assert!(
        same_segment(&seg, &back),
        "decode(encode(segment)) != segment"
    );
    assert_eq!(back_deleted, deleted);
    assert_eq!(
        snapshot_segment_encode(&back, &back_deleted, dim),
        file,
        "the encoding is not canonical"
    );
});
