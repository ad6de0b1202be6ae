//! `promtool` (from Prometheus), run on metrics a test scraped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// How to get promtool.
pub const HOW: &str = "scripts/setup installs it (Debian package prometheus).";

/// promtool on PATH, or [`crate::require::missing`].
pub fn bin() -> Option<PathBuf> {
    crate::require::tool(&["promtool"], HOW)
}

/// `promtool check metrics` on `text` (the exposition format): its exit status and what it
/// printed (stdout, then stderr; empty when it has nothing to say).
pub fn check_metrics(promtool: &Path, text: &str) -> (ExitStatus, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", promtool.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
