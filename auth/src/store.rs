//! The keys a server accepts: loaded from the key file, looked up by id, compared in constant
//! time, and reloaded when the file changes or on SIGHUP (keys rotate and are revoked without
//! a restart; while both the old and the new key are in the file, both work).

use crate::keys::{self, KeyFile, KeyFileError, Role};
use crate::principal::Principal;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq;

/// One key as the server keeps it.
#[derive(Debug)]
struct Entry {
    role: Role,
    collections: Vec<String>,
    sha256: [u8; 32],
    rate_per_second: Option<u32>,
}

/// A token bucket: up to one second's worth of calls at once, refilled at the rate.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: std::time::Instant,
}

/// The public keys in force.
#[derive(Debug)]
pub struct KeyStore {
    path: PathBuf,
    keys: RwLock<Arc<HashMap<String, Entry>>>,
    /// (modified, length) of the file as last loaded: a change reloads it.
    seen: RwLock<Option<(SystemTime, u64)>>,
    /// The rate limit state of the keys that have one, by key id.
    buckets: std::sync::Mutex<HashMap<String, Bucket>>,
}

fn entries(file: KeyFile) -> HashMap<String, Entry> {
    file.keys
        .into_iter()
        .map(|k| {
            let mut sha = [0u8; 32];
            hex::decode_to_slice(&k.sha256, &mut sha).expect("checked when the file was read");
            (
                k.id,
                Entry {
                    role: k.role,
                    collections: k.collections,
                    sha256: sha,
                    rate_per_second: k.rate_per_second,
                },
            )
        })
        .collect()
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl KeyStore {
    /// Load the key file at `path` (an error when it cannot be read or is not valid).
    pub fn open(path: &Path) -> Result<Arc<KeyStore>, KeyFileError> {
        let seen = stamp(path);
        let file = KeyFile::load(path)?;
        Ok(Arc::new(KeyStore {
            path: path.to_path_buf(),
            keys: RwLock::new(Arc::new(entries(file))),
            seen: RwLock::new(seen),
            buckets: Default::default(),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many keys are in force.
    pub fn len(&self) -> usize {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Read the file again. A file that does not load leaves the keys in force as they were
    /// (and says why).
    pub fn reload(&self) -> Result<usize, KeyFileError> {
        let seen = stamp(&self.path);
        let file = KeyFile::load(&self.path)?;
        let n = file.keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(entries(file));
        *self.seen.write().unwrap_or_else(|e| e.into_inner()) = seen;
        Ok(n)
    }

    /// Reload when the file changed since it was last loaded.
    fn reload_if_changed(&self) {
        let now = stamp(&self.path);
        if now.is_none() || now == *self.seen.read().unwrap_or_else(|e| e.into_inner()) {
            return;
        }
        self.reload_and_log("the file changed");
    }

    fn reload_and_log(&self, why: &str) {
        match self.reload() {
            Ok(n) => {
                tracing::info!(file = %self.path.display(), keys = n, why, "API keys reloaded")
            }
            Err(e) => {
                // Do not retry the same broken file every second.
                *self.seen.write().unwrap_or_else(|e| e.into_inner()) = stamp(&self.path);
                tracing::error!(error = %e, why, "API keys not reloaded; the keys in force stay")
            }
        }
    }

    /// The principal of `key`, if it is a key in force. The key's id selects the entry; the
    /// hashes are compared in constant time.
    pub fn authenticate(&self, key: &str) -> Option<Principal> {
        let id = keys::key_id(key)?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        let e = keys.get(id)?;
        let sha = sha2::Sha256::digest_bytes(key);
        bool::from(sha.ct_eq(&e.sha256)).then(|| Principal::new(id, e.role, e.collections.clone()))
    }

    /// Admit one call of the key `id` under its rate limit, or say how long to wait.
    pub fn admit(&self, id: &str) -> Result<(), Duration> {
        let rate = {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            match keys.get(id).and_then(|e| e.rate_per_second) {
                Some(r) if r > 0 => r as f64,
                _ => return Ok(()),
            }
        };
        let now = std::time::Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let b = buckets.entry(id.to_string()).or_insert(Bucket {
            tokens: rate,
            last: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate).min(rate);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }

    /// Reload on SIGHUP and when the file changes (checked every `every`), until `stop`
    /// resolves.
    pub async fn watch(
        self: Arc<Self>,
        every: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                Some(()) = hangup(&mut hup) => self.reload_and_log("SIGHUP"),
                _ = tick.tick() => self.reload_if_changed(),
            }
        }
    }
}

/// The next SIGHUP (never, when the handler could not be installed).
async fn hangup(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// `Sha256::digest` of a key as a fixed array.
trait DigestBytes {
    fn digest_bytes(key: &str) -> [u8; 32];
}

impl DigestBytes for sha2::Sha256 {
    fn digest_bytes(key: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(key.as_bytes()).into()
    }
}

/// The internal key a server accepts (storage, the aggregator), compared in constant time.
#[derive(Clone)]
pub struct InternalKey {
    sha256: [u8; 32],
}

impl std::fmt::Debug for InternalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalKey(..)")
    }
}

impl InternalKey {
    pub fn new(key: &str) -> Self {
        InternalKey {
            sha256: sha2::Sha256::digest_bytes(key),
        }
    }

    pub fn matches(&self, key: &str) -> bool {
        keys::is_internal_form(key)
            && bool::from(sha2::Sha256::digest_bytes(key).ct_eq(&self.sha256))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_rotate_and_revoke_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys.json");
        let old = KeyFile::create_key(&p, Role::Write, vec![]).unwrap();
        let store = KeyStore::open(&p).unwrap();
        let who = store.authenticate(&old).unwrap();
        assert_eq!(
            (who.role, who.key_id.as_str()),
            (Role::Write, keys::key_id(&old).unwrap())
        );
        // Last byte changed, unknown id, malformed: nobody.
        let mut bad = old.clone();
        bad.pop();
        bad.push(if old.ends_with('0') { '1' } else { '0' });
        assert!(store.authenticate(&bad).is_none());
        assert!(store.authenticate(&keys::new_key().1).is_none());
        assert!(store.authenticate("hello").is_none());
        // Rotation: both valid while both are in the file; then the old one is revoked.
        let stop = tokio::sync::oneshot::channel::<()>();
        let watcher = tokio::spawn(store.clone().watch(Duration::from_millis(20), async {
            let _ = stop.1.await;
        }));
        let new = KeyFile::create_key(&p, Role::Write, vec![]).unwrap();
        wait(|| store.authenticate(&new).is_some()).await;
        assert!(store.authenticate(&old).is_some());
        KeyFile::revoke_key(&p, keys::key_id(&old).unwrap()).unwrap();
        wait(|| store.authenticate(&old).is_none()).await;
        assert!(store.authenticate(&new).is_some());
        // A broken file leaves the keys in force.
        std::fs::write(&p, b"{not json").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(store.authenticate(&new).is_some());
        let _ = stop.0.send(());
        watcher.await.unwrap();
    }

    async fn wait(ok: impl Fn() -> bool) {
        for _ in 0..200 {
            if ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("not reloaded");
    }

    #[test]
    fn a_key_with_a_rate_waits_its_turn() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys.json");
        let slow = KeyFile::create_key_with_rate(&p, Role::Read, vec![], Some(5)).unwrap();
        let free = KeyFile::create_key(&p, Role::Read, vec![]).unwrap();
        let store = KeyStore::open(&p).unwrap();
        let (s, f) = (keys::key_id(&slow).unwrap(), keys::key_id(&free).unwrap());
        let admitted = (0..20).filter(|_| store.admit(s).is_ok()).count();
        assert_eq!(admitted, 5, "a burst of one second's worth");
        let wait = store.admit(s).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        assert!((0..1000).all(|_| store.admit(f).is_ok()));
        std::thread::sleep(Duration::from_millis(250));
        assert!(store.admit(s).is_ok(), "refilled");
    }

    #[test]
    fn the_internal_key_is_not_a_public_key() {
        let k = keys::new_internal_key();
        let ik = InternalKey::new(&k);
        assert!(ik.matches(&k));
        assert!(!ik.matches(&keys::new_internal_key()));
        assert!(!ik.matches(&keys::new_key().1));
    }
}
