//! The catalog of collections and the checks every write and search passes first.

use crate::error::{Result, StorageError};
use crate::memory::MemoryCollection;
use crate::model::*;
use crate::store::CollectionStore;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::Arc;

pub const MAX_DIMENSION: u32 = 65_536;
pub const MAX_K: usize = 10_000;
pub const MAX_NAME_LEN: usize = 64;

/// Accepts `[A-Za-z0-9_-]{1,64}`.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(StorageError::InvalidArgument(format!(
            "collection name must be 1 to {MAX_NAME_LEN} characters, got {}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(StorageError::InvalidArgument(format!(
            "collection name `{}` has the character {c:?}; use only letters, digits, `_` and `-`",
            name.escape_default()
        )));
    }
    Ok(())
}

pub fn validate_spec(spec: &CollectionSpec) -> Result<()> {
    validate_name(&spec.name)?;
    if spec.dimension == 0 || spec.dimension > MAX_DIMENSION {
        return Err(StorageError::InvalidArgument(format!(
            "dimension must be between 1 and {MAX_DIMENSION}, got {}",
            spec.dimension
        )));
    }
    if !(2..=256).contains(&spec.m) {
        return Err(StorageError::InvalidArgument(format!(
            "HNSW m must be between 2 and 256, got {}",
            spec.m
        )));
    }
    if !(4..=4096).contains(&spec.ef_construction) {
        return Err(StorageError::InvalidArgument(format!(
            "HNSW ef_construction must be between 4 and 4096, got {}",
            spec.ef_construction
        )));
    }
    Ok(())
}

/// Check a vector against a collection's dimension; `what` names it in the message.
pub fn validate_vector(
    spec: &CollectionSpec,
    v: &[f32],
    what: &dyn std::fmt::Display,
) -> Result<()> {
    if v.len() != spec.dimension as usize {
        return Err(StorageError::InvalidArgument(format!(
            "{what}: vector has {} components but collection `{}` has dimension {}",
            v.len(),
            spec.name,
            spec.dimension
        )));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(StorageError::InvalidArgument(format!(
            "{what}: component {i} is {}; vectors must be finite",
            v[i]
        )));
    }
    Ok(())
}

pub fn validate_points(spec: &CollectionSpec, points: &[PointRecord]) -> Result<()> {
    if points.is_empty() {
        return Err(StorageError::InvalidArgument(
            "upsert batch is empty; send at least one point".into(),
        ));
    }
    for p in points {
        validate_vector(spec, &p.vector, &format_args!("point {}", p.key))?;
    }
    Ok(())
}

pub fn validate_search(spec: &CollectionSpec, params: &SearchParams) -> Result<()> {
    if params.k == 0 || params.k > MAX_K {
        return Err(StorageError::InvalidArgument(format!(
            "k must be between 1 and {MAX_K}, got {}",
            params.k
        )));
    }
    if let Some(ef) = params.ef {
        if ef == 0 || ef > 100_000 {
            return Err(StorageError::InvalidArgument(format!(
                "ef must be between 1 and 100000, got {ef}"
            )));
        }
    }
    validate_vector(spec, &params.vector, &"query")?;
    if let Some(f) = &params.filter {
        f.validate()?;
    }
    Ok(())
}

/// All collections of this storage node.
#[derive(Default)]
pub struct Engine {
    collections: RwLock<BTreeMap<String, Arc<dyn CollectionStore>>>,
}

impl Engine {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn create(&self, spec: CollectionSpec) -> Result<CollectionStats> {
        validate_spec(&spec)?;
        let mut g = self.collections.write();
        if g.contains_key(&spec.name) {
            return Err(StorageError::CollectionExists(spec.name));
        }
        let c: Arc<dyn CollectionStore> = Arc::new(MemoryCollection::new(spec.clone()));
        let stats = c.stats();
        g.insert(spec.name, c);
        Ok(stats)
    }

    pub fn get(&self, name: &str) -> Result<Arc<dyn CollectionStore>> {
        validate_name(name)?;
        self.collections
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::CollectionNotFound(name.to_string()))
    }

    pub fn list(&self) -> Vec<CollectionStats> {
        self.collections
            .read()
            .values()
            .map(|c| c.stats())
            .collect()
    }

    pub fn delete(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        self.collections
            .write()
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| StorageError::CollectionNotFound(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("a-b_C9").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("../x").is_err());
        assert!(validate_name(&"a".repeat(65)).is_err());
        assert!(validate_name(&"a".repeat(64)).is_ok());
    }
}
