//! Vector files: the vectors of one sealed segment of an on-disk collection
//! (`CollectionSpec::on_disk`), written once and mapped read-only, so they live in the page
//! cache (file-backed memory the kernel can drop and read again) instead of the heap.
//!
//! Layout: a 64-byte header (magic `AKVEC001`, datatype byte, dimension, point count), then
//! every vector's components little-endian in slot order, so that the mapping (page-aligned)
//! is read in place as `&[f32]` or `&[u16]`.
//!
//! A collection's live vector files are in its `vectors/` directory, one per sealed segment,
//! removed when the segment is dropped (merged away, the collection unloaded or deleted).
//! Snapshots hard-link them (`seg-<id>.vec`, checksummed in the manifest); loading a
//! snapshot links its files back into `vectors/` and maps them there, so that pruning the
//! snapshot never removes a file a segment still reads. Nothing here is the source of truth
//! before a snapshot lists it: the WAL is, and `vectors/` is emptied when a collection opens.

use crate::distance::{Row, f32_to_f16};
use crate::model::Datatype;
use memmap2::Mmap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[cfg(not(target_endian = "little"))]
compile_error!("vector files are mapped in place as little-endian values");

const MAGIC: &[u8; 8] = b"AKVEC001";
const HEADER: usize = 64;

/// The directory of a collection's live vector files.
pub fn dir(collection_dir: &Path) -> PathBuf {
    collection_dir.join("vectors")
}

/// File name of segment `id`'s vectors in snapshots.
pub fn file_name(id: u64) -> String {
    format!("seg-{id}.vec")
}

/// A new file name for segment `id`'s vectors in `vectors/`: unique, so that a segment
/// dropped late (a search still holding it) never removes the file of its successor.
pub fn live_name(id: u64) -> String {
    format!("seg-{id}.{:016x}.vec", rand::random::<u64>())
}

/// Empty the collection's `vectors/` (every file in it is re-created from the snapshot and
/// the WAL as the collection opens), creating it if needed.
pub fn reset_dir(collection_dir: &Path) -> std::io::Result<PathBuf> {
    let d = dir(collection_dir);
    match fs::remove_dir_all(&d) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::create_dir_all(&d)?;
    Ok(d)
}

/// One segment's vectors, mapped.
pub struct VecFile {
    map: Mmap,
    path: PathBuf,
    datatype: Datatype,
    dim: usize,
    points: usize,
    /// Removed when dropped (files in `vectors/`; not files mapped from elsewhere).
    owned: bool,
    /// Size and checksums, computed the first time a snapshot lists the file.
    sums: OnceLock<FileSums>,
}

/// A vector file's size and checksums, as a snapshot manifest lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSums {
    pub size_bytes: u64,
    pub sha256: String,
    pub crc32c: u32,
}

impl std::fmt::Debug for VecFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VecFile")
            .field("path", &self.path)
            .field("points", &self.points)
            .finish()
    }
}

/// Write `rows` (in `datatype`, converted when they differ) as the vector file at `path` and
/// map it (owned: removed when dropped).
pub fn write<'a>(
    path: &Path,
    datatype: Datatype,
    dim: usize,
    rows: impl Iterator<Item = Row<'a>>,
) -> std::io::Result<VecFile> {
    let mut w = Writer::create(path, datatype, dim)?;
    for r in rows {
        w.push(r)?;
    }
    w.finish()
}

/// Writes a vector file row by row ([`Writer::finish`] maps it).
struct Writer {
    w: BufWriter<File>,
    path: PathBuf,
    datatype: Datatype,
    dim: usize,
    points: usize,
}

impl Writer {
    fn create(path: &Path, datatype: Datatype, dim: usize) -> std::io::Result<Writer> {
        let mut w = BufWriter::with_capacity(256 * 1024, File::create(path)?);
        w.write_all(&[0u8; HEADER])?;
        Ok(Writer {
            w,
            path: path.to_path_buf(),
            datatype,
            dim,
            points: 0,
        })
    }

    /// Append one vector (converted to the file's datatype when it differs).
    fn push(&mut self, row: Row<'_>) -> std::io::Result<()> {
        debug_assert_eq!(row.len(), self.dim);
        match (self.datatype, row) {
            (Datatype::Float32, Row::F32(v)) => self.w.write_all(as_bytes(v))?,
            (Datatype::Float16, Row::F16(v)) => self.w.write_all(as_bytes(v))?,
            (Datatype::Float32, r) => self.w.write_all(as_bytes(&r.to_vec()))?,
            (Datatype::Float16, r) => {
                let h: Vec<u16> = r.to_vec().into_iter().map(f32_to_f16).collect();
                self.w.write_all(as_bytes(&h))?
            }
        }
        self.points += 1;
        Ok(())
    }

    /// Write the header and map the file (owned: removed when dropped).
    fn finish(mut self) -> std::io::Result<VecFile> {
        use std::io::{Seek, SeekFrom};
        self.w.seek(SeekFrom::Start(0))?;
        self.w
            .write_all(&header(self.datatype, self.dim, self.points))?;
        let f = self.w.into_inner().map_err(|e| e.into_error())?;
        drop(f);
        VecFile::map(&self.path, true).map_err(std::io::Error::other)
    }
}

