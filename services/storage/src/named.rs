//! Named dense vectors: a segment's columns of them ([`NamedColumns`]). Each name has its own
//! dimension, metric, datatype and quantization ([`crate::model::VectorSpec`]) and, in a
//! sealed segment, its own HNSW graph over the rows of the slots that carry it, with its codes
//! when quantized (built with the segment's graph, `Collection::build_over`, kept in
//! `Sealed::named_graphs`, saved with snapshots). A search names the vector it reads; the
//! segment search is the unnamed vector's (`State::search`), reading the column of that name
//! (`segment::Column`).

use crate::distance::Row;
use crate::index::Graph;
use crate::model::{Datatype, NamedVectors};
use crate::quantize::Codes;
use crate::vectors::Vectors;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One name's vectors in a segment: `dim` components a row in the vector's datatype, one row
/// per slot that has one (a slot without one costs 4 bytes), rows in the order they were
/// written. A graph over the column indexes rows; [`NamedColumn::slot`] maps them back.
#[derive(Debug, Clone, Default)]
pub struct NamedColumn {
    dim: usize,
    values: Vectors,
    /// Row → the slot it belongs to ([`NONE`]: a row replaced or removed since).
    slots: Vec<u32>,
    /// Slot → its row ([`NONE`]: none); shorter than the segment when its last slots have none.
    rows: Vec<u32>,
}

/// No row, or no slot.
const NONE: u32 = u32::MAX;

impl NamedColumn {
    /// The vector of slot `off`, if it has one.
    #[inline]
    pub fn get(&self, off: usize) -> Option<Row<'_>> {
        match self.rows.get(off) {
            Some(&r) if r != NONE => Some(self.row(r as usize)),
            _ => None,
        }
    }
    /// Row `r`.
    #[inline]
    pub fn row(&self, r: usize) -> Row<'_> {
        self.values.row(self.dim, r)
    }
    /// The slot row `r` belongs to (`None`: the row was replaced or removed).
    #[inline]
    pub fn slot(&self, r: usize) -> Option<usize> {
        self.slots
            .get(r)
            .filter(|s| **s != NONE)
            .map(|&s| s as usize)
    }
    /// Row → slot, for every row ([`NamedColumn::slot`]).
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// How its rows are kept.
    pub fn datatype(&self) -> Datatype {
        self.values.datatype()
    }
    /// Every row as float32, contiguously (borrowed when they are float32 already).
    pub fn to_f32(&self) -> std::borrow::Cow<'_, [f32]> {
        self.values.to_f32()
    }
    /// Every row, contiguously (what a graph over the column reads).
    pub fn values(&self) -> Row<'_> {
        self.values.all()
    }
    /// Rows a slot still has.
    pub fn count(&self) -> usize {
        self.slots.iter().filter(|s| **s != NONE).count()
    }
    /// Remove slot `off`'s vector (its row stays, unused, until the segment is rewritten).
    fn remove(&mut self, off: usize) {
        if let Some(r) = self.rows.get_mut(off)
            && *r != NONE
        {
            self.slots[*r as usize] = NONE;
            *r = NONE;
        }
    }
    /// Give slot `off` the vector `v` (of the column's dimension), rounded to its datatype.
    fn put(&mut self, off: usize, v: Row<'_>) {
        if self.rows.len() <= off {
            self.rows.resize(off + 1, NONE);
        }
        match self.rows[off] {
            NONE => {
                self.rows[off] = self.slots.len() as u32;
                self.slots.push(off as u32);
                self.values.push_row(v);
            }
            r => self.values.set(self.dim, r as usize, &v.to_vec()),
        }
    }
}

impl PartialEq for NamedColumn {
    fn eq(&self, o: &Self) -> bool {
        self.dim == o.dim
            && self.slots == o.slots
            && self.rows == o.rows
            && self.datatype() == o.datatype()
            && self.values.to_f32() == o.values.to_f32()
    }
}

/// A segment's named dense vectors, one column per name. A segment whose points carry no
/// vector of a name holds no column of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamedColumns {
    cols: BTreeMap<String, NamedColumn>,
}

impl NamedColumns {
    /// Whether no slot holds a vector.
    pub fn is_empty(&self) -> bool {
        self.cols.values().all(|c| c.count() == 0)
    }

