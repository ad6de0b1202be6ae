//! A snapshot codes file (`seg-<id>.codes`, `Codes::decode`): the quantized codes a graph
//! search walks. Input: a metric byte (0 L2, 1 DOT, else COSINE), then the file. The dimension
//! is the file's own when small (a mismatch is refused anyway).
//!
//! Asserts: codes that decode encode to exactly the input (one encoding per set of codes), and
//! a query prepared for them reaches every row's distance in bounds (the walk reads rows by
//! the ids the graph gives, trusting the row count decode checked).
#![no_main]

use akidb_storage::model::Metric;
use akidb_storage::quantize::Codes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [metric, file @ ..] = data else {
        return;
    };
    let metric = match metric {
        0 => Metric::L2,
        1 => Metric::Dot,
        _ => Metric::Cosine,
    };
    let dim = match file.get(9..13) {
        Some(b) => u32::from_le_bytes(b.try_into().unwrap()) as usize,
        None => 1,
    };
    let dim = if (1..=256).contains(&dim) { dim } else { 1 };
    let Ok(c) = Codes::decode(file, metric, dim) else {
        return;
    };
    let mut back = Vec::new();
    c.encode(&mut back).unwrap();
    assert_eq!(back, file, "encode(decode(file)) != file");
    let q: Vec<f32> = (0..dim).map(|i| (i % 7) as f32 * 0.5 - 1.5).collect();
    let p = c.prepare(&q);
    assert_eq!(p.rows(), c.len());
    for id in 0..c.len().min(1 << 16) {
        let _ = p.dist(id as u32);
    }
});
