//! The TEXMEX data set files (`.fvecs`, `.ivecs`): what `akidb upsert --file x.fvecs`,
//! `akidb search --query-file`, `akidb bench`, the tests and the benchmarks read.
//!
//! Each row is a little-endian `i32` dimension `d`, then `d` little-endian 4-byte values;
//! every row of a file has the same dimension. A data set folder holds
//! `<set>_base.fvecs`, `<set>_query.fvecs` and `<set>_groundtruth.ivecs` (row numbers of the
//! base file, nearest first); [`find`] picks one of them by its suffix.

use std::io;
use std::path::{Path, PathBuf};

/// Rows of an `.fvecs` file.
pub fn read_fvecs(path: &Path) -> io::Result<Vec<Vec<f32>>> {
    read_xvecs(&read(path)?, path, f32::from_le_bytes)
}

/// Rows of an `.ivecs` file.
pub fn read_ivecs(path: &Path) -> io::Result<Vec<Vec<i32>>> {
    read_xvecs(&read(path)?, path, i32::from_le_bytes)
}

/// The file in `dir` whose name ends with `suffix` (e.g. `_base.fvecs`).
pub fn find(dir: &Path, suffix: &str) -> io::Result<PathBuf> {
    std::fs::read_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix))
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no *{suffix} in {}", dir.display()),
            )
        })
}

fn read(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", path.display())))
}

fn invalid(path: &Path, what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

fn read_xvecs<T>(bytes: &[u8], path: &Path, conv: fn([u8; 4]) -> T) -> io::Result<Vec<Vec<T>>> {
    let mut rows = Vec::new();
    let mut off = 0;
    let mut dim0 = None;
    while off < bytes.len() {
        if off + 4 > bytes.len() {
            return Err(invalid(path, format!("truncated row header at byte {off}")));
        }
        let d = i32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
        if d <= 0 {
            return Err(invalid(path, format!("bad dimension {d} at byte {off}")));
        }
        let d = d as usize;
        if *dim0.get_or_insert(d) != d {
            return Err(invalid(
                path,
                format!(
                    "row {} has dimension {d}, the first row {}",
                    rows.len(),
                    dim0.unwrap()
                ),
            ));
        }
        off += 4;
        let end = off + 4 * d;
        if end > bytes.len() {
            return Err(invalid(
                path,
                format!("truncated row {} at byte {off}", rows.len()),
            ));
        }
        rows.push(
            bytes[off..end]
                .chunks_exact(4)
                .map(|c| conv(c.try_into().unwrap()))
                .collect(),
        );
        off = end;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fvecs() {
        let dir = std::env::temp_dir().join(format!("akidb-fvecs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.fvecs");
        let mut b = Vec::new();
        for row in [[1.0f32, 2.0], [3.0, 4.0]] {
            b.extend_from_slice(&2i32.to_le_bytes());
            for x in row {
                b.extend_from_slice(&x.to_le_bytes());
            }
        }
        std::fs::write(&p, &b).unwrap();
        assert_eq!(
            read_fvecs(&p).unwrap(),
            vec![vec![1.0, 2.0], vec![3.0, 4.0]]
        );
        std::fs::write(&p, &b[..b.len() - 2]).unwrap();
        assert!(read_fvecs(&p).is_err());
        assert_eq!(find(&dir, ".fvecs").unwrap(), p);
        assert!(find(&dir, "_query.fvecs").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
