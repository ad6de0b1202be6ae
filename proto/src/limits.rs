//! Every limit of the API, and the rules for names, in one place: the front doors
//! ([`crate::validate`]) and storage (`akidb_storage::validate`) check requests against these,
//! and both report a violation with the same typed problem and the same message.

use std::fmt;
use std::ops::RangeInclusive;

/// Longest collection name.
pub const MAX_NAME_LEN: usize = 64;
/// Vector dimensions a collection may have.
pub const DIMENSION: RangeInclusive<u64> = 1..=65_536;
/// Results one search may ask for.
pub const K: RangeInclusive<u64> = 1..=10_000;
/// HNSW `ef` one search may set.
pub const EF: RangeInclusive<u64> = 1..=100_000;
/// A search's oversampling (candidates rescored per result in a quantized collection).
pub const OVERSAMPLING: RangeInclusive<f32> = 1.0..=16.0;
/// HNSW `m` of a collection.
pub const M: RangeInclusive<u64> = 2..=256;
/// HNSW `ef_construction` of a collection.
pub const EF_CONSTRUCTION: RangeInclusive<u64> = 4..=4096;
/// Points one Scroll page may hold (0 asks for [`DEFAULT_SCROLL_LIMIT`]).
pub const SCROLL_LIMIT: RangeInclusive<u64> = 1..=10_000;
/// Points of a Scroll page when the request sets none.
pub const DEFAULT_SCROLL_LIMIT: usize = 100;
/// Shards one collection may have.
pub const SHARDS: RangeInclusive<u64> = 1..=1_024;
/// Copies of each shard of a cluster's collection.
pub const REPLICATION: RangeInclusive<u64> = 1..=5;
/// Deepest nesting of filters, so that a hostile filter cannot exhaust the stack.
pub const MAX_FILTER_DEPTH: usize = 16;
/// Most conditions in one filter, nested ones included, so that a hostile filter cannot make
/// every point's check arbitrarily costly.
pub const MAX_FILTER_CONDITIONS: usize = 1_024;
/// Calls one HTTP/2 connection may have in flight at once (more wait for a slot).
pub const MAX_CONCURRENT_PER_CONNECTION: usize = 1_024;
/// Longest deadline a front door gives a forwarded call, whatever `grpc-timeout` asks.
pub const MAX_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

/// Entries one sparse vector may have.
pub const MAX_SPARSE_ENTRIES: usize = 65_536;
/// Sparse vectors one collection may declare.
pub const MAX_SPARSE_VECTORS: usize = 8;
/// Named dense vectors one collection may declare.
pub const MAX_NAMED_VECTORS: usize = 8;
/// Searches one Query may fuse.
pub const QUERY_BRANCHES: RangeInclusive<u64> = 1..=8;
/// RRF's rank constant when a Query sets none.
pub const DEFAULT_RRF_K: u32 = 60;
/// RRF rank constants a Query may set.
pub const RRF_K: RangeInclusive<u64> = 1..=10_000;

/// Why a sparse vector is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum SparseProblem {
    /// `indices` and `values` differ in length.
    Lengths { indices: usize, values: usize },
    /// More than [`MAX_SPARSE_ENTRIES`] entries.
    TooMany(usize),
    /// Index `got` at position `at` is not above the one before it (`before`).
    NotAscending { at: usize, before: u32, got: u32 },
    /// The weight at position `at` is NaN or infinite.
    NotFinite { at: usize, value: f32 },
}

impl fmt::Display for SparseProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SparseProblem::Lengths { indices, values } => write!(
                f,
                "has {indices} indices but {values} values; give one value per index"
            ),
            SparseProblem::TooMany(n) => {
                write!(f, "has {n} entries, over the limit of {MAX_SPARSE_ENTRIES}")
            }
            SparseProblem::NotAscending { at, before, got } if before == got => write!(
                f,
                "has index {got} twice (positions {} and {at}); each index appears once, in ascending order",
                at - 1
            ),
            SparseProblem::NotAscending { at, before, got } => write!(
                f,
                "index {got} at position {at} follows {before}; indices must be strictly ascending"
            ),
            SparseProblem::NotFinite { at, value } => write!(
                f,
                "the value at position {at} is {value}; weights must be finite"
            ),
        }
    }
}

impl std::error::Error for SparseProblem {}

/// A sparse vector's entries: as many values as indices, at most [`MAX_SPARSE_ENTRIES`],
/// indices strictly ascending, values finite.
pub fn check_sparse(indices: &[u32], values: &[f32]) -> Result<(), SparseProblem> {
    if indices.len() != values.len() {
        return Err(SparseProblem::Lengths {
            indices: indices.len(),
            values: values.len(),
        });
    }
    if indices.len() > MAX_SPARSE_ENTRIES {
        return Err(SparseProblem::TooMany(indices.len()));
    }
    if let Some(at) = (1..indices.len()).find(|&i| indices[i] <= indices[i - 1]) {
        return Err(SparseProblem::NotAscending {
            at,
            before: indices[at - 1],
            got: indices[at],
        });
    }
    if let Some(at) = values.iter().position(|v| !v.is_finite()) {
        return Err(SparseProblem::NotFinite {
            at,
            value: values[at],
        });
    }
    Ok(())
}

/// A sparse or named dense vector's name (declared by a collection, named by points and
/// searches): the rule of collection names.
pub fn check_vector_name(name: &str) -> Result<(), BadVectorName> {
    check_name(name).map_err(|_| BadVectorName(name.escape_default().to_string()))
}

