//! What a test does when something it needs is missing.
//!
//! Under `CI=true` (or `1`) a missing data set, binary or tool fails the test, with what is
//! missing and how to get it: a CI run never passes by checking nothing. Elsewhere the test
//! prints a loud SKIPPED banner to the process's stderr (not `eprintln!`, which the test
//! harness captures and hides for a passing test) and leaves out what needs it (usually:
//! returns at once).

use std::io::Write;
use std::path::PathBuf;

/// Whether this is a CI run (`CI` is `true` or `1`): nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `what` is missing and `how` says how to get it: panics under CI, else prints the
/// SKIPPED banner. Returns `None`, for `let Some(x) = ... else { return };`.
pub fn missing<T>(what: &str, how: &str) -> Option<T> {
    let test = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(|n| format!(" {n}"))
        .unwrap_or_default();
    if in_ci() {
        panic!("{what}; CI=true, so the test{test} fails instead of skipping. {how}");
    }
    // One write, so that banners of tests running at once do not interleave.
    let banner = format!(
        "\n!!!!!!!! SKIPPED{test}: {what}; what needs it was not checked.\n!!!!!!!! {how}\n!!!!!!!! (Under CI=true this fails the test.)\n\n"
    );
    let _ = std::io::stderr().lock().write_all(banner.as_bytes());
    None
}

/// The first of `names` that is an executable on PATH, or [`missing`] (`how`: how to
/// install it).
pub fn tool(names: &[&str], how: &str) -> Option<PathBuf> {
    names
        .iter()
        .find_map(|n| on_path(n))
        .or_else(|| missing(&format!("`{}` is not on PATH", names.join("` or `")), how))
}

/// `bin` as a file on PATH, if there is one.
pub fn on_path(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    })
}