    /// The vectors of slot `off`, by name (float32, as searches see them).
    pub fn row(&self, off: usize) -> NamedVectors {
        self.cols
            .iter()
            .filter_map(|(n, c)| c.get(off).map(|v| (n.clone(), v.to_vec())))
            .collect()
    }

    /// The vectors of slot `off`, by name, as they are kept.
    pub fn stored(&self, off: usize) -> Vec<(&str, Row<'_>)> {
        self.cols
            .iter()
            .filter_map(|(n, c)| c.get(off).map(|v| (n.as_str(), v)))
            .collect()
    }

    /// Give slot `off` exactly the vectors of `row` (the others of the slot removed), each
    /// kept in `datatype(name)` (a column keeps the datatype of its first row). A vector of
    /// another length than its column's is refused, and the slot left unchanged.
    pub fn set(
        &mut self,
        off: usize,
        row: NamedVectors,
        datatype: &dyn Fn(&str) -> Datatype,
    ) -> Result<(), String> {
        let typed: Vec<(String, Row<'_>, Datatype)> = row
            .iter()
            .map(|(n, v)| (n.clone(), Row::F32(v), datatype(n)))
            .collect();
        self.set_rows(off, typed)
    }

    /// [`NamedColumns::set`] with rows as they are kept, each with its datatype.
    pub fn set_rows(
        &mut self,
        off: usize,
        row: Vec<(String, Row<'_>, Datatype)>,
    ) -> Result<(), String> {
        for (name, v, datatype) in &row {
            if let Some(c) = self.cols.get(name)
                && c.dim != v.len()
            {
                return Err(format!(
                    "named vector `{name}` has {} components where the others have {}",
                    v.len(),
                    c.dim
                ));
            }
            // (A float32 value rounded into a float16 column could become infinite.)
            if let Some(c) = self.cols.get(name)
                && c.datatype() != *datatype
            {
                return Err(format!(
                    "named vector `{name}` is {} where the others are {}",
                    datatype.as_str(),
                    c.datatype().as_str()
                ));
            }
            if v.is_empty() {
                return Err(format!("named vector `{name}` has no components"));
            }
        }
        // A vector the slot keeps a name of is overwritten in place (an overwrite of a point
        // in the appendable segment adds no row); the names it no longer has are removed.
        for (name, c) in self.cols.iter_mut() {
            if !row.iter().any(|(n, _, _)| n == name) {
                c.remove(off);
            }
        }
        for (name, v, datatype) in row {
            self.cols
                .entry(name)
                .or_insert_with(|| NamedColumn {
                    dim: v.len(),
                    values: Vectors::with_capacity(datatype, 0),
                    ..Default::default()
                })
                .put(off, v);
        }
        Ok(())
    }

    /// Give slot `off` the vectors slot `from_off` has in `from` (in their datatypes).
    pub fn copy_row(&mut self, off: usize, from: &NamedColumns, from_off: usize) {
        if !from.cols.is_empty() || !self.cols.is_empty() {
            let row = from
                .cols
                .iter()
                .filter_map(|(n, c)| c.get(from_off).map(|v| (n.clone(), v, c.datatype())))
                .collect();
            // Rows of one collection's segments have its dimensions.
            let _ = self.set_rows(off, row);
        }
    }

    /// The column of `name`, if any slot has had one.
    pub fn column(&self, name: &str) -> Option<&NamedColumn> {
        self.cols.get(name)
    }

    /// The names that have a column.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.cols.keys().map(String::as_str)
    }

    /// Give back the room grown into while rows were added (a segment that will not grow).
    pub fn shrink_to_fit(&mut self) {
        for c in self.cols.values_mut() {
            c.values.shrink_to_fit();
            c.slots.shrink_to_fit();
            c.rows.shrink_to_fit();
        }
    }

    /// Heap bytes it holds.
    pub fn bytes(&self) -> usize {
        self.cols
            .iter()
            .map(|(n, c)| n.len() + c.values.bytes() + (c.slots.capacity() + c.rows.capacity()) * 4)
            .sum()
    }
}

/// The graph of one named vector in a sealed segment, its calibrated `ef` for k = 10, and
/// (a quantized vector's) the codes of the column's rows it walks.
#[derive(Debug, Clone)]
pub struct NamedGraph {
    pub graph: Arc<Graph>,
    pub default_ef: usize,
    pub codes: Option<Arc<Codes>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const F32: fn(&str) -> Datatype = |_| Datatype::Float32;

