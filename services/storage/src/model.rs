//! Domain types of the storage engine, independent of the wire format.

use std::fmt;

/// A point id: an unsigned integer or a UUID string (kept as given, lower-cased).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum PointKey {
    Num(u64),
    Uuid(String),
}

impl fmt::Display for PointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointKey::Num(n) => write!(f, "{n}"),
            PointKey::Uuid(u) => write!(f, "{u}"),
        }
    }
}

/// A JSON object attached to a point.
pub type Payload = serde_json::Map<String, serde_json::Value>;

/// A change to points' payloads (UpdatePayload).
#[derive(Debug, Clone, PartialEq)]
pub enum PayloadChange {
    /// Merge: these top-level keys replace the same keys; the others stay.
    Set(Payload),
    /// Replace the whole payload.
    Overwrite(Payload),
    /// Remove these keys; dots reach into nested objects (`a.b`).
    DeleteKeys(Vec<String>),
    /// Remove the whole payload.
    Clear,
}

impl PayloadChange {
    /// `payload` as this change leaves it.
    pub fn apply(&self, payload: &mut Payload) {
        match self {
            PayloadChange::Set(p) => {
                for (k, v) in p {
                    payload.insert(k.clone(), v.clone());
                }
            }
            PayloadChange::Overwrite(p) => *payload = p.clone(),
            PayloadChange::DeleteKeys(keys) => {
                for k in keys {
                    remove_path(payload, k);
                }
            }
            PayloadChange::Clear => payload.clear(),
        }
    }
}

/// Remove `path` (`a.b.c`: key `c` of object `b` of object `a`) from `payload`. A top-level
/// key that itself contains dots is removed as it is named.
fn remove_path(payload: &mut Payload, path: &str) {
    if payload.remove(path).is_some() {
        return;
    }
    let mut parts = path.split('.');
    let Some(first) = parts.next() else { return };
    let mut at = payload;
    let mut key = first;
    for next in parts {
        match at.get_mut(key) {
            Some(serde_json::Value::Object(o)) => at = o,
            _ => return,
        }
        key = next;
    }
    at.remove(key);
}

/// One point to write.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PointRecord {
    pub key: PointKey,
    pub vector: Vec<f32>,
    pub payload: Payload,
    /// Its sparse vectors by name (names the collection declared; none empty).
    #[serde(default, skip_serializing_if = "SparseVectors::is_empty")]
    pub sparse: SparseVectors,
    /// Its named dense vectors by name (names the collection declared, each of its
    /// dimension; cosine ones normalized once applied).
    #[serde(default, skip_serializing_if = "NamedVectors::is_empty")]
    pub named: NamedVectors,
}

/// The vectors an UpdateVectors gives one point: each replaces the point's vector of the same
/// kind and name; the others and the payload stay.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorUpdate {
    pub key: PointKey,
    /// The unnamed vector (`None`: kept).
    pub vector: Option<Vec<f32>>,
    pub named: NamedVectors,
    pub sparse: SparseVectors,
}

impl VectorUpdate {
    /// The point `stored` (read with its vectors and payload) with these vectors replacing
    /// its own.
    pub fn apply(&self, stored: StoredPoint) -> PointRecord {
        let mut named = stored.named;
        named.extend(self.named.clone());
        let mut sparse = stored.sparse;
        sparse.extend(self.sparse.clone());
        PointRecord {
            key: stored.key,
            vector: self.vector.clone().or(stored.vector).unwrap_or_default(),
            payload: stored.payload.unwrap_or_default(),
            sparse,
            named,
        }
    }
}

