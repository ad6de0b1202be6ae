//! A snapshot's `manifest.json` (read from local disk, and downloaded from the object store
//! when a cold collection is loaded). Asserts that an accepted manifest writes back (as
//! `snapshot::write` writes it) to JSON that reads to the same manifest, canonically, and
//! that every file it names is a plain name inside the snapshot directory (the load joins
//! them to it: `../`, `/`, a NUL or an empty name would reach outside).
#![no_main]

use akidb_storage::fuzzing::snapshot_manifest_decode;
use libfuzzer_sys::fuzz_target;

fn plain(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

fuzz_target!(|data: &[u8]| {
    let Ok(m) = snapshot_manifest_decode(data) else {
        return;
    };
    for name in m.file_names() {
        assert!(plain(name), "manifest names {name:?}");
    }
    let json = serde_json::to_vec_pretty(&m).expect("a manifest serializes");
    let back = snapshot_manifest_decode(&json).expect("a written manifest reads back");
    assert_eq!(
        serde_json::to_vec_pretty(&back).unwrap(),
        json,
        "manifest changed on a write and read"
    );
});
