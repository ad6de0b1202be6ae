//! `akidb keys`: create, list and revoke API keys in the key file the services read
//! (`AKIDB_API_KEYS_FILE`). The file holds hashes; a new key is printed once, here.

use crate::global::{Global, emit};
use akidb_auth::Role;
use akidb_auth::keys::KeyFile;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    /// The key file the services read (created when absent).
    #[arg(long = "api-keys-file", env = "AKIDB_API_KEYS_FILE", global = true)]
    pub file: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: KeysCmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysCmd {
    /// Create a key and print it (once: the file keeps only its hash). The services take it
    /// within a second, or at once on SIGHUP.
    Create {
        /// read (search, get, count, scroll, list), write (and upsert, delete, flush) or
        /// admin (everything: collections, AdminService, PUT /tracing).
        #[arg(long)]
        role: Role,
        /// Limit the key to this collection (repeat for several); default: all.
        #[arg(long = "collection")]
        collections: Vec<String>,
        /// Calls per second the key may make at each front door (bursts of up to one
        /// second's worth); over it, RESOURCE_EXHAUSTED with `retry-after-ms`. Default: no limit.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        rate: Option<u32>,
    },
    /// List the keys in force (ids, roles, collections; never the keys).
    List,
    /// Revoke the key with this id: refused from the next second on.
    Revoke { id: String },
    /// Set up keys for a deployment, once (idempotent): the key file with one admin key,
    /// written to `<dir>/admin.key` (owner-only), and the internal key `<dir>/internal.key`.
    /// What the compose file's one-shot `keys` service runs.
    Init {
        /// Where `admin.key`, `internal.key` and `metrics.token` go (the key file is
        /// `--api-keys-file`).
        #[arg(long)]
        dir: PathBuf,
    },
}

pub fn run(g: &Global, a: KeysArgs) -> anyhow::Result<()> {
    let Some(file) = a.file else {
        anyhow::bail!(
            "name the key file the services read: --api-keys-file <file> or AKIDB_API_KEYS_FILE"
        );
    };
    match a.cmd {
        KeysCmd::Create {
            role,
            collections,
            rate,
        } => {
            for c in &collections {
                akidb_proto::limits::check_name(c)?;
            }
            let key = KeyFile::create_key_with_rate(&file, role, collections.clone(), rate)?;
            let id = akidb_auth::keys::key_id(&key)
                .unwrap_or_default()
                .to_string();
            if g.json {
                let v = serde_json::json!({"id": id, "role": role.as_str(), "collections": collections, "rate_per_second": rate, "key": key, "file": file});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{key}");
                eprintln!(
                    "key {id} ({}{}) added to {}; it is shown only now. Clients send it as `authorization: Bearer <key>` (the CLI: --api-key or AKIDB_API_KEY).",
                    role.as_str(),
                    if collections.is_empty() {
                        String::new()
                    } else {
                        format!(", collections {}", collections.join(", "))
                    },
                    file.display()
                );
            }
        }
        KeysCmd::List => {
            let f = KeyFile::load(&file)?;
            let v = serde_json::json!(
                f.keys
                    .iter()
                    .map(|k| serde_json::json!({"id": k.id, "role": k.role.as_str(), "collections": k.collections, "rate_per_second": k.rate_per_second, "created_unix_ms": k.created_unix_ms}))
                    .collect::<Vec<_>>()
            );
            emit(g, v, || {
                let mut t = comfy_table::Table::new();
                t.set_header(["id", "role", "collections", "calls/s", "created (unix ms)"]);
                for k in &f.keys {
                    let cols = if k.collections.is_empty() {
                        "all".to_string()
                    } else {
                        k.collections.join(", ")
                    };
                    t.add_row([
                        k.id.clone(),
                        k.role.as_str().to_string(),
                        cols,
                        k.rate_per_second
                            .map_or_else(|| "unlimited".to_string(), |r| r.to_string()),
                        k.created_unix_ms.to_string(),
                    ]);
                }
                t
            });
        }
        KeysCmd::Init { dir } => {
            std::fs::create_dir_all(&dir)?;
            let admin_file = dir.join("admin.key");
            if !file.exists() {
                let key = KeyFile::create_key(&file, Role::Admin, vec![])?;
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&admin_file)?;
                writeln!(f, "{key}")?;
                f.sync_all()?;
                eprintln!(
                    "created {} with an admin key (in {}) ",
                    file.display(),
                    admin_file.display()
                );
            } else {
                eprintln!("{} exists; keys unchanged", file.display());
            }
            akidb_auth::keys::load_or_create_internal_key(&dir.join("internal.key"))?;
            // The bearer token of the HTTP ports (`--metrics-token-file`), made like a key.
            let token_file = dir.join("metrics.token");
            if !token_file.exists() {
                let token = akidb_auth::keys::new_key().1;
                crate::tls::write_private(&token_file, &format!("{token}\n"))?;
            }
        }
        KeysCmd::Revoke { id } => {
            if !KeyFile::revoke_key(&file, &id)? {
                anyhow::bail!(
                    "no key {id} in {}; `akidb keys list` shows them",
                    file.display()
                );
            }
            eprintln!("key {id} revoked in {}", file.display());
        }
    }
    Ok(())
}