    #[test]
    fn rows_are_set_replaced_and_refused_when_their_length_differs() {
        let mut c = NamedColumns::default();
        assert!(c.is_empty());
        c.set(2, [("a".to_string(), vec![1.0, 2.0])].into(), &F32)
            .unwrap();
        assert_eq!(c.row(2), [("a".to_string(), vec![1.0, 2.0])].into());
        assert!(c.row(0).is_empty() && c.row(7).is_empty());
        c.set(1, [("b".to_string(), vec![3.0])].into(), &F32)
            .unwrap();
        // A row replaces every vector of its slot.
        c.set(2, [("b".to_string(), vec![4.0])].into(), &F32)
            .unwrap();
        assert_eq!(c.row(2), [("b".to_string(), vec![4.0])].into());
        assert_eq!(c.column("a").unwrap().count(), 0);
        assert_eq!(c.column("b").unwrap().count(), 2);
        // Overwritten in place (no row added); a removed row is no slot's.
        assert_eq!(c.column("b").unwrap().values().len(), 2);
        c.set(1, [("b".to_string(), vec![3.0])].into(), &F32)
            .unwrap();
        assert_eq!(c.column("b").unwrap().values().len(), 2);
        assert_eq!(c.column("a").unwrap().slot(0), None);
        assert_eq!(c.column("b").unwrap().slot(1), Some(2));
        let err = c
            .set(1, [("b".to_string(), vec![1.0, 1.0])].into(), &F32)
            .unwrap_err();
        assert!(
            err.contains("1 components") || err.contains("2 components"),
            "{err}"
        );
        assert_eq!(c.row(1), [("b".to_string(), vec![3.0])].into());
        assert!(c.set(0, [("c".to_string(), vec![])].into(), &F32).is_err());
        let mut d = NamedColumns::default();
        d.copy_row(0, &c, 2);
        assert_eq!(d.row(0), c.row(2));
        c.set(1, NamedVectors::new(), &F32).unwrap();
        c.set(2, NamedVectors::new(), &F32).unwrap();
        assert!(c.is_empty());
    }

    #[test]
    fn float16_columns_round_on_write_and_copy_as_they_are() {
        let half = |n: &str| {
            if n == "h" {
                Datatype::Float16
            } else {
                Datatype::Float32
            }
        };
        let mut c = NamedColumns::default();
        let third = 1.0f32 / 3.0;
        c.set(
            0,
            [
                ("h".to_string(), vec![third, 2.0]),
                ("f".to_string(), vec![third]),
            ]
            .into(),
            &half,
        )
        .unwrap();
        let h = c.column("h").unwrap();
        assert_eq!(h.datatype(), Datatype::Float16);
        assert!(matches!(h.values(), Row::F16(_)));
        let rounded = crate::distance::f16_to_f32(crate::distance::f32_to_f16(third));
        assert_ne!(rounded, third);
        assert_eq!(c.row(0)["h"], vec![rounded, 2.0]);
        assert_eq!(c.row(0)["f"], vec![third]);
        // Two bytes a component (a float32 column of the same rows holds four).
        let mut f = NamedColumns::default();
        f.set(0, [("h".to_string(), vec![third, 2.0])].into(), &F32)
            .unwrap();
        c.shrink_to_fit();
        f.shrink_to_fit();
        assert_eq!(c.column("h").unwrap().values.bytes(), 4);
        assert_eq!(f.column("h").unwrap().values.bytes(), 8);
        // Overwritten in place, rounded again; copied in the datatype it has.
        c.set(0, [("h".to_string(), vec![third, third])].into(), &half)
            .unwrap();
        assert_eq!(c.row(0)["h"], vec![rounded, rounded]);
        let mut d = NamedColumns::default();
        d.copy_row(3, &c, 0);
        assert_eq!(d.column("h").unwrap().datatype(), Datatype::Float16);
        assert_eq!(d.row(3), c.row(0));
        assert_eq!(d.stored(3).len(), 1);
        // A row of another datatype than its column's is refused, the slot unchanged.
        let err = d
            .set(3, [("h".to_string(), vec![1e6, 1.0])].into(), &F32)
            .unwrap_err();
        assert!(
            err.contains("is float32 where the others are float16"),
            "{err}"
        );
        assert_eq!(d.row(3), c.row(0));
    }
}
