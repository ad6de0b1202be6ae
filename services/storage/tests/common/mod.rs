//! Helpers of the storage tests and benchmarks (`benches/*.rs` include this file by path):
//! what only storage needs. The shared ones (moto, the fault proxy, ports, the data sets)
//! are in `akidb-testkit`.
//!
//! - [`server`]: a real `akidb-storage` process, its gRPC clients, and the calls the tests
//!   and benchmarks make through them.
//! - [`sets`]: the shared data sets as in-process collections (one sealed, indexed
//!   segment), recall against their ground truth.
#![allow(dead_code)]

pub mod server;
pub mod sets;
