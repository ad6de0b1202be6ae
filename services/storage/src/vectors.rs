//! Dense vectors held contiguously in a datatype: a segment's unnamed vectors (slot order)
//! and each column of its named vectors ([`crate::named`]). On the heap as float32 or
//! float16, or (sealed segments of on-disk collections) in a mapped vector file.

use crate::distance::{Row, f32_to_f16};
use crate::model::Datatype;
use crate::vecfile::VecFile;
use std::sync::Arc;

/// Vectors contiguous in row order, in a datatype: on the heap, or (a sealed segment's
/// unnamed vectors in an on-disk collection) in a mapped vector file.
#[derive(Debug, Clone)]
pub enum Vectors {
    F32(Vec<f32>),
    /// IEEE half-precision bit patterns.
    F16(Vec<u16>),
    /// Read-only: a sealed segment's vectors in a mapped file ([`crate::vecfile`]).
    Mapped(Arc<VecFile>),
}

impl Default for Vectors {
    fn default() -> Self {
        Vectors::F32(Vec::new())
    }
}

impl Vectors {
    /// Empty, with room for `values` components.
    pub fn with_capacity(datatype: Datatype, values: usize) -> Self {
        match datatype {
            Datatype::Float32 => Vectors::F32(Vec::with_capacity(values)),
            Datatype::Float16 => Vectors::F16(Vec::with_capacity(values)),
        }
    }
    pub fn datatype(&self) -> Datatype {
        match self {
            Vectors::F32(_) => Datatype::Float32,
            Vectors::F16(_) => Datatype::Float16,
            Vectors::Mapped(f) => f.datatype(),
        }
    }
    /// Components held (points × dimension).
    pub fn values(&self) -> usize {
        match self {
            Vectors::F32(v) => v.len(),
            Vectors::F16(v) => v.len(),
            Vectors::Mapped(f) => f.points() * f.dim(),
        }
    }
    /// Heap bytes (a mapped file's are the page cache's, not counted).
    pub fn bytes(&self) -> usize {
        match self {
            Vectors::F32(v) => v.capacity() * 4,
            Vectors::F16(v) => v.capacity() * 2,
            Vectors::Mapped(_) => 0,
        }
    }
    /// Give back the room grown into while vectors were pushed.
    pub fn shrink_to_fit(&mut self) {
        match self {
            Vectors::F32(v) => v.shrink_to_fit(),
            Vectors::F16(v) => v.shrink_to_fit(),
            Vectors::Mapped(_) => {}
        }
    }
    /// The mapped file holding them, if they are not on the heap.
    pub fn mapped(&self) -> Option<&Arc<VecFile>> {
        match self {
            Vectors::Mapped(f) => Some(f),
            _ => None,
        }
    }
    /// Every vector, as one row of `values()` components (what a graph search reads).
    #[inline]
    pub fn all(&self) -> Row<'_> {
        match self {
            Vectors::F32(v) => Row::F32(v),
            Vectors::F16(v) => Row::F16(v),
            Vectors::Mapped(f) => f.all(),
        }
    }
    #[inline]
    pub fn row(&self, dim: usize, off: usize) -> Row<'_> {
        self.all().row(dim, off)
    }
    /// `rows`, `values` components in all, on the heap in `datatype` (allocated once, to the
    /// size: a sealed segment does not grow, and growing by doubling could leave it nearly
    /// twice the size it needs).
    pub fn collect<'a>(
        datatype: Datatype,
        values: usize,
        rows: impl Iterator<Item = Row<'a>>,
    ) -> Self {
        let mut v = Vectors::with_capacity(datatype, values);
        rows.for_each(|r| v.push_row(r));
        v
    }
    /// Append a float32 vector, rounded to this datatype.
    pub fn push(&mut self, x: &[f32]) {
        match self {
            Vectors::F32(v) => v.extend_from_slice(x),
            Vectors::F16(v) => v.extend(x.iter().map(|&c| f32_to_f16(c))),
            Vectors::Mapped(_) => unreachable!("mapped vectors are sealed"),
        }
    }
    /// Overwrite vector `off` with a float32 vector, rounded to this datatype.
    pub fn set(&mut self, dim: usize, off: usize, x: &[f32]) {
        let r = off * dim..(off + 1) * dim;
        match self {
            Vectors::F32(v) => v[r].copy_from_slice(x),
            Vectors::F16(v) => v[r]
                .iter_mut()
                .zip(x)
                .for_each(|(d, &c)| *d = f32_to_f16(c)),
            Vectors::Mapped(_) => unreachable!("mapped vectors are sealed"),
        }
    }
    /// Append a stored vector (copied as is when the datatypes agree).
    pub fn push_row(&mut self, row: Row<'_>) {
        match (self, row) {
            (Vectors::F32(v), Row::F32(r)) => v.extend_from_slice(r),
            (Vectors::F16(v), Row::F16(r)) => v.extend_from_slice(r),
            (me, row) => me.push(&row.to_vec()),
        }
    }
    /// All components as float32 (borrowed when they are float32 already).
    pub fn to_f32(&self) -> std::borrow::Cow<'_, [f32]> {
        match self.all() {
            Row::F32(v) => std::borrow::Cow::Borrowed(v),
            Row::F16(v) => {
                std::borrow::Cow::Owned(v.iter().map(|&h| crate::distance::f16_to_f32(h)).collect())
            }
        }
    }
}
