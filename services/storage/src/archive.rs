//! A snapshot as one tar archive: what DownloadSnapshot sends and RestoreSnapshot takes.
//!
//! Layout: a plain (ustar) tar of the snapshot directory, flat: `manifest.json` first, then
//! every file the manifest lists, in its order, each a regular file under its plain name
//! (`tar tf` shows them). Nothing else.
//!
//! Reading one ([`unpack`]) trusts nothing in it. The archives of other databases' snapshot
//! and backup restores wrote outside their directory through absolute names, `..`, symbolic
//! and hard links (Qdrant CVE-2024-3829, Weaviate CVE-2025-67818); here no name from the
//! archive is ever joined to a path before it passed [`crate::snapshot`]'s plain-name check,
//! every entry must be a regular file the manifest lists (once, at its listed size), each is
//! created new inside a directory made for this restore, and each is checked against the
//! manifest's SHA-256 and CRC-32C as it is written. The tar crate's `unpack` is not used.

use crate::error::{Result, StorageError};
use crate::fsutil::{Summing, Sums, sync_dir};
use crate::snapshot::{self, MANIFEST, SnapshotFile, SnapshotManifest};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

/// The largest manifest an archive may start with.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// Bytes allowed after the archive's end marker (tar writers pad to 10 KiB records).
const MAX_TRAILING_BYTES: u64 = 1 << 20;
/// Free space a restore leaves on the data directory's file system, beyond the archive's
/// files.
const FREE_SPACE_MARGIN: u64 = 256 << 20;

/// Write the snapshot in `dir` to `out` as an archive. Blocking.
pub fn write(dir: &Path, out: impl Write) -> Result<Sums> {
    let manifest = snapshot::read_manifest(dir)?;
    let mut b = tar::Builder::new(Summing::new(out));
    b.mode(tar::HeaderMode::Deterministic);
    let names = std::iter::once(MANIFEST).chain(manifest.files.iter().map(|f| f.name.as_str()));
    for name in names {
        let file = File::open(dir.join(name))?;
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(file.metadata()?.len());
        h.set_mode(0o644);
        h.set_mtime(0);
        b.append_data(&mut h, name, file)?;
    }
    let mut out = b.into_inner()?;
    out.flush()?;
    Ok(out.finish().0)
}

fn refuse(problem: impl Into<String>) -> StorageError {
    StorageError::InvalidArchive(problem.into())
}

