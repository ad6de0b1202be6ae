//! A real etcd server for a test: Debian's `etcd` (package `etcd-server`, installed by
//! `scripts/setup`) as a child process with its own data directory on free loopback ports,
//! paused and resumed with signals (an etcd that stops answering), killed on drop. Without the
//! binary a test skips, or fails under `CI=true` ([`crate::require`]).

use crate::ports::free_port;
use crate::require::tool;
use crate::server::ServerProcess;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// An `etcd` child process; killed (after a SIGCONT) on drop.
pub struct Etcd {
    process: ServerProcess,
    /// The client URL, `http://127.0.0.1:<port>`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// The `etcd` binary on PATH, or [`crate::require::missing`].
    pub fn bin() -> Option<PathBuf> {
        tool(
            &["etcd"],
            "Install Debian's etcd-server package (scripts/setup does: apt-get install etcd-server).",
        )
    }

    /// Start etcd and wait until it answers `/health` (20 s at most); `None`: skip the test.
    pub async fn start() -> Option<Etcd> {
        let bin = Etcd::bin()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let process = ServerProcess::spawn(
            Command::new(&bin)
                .arg("--name=test")
                .arg(format!("--data-dir={}", dir.path().join("data").display()))
                .arg(format!("--listen-client-urls={url}"))
                .arg(format!("--advertise-client-urls={url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=test={peer_url}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(
                    std::fs::File::create(dir.path().join("etcd.log")).expect("etcd log"),
                )),
            &bin.display().to_string(),
        );
        process.wait_http(&format!("{url}/health"), "etcd").await;
        Some(Etcd {
            process,
            url,
            _dir: dir,
        })
    }

    /// SIGSTOP: etcd stops answering (connections stay open, nothing is refused).
    pub fn pause(&self) {
        self.process.pause();
    }

    /// SIGCONT after [`Etcd::pause`].
    pub fn resume(&self) {
        self.process.resume();
    }
}
