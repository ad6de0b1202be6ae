//! AkiDB storage service: every collection of a node, durable, searchable and tiered.
//!
//! A request's way down, and where each step lives:
//!
//! - [`service`]: the process: gRPC and the HTTP port through the service lifecycle,
//!   recovery at start, WAL flush at stop. [`config`]: its flags. [`shards`]: on a node of a
//!   cluster, which calls routed to its shards it serves, and the copies it keeps in step;
//!   [`shardlog`]: each shard's log in the object store (what its owner acknowledged).
//! - [`server`], [`admin`]: the gRPC handlers (`StorageService`, `AdminService`), thin:
//!   [`convert`] turns protos into domain types and back, [`validate`] checks every input,
//!   and the work runs on the blocking pool. [`error`]: the typed error and its one mapping
//!   to gRPC codes.
//! - [`engine`]: the catalog of collections ([`engine::Engine::lookup`] is the one way to
//!   reach one), recovery, tier moves and the background workers.
//! - [`tier`]: the tier policy ([`tier::plan`], pure) and each collection's [`tier::Slot`]
//!   (hot, warm or cold, and its `tier.json`).
//! - [`store`]: the [`store::CollectionStore`] trait (one collection's operations) and the
//!   search request and results; [`memory`]: the exact in-memory reference collection (the
//!   test oracle); [`collection`]: the durable collection (WAL + segments, snapshots,
//!   merges); [`merge`]: the merge policy ([`merge::plan`], pure).
//! - [`wal`]: the segmented, checksummed, group-committed write-ahead log.
//! - [`segment`]: in-memory segments (appendable + sealed), id map, search;
//!   [`payload_index`]: which points hold which payload values (implicit and declared
//!   indexes), what a filter's search starts from; [`sparse`]: sparse vectors (a segment's
//!   columns, a sealed segment's inverted index, the exact pruned search by dot product).
//!   [`named`]: named dense vectors (a segment's columns of them, each name's graphs);
//!   [`vectors`]: dense vectors in a datatype (on the heap or in a mapped file).
//! - [`index`]: HNSW graphs (built with `hnsw_rs`, searched, encoded for snapshots).
//! - [`quantize`]: int8 and binary codes of a segment's vectors, which its graph search walks
//!   before the best candidates are rescored with the vectors.
//! - [`distance`]: the distance kernels (AVX-512, AVX2/F16C, scalar; float32, float16, int8
//!   codes, bits), float16 conversion.
//! - [`snapshot`]: point-in-time copies of a collection with checksummed manifests;
//!   [`archive`]: one snapshot as a tar archive (download, and restore with every entry
//!   checked).
//! - [`objstore`]: the object layer: the store trait, S3 and local stores, retries and the
//!   breaker, the dead-letter queue, uploads, snapshot copies in the store.
//! - [`model`], [`filter`]: the domain (points, payloads, specs, filters).
//! - [`fsutil`]: atomic file writes, directory sync, file checksums, the clock.
//! - `fuzzing` (hidden): entry points for the fuzz targets in `fuzz/`, not an API.
//! - [`allocator`]: glibc malloc settings and giving free pages back.

pub mod admin;
pub mod allocator;
pub mod archive;
pub mod collection;
pub mod config;
pub mod convert;
pub mod distance;
pub mod engine;
pub mod error;
pub mod filter;
pub mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
pub mod index;
pub mod memory;
pub mod merge;
pub mod model;
pub mod named;
pub mod objstore;
pub mod payload_index;
pub mod quantize;
pub mod segment;
pub mod server;
pub mod service;
pub mod shardlog;
pub mod shards;
pub mod snapshot;
pub mod sparse;
pub mod store;
pub mod tier;
pub mod validate;
pub mod vecfile;
pub mod vectors;
pub mod wal;

pub use config::StorageConfig;
pub use service::run;
