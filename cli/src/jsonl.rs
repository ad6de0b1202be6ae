//! Points from a JSON-lines file (`akidb upsert --file x.jsonl`); the `.fvecs`/`.ivecs`
//! readers are [`akidb_client::dataset`].

use anyhow::Context;
use std::path::Path;

/// One point of a JSON-lines file: `{"id": 1 | "uuid", "vector": [..], "payload": {..},
/// "sparse": {"NAME": {"indices": [..], "values": [..]}}, "vectors": {"NAME": [..]}}`.
#[derive(Debug, serde::Deserialize)]
pub struct JsonPoint {
    pub id: serde_json::Value,
    pub vector: Vec<f32>,
    #[serde(default)]
    pub payload: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub sparse: std::collections::BTreeMap<String, JsonSparse>,
    #[serde(default)]
    pub vectors: std::collections::BTreeMap<String, Vec<f32>>,
}

/// A sparse vector of a JSON-lines point.
#[derive(Debug, serde::Deserialize)]
pub struct JsonSparse {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
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
