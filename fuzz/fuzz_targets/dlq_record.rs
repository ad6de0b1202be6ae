//! A dead-letter queue entry record (`entries/<id>.entry`: magic, version, length, CRC-32C,
//! JSON). Input: a flags byte (bit 0: repair the length and checksum in the header first, so
//! that the fuzzer reaches the JSON), then the record. Asserts that an accepted record
//! re-encodes to one that decodes to the same entry, canonically.
#![no_main]

use akidb_storage::fuzzing::{dlq_record_decode, dlq_record_encode};
use libfuzzer_sys::fuzz_target;

/// Magic (4), version (1), payload length (4), CRC-32C of the payload (4).
const HEADER: usize = 13;

fuzz_target!(|data: &[u8]| {
    let [flags, record @ ..] = data else {
        return;
    };
    let mut record = record.to_vec();
    if flags & 1 != 0 && record.len() >= HEADER {
        let payload = &record[HEADER..];
        let (len, crc) = (payload.len() as u32, crc32c::crc32c(payload));
        record[5..9].copy_from_slice(&len.to_le_bytes());
        record[9..13].copy_from_slice(&crc.to_le_bytes());
    }
    let Ok(entry) = dlq_record_decode(&record) else {
        return;
    };
    let enc = dlq_record_encode(&entry);
    let back = dlq_record_decode(&enc).expect("an encoded record decodes");
    assert_eq!(back, entry);
    assert_eq!(
        dlq_record_encode(&back),
        enc,
        "the encoding is not canonical"
    );
});
