//! API keys: their format, their roles, and the key file that holds them.
//!
//! A key is `akidb_<id>_<secret>`: `id` is 12 hex digits, the part a server looks a key up
//! by; `secret` is 32 random bytes in hex. The key file holds, per key, its id, its role, the
//! collections it is limited to (none: all) and the SHA-256 of the whole key — never the key:
//! `akidb keys create` prints a new key once. Keys are random and long, so a plain SHA-256 is
//! the right hash (a password hash would be a cost every request pays).
//!
//! The internal key (what services present to storage and the aggregator) is
//! `akidb-internal_<secret>`: no public key has that form, so none can be used as one.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Prefix of a public key.
pub const KEY_PREFIX: &str = "akidb_";
/// Prefix of the internal key.
pub const INTERNAL_PREFIX: &str = "akidb-internal_";
const ID_HEX: usize = 12;
const SECRET_HEX: usize = 64;

/// What a key may do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Search, SearchBatch, Query, Get, Count, Scroll, GetCollection, ListCollections, SLO status.
    Read,
    /// Read, and Upsert, UpsertStream, Delete, Flush.
    Write,
    /// Everything: collection create and delete, AdminService, `PUT /tracing`.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            other => Err(format!("role must be read, write or admin, got {other:?}")),
        }
    }
}

/// One key as the key file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The lookup part of the key (12 hex digits).
    pub id: String,
    pub role: Role,
    /// Collections the key is limited to; empty: every collection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<String>,
    /// SHA-256 of the whole key, hex.
    pub sha256: String,
    /// Calls per second the key may make (bursts of up to one second's worth); none: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<u32>,
    /// When it was created (Unix milliseconds), for rotation.
    #[serde(default)]
    pub created_unix_ms: u64,
}

/// The key file: `{"keys": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    pub keys: Vec<KeyRecord>,
}

/// Why a key file is refused (the keys in force then stay as they were).
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the API key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the API key file {path} is not valid: {reason}")]
    Invalid { path: String, reason: String },
}

impl KeyFile {
    /// Read and check the key file at `path`.
    pub fn load(path: &Path) -> Result<KeyFile, KeyFileError> {
        let show = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| KeyFileError::Read {
            path: show.clone(),
            source,
        })?;
        let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| KeyFileError::Invalid {
            path: show.clone(),
            reason: e.to_string(),
        })?;
        file.check()
            .map_err(|reason| KeyFileError::Invalid { path: show, reason })?;
        Ok(file)
    }

    /// Every id well formed and unique, every hash 64 hex digits.
    fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for k in &self.keys {
            if !is_hex(&k.id, ID_HEX) {
                return Err(format!("key id {:?} is not {ID_HEX} hex digits", k.id));
            }
            if !seen.insert(&k.id) {
                return Err(format!("key id {} appears twice", k.id));
            }
            if !is_hex(&k.sha256, 64) {
                return Err(format!("key {}: sha256 is not 64 hex digits", k.id));
            }
        }
        Ok(())
    }

    /// Add a new key with `role` (limited to `collections` when not empty) and write the file
    /// back atomically, creating it if absent; returns the key, which is shown only now.
    pub fn create_key(path: &Path, role: Role, collections: Vec<String>) -> anyhow::Result<String> {
        Self::create_key_with_rate(path, role, collections, None)
    }

    /// [`KeyFile::create_key`] with a rate limit (calls per second).
    pub fn create_key_with_rate(
        path: &Path,
        role: Role,
        collections: Vec<String>,
        rate_per_second: Option<u32>,
    ) -> anyhow::Result<String> {
        let mut file = if path.exists() {
            KeyFile::load(path)?
        } else {
            KeyFile::default()
        };
        let (id, key) = loop {
            let (id, key) = new_key();
            if !file.keys.iter().any(|k| k.id == id) {
                break (id, key);
            }
        };
        file.keys.push(KeyRecord {
            id,
            role,
            collections,
            sha256: hash(&key),
            rate_per_second,
            created_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        });
        file.save(path)?;
        Ok(key)
    }

    /// Remove the key `id`; returns whether it was there.
    pub fn revoke_key(path: &Path, id: &str) -> anyhow::Result<bool> {
        let mut file = KeyFile::load(path)?;
        let before = file.keys.len();
        file.keys.retain(|k| k.id != id);
        let removed = file.keys.len() != before;
        if removed {
            file.save(path)?;
        }
        Ok(removed)
    }

    /// Write the file atomically (temp file, fsync, rename), readable by its owner only.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(d) = dir {
            std::fs::create_dir_all(d)?;
        }
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let res = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(self).expect("key file serializes"))?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            if let Some(d) = dir {
                std::fs::File::open(d)?.sync_all()?;
            }
            Ok(())
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// SHA-256 of a key, hex.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new public key and its id.
pub fn new_key() -> (String, String) {
    use rand::RngCore;
    let mut id = [0u8; ID_HEX / 2];
    let mut secret = [0u8; SECRET_HEX / 2];
    rand::rng().fill_bytes(&mut id);
    rand::rng().fill_bytes(&mut secret);
    let id = hex::encode(id);
    let key = format!("{KEY_PREFIX}{id}_{}", hex::encode(secret));
    (id, key)
}

