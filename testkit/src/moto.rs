//! A real S3 server for a test: `moto_server` (Python moto) as a child process, one per test
//! so that pausing one (SIGSTOP) affects no other; and boto3, run with the Python next to
//! `moto_server` (or `AKIDB_TEST_PYTHON`), as an independent client that checks what is in a
//! bucket without going through AkiDB.
//!
//! The binary is `AKIDB_TEST_MOTO_BIN` (`scripts/setup` installs it in `.tools/venv`;
//! `eval "$(scripts/s3-test-server env)"` sets the variable). Without it a test skips, or
//! fails under `CI=true` ([`crate::require`]).

use crate::ports::free_port;
use crate::require::missing;
use crate::server::ServerProcess;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A `moto_server` child process on a free loopback port; killed (after a SIGCONT) on drop.
pub struct Moto {
    process: ServerProcess,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The Python that runs boto3.
    python: PathBuf,
}

/// Objects as boto3 lists them: key -> (size, sha256 hex).
pub type Listing = BTreeMap<String, (u64, String)>;

impl Moto {
    /// The `moto_server` binary from `AKIDB_TEST_MOTO_BIN`, or [`missing`].
    pub fn bin() -> Option<PathBuf> {
        match std::env::var_os("AKIDB_TEST_MOTO_BIN") {
            Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
            _ => missing(
                "AKIDB_TEST_MOTO_BIN is not set, so there is no S3 server (moto) to test against",
                "Run: eval \"$(scripts/s3-test-server env)\" (installs moto into .tools/venv) and test again; scripts/test sets it.",
            ),
        }
    }

    /// [`Moto::bin`], started: `None` when the test is to skip.
    pub async fn from_env() -> Option<Moto> {
        Some(Moto::start(&Moto::bin()?).await)
    }

    /// Start `bin` and wait until it answers HTTP (20 s at most).
    pub async fn start(bin: &Path) -> Moto {
        let port = free_port();
        let process = ServerProcess::spawn(
            Command::new(bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            &bin.display().to_string(),
        );
        let python = std::env::var_os("AKIDB_TEST_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| bin.parent().unwrap().join("python"));
        let moto = Moto {
            process,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            python,
        };
        moto.process.wait_http(&moto.url(), "moto_server").await;
        moto
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGSTOP: the server stops answering; the kernel still accepts connections.
    pub fn pause(&self) {
        self.process.pause();
    }

    /// SIGCONT after [`Moto::pause`].
    pub fn resume(&self) {
        self.process.resume();
    }

    /// Objects under `prefix` in `bucket` as boto3 sees them (each one downloaded and hashed).
    pub async fn list(&self, bucket: &str, prefix: &str) -> Listing {
        let out = self.boto(&["list", &self.url(), bucket, prefix]).await;
        serde_json::from_slice(&out).unwrap()
    }

    /// Write `data` at `key` with boto3.
    pub async fn put(&self, bucket: &str, key: &str, data: &[u8]) {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), data).unwrap();
        let arg = format!("{key}={}", f.path().display());
        self.boto(&["put", &self.url(), bucket, &arg]).await;
    }

    async fn boto(&self, args: &[&str]) -> Vec<u8> {
        let out = tokio::process::Command::new(&self.python)
            .args(["-c", BOTO])
            .args(args)
            .output()
            .await
            .expect("run python");
        assert!(
            out.status.success(),
            "boto3 {} failed: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

const BOTO: &str = r#"
import sys, json, hashlib, boto3
cmd, ep, bucket, arg = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=ep, region_name="us-west-2",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
if cmd == "list":
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=arg):
        for o in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            out[o["Key"]] = [o["Size"], hashlib.sha256(body).hexdigest()]
    print(json.dumps(out))
elif cmd == "put":
    key, path = arg.split("=", 1)
    s3.put_object(Bucket=bucket, Key=key, Body=open(path, "rb").read())
    print("{}")
"#;
