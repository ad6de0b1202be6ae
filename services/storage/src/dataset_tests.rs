//! Empty. The data-set tests moved to `tests/datasets.rs` (public API only, so that they
//! share their helpers with `benches/datasets.rs`), the benchmarks to `benches/`. This file
//! remains only because `collection.rs` declares `mod dataset_tests`; both can go.
