//! What the fuzz targets share: equality that treats floats by their bits (a decoded NaN
//! must come back as the same NaN), and repairs of checksums so that the fuzzer gets past
//! them into the structure behind (a target that only ever sees "checksum mismatch" tests
//! nothing else).

use akidb_instrumentation::exposition::{Exemplar, MetricFamily, Sample};
use akidb_storage::segment::SegmentData;
use akidb_storage::vectors::Vectors;
use akidb_storage::wal::{HEADER_LEN, WalOp};

/// Same floats, bit for bit.
pub fn same_f32(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Same operation, vectors compared bit for bit.
pub fn same_wal_op(a: &WalOp, b: &WalOp) -> bool {
    match (a, b) {
        (WalOp::Upsert(x), WalOp::Upsert(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|(p, q)| {
                    p.key == q.key
                        && p.payload == q.payload
                        && same_f32(&p.vector, &q.vector)
                        && p.sparse == q.sparse
                        && p.named == q.named
                })
        }
        (WalOp::Delete(x), WalOp::Delete(y)) => x == y,
        (WalOp::Payloads(x), WalOp::Payloads(y)) => x == y,
        _ => false,
    }
}

/// Same segment, vectors compared bit for bit.
pub fn same_segment(a: &SegmentData, b: &SegmentData) -> bool {
    let vectors = match (&a.vectors, &b.vectors) {
        (Vectors::F32(x), Vectors::F32(y)) => same_f32(x, y),
        (Vectors::F16(x), Vectors::F16(y)) => x == y,
        _ => false,
    };
    a.id == b.id && a.keys == b.keys && a.payloads == b.payloads
        && a.sparse == b.sparse
        && a.named == b.named
        && vectors
}

/// Rewrite the checksum of every WAL record whose length fits in `data`, walking the records
/// from the start (what a crash-free writer would have written for these bodies).
pub fn fix_wal_checksums(data: &mut [u8]) {
    let mut off = 0usize;
    while data.len() - off >= HEADER_LEN {
        let len = u32::from_le_bytes(data[off..off + 4].try_into().unwrap()) as usize;
        let Some(end) = (off + HEADER_LEN)
            .checked_add(len)
            .filter(|&e| e <= data.len())
        else {
            return;
        };
        let crc = crc32c::crc32c(&data[off + 8..end]);
        data[off + 4..off + 8].copy_from_slice(&crc.to_le_bytes());
        off = end;
    }
}

/// Whether a record at `off` parses, passes its checksum and decodes, with a sequence number
/// above `after`: what recovery must never cut away (a record that does not decode is lost
/// in `SkipCorrupt` mode whether or not the file is cut before it).
pub fn valid_wal_record_after(data: &[u8], off: usize, after: u64) -> bool {
    let Some(head) = data.get(off..off + HEADER_LEN) else {
        return false;
    };
    let len = u32::from_le_bytes(head[0..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(head[4..8].try_into().unwrap());
    let seq = u64::from_le_bytes(head[8..16].try_into().unwrap());
    let Some(body) = data.get(off + 8..off + HEADER_LEN + len) else {
        return false;
    };
    len <= akidb_storage::wal::MAX_RECORD_LEN
        && seq > after
        && crc32c::crc32c(body) == crc
        && WalOp::decode(&body[8..]).is_ok()
}

fn same_f64(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn same_exemplar(a: &Exemplar, b: &Exemplar) -> bool {
    a.labels == b.labels
        && same_f64(a.value, b.value)
        && match (a.timestamp, b.timestamp) {
            (Some(x), Some(y)) => same_f64(x, y),
            (None, None) => true,
            _ => false,
        }
}

fn same_sample(a: &Sample, b: &Sample) -> bool {
    a.name == b.name
        && a.labels == b.labels
        && same_f64(a.value, b.value)
        && a.timestamp_ms == b.timestamp_ms
        && match (&a.exemplar, &b.exemplar) {
            (Some(x), Some(y)) => same_exemplar(x, y),
            (None, None) => true,
            _ => false,
        }
}

/// Same families (NaN equal to NaN, any payload bits: the text formats have one `NaN`).
pub fn same_families(a: &[MetricFamily], b: &[MetricFamily]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.name == y.name
                && x.help == y.help
                && x.kind == y.kind
                && x.samples.len() == y.samples.len()
                && x.samples
                    .iter()
                    .zip(&y.samples)
                    .all(|(s, t)| same_sample(s, t))
        })
}
