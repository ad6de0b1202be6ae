//! A snapshot graph file (`seg-<id>.graph`, `Graph::decode`). Input: a flags byte (bit 0:
//! repair the trailing checksum first, so that the fuzzer reaches the layers; bits 1-3: `k`),
//! then the file. The dimension is the file's own when small (a mismatch is refused anyway).
//!
//! Asserts: a graph that decodes encodes to exactly the input (the format has one encoding
//! per graph), and searching it over a segment of its size stays in bounds (ids below
//! `slots`, at most `k`, nearest first, only accepted ids) — the search reads vectors
//! unchecked, trusting what decode checked.
#![no_main]

use akidb_storage::index::Graph;
use akidb_storage::model::Metric;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [flags, file @ ..] = data else {
        return;
    };
    let mut file = file.to_vec();
    if flags & 1 != 0 && file.len() >= 12 {
        let body = file.len() - 4;
        let crc = crc32c::crc32c(&file[..body]);
        file[body..].copy_from_slice(&crc.to_le_bytes());
    }
    let dim = match file.get(8..12) {
        Some(b) => u32::from_le_bytes(b.try_into().unwrap()) as usize,
        None => 1,
    };
    let dim = if (1..=64).contains(&dim) { dim } else { 1 };
    let Ok(g) = Graph::decode(&file, Metric::L2, dim) else {
        return;
    };
    assert_eq!(g.encode(), file, "encode(decode(file)) != file");

    let slots = g.slots();
    if slots > 1 << 16 {
        return; // no layers (an empty graph); a search returns at once
    }
    let vectors: Vec<f32> = (0..slots * dim).map(|i| ((i * 7919) % 97) as f32).collect();
    let q: Vec<f32> = (0..dim).map(|i| (i % 5) as f32 * 3.0).collect();
    let k = 1 + usize::from((flags >> 1) & 7);
    for accept in [
        None,
        Some(&(|o: usize| o.is_multiple_of(2)) as &dyn Fn(usize) -> bool),
    ] {
        let hits = g.search(&vectors[..], &q, k, 16, accept);
        assert!(hits.len() <= k);
        assert!(hits.iter().all(|&(o, _)| o < slots));
        assert!(hits.windows(2).all(|w| w[0].1 <= w[1].1));
        if accept.is_some() {
            assert!(hits.iter().all(|&(o, _)| o.is_multiple_of(2)));
        }
    }
});