/// Weights at a few indices: `indices` strictly ascending, one finite value each
/// (`akidb_proto::limits::check_sparse`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseVector {
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
    pub fn len(&self) -> usize {
        self.indices.len()
    }
    /// The dot product with `other` (the sum, in ascending index order, of the products at
    /// the indices both have), and how many indices they share.
    pub fn dot(&self, other: &SparseVector) -> (f32, usize) {
        let (a, b) = (&self.indices, &other.indices);
        let (mut i, mut j) = (0, 0);
        let mut sum = 0.0f32;
        let mut shared = 0;
        while i < a.len() && j < b.len() {
            match a[i].cmp(&b[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    sum += self.values[i] * other.values[j];
                    shared += 1;
                    i += 1;
                    j += 1;
                }
            }
        }
        (sum, shared)
    }
    /// Heap bytes it holds.
    pub fn bytes(&self) -> usize {
        self.indices.capacity() * 4 + self.values.capacity() * 4
    }
}

/// A point's sparse vectors by name.
pub type SparseVectors = std::collections::BTreeMap<String, SparseVector>;

/// A point's named dense vectors by name.
pub type NamedVectors = std::collections::BTreeMap<String, Vec<f32>>;

/// A named dense vector's kind: its dimension, metric, graph parameters, how its vectors are
/// kept and what its graphs walk ([`CollectionSpec::vectors`]), as the collection's own
/// fields are for the unnamed vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VectorSpec {
    pub dimension: u32,
    pub metric: Metric,
    pub m: u32,
    pub ef_construction: u32,
    #[serde(default)]
    pub datatype: Datatype,
    #[serde(default)]
    pub quantization: Quantization,
}

/// Distance function of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Metric {
    /// Cosine similarity (vectors normalized on write); higher is closer.
    Cosine,
    /// Euclidean distance; lower is closer.
    L2,
    /// Dot product; higher is closer.
    Dot,
}

impl Metric {
    /// Whether a higher score means closer.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::L2)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::L2 => "l2",
            Metric::Dot => "dot",
        }
    }
}

/// Where a collection lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Tier {
    Hot,
    Warm,
    Cold,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Warm => "warm",
            Tier::Cold => "cold",
        }
    }
}

pub const DEFAULT_M: u32 = 16;
/// 100 builds about twice as fast as 200 with the same recall curve (within 0.01 on
/// siftsmall and jeopardy at m = 16).
pub const DEFAULT_EF_CONSTRUCTION: u32 = 100;

/// How a collection keeps its vectors, in memory and in snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Datatype {
    /// 4 bytes a component, as written.
    #[default]
    Float32,
    /// IEEE half precision, 2 bytes a component: each component rounded to nearest on write.
    Float16,
}

impl Datatype {
    pub fn as_str(self) -> &'static str {
        match self {
            Datatype::Float32 => "float32",
            Datatype::Float16 => "float16",
        }
    }
    /// Bytes a component takes.
    pub fn size(self) -> usize {
        match self {
            Datatype::Float32 => 4,
            Datatype::Float16 => 2,
        }
    }
    fn is_float32(&self) -> bool {
        *self == Datatype::Float32
    }
}

/// What a collection's graphs walk: its stored vectors, or compact codes of them
/// ([`crate::quantize`]) whose best candidates are then rescored with the stored vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    /// The graphs walk the stored vectors.
    #[default]
    None,
    /// One byte a component, each dimension's range learned from the segment's data.
    Int8,
    /// One bit a component (above or below the dimension's mean): for high-dimensional
    /// embeddings compared by angle (cosine or dot product).
    Binary,
}

impl Quantization {
    pub fn as_str(self) -> &'static str {
        match self {
            Quantization::None => "none",
            Quantization::Int8 => "int8",
            Quantization::Binary => "binary",
        }
    }
    pub fn is_none(&self) -> bool {
        *self == Quantization::None
    }
    /// Candidates rescored per result when a search sets no oversampling: int8 codes rank
    /// nearly as the vectors do; one bit a component needs a wider net (on 100k 768-d
    /// embeddings recall@10 was 0.96 with 4, 0.99 with 8, at the same latency:
    /// docs/benchmarks.md, "Quantization").
    pub fn default_oversampling(self) -> f32 {
        match self {
            Quantization::None => 1.0,
            Quantization::Int8 => 2.0,
            Quantization::Binary => 8.0,
        }
    }
}

