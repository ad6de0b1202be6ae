//! The flags every service takes for keys, and the protected default: a service refuses to
//! listen beyond loopback without keys unless told `--insecure-no-auth`.

use crate::keys::{self, Role};
use crate::layer::Auth;
use crate::store::{InternalKey, KeyStore};
use akidb_instrumentation::http::AdminCheck;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthArgs {
    /// API key file (`akidb keys create` writes it): when set, every call needs a key in it
    /// with the right role. It holds each key's id, role, collections and hash, never the key;
    /// it is read again on SIGHUP and when it changes.
    #[arg(long = "api-keys-file", env = "AKIDB_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// File with the internal key: storage and the aggregator then accept only callers that
    /// present it (the front doors), and ingest and query present it.
    #[arg(long = "internal-key-file", env = "AKIDB_INTERNAL_KEY_FILE")]
    pub internal_key_file: Option<PathBuf>,
    /// Listen beyond loopback without keys: anyone who reaches the port can read, write and
    /// delete everything. Named so that nobody types it by accident.
    #[arg(long = "insecure-no-auth", env = "AKIDB_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Bearer token the HTTP port's `/metrics`, `/federate` and `GET /tracing` need (the
    /// aggregator scrapes with it); unset: open.
    #[arg(
        long = "metrics-token",
        env = "AKIDB_METRICS_TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// File holding the metrics token (its first line), instead of `--metrics-token`.
    #[arg(
        long = "metrics-token-file",
        env = "AKIDB_METRICS_TOKEN_FILE",
        conflicts_with = "metrics_token"
    )]
    pub metrics_token_file: Option<PathBuf>,
}

/// Which callers a service's gRPC port takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Public keys (query, ingest).
    Public,
    /// The internal key only (storage, the aggregator).
    Internal,
}

/// Set up the checks of `service` from `args`: the gRPC layer for `mode`, the watcher that
/// reloads the key file, and who may use the HTTP port (returned, for `serve_http`). Refuses
/// a service that would listen on `listening` beyond loopback without keys.
pub fn protect(
    service: &mut akidb_instrumentation::lifecycle::Service,
    args: &AuthArgs,
    mode: Mode,
    listening: &[SocketAddr],
) -> anyhow::Result<Protection> {
    // One key store for the gRPC check, PUT /tracing and the watcher that reloads it.
    let store = args.key_store()?;
    let auth = match (mode, &store) {
        (Mode::Public, Some(s)) => Auth::Public(s.clone()),
        (Mode::Public, None) => Auth::Off,
        (Mode::Internal, _) => args.internal()?,
    };
    args.check_exposure(&auth, listening)?;
    match &auth {
        Auth::Public(s) => {
            tracing::info!(file = %s.path().display(), keys = s.len(), "API keys required")
        }
        Auth::Internal(_) => tracing::info!("only internal callers accepted (internal key)"),
        Auth::Off => {}
    }
    let keys_on = store.is_some() || args.internal_key_file.is_some();
    let admin: Option<AdminCheck> = keys_on.then(|| {
        let store = store.clone();
        Arc::new(move |h: &http::HeaderMap| {
            store.as_ref().is_some_and(|s| {
                crate::layer::bearer(h)
                    .and_then(|k| s.authenticate(k))
                    .is_some_and(|p| p.role == Role::Admin)
            })
        }) as AdminCheck
    });
    if let Some(store) = store {
        service.spawn("api keys", move |stopped| {
            store.watch(std::time::Duration::from_secs(1), stopped)
        });
    }
    service.guard(crate::layer::AuthLayer(auth.clone()));
    Ok(Protection {
        access: akidb_instrumentation::http::Access {
            metrics_token: args.metrics_token()?,
            admin,
        },
        auth,
    })
}

/// What [`protect`] set up: who the HTTP port lets in, and who the gRPC layer lets in (the
/// REST front asks it too).
pub struct Protection {
    pub access: akidb_instrumentation::http::Access,
    pub auth: Auth,
}

impl AuthArgs {
    /// The metrics token: `--metrics-token`, or the first line of `--metrics-token-file`.
    pub fn metrics_token(&self) -> anyhow::Result<Option<String>> {
        use anyhow::Context;
        match (&self.metrics_token, &self.metrics_token_file) {
            (Some(t), _) => Ok(Some(t.clone())),
            (None, Some(p)) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading the metrics token file {}", p.display()))?;
                let token = text.lines().next().unwrap_or_default().trim().to_string();
                anyhow::ensure!(
                    !token.is_empty(),
                    "the metrics token file {} is empty",
                    p.display()
                );
                Ok(Some(token))
            }
            (None, None) => Ok(None),
        }
    }

    /// The keys in force, when a key file is set.
    pub fn key_store(&self) -> anyhow::Result<Option<Arc<KeyStore>>> {
        match &self.api_keys_file {
            None => Ok(None),
            Some(p) => Ok(Some(KeyStore::open(p)?)),
        }
    }

    /// Who storage and the aggregator let in: only the internal key, when it is set.
    pub fn internal(&self) -> anyhow::Result<Auth> {
        Ok(match self.internal_key()? {
            Some(k) => Auth::Internal(InternalKey::new(&k)),
            None => Auth::Off,
        })
    }

    /// The internal key, for calls to storage and the aggregator.
    pub fn internal_key(&self) -> anyhow::Result<Option<String>> {
        self.internal_key_file
            .as_deref()
            .map(keys::load_internal_key)
            .transpose()
    }

    /// Refuse to listen on a non-loopback address when `auth` lets everyone in, unless
    /// `--insecure-no-auth`: a service on a network without keys is open to anyone.
    pub fn check_exposure(&self, auth: &Auth, addrs: &[SocketAddr]) -> anyhow::Result<()> {
        let exposed: Vec<String> = addrs
            .iter()
            .filter(|a| !a.ip().is_loopback())
            .map(ToString::to_string)
            .collect();
        if exposed.is_empty() || !matches!(auth, Auth::Off) || self.insecure_no_auth {
            if !exposed.is_empty() && matches!(auth, Auth::Off) {
                tracing::warn!(addresses = %exposed.join(", "), "listening beyond loopback without keys (--insecure-no-auth): anyone who reaches these ports can read, write and delete everything");
            }
            return Ok(());
        }
        anyhow::bail!(
            "refusing to listen on {} without API keys: anyone who reaches it could read, write and delete every collection. Create a key with `akidb keys create --role admin` and start with --api-keys-file (AKIDB_API_KEYS_FILE) — storage and the aggregator with --internal-key-file — or listen on 127.0.0.1, or pass --insecure-no-auth if the network itself is trusted",
            exposed.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_beyond_loopback_needs_keys() {
        let args = AuthArgs::default();
        let lo: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:1".parse().unwrap();
        assert!(args.check_exposure(&Auth::Off, &[lo]).is_ok());
        let e = args
            .check_exposure(&Auth::Off, &[lo, any])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("0.0.0.0:1") && e.contains("akidb keys create"),
            "{e}"
        );
        let insecure = AuthArgs {
            insecure_no_auth: true,
            ..Default::default()
        };
        assert!(insecure.check_exposure(&Auth::Off, &[any]).is_ok());
        let ik = Auth::Internal(InternalKey::new(&keys::new_internal_key()));
        assert!(args.check_exposure(&ik, &[any]).is_ok());
    }
}
