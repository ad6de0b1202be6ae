//! A snapshot archive as RestoreSnapshot reads it (uploaded by a client, or read from the
//! object store). Asserts that, accepted or refused, nothing is written outside the
//! directory made for it, and that what is inside is regular files with plain names (no
//! link, no directory, no device), every file an accepted archive's manifest lists among them.
#![no_main]

use akidb_storage::fuzzing::snapshot_archive_unpack;
use libfuzzer_sys::fuzz_target;
use std::fs;
use std::sync::atomic::{AtomicU64, Ordering};

static RUN: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let root = std::env::temp_dir().join(format!(
        "akidb-fuzz-archive-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir(&root).unwrap();
    let into = root.join("s");
    let accepted = snapshot_archive_unpack(data, &into).is_ok();
    let beside: Vec<_> = fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(beside.iter().all(|n| n == "s"), "written beside: {beside:?}");
    if into.exists() {
        for e in fs::read_dir(&into).unwrap() {
            let e = e.unwrap();
            let kind = fs::symlink_metadata(e.path()).unwrap().file_type();
            assert!(kind.is_file(), "{:?} is not a regular file", e.file_name());
            let name = e.file_name().into_string().unwrap();
            assert!(!name.is_empty() && !name.contains('/') && name != "..");
        }
    }
    if accepted {
        let m: serde_json::Value =
            serde_json::from_slice(&fs::read(into.join("manifest.json")).unwrap()).unwrap();
        for f in m["files"].as_array().unwrap() {
            assert!(into.join(f["name"].as_str().unwrap()).is_file());
        }
    }
    fs::remove_dir_all(&root).unwrap();
});