/// What a collection is created with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CollectionSpec {
    pub name: String,
    pub dimension: u32,
    pub metric: Metric,
    pub m: u32,
    pub ef_construction: u32,
    pub pinned: bool,
    /// Absent from specs written before it existed: float32.
    #[serde(default, skip_serializing_if = "Datatype::is_float32")]
    pub datatype: Datatype,
    /// Absent from specs written before it existed: none.
    #[serde(default, skip_serializing_if = "Quantization::is_none")]
    pub quantization: Quantization,
    /// Sealed segments keep their vectors in mapped files, not on the heap
    /// ([`crate::vecfile`]). Absent from specs written before it existed: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_disk: bool,
    /// Payload indexes declared at creation (dotted key → kind), kept up to date with every
    /// write and used by the filter planner ([`crate::payload_index`]).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub payload_indexes: std::collections::BTreeMap<String, IndexKind>,
    /// Sparse vectors points may carry, by name, each with an inverted index per sealed
    /// segment ([`crate::sparse`]). Absent from specs written before it existed: none.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub sparse_vectors: std::collections::BTreeSet<String>,
    /// Named dense vectors points may carry besides the unnamed one, by name, each with its
    /// own HNSW graph per sealed segment ([`crate::named`]). Absent from specs written before
    /// it existed: none.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub vectors: std::collections::BTreeMap<String, VectorSpec>,
}

/// What a declared payload index holds of its field's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexKind {
    Keyword,
    Integer,
    Float,
    Bool,
    Datetime,
    Geo,
    Text,
}

#[cfg(test)]
impl CollectionSpec {
    /// A float32 spec with small graph parameters (m 8), for tests.
    pub fn for_test(name: &str, dimension: u32, metric: Metric, ef_construction: u32) -> Self {
        CollectionSpec {
            name: name.into(),
            dimension,
            metric,
            m: 8,
            ef_construction,
            pinned: false,
            datatype: Datatype::Float32,
            quantization: Quantization::None,
            on_disk: false,
            payload_indexes: Default::default(),
            sparse_vectors: Default::default(),
            vectors: Default::default(),
        }
    }
}

/// A collection's state as reported to clients.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionStats {
    pub spec: CollectionSpec,
    pub point_count: u64,
    pub indexed_point_count: u64,
    pub segment_count: u64,
    pub version: u64,
    pub tier: Tier,
}

/// A point read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    pub key: PointKey,
    pub payload: Option<Payload>,
    pub vector: Option<Vec<f32>>,
    /// With the vector: its sparse vectors (empty otherwise).
    pub sparse: SparseVectors,
    /// With the vector: its named dense vectors (empty otherwise).
    pub named: NamedVectors,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> Payload {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn payload_changes_do_what_their_names_say() {
        let base = obj(json!({"a": 1, "b": {"c": 2, "d": 3}, "e.f": 4, "g": [1]}));
        let run = |c: PayloadChange| {
            let mut p = base.clone();
            c.apply(&mut p);
            serde_json::Value::Object(p)
        };
        // Set merges top-level keys: a nested object given replaces the whole value.
        assert_eq!(
            run(PayloadChange::Set(obj(
                json!({"a": "x", "b": {"c": 9}, "h": null})
            ))),
            json!({"a": "x", "b": {"c": 9}, "e.f": 4, "g": [1], "h": null})
        );
        assert_eq!(
            run(PayloadChange::Overwrite(obj(json!({"z": 1})))),
            json!({"z": 1})
        );
        // Dots reach into objects; a top-level key spelled with a dot is found as named;
        // a path through a non-object or to nothing changes nothing.
        assert_eq!(
            run(PayloadChange::DeleteKeys(vec![
                "b.c".into(),
                "e.f".into(),
                "g.0".into(),
                "nope.x".into(),
                "a.b".into(),
            ])),
            json!({"a": 1, "b": {"d": 3}, "g": [1]})
        );
        assert_eq!(run(PayloadChange::Clear), json!({}));
    }
}
