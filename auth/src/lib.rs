//! AkiDB API keys and roles.
//!
//! - [`args`]: the flags every service takes for keys ([`AuthArgs`]) and the protected
//!   default (no keys: loopback only, unless `--insecure-no-auth`).
//! - [`keys`]: the key format, [`Role`]s, the key file (`akidb keys create` writes it; it
//!   holds hashes, never keys) and the internal key.
//! - [`store`]: the keys a server accepts ([`KeyStore`]: lookup by id, constant-time
//!   comparison, reload on change or SIGHUP) and the [`InternalKey`].
//! - [`rights`]: what every method of the API needs (one table; a test fails for a method
//!   without an entry).
//! - [`layer`]: [`AuthLayer`], the tower layer every gRPC server runs, and [`Auth`], who a
//!   server lets in.
//! - [`principal`]: the caller of a request ([`Principal`]) and the per-collection check
//!   handlers make ([`check_collection`]).
//! - [`audit`]: one log line per admin/DDL call and per denial; `akidb_auth_requests_total`.

pub mod args;
pub mod audit;
pub mod keys;
pub mod layer;
pub mod principal;
pub mod rights;
pub mod store;

pub use args::AuthArgs;
pub use keys::Role;
pub use layer::{Auth, AuthLayer};
pub use principal::{Principal, check_collection, principal};
pub use store::{InternalKey, KeyStore};