/// A new internal key.
pub fn new_internal_key() -> String {
    use rand::RngCore;
    let mut secret = [0u8; SECRET_HEX / 2];
    rand::rng().fill_bytes(&mut secret);
    format!("{INTERNAL_PREFIX}{}", hex::encode(secret))
}

/// The id of a well-formed public key, `None` for anything else.
pub fn key_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (is_hex(id, ID_HEX) && is_hex(secret, SECRET_HEX)).then_some(id)
}

/// Whether `key` has the internal key's form.
pub fn is_internal_form(key: &str) -> bool {
    key.strip_prefix(INTERNAL_PREFIX)
        .is_some_and(|s| is_hex(s, SECRET_HEX))
}

/// Read the internal key from `path`, creating it (owner-only) when absent.
pub fn load_or_create_internal_key(path: &Path) -> anyhow::Result<String> {
    if !path.exists() {
        let key = new_internal_key();
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d)?;
        }
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(key.as_bytes())?;
        f.sync_all()?;
        return Ok(key);
    }
    load_internal_key(path)
}

/// Read the internal key from `path`.
pub fn load_internal_key(path: &Path) -> anyhow::Result<String> {
    let key = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!("cannot read the internal key file {}: {e}", path.display())
    })?;
    let key = key.trim().to_string();
    if !is_internal_form(&key) {
        anyhow::bail!(
            "{} does not hold an internal key (`{INTERNAL_PREFIX}` and 64 hex digits)",
            path.display()
        );
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_one_form_and_the_internal_key_another() {
        let (id, key) = new_key();
        assert_eq!(key_id(&key), Some(id.as_str()));
        assert!(!is_internal_form(&key));
        let internal = new_internal_key();
        assert!(is_internal_form(&internal));
        assert_eq!(key_id(&internal), None);
        for bad in [
            "",
            "akidb_",
            "akidb_zz_zz",
            &key[..key.len() - 1],
            &format!("{key}0"),
        ] {
            assert_eq!(key_id(bad), None, "{bad}");
        }
        assert_ne!(new_key().1, new_key().1);
    }

    #[test]
    fn the_file_holds_hashes_never_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys.json");
        let a = KeyFile::create_key(&p, Role::Read, vec!["docs".into()]).unwrap();
        let b = KeyFile::create_key(&p, Role::Admin, vec![]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains(&a) && !text.contains(&b[KEY_PREFIX.len() + 13..]));
        let f = KeyFile::load(&p).unwrap();
        assert_eq!(f.keys.len(), 2);
        assert_eq!(f.keys[0].sha256, hash(&a));
        assert_eq!(f.keys[0].collections, ["docs"]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(KeyFile::revoke_key(&p, key_id(&a).unwrap()).unwrap());
        assert_eq!(KeyFile::load(&p).unwrap().keys.len(), 1);
        std::fs::write(
            &p,
            br#"{"keys": [{"id": "x", "role": "read", "sha256": "00"}]}"#,
        )
        .unwrap();
        assert!(matches!(
            KeyFile::load(&p),
            Err(KeyFileError::Invalid { .. })
        ));
    }
}
