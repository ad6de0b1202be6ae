//! The file-system steps every durable write shares, written once: an atomic file write, a
//! directory sync, a file's checksum (read back, or kept as it is written or read:
//! [`Summing`]), free space, and the wall clock in milliseconds.
//!
//! Every small state file (collection spec, tier record, snapshot manifest, DLQ record,
//! downloaded object) is written through [`write_atomic`]; every rename or new directory entry
//! that must survive a crash is followed by [`sync_dir`].

use std::io::{Read, Write};
use std::path::Path;
use std::time::SystemTime;

/// Write `data` to `path` atomically: a temp file with a unique name in the same directory,
/// fsync, rename over `path`, fsync the directory. A failure removes the temp file and leaves
/// `path` as it was. Blocking.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// What went through a [`Summing`] writer or reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sums {
    pub size_bytes: u64,
    /// Lower-case hex.
    pub sha256: String,
    pub crc32c: u32,
}

/// A writer or reader that keeps the size, SHA-256 and CRC-32C of what goes through it (the
/// checksums a snapshot manifest lists), so that a file is checksummed as it is written or
/// read, not read again.
pub struct Summing<T> {
    inner: T,
    sha: sha2::Sha256,
    crc: u32,
    size: u64,
}

impl<T> Summing<T> {
    pub fn new(inner: T) -> Self {
        use sha2::Digest;
        Summing {
            inner,
            sha: sha2::Sha256::new(),
            crc: 0,
            size: 0,
        }
    }

    fn add(&mut self, b: &[u8]) {
        use sha2::Digest;
        self.sha.update(b);
        self.crc = crc32c::crc32c_append(self.crc, b);
        self.size += b.len() as u64;
    }

    /// What went through so far, and the inner writer or reader.
    pub fn finish(self) -> (Sums, T) {
        use sha2::Digest;
        let sums = Sums {
            size_bytes: self.size,
            sha256: hex::encode(self.sha.finalize()),
            crc32c: self.crc,
        };
        (sums, self.inner)
    }
}

impl<W: Write> Write for Summing<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.add(&b[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Summing<R> {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(b)?;
        self.add(&b[..n]);
        Ok(n)
    }
}

/// Whether `name` is a temp file [`write_atomic`] left behind (a crash before its rename).
pub fn is_temp_file(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// Remove the temp files [`write_atomic`] left in `dir`; returns how many.
pub fn remove_temp_files(dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_file() && is_temp_file(&e.file_name().to_string_lossy()) {
            std::fs::remove_file(e.path())?;
            n += 1;
        }
    }
    Ok(n)
}

/// `dst` as a hard link to `src` (replacing a file of that name), or a copy when the two are
/// on different file systems.
pub fn link_or_copy(src: &Path, dst: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(dst);
    std::fs::hard_link(src, dst).or_else(|_| std::fs::copy(src, dst).map(drop))
}

/// Bytes an unprivileged writer may still write on the file system holding `path`.
pub fn available_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// fsync a directory so that a rename or a new entry in it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// CRC-32C and length of a file, read in 1 MiB blocks. Blocking.
pub fn file_crc(path: &Path) -> std::io::Result<(u32, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut crc, mut len) = (0u32, 0u64);
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((crc, len));
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        len += n as u64;
    }
}

/// `t` as Unix milliseconds (0 before the epoch).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Now, as Unix milliseconds.
pub fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_files_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two, longer").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two, longer");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"], "no temp file left");
        // One left by a crash is recognised and removed.
        std::fs::write(dir.path().join(".state.json.tmp-0123"), b"x").unwrap();
        assert_eq!(remove_temp_files(dir.path()).unwrap(), 1);
        assert!(!is_temp_file("state.json"));
        // A failed write (no such directory) leaves nothing behind either.
        assert!(write_atomic(&dir.path().join("missing/x"), b"x").is_err());
        assert_eq!(file_crc(&p).unwrap(), (crc32c::crc32c(b"two, longer"), 11));
    }
}
