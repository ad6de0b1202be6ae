//! The AkiDB gRPC API, package `akidb.v1`.
//!
//! The `.proto` files under `proto/akidb/v1` are the single source of the API; this crate
//! compiles them at build time (pure Rust, no system `protoc`) and embeds the descriptor set
//! so that every service can serve gRPC reflection.
//!
//! - [`v1`]: the generated messages, clients and servers.
//! - [`limits`]: every limit of the API and the collection name rule, shared by the front
//!   doors and storage.
//! - [`validate`]: the checks the front doors (ingest, query) run before forwarding.
//! - [`fusion`]: the one meaning of a Query's fusion (RRF, DBSF), for storage and a cluster's
//!   query service.
//! - [`aliases`]: the one meaning of an UpdateAliases call (single node and cluster).
//! - [`codec`]: the codec of every service and client (prost's; a message that does not
//!   decode is INVALID_ARGUMENT).
//! - [`convert`]: small helpers on generated types (point id and alias action constructors,
//!   `Display`).
//! - [`rest`]: the REST routes (each method's `google.api.http` option), JSON ↔ protobuf, and
//!   the HTTP status and JSON body of an error.
//! - [`openapi`]: the OpenAPI 3.1 document of the REST routes (`docs/openapi.json`).
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors (with comments and options), for gRPC
//!   reflection and [`rest`].

pub mod v1 {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("akidb.v1");
}

/// Encoded `FileDescriptorSet` of every `akidb.v1` file, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/akidb_descriptor.bin"));

pub use prost_types;

pub mod aliases;
pub mod codec;
pub mod convert;
pub mod fusion;
pub mod limits;
pub mod openapi;
pub mod rest;
pub mod validate;