/// A vector name outside the rule of names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadVectorName(pub String);

impl fmt::Display for BadVectorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vector name `{}` must be 1 to {MAX_NAME_LEN} characters of [A-Za-z0-9_-]",
            self.0
        )
    }
}

impl std::error::Error for BadVectorName {}

/// Why a collection name is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameProblem {
    /// Empty, or longer than [`MAX_NAME_LEN`] bytes (the length it has).
    Length(usize),
    /// A character outside `[A-Za-z0-9_-]`.
    Character { name: String, character: char },
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Length(n) => write!(
                f,
                "collection name must be 1 to {MAX_NAME_LEN} characters of [A-Za-z0-9_-], got {n} characters"
            ),
            NameProblem::Character { name, character } => write!(
                f,
                "collection name `{}` has the character {character:?}; use only letters, digits, `_` and `-`",
                name.escape_default()
            ),
        }
    }
}

impl std::error::Error for NameProblem {}

/// A collection name is 1 to [`MAX_NAME_LEN`] characters of `[A-Za-z0-9_-]`: it is a
/// directory name on disk and a part of object keys, so nothing else (no `.`, `/`, `%`, NUL).
pub fn check_name(name: &str) -> Result<(), NameProblem> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(NameProblem::Length(name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(NameProblem::Character {
            name: name.to_string(),
            character: c,
        });
    }
    Ok(())
}

/// A number outside the range the API allows for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfRange {
    /// What the number is, as the message names it (`dimension`, `k`, `HNSW m`, ...).
    pub what: &'static str,
    pub min: u64,
    pub max: u64,
    pub got: u64,
}

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} must be between {} and {}, got {}",
            self.what, self.min, self.max, self.got
        )
    }
}

impl std::error::Error for OutOfRange {}

/// A search's oversampling within [`OVERSAMPLING`] (NaN is not).
pub fn check_oversampling(got: f32) -> Result<(), BadOversampling> {
    if OVERSAMPLING.contains(&got) {
        Ok(())
    } else {
        Err(BadOversampling(got))
    }
}

/// An oversampling outside [`OVERSAMPLING`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BadOversampling(pub f32);

impl std::fmt::Display for BadOversampling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "oversampling must be between {} and {} (graph candidates rescored per result wanted), got {}",
            OVERSAMPLING.start(),
            OVERSAMPLING.end(),
            self.0
        )
    }
}

impl std::error::Error for BadOversampling {}

/// Why BINARY quantization is refused for a metric.
pub const BINARY_NEEDS_ANGLE: &str = "BINARY quantization serves COSINE and DOT (it keeps the sign of each component); use INT8 for L2";

/// `got` within `range`, or the problem naming it `what`.
pub fn check_range(
    what: &'static str,
    range: &RangeInclusive<u64>,
    got: u64,
) -> Result<(), OutOfRange> {
    if range.contains(&got) {
        Ok(())
    } else {
        Err(OutOfRange {
            what,
            min: *range.start(),
            max: *range.end(),
            got,
        })
    }
}

/// The name a storage node gives its copy of one shard of a collection: `<collection>.<shard>`.
/// The `.` never appears in a collection name, so a shard's name never equals one.
pub fn shard_name(collection: &str, shard: u32) -> String {
    format!("{collection}.{shard}")
}

/// A name a storage node holds a collection under: a collection name, or a shard's name
/// ([`shard_name`]); the collection and shard of a shard's name.
pub fn check_local_name(name: &str) -> Result<Option<(&str, u32)>, NameProblem> {
    match name.rsplit_once('.') {
        Some((collection, shard))
            if !shard.is_empty()
                && shard.len() <= 4
                && shard.bytes().all(|b| b.is_ascii_digit()) =>
        {
            check_name(collection)?;
            let shard: u32 = shard.parse().expect("1 to 4 digits");
            if !SHARDS.contains(&(u64::from(shard) + 1)) {
                return Err(NameProblem::Character {
                    name: name.to_string(),
                    character: '.',
                });
            }
            Ok(Some((collection, shard)))
        }
        _ => check_name(name).map(|()| None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("a-b_C9").is_ok());
        assert_eq!(check_name(""), Err(NameProblem::Length(0)));
        assert!(matches!(
            check_name("../x"),
            Err(NameProblem::Character { character: '.', .. })
        ));
        assert_eq!(check_name(&"a".repeat(65)), Err(NameProblem::Length(65)));
        assert!(check_name(&"a".repeat(64)).is_ok());
        assert!(check_name("a\0b").is_err());
        assert!(check_name("%2e%2e%2f").is_err());
    }

    #[test]
    fn shard_names() {
        assert_eq!(shard_name("c", 3), "c.3");
        assert_eq!(check_local_name("c.3"), Ok(Some(("c", 3))));
        assert_eq!(check_local_name("c"), Ok(None));
        assert_eq!(check_local_name("c.1023"), Ok(Some(("c", 1023))));
        for bad in [
            "c.1024", "c.", ".3", "c..3", "../3", "c.3.4", "c.x", "c.12345", "a/b.1",
        ] {
            assert!(check_local_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_name_what_is_wrong() {
        assert!(check_range("k", &K, 10_000).is_ok());
        let e = check_range("k", &K, 0).unwrap_err();
        assert_eq!(e.to_string(), "k must be between 1 and 10000, got 0");
        assert!(check_range("dimension", &DIMENSION, 65_537).is_err());
    }
}