/// Read the archive in `input` into `into`, a directory this call creates (it must not
/// exist), checking every entry as described in the module documentation. Returns the
/// manifest and the archive's size and SHA-256 (of every byte read, the end padding
/// included). On an error `into` may hold part of the archive: the caller removes it.
/// Blocking.
pub fn unpack(input: impl Read, into: &Path) -> Result<(SnapshotManifest, Sums)> {
    fs::create_dir(into)?;
    let mut input = Summing::new(input);
    let mut archive = tar::Archive::new(&mut input);
    let mut entries = archive
        .entries()
        .map_err(|e| refuse(format!("not a tar archive: {e}")))?;
    let manifest = {
        let mut e = next_entry(&mut entries)?
            .ok_or_else(|| refuse("the archive is empty; it must start with manifest.json"))?;
        let name = entry_name(&e)?;
        if name != MANIFEST {
            return Err(refuse(format!(
                "the archive must start with {MANIFEST}, not `{}`",
                name.escape_default()
            )));
        }
        if e.size() > MAX_MANIFEST_BYTES {
            return Err(refuse(format!(
                "its manifest has {} bytes, more than the {MAX_MANIFEST_BYTES} allowed",
                e.size()
            )));
        }
        let mut bytes = Vec::with_capacity(e.size() as usize);
        e.read_to_end(&mut bytes)
            .map_err(|err| refuse(format!("reading its manifest: {err}")))?;
        let m = snapshot::manifest_from_bytes(&bytes)
            .map_err(|why| refuse(format!("its manifest is unreadable: {why}")))?;
        fs::write(into.join(MANIFEST), &bytes)?;
        m
    };
    let mut wanted: BTreeMap<&str, &SnapshotFile> = manifest
        .files
        .iter()
        .map(|f| (f.name.as_str(), f))
        .collect();
    if wanted.len() != manifest.files.len() || wanted.contains_key(MANIFEST) {
        return Err(refuse("its manifest lists a file twice"));
    }
    let total: u64 = manifest.files.iter().map(|f| f.size_bytes).sum();
    let free = crate::fsutil::available_bytes(into)?;
    if total.saturating_add(FREE_SPACE_MARGIN) > free {
        return Err(StorageError::ArchiveTooLarge {
            needed: total,
            available: free.saturating_sub(FREE_SPACE_MARGIN),
        });
    }
    while let Some(mut e) = next_entry(&mut entries)? {
        let name = entry_name(&e)?;
        let Some(f) = wanted.remove(name.as_str()) else {
            return Err(refuse(if manifest.files.iter().any(|f| f.name == name) {
                format!("it holds `{name}` twice")
            } else {
                format!("it holds `{name}`, which its manifest does not list")
            }));
        };
        if e.size() != f.size_bytes {
            return Err(refuse(format!(
                "`{name}` has {} bytes, its manifest says {}",
                e.size(),
                f.size_bytes
            )));
        }
        let path = into.join(&name);
        let mut out = Summing::new(
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?,
        );
        io::copy(&mut e, &mut out).map_err(|err| refuse(format!("reading `{name}`: {err}")))?;
        let (sum, file) = out.finish();
        file.sync_all()?;
        if sum.size_bytes != f.size_bytes || sum.sha256 != f.sha256 || sum.crc32c != f.crc32c {
            return Err(refuse(format!(
                "`{name}` does not match its manifest's checksums"
            )));
        }
    }
    if let Some(name) = wanted.keys().next() {
        return Err(refuse(format!(
            "it lacks `{name}` ({} of the manifest's files are missing)",
            wanted.len()
        )));
    }
    // The end padding (and nothing much more) counts in the archive's checksum.
    let trailing = io::copy(
        &mut (&mut input).take(MAX_TRAILING_BYTES + 1),
        &mut io::sink(),
    )
    .map_err(|e| refuse(format!("reading past its end: {e}")))?;
    if trailing > MAX_TRAILING_BYTES {
        return Err(refuse("more than 1 MiB of data follows the archive's end"));
    }
    File::open(into.join(MANIFEST))?.sync_all()?;
    sync_dir(into)?;
    Ok((manifest, input.finish().0))
}

type Entries<'a, R> = tar::Entries<'a, R>;

fn next_entry<'a, R: Read>(entries: &mut Entries<'a, R>) -> Result<Option<tar::Entry<'a, R>>> {
    match entries.next() {
        None => Ok(None),
        Some(Ok(e)) => Ok(Some(e)),
        Some(Err(e)) => Err(refuse(format!("it is not a readable tar archive: {e}"))),
    }
}

