//! Readers for the TEXMEX `.fvecs`/`.ivecs` files and JSON-lines points.

use anyhow::{Context, bail};
use std::path::Path;

/// Rows of an `.fvecs` file.
pub fn read_fvecs(path: &Path) -> anyhow::Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    read_xvecs(&bytes, path, f32::from_le_bytes)
}

/// Rows of an `.ivecs` file.
pub fn read_ivecs(path: &Path) -> anyhow::Result<Vec<Vec<i32>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    read_xvecs(&bytes, path, i32::from_le_bytes)
}

fn read_xvecs<T>(bytes: &[u8], path: &Path, conv: fn([u8; 4]) -> T) -> anyhow::Result<Vec<Vec<T>>> {
    let mut rows = Vec::new();
    let mut off = 0;
    let mut dim0 = None;
    while off < bytes.len() {
        if off + 4 > bytes.len() {
            bail!("{}: truncated row header at byte {off}", path.display());
        }
        let d = i32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
        if d <= 0 {
            bail!("{}: bad dimension {d} at byte {off}", path.display());
        }
        let d = d as usize;
        if *dim0.get_or_insert(d) != d {
            bail!(
                "{}: row {} has dimension {d}, the first row {}",
                path.display(),
                rows.len(),
                dim0.unwrap()
            );
        }
        off += 4;
        let end = off + 4 * d;
        if end > bytes.len() {
            bail!(
                "{}: truncated row {} at byte {off}",
                path.display(),
                rows.len()
            );
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

/// One point of a JSON-lines file: `{"id": 1 | "uuid", "vector": [..], "payload": {..}}`.
#[derive(Debug, serde::Deserialize)]
pub struct JsonPoint {
    pub id: serde_json::Value,
    pub vector: Vec<f32>,
    #[serde(default)]
    pub payload: serde_json::Map<String, serde_json::Value>,
}

pub fn read_jsonl(path: &Path) -> anyhow::Result<Vec<JsonPoint>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not a point", path.display(), i + 1))
        })
        .collect()
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
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
