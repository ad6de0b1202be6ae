//! A fault-injecting in-memory object store, for unit tests only.

use super::error::{ObjectStoreError, Operation, Result};
use super::store::{ObjectMeta, ObjectStore, validate_key};
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What the next calls do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Work normally.
    None,
    /// Fail every call with a transient error (the store is down).
    Down,
    /// Fail every call with a permanent error (e.g. access denied).
    Denied,
    /// Take this long, then fail transiently (an unresponsive server and a client timeout).
    Slow(Duration),
}

#[derive(Debug)]
pub struct FaultStore {
    objects: Mutex<BTreeMap<String, Bytes>>,
    fault: Mutex<Fault>,
    /// Per-call faults consumed before `fault` applies.
    script: Mutex<VecDeque<Fault>>,
    calls: AtomicU64,
}

impl Default for FaultStore {
    fn default() -> Self {
        FaultStore {
            objects: Mutex::default(),
            fault: Mutex::new(Fault::None),
            script: Mutex::default(),
            calls: AtomicU64::new(0),
        }
    }
}

impl FaultStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock() = fault;
    }

    /// The next `faults.len()` calls behave as listed, then `set` applies again.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.script.lock().extend(faults);
    }

    /// Calls that reached the store (rejected calls never do).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().keys().cloned().collect()
    }

    pub fn object(&self, key: &str) -> Option<Bytes> {
        self.objects.lock().get(key).cloned()
    }

    async fn enter(&self, op: Operation, key: &str) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let fault = self
            .script
            .lock()
            .pop_front()
            .unwrap_or_else(|| *self.fault.lock());
        match fault {
            Fault::None => Ok(()),
            Fault::Down => Err(ObjectStoreError::transient(op, key, "injected: store down")),
            Fault::Denied => Err(ObjectStoreError::permanent(
                op,
                key,
                "injected: access denied",
            )),
            Fault::Slow(d) => {
                tokio::time::sleep(d).await;
                Err(ObjectStoreError::transient(op, key, "injected: timed out"))
            }
        }
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(Operation::Put, key)?;
        self.enter(Operation::Put, key).await?;
        self.objects.lock().insert(key.to_string(), data);
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool> {
        validate_key(Operation::Put, key)?;
        self.enter(Operation::Put, key).await?;
        let mut objects = self.objects.lock();
        if objects.contains_key(key) {
            return Ok(false);
        }
        objects.insert(key.to_string(), data);
        Ok(true)
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        validate_key(Operation::Get, key)?;
        self.enter(Operation::Get, key).await?;
        self.object(key)
            .ok_or_else(|| ObjectStoreError::not_found(key))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(Operation::Head, key)?;
        self.enter(Operation::Head, key).await?;
        self.object(key)
            .map(|b| ObjectMeta {
                key: key.to_string(),
                size: b.len() as u64,
            })
            .ok_or_else(|| ObjectStoreError::not_found(key))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.enter(Operation::List, prefix).await?;
        Ok(self
            .objects
            .lock()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectMeta {
                key: k.clone(),
                size: v.len() as u64,
            })
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(Operation::Delete, key)?;
        self.enter(Operation::Delete, key).await?;
        self.objects.lock().remove(key);
        Ok(())
    }

    fn describe(&self) -> String {
        "memory (fault injection)".into()
    }

    fn is_remote(&self) -> bool {
        true
    }
}