/// The name of a regular-file entry that is a plain name (no directory part, no `..`, no
/// link); anything else is refused.
fn entry_name<R: Read>(e: &tar::Entry<'_, R>) -> Result<String> {
    let raw = e.path_bytes();
    let shown = String::from_utf8_lossy(&raw).escape_default().to_string();
    let kind = e.header().entry_type();
    if kind != tar::EntryType::Regular {
        return Err(refuse(format!(
            "entry `{shown}` is a {}, not a regular file",
            kind_name(kind)
        )));
    }
    let name = std::str::from_utf8(&raw)
        .map_err(|_| refuse(format!("entry `{shown}` has a name that is not UTF-8")))?;
    if !snapshot::plain_file_name(name) || name.starts_with('.') {
        return Err(refuse(format!(
            "entry `{shown}` is not a plain file name (absolute paths, directories and `..` are refused)"
        )));
    }
    Ok(name.to_string())
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Directory => "directory",
        tar::EntryType::Char | tar::EntryType::Block => "device",
        tar::EntryType::Fifo => "FIFO",
        tar::EntryType::GNUSparse => "sparse file",
        _ => "special entry",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::{Collection, CollectionOptions};
    use crate::model::{CollectionSpec, Metric, PointKey, PointRecord};
    use crate::store::CollectionStore;
    use sha2::Digest;
    use std::path::PathBuf;
    use tar::EntryType;

    /// A snapshot of a collection with sealed segments (graphs) and an appendable one.
    fn snapshot_dir(root: &Path) -> PathBuf {
        let opts = CollectionOptions {
            segment_max_points: 100,
            ..Default::default()
        };
        let dir = root.join("c");
        let c = Collection::create(&dir, CollectionSpec::for_test("c", 4, Metric::L2, 16), opts)
            .unwrap();
        let points = (0..250u64)
            .map(|i| PointRecord {
                key: PointKey::Num(i),
                vector: vec![i as f32, 1.0, 2.0, (i % 7) as f32],
                payload: serde_json::json!({"i": i}).as_object().unwrap().clone(),
                sparse: Default::default(),
                named: Default::default(),
            })
            .collect();
        c.upsert(points).unwrap();
        let m = c.snapshot().unwrap();
        snapshot::snapshots_dir(&dir).join(m.id)
    }

    /// A header with `name` written as given (the tar crate's own setters refuse `..` and
    /// absolute names, which is what these tests need to send).
    fn raw(b: &mut tar::Builder<Vec<u8>>, name: &[u8], kind: EntryType, link: &[u8], data: &[u8]) {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    /// The snapshot's entries as (name, bytes): manifest first.
    fn entries(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let m = snapshot::read_manifest(dir).unwrap();
        std::iter::once(MANIFEST.to_string())
            .chain(m.files.iter().map(|f| f.name.clone()))
            .map(|n| {
                let bytes = fs::read(dir.join(&n)).unwrap();
                (n, bytes)
            })
            .collect()
    }

    fn build(
        entries: &[(String, Vec<u8>)],
        extra: impl FnOnce(&mut tar::Builder<Vec<u8>>),
    ) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (n, d) in entries {
            raw(&mut b, n.as_bytes(), EntryType::Regular, b"", d);
        }
        extra(&mut b);
        b.into_inner().unwrap()
    }

    #[test]
    fn an_archive_round_trips_and_loads() {
        let root = tempfile::tempdir().unwrap();
        let src = snapshot_dir(root.path());
        let mut bytes = Vec::new();
        let sent = write(&src, &mut bytes).unwrap();
        assert_eq!(sent.size_bytes, bytes.len() as u64);
        assert_eq!(sent.sha256, hex::encode(sha2::Sha256::digest(&bytes)));
        let into = root.path().join("restored");
        let (m, got) = unpack(&bytes[..], &into).unwrap();
        assert_eq!(got, sent);
        assert_eq!(m.point_count, 250);
        for (name, data) in entries(&src) {
            assert_eq!(fs::read(into.join(&name)).unwrap(), data, "{name}");
        }
        let loaded = snapshot::load(&into, None).unwrap();
        assert!(loaded.segments.len() >= 2);
        assert!(loaded.segments.iter().any(|s| s.graph.is_some()));
    }

    /// Every hostile archive is refused with INVALID_ARGUMENT and nothing is written outside
    /// the directory made for it (the restore removes that one).
    #[test]
    fn hostile_archives_are_refused_and_write_nothing_outside() {
        let root = tempfile::tempdir().unwrap();
        let src = snapshot_dir(root.path());
        let good = entries(&src);
        let outside = root.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("victim"), b"keep me").unwrap();
        let evil_abs = outside.join("evil");
        let evil_abs = evil_abs.to_str().unwrap().as_bytes().to_vec();
        let first = |n: usize| good[..n].to_vec();
        let mut manifest: serde_json::Value = serde_json::from_slice(&good[0].1).unwrap();
        let with_manifest = |m: &serde_json::Value| {
            let mut e = good.clone();
            e[0].1 = serde_json::to_vec(m).unwrap();
            e
        };
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "absolute path",
                build(&good, |b| raw(b, &evil_abs, EntryType::Regular, b"", b"x")),
            ),
            (
                "dot-dot",
                build(&good, |b| raw(b, b"../evil", EntryType::Regular, b"", b"x")),
            ),
            (
                "nested dot-dot",
                build(&good, |b| {
                    raw(b, b"seg/../../evil", EntryType::Regular, b"", b"x")
                }),
            ),
            (
                "symlink then a file through it",
                build(&good, |b| {
                    raw(
                        b,
                        b"link",
                        EntryType::Symlink,
                        outside.to_str().unwrap().as_bytes(),
                        b"",
                    );
                    raw(b, b"link/evil", EntryType::Regular, b"", b"x");
                }),
            ),
            ("symlink named as a listed file", {
                let mut e = first(1);
                e.truncate(1);
                build(&e, |b| {
                    raw(
                        b,
                        good[1].0.as_bytes(),
                        EntryType::Symlink,
                        b"/etc/passwd",
                        b"",
                    )
                })
            }),
            (
                "hard link",
                build(&first(1), |b| {
                    raw(
                        b,
                        good[1].0.as_bytes(),
                        EntryType::Link,
                        outside.join("victim").to_str().unwrap().as_bytes(),
                        b"",
                    )
                }),
            ),
            (
                "directory",
                build(&good, |b| raw(b, b"d/", EntryType::Directory, b"", b"")),
            ),
            (
                "fifo",
                build(&good, |b| raw(b, b"f", EntryType::Fifo, b"", b"")),
            ),
            (
                "GNU long name with dot-dot",
                build(&good, |b| {
                    raw(
                        b,
                        b"././@LongLink",
                        EntryType::GNULongName,
                        b"",
                        b"../../evil\0",
                    );
                    raw(b, b"short", EntryType::Regular, b"", b"x");
                }),
            ),
            (
                "PAX path that is absolute",
                build(&good, |b| {
                    let rec = format!(" path={}\n", outside.join("evil").display());
                    let rec = format!("{}{rec}", rec.len() + (rec.len() + 3).to_string().len());
                    raw(b, b"pax", EntryType::XHeader, b"", rec.as_bytes());
                    raw(b, b"short", EntryType::Regular, b"", b"x");
                }),
            ),
            (
                "a file the manifest does not list",
                build(&good, |b| raw(b, b"extra", EntryType::Regular, b"", b"x")),
            ),
            (
                "a file twice",
                build(&good, |b| {
                    raw(b, good[1].0.as_bytes(), EntryType::Regular, b"", &good[1].1)
                }),
            ),
            ("a missing file", build(&good[..good.len() - 1], |_| {})),
            (
                "manifest not first",
                build(&good[1..], |b| {
                    raw(b, MANIFEST.as_bytes(), EntryType::Regular, b"", &good[0].1)
                }),
            ),
            ("altered content", {
                let mut e = good.clone();
                let last = e.last_mut().unwrap();
                let i = last.1.len() / 2;
                last.1[i] ^= 0x5a;
                build(&e, |_| {})
            }),
            ("a file shorter than listed", {
                let mut e = good.clone();
                e.last_mut().unwrap().1.pop();
                build(&e, |_| {})
            }),
            ("truncated", {
                let b = build(&good, |_| {});
                b[..b.len() / 2].to_vec()
            }),
            (
                "not an archive",
                b"this is not a tar archive at all, just some text".repeat(20),
            ),
            ("empty", Vec::new()),
        ];
        for (what, field) in [
            ("manifest naming ../x", "files"),
            ("manifest id ../../x", "id"),
        ] {
            let mut m = manifest.clone();
            if field == "files" {
                m["files"][0]["name"] = "../x".into();
            } else {
                m["id"] = "../../x".into();
            }
            cases.push((what, build(&with_manifest(&m), |_| {})));
        }
        manifest["files"][0]["size_bytes"] = (1u64 << 62).into();
        let huge = build(&with_manifest(&manifest), |_| {});
        for (what, bytes) in cases {
            let into = root.path().join("restore");
            let err = unpack(&bytes[..], &into).expect_err(what);
            assert!(
                matches!(err, StorageError::InvalidArchive(_)),
                "{what}: {err}"
            );
            assert_eq!(
                tonic::Status::from(err).code(),
                tonic::Code::InvalidArgument,
                "{what}"
            );
            fs::remove_dir_all(&into).unwrap();
            let mut left: Vec<_> = fs::read_dir(&outside)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            left.sort();
            assert_eq!(left, ["victim"], "{what}");
            assert_eq!(
                fs::read(outside.join("victim")).unwrap(),
                b"keep me",
                "{what}"
            );
            let mut top: Vec<_> = fs::read_dir(root.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            top.sort();
            assert_eq!(
                top,
                ["c", "outside"],
                "{what}: written beside the restore directory"
            );
            assert!(!Path::new("/etc/evil").exists());
        }
        // A manifest promising more than the disk has is refused before anything is written.
        let into = root.path().join("restore");
        let err = unpack(&huge[..], &into).unwrap_err();
        assert!(matches!(err, StorageError::ArchiveTooLarge { .. }), "{err}");
        assert_eq!(
            tonic::Status::from(err).code(),
            tonic::Code::ResourceExhausted
        );
    }
}
