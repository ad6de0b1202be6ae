//! Who a request comes from, as the layer established it, and the per-collection check every
//! handler that names a collection makes.

use crate::keys::Role;
use std::sync::{Arc, OnceLock};
use tonic::Status;

/// The caller of a request: put into the request's extensions by the auth layer.
#[derive(Debug)]
pub struct Principal {
    /// The key's id (`internal` for the internal key). Never the key.
    pub key_id: String,
    pub role: Role,
    /// Collections the key is limited to; empty: every collection.
    pub collections: Vec<String>,
    /// The collection the request named (set by [`check_collection`]), for the audit line.
    pub(crate) collection: OnceLock<String>,
}

impl Principal {
    pub fn new(key_id: impl Into<String>, role: Role, collections: Vec<String>) -> Self {
        Principal {
            key_id: key_id.into(),
            role,
            collections,
            collection: OnceLock::new(),
        }
    }

    /// Whether the key may use `collection`.
    pub fn allows(&self, collection: &str) -> bool {
        self.collections.is_empty() || self.collections.iter().any(|c| c == collection)
    }
}

/// The message of a refusal of a collection-scoped key. Names the key id and the collection
/// (both known to the caller), never the key.
fn out_of_scope(p: &Principal, collection: &str) -> Status {
    Status::permission_denied(format!(
        "key {} may not use collection `{}`; it is limited to {}",
        p.key_id,
        collection.escape_default(),
        p.collections.join(", ")
    ))
}

/// The principal of a request, if the auth layer ran with keys on.
pub fn principal<T>(req: &tonic::Request<T>) -> Option<&Arc<Principal>> {
    req.extensions().get::<Arc<Principal>>()
}

/// The request's key may use `collection` (always, with keys off). Records the collection for
/// the audit line.
pub fn check_collection<T>(req: &tonic::Request<T>, collection: &str) -> Result<(), Status> {
    check(principal(req), collection)
}

/// [`check_collection`] for a principal taken from its request earlier (streams).
pub fn check(who: Option<&Arc<Principal>>, collection: &str) -> Result<(), Status> {
    let Some(p) = who else {
        return Ok(());
    };
    let _ = p.collection.set(collection.to_string());
    if p.allows(collection) {
        Ok(())
    } else {
        Err(out_of_scope(p, collection))
    }
}

/// Whether the key of a request (`who`, `None` with keys off) may see `collection` (what
/// ListCollections shows).
pub fn sees(who: Option<&Arc<Principal>>, collection: &str) -> bool {
    who.is_none_or(|p| p.allows(collection))
}

/// A call that is not about one collection (the dead-letter queue, the breaker, every
/// collection at once) needs a key that is not limited to some.
pub fn check_unscoped(who: Option<&Arc<Principal>>, what: &str) -> Result<(), Status> {
    match who {
        Some(p) if !p.collections.is_empty() => Err(Status::permission_denied(format!(
            "key {} is limited to {}; {what} needs a key for every collection",
            p.key_id,
            p.collections.join(", ")
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_keys_see_their_collections_only() {
        let all = Principal::new("a", Role::Read, vec![]);
        assert!(all.allows("x"));
        let one = Principal::new("b", Role::Write, vec!["docs".into()]);
        assert!(one.allows("docs") && !one.allows("other"));
        let mut req = tonic::Request::new(());
        req.extensions_mut().insert(Arc::new(one));
        assert!(check_collection(&req, "docs").is_ok());
        let e = check_collection(&req, "other").unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(e.message().contains("key b") && e.message().contains("`other`"));
        assert!(sees(principal(&req), "docs") && !sees(principal(&req), "other"));
        assert!(check_unscoped(principal(&req), "DlqPurge").is_err());
        // Keys off: everything.
        let open = tonic::Request::new(());
        assert!(check_collection(&open, "other").is_ok());
    }
}