fn header(datatype: Datatype, dim: usize, points: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8] = match datatype {
        Datatype::Float32 => 1,
        Datatype::Float16 => 2,
    };
    h[12..16].copy_from_slice(&(dim as u32).to_le_bytes());
    h[16..24].copy_from_slice(&(points as u64).to_le_bytes());
    h
}

fn as_bytes<T: Copy>(v: &[T]) -> &[u8] {
    // SAFETY: f32 and u16 have no padding and every bit pattern is a valid byte.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

impl VecFile {
    /// Map the vector file at `path`, checking its header against its size.
    pub fn map(path: &Path, owned: bool) -> Result<VecFile, String> {
        let f = File::open(path).map_err(|e| e.to_string())?;
        // SAFETY: vector files are written once, before they are mapped, and never
        // modified; a file is only removed by unlinking (the mapping stays valid).
        let map = unsafe { Mmap::map(&f) }.map_err(|e| e.to_string())?;
        let h = map.get(..HEADER).ok_or("file ends inside the header")?;
        if &h[..8] != MAGIC {
            return Err("not a vector file".into());
        }
        let datatype = match h[8] {
            1 => Datatype::Float32,
            2 => Datatype::Float16,
            t => return Err(format!("unknown vector datatype {t}")),
        };
        let dim = u32::from_le_bytes(h[12..16].try_into().expect("4 bytes")) as usize;
        let points = u64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
        let body = points
            .checked_mul(dim as u64)
            .and_then(|v| v.checked_mul(datatype.size() as u64));
        if body != Some((map.len() - HEADER) as u64) {
            return Err(format!(
                "{points} vectors of {dim} {} components do not fill its {} bytes",
                datatype.as_str(),
                map.len()
            ));
        }
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Random);
        Ok(VecFile {
            map,
            path: path.to_path_buf(),
            datatype,
            dim,
            points: points as usize,
            owned,
            sums: OnceLock::new(),
        })
    }

    /// The snapshot's file `src` linked (or copied, across file systems) into the
    /// collection's `vectors/` directory as `dst`, and mapped there (owned).
    pub fn adopt(src: &Path, dst: &Path) -> Result<VecFile, String> {
        crate::fsutil::link_or_copy(src, dst)
            .map_err(|e| format!("linking to {}: {e}", dst.display()))?;
        VecFile::map(dst, true)
    }

    /// Every vector, as one row (what a graph search reads).
    pub fn all(&self) -> Row<'_> {
        let body = &self.map[HEADER..];
        // SAFETY: the mapping is page-aligned and the header 64 bytes, so the body is
        // aligned for both types; its length was checked against the header at map time.
        unsafe {
            match self.datatype {
                Datatype::Float32 => Row::F32(std::slice::from_raw_parts(
                    body.as_ptr() as *const f32,
                    body.len() / 4,
                )),
                Datatype::Float16 => Row::F16(std::slice::from_raw_parts(
                    body.as_ptr() as *const u16,
                    body.len() / 2,
                )),
            }
        }
    }

    pub fn datatype(&self) -> Datatype {
        self.datatype
    }
    pub fn dim(&self) -> usize {
        self.dim
    }
    pub fn points(&self) -> usize {
        self.points
    }
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size and checksums, computed once (reading the mapping).
    pub fn sums(&self) -> &FileSums {
        self.sums.get_or_init(|| {
            use sha2::{Digest, Sha256};
            FileSums {
                size_bytes: self.map.len() as u64,
                sha256: hex::encode(Sha256::digest(&self.map[..])),
                crc32c: crc32c::crc32c(&self.map[..]),
            }
        })
    }
}

impl Drop for VecFile {
    fn drop(&mut self) {
        if self.owned {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_rows_map_back_and_damage_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        for datatype in [Datatype::Float32, Datatype::Float16] {
            let p = tmp.path().join(format!("{}.vec", datatype.as_str()));
            let rows = [[1.0f32, -2.5, 3.0], [0.5, 0.25, -8.0]];
            let v = write(&p, datatype, 3, rows.iter().map(|r| Row::F32(r))).unwrap();
            assert_eq!((v.points(), v.dim(), v.datatype()), (2, 3, datatype));
            assert_eq!(v.all().to_vec(), rows.concat());
            assert_eq!(v.sums().size_bytes, (64 + 6 * datatype.size()) as u64);
            // Adopted elsewhere: the copy outlives the original name.
            let q = tmp.path().join("adopted.vec");
            let a = VecFile::adopt(&p, &q).unwrap();
            drop(v);
            assert!(!p.exists(), "an owned file is removed with its segment");
            assert_eq!(a.all().to_vec(), rows.concat());
            let bytes = fs::read(&q).unwrap();
            drop(a);
            assert!(!q.exists());
            let bad = tmp.path().join("bad.vec");
            fs::write(&bad, &bytes[..bytes.len() - 1]).unwrap();
            assert!(VecFile::map(&bad, false).is_err());
            fs::write(&bad, &bytes[..10]).unwrap();
            assert!(VecFile::map(&bad, false).is_err());
            let mut wrong = bytes.clone();
            wrong[0] = b'X';
            fs::write(&bad, &wrong).unwrap();
            assert!(VecFile::map(&bad, false).is_err());
        }
    }
}
