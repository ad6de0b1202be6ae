//! The search result cache.
//!
//! Key: the encoded `SearchRequest` (it names the collection, so the key is
//! (collection, request bytes)); value: the response and the (epoch, version) of the collection
//! it was computed at. Storage reads that pair under the same lock as the search itself.
//!
//! Never stale: the cache never answers on its own. A search that finds an entry still goes to
//! storage, carrying the entry's pair in the `akidb-if-version` header; storage compares it with
//! the collection's current pair and either answers `akidb-not-modified` (no search, no hits on
//! the wire: the cached hits are returned) or runs the search and returns the new result, which
//! replaces the entry. Storage applies a write to the collection (and bumps the version) before
//! it acknowledges it, so any write acknowledged before the search reaches storage makes the
//! pair differ. The epoch is random per in-memory collection object, so a collection deleted and
//! re-created (whose version restarts), reloaded from disk, or served by a restarted storage
//! never matches an old entry. What a hit saves is the search and the result transfer, not the
//! hop to storage.

use akidb_proto::v1 as pb;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};

pub struct Entry {
    pub epoch: u64,
    pub version: u64,
    pub response: pb::SearchResponse,
}

/// A bounded map with first-in-first-out eviction.
pub struct ResultCache {
    cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Vec<u8>, Entry>,
    order: VecDeque<Vec<u8>>,
}

impl ResultCache {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.cap > 0
    }

    /// The (epoch, version) and a copy of the response cached for `key`.
    pub fn get(&self, key: &[u8]) -> Option<(u64, u64, pb::SearchResponse)> {
        let g = self.inner.lock();
        g.map
            .get(key)
            .map(|e| (e.epoch, e.version, e.response.clone()))
    }

    /// Store a fresh result; returns the number of entries.
    pub fn put(&self, key: Vec<u8>, entry: Entry) -> usize {
        let mut g = self.inner.lock();
        if let Some(e) = g.map.get_mut(&key) {
            // Keep the newest version only.
            if (entry.epoch, entry.version) != (e.epoch, e.version) {
                *e = entry;
            }
            return g.map.len();
        }
        while g.map.len() >= self.cap {
            match g.order.pop_front() {
                Some(old) => {
                    g.map.remove(&old);
                }
                None => break,
            }
        }
        g.order.push_back(key.clone());
        g.map.insert(key, entry);
        g.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: u64) -> Entry {
        Entry {
            epoch: 1,
            version: v,
            response: pb::SearchResponse::default(),
        }
    }

    #[test]
    fn bounded_fifo_and_newest_version() {
        let c = ResultCache::new(2);
        c.put(b"a".to_vec(), entry(1));
        c.put(b"b".to_vec(), entry(1));
        c.put(b"a".to_vec(), entry(2));
        assert_eq!(c.get(b"a").map(|e| e.1), Some(2));
        assert_eq!(c.put(b"c".to_vec(), entry(1)), 2);
        assert!(c.get(b"a").is_none());
        assert!(c.get(b"b").is_some() && c.get(b"c").is_some());
    }
}
