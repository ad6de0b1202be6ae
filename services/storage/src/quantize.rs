//! Quantized vectors: compact codes of a sealed segment's vectors that its graph search walks
//! instead of the vectors themselves. The best `k × oversampling` candidates of the walk are
//! then rescored with the stored vectors (`segment.rs`), so results carry exact scores.
//!
//! - `int8`: one byte a component. Each dimension's range is learned from the segment (the
//!   0.1 % and 99.9 % quantiles of a sample, so a few outliers do not stretch it); values
//!   outside it are clamped. A query is prepared once per segment: its components times each
//!   dimension's step are the weights of one [`dot_u8`] per candidate; for L2 the squared norm
//!   of each decoded row is kept beside the codes.
//! - `binary`: one bit a component, set when the component is above the dimension's mean
//!   (learned from the segment); candidates are ranked by the Hamming distance of their bits to
//!   the query's ([`hamming`]). For metrics of angle only (cosine, dot product).
//!
//! Codes are computed right after a segment's graph is built (off the collection's lock),
//! kept in snapshots beside the graph (`seg-<id>.codes`, [`Codes::encode`]) and loaded with it.

use crate::distance::{Row, dot_u8, hamming};
use crate::model::{Metric, Quantization};
use std::io::Write;

const CODES_MAGIC: &[u8; 8] = b"AKCODE01";
/// Rows a quantizer learns its ranges from (spread evenly over the segment).
const TRAINING_ROWS: usize = 16_384;
/// Share of a dimension's sampled values left outside its int8 range at each end.
const INT8_CLIP: f64 = 0.001;

/// The codes of every slot of one segment (slot `o`'s row at `o * row_bytes`).
#[derive(Debug, Clone, PartialEq)]
pub struct Codes {
    kind: Quantization,
    metric: Metric,
    dim: usize,
    row_bytes: usize,
    /// int8: each dimension's lowest value; binary: each dimension's mean.
    base: Vec<f32>,
    /// int8: the value of one code step in each dimension; binary: empty.
    step: Vec<f32>,
    /// int8 with L2: the squared norm of each decoded row; otherwise empty.
    norms: Vec<f32>,
    codes: Vec<u8>,
}

/// A query prepared for one segment's codes.
pub struct Prepared<'a> {
    codes: &'a Codes,
    /// int8: the query times each dimension's step.
    weights: Vec<f32>,
    /// binary: the query's bits.
    bits: Vec<u8>,
}

fn row_bytes(kind: Quantization, dim: usize) -> usize {
    match kind {
        Quantization::None => 0,
        Quantization::Int8 => dim,
        Quantization::Binary => dim.div_ceil(64) * 8,
    }
}

impl Codes {
    /// Learn the quantizer `kind` from `n` rows of `vectors` (those `sample(o)` accepts) and
    /// encode every row. `None` for [`Quantization::None`].
    pub fn build(
        kind: Quantization,
        metric: Metric,
        dim: usize,
        vectors: Row<'_>,
        n: usize,
        sample: &dyn Fn(usize) -> bool,
    ) -> Option<Codes> {
        if kind == Quantization::None {
            return None;
        }
        let row = |o: usize| vectors.row(dim, o);
        // The training rows, read in place (a copy of 16k rows of 1536-d would be 100 MB).
        let eligible: Vec<usize> = (0..n).filter(|&o| sample(o)).collect();
        let stride = (eligible.len() / TRAINING_ROWS).max(1);
        let training: Vec<usize> = eligible
            .iter()
            .step_by(stride)
            .take(TRAINING_ROWS)
            .copied()
            .collect();
        drop(eligible);
        let value = |o: usize, d: usize| match row(o) {
            Row::F32(r) => r[d],
            Row::F16(r) => crate::distance::f16_to_f32(r[d]),
        };
        let mut c = Codes {
            kind,
            metric,
            dim,
            row_bytes: row_bytes(kind, dim),
            base: vec![0.0; dim],
            step: Vec::new(),
            norms: Vec::new(),
            codes: Vec::with_capacity(n * row_bytes(kind, dim)),
        };
        match kind {
            Quantization::None => unreachable!("returned above"),
            Quantization::Int8 => {
                c.step = vec![1.0; dim];
                let mut column = Vec::with_capacity(training.len());
                for d in 0..dim {
                    column.clear();
                    column.extend(training.iter().map(|&o| value(o, d)));
                    if column.is_empty() {
                        continue;
                    }
                    let at = |q: f64, col: &mut Vec<f32>| {
                        let i = ((col.len() - 1) as f64 * q).round() as usize;
                        *col.select_nth_unstable_by(i, |a, b| a.total_cmp(b)).1
                    };
                    let lo = at(INT8_CLIP, &mut column);
                    let hi = at(1.0 - INT8_CLIP, &mut column);
                    c.base[d] = lo;
                    c.step[d] = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
                }
                let mut x = vec![0f32; dim];
                for o in 0..n {
                    row_into(row(o), &mut x);
                    let start = c.codes.len();
                    c.codes.extend(
                        x.iter()
                            .zip(c.base.iter().zip(&c.step))
                            .map(|(&v, (&lo, &s))| ((v - lo) / s).round().clamp(0.0, 255.0) as u8),
                    );
                    if metric == Metric::L2 {
                        let norm = c.codes[start..]
                            .iter()
                            .zip(c.base.iter().zip(&c.step))
                            .map(|(&q, (&lo, &s))| {
                                let v = lo + s * q as f32;
                                v * v
                            })
                            .sum();
                        c.norms.push(norm);
                    }
                }
            }
            Quantization::Binary => {
                let mut x = vec![0f32; dim];
                if !training.is_empty() {
                    let mut sum = vec![0f64; dim];
                    for &o in &training {
                        row_into(row(o), &mut x);
                        sum.iter_mut().zip(&x).for_each(|(m, &v)| *m += v as f64);
                    }
                    let t = training.len() as f64;
                    c.base
                        .iter_mut()
                        .zip(&sum)
                        .for_each(|(m, &s)| *m = (s / t) as f32);
                }
                let mut bits = vec![0u8; c.row_bytes];
                for o in 0..n {
                    row_into(row(o), &mut x);
                    c.pack(&x, &mut bits);
                    c.codes.extend_from_slice(&bits);
                }
            }
        }
        Some(c)
    }

    /// Bits of `x` against the dimension means, into `out` (`row_bytes` long).
    fn pack(&self, x: &[f32], out: &mut [u8]) {
        out.fill(0);
        for (d, (&v, &m)) in x.iter().zip(&self.base).enumerate() {
            if v > m {
                out[d / 8] |= 1 << (d % 8);
            }
        }
    }

    pub fn kind(&self) -> Quantization {
        self.kind
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.codes.len().checked_div(self.row_bytes).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    pub fn memory_bytes(&self) -> u64 {
        ((self.base.capacity() + self.step.capacity() + self.norms.capacity()) * 4
            + self.codes.capacity()) as u64
    }

    /// The value row `o` decodes to (int8), or ±1 by its bits (binary).
    #[cfg(test)]
    fn decode_row(&self, o: usize) -> Vec<f32> {
        let r = &self.codes[o * self.row_bytes..(o + 1) * self.row_bytes];
        match self.kind {
            Quantization::Int8 => r
                .iter()
                .zip(self.base.iter().zip(&self.step))
                .map(|(&q, (&lo, &s))| lo + s * q as f32)
                .collect(),
            _ => (0..self.dim)
                .map(|d| {
                    if r[d / 8] >> (d % 8) & 1 == 1 {
                        1.0
                    } else {
                        -1.0
                    }
                })
                .collect(),
        }
    }

    /// `q` (normalized for cosine) prepared for [`Prepared::dist`].
    pub fn prepare(&self, q: &[f32]) -> Prepared<'_> {
        debug_assert_eq!(q.len(), self.dim);
        match self.kind {
            Quantization::Binary => {
                let mut bits = vec![0u8; self.row_bytes];
                self.pack(q, &mut bits);
                Prepared {
                    codes: self,
                    weights: Vec::new(),
                    bits,
                }
            }
            _ => Prepared {
                codes: self,
                weights: q.iter().zip(&self.step).map(|(&x, &s)| x * s).collect(),
                bits: Vec::new(),
            },
        }
    }

    /// The codes in their snapshot file format.
    pub fn encode<W: Write>(&self, w: &mut W) -> std::io::Result<()> {
        let mut head = Vec::with_capacity(32);
        head.extend_from_slice(CODES_MAGIC);
        head.push(match self.kind {
            Quantization::Int8 => 1,
            _ => 2,
        });
        head.extend_from_slice(&(self.dim as u32).to_le_bytes());
        head.extend_from_slice(&(self.len() as u64).to_le_bytes());
        w.write_all(&head)?;
        for v in [&self.base, &self.step, &self.norms] {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            w.write_all(&(v.len() as u64).to_le_bytes())?;
            w.write_all(&bytes)?;
        }
        w.write_all(&self.codes)
    }

    /// Codes read back from [`Codes::encode`]'s format, for a collection of `metric` and
    /// `dim`; every length is checked against the file.
    pub fn decode(bytes: &[u8], metric: Metric, dim: usize) -> Result<Codes, String> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], String> {
            let end = at
                .checked_add(n)
                .filter(|&e| e <= bytes.len())
                .ok_or_else(|| format!("file ends early at byte {at}"))?;
            let s = &bytes[at..end];
            at = end;
            Ok(s)
        };
        if take(8)? != CODES_MAGIC {
            return Err("not a codes file".into());
        }
        let kind = match take(1)?[0] {
            1 => Quantization::Int8,
            2 => Quantization::Binary,
            k => return Err(format!("unknown quantization {k}")),
        };
        let file_dim = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        if file_dim != dim {
            return Err(format!(
                "codes of dimension {file_dim}, collection has {dim}"
            ));
        }
        let n = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
        let mut floats = |what: &str| -> Result<Vec<f32>, String> {
            let len = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
            let bytes = usize::try_from(len)
                .ok()
                .and_then(|l| l.checked_mul(4))
                .ok_or_else(|| format!("{what}: length {len} exceeds the file"))?;
            Ok(take(bytes)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect())
        };
        let base = floats("base")?;
        let step = floats("step")?;
        let norms = floats("norms")?;
        let rb = row_bytes(kind, dim);
        let n = usize::try_from(n).map_err(|_| "row count too large".to_string())?;
        let codes = take(
            n.checked_mul(rb)
                .ok_or_else(|| "row count too large".to_string())?,
        )?
        .to_vec();
        if at != bytes.len() {
            return Err(format!("{} trailing bytes", bytes.len() - at));
        }
        let want_step = if kind == Quantization::Int8 { dim } else { 0 };
        let want_norms = if kind == Quantization::Int8 && metric == Metric::L2 {
            n
        } else {
            0
        };
        if base.len() != dim || step.len() != want_step || norms.len() != want_norms {
            return Err("quantizer parameters do not match the codes".into());
        }
        if base
            .iter()
            .chain(&step)
            .chain(&norms)
            .any(|x| !x.is_finite())
        {
            return Err("quantizer parameters are not finite".into());
        }
        Ok(Codes {
            kind,
            metric,
            dim,
            row_bytes: rb,
            base,
            step,
            norms,
            codes,
        })
    }
}

/// `r` as float32 into `out`.
fn row_into(r: Row<'_>, out: &mut [f32]) {
    match r {
        Row::F32(v) => out.copy_from_slice(v),
        Row::F16(v) => out
            .iter_mut()
            .zip(v)
            .for_each(|(o, &h)| *o = crate::distance::f16_to_f32(h)),
    }
}

impl Prepared<'_> {
    /// The query's distance to row `id` as the walk ranks it (smaller is closer; comparable
    /// only within one prepared query). `id` must be below [`Codes::len`].
    #[inline]
    pub fn dist(&self, id: u32) -> f32 {
        let c = self.codes;
        let rb = c.row_bytes;
        let r = &c.codes[id as usize * rb..(id as usize + 1) * rb];
        match c.kind {
            Quantization::Binary => hamming(&self.bits, r) as f32,
            _ => {
                let d = dot_u8(&self.weights, r);
                if c.metric == Metric::L2 {
                    c.norms[id as usize] - 2.0 * d
                } else {
                    -d
                }
            }
        }
    }

    /// Where row `id` starts (for prefetching).
    #[inline]
    pub fn addr(&self, id: u32) -> *const u8 {
        self.codes.codes[id as usize * self.codes.row_bytes..].as_ptr()
    }

    pub fn row_bytes(&self) -> usize {
        self.codes.row_bytes
    }

    pub fn kind(&self) -> Quantization {
        self.codes.kind
    }

    /// Rows the codes hold.
    pub fn rows(&self) -> usize {
        self.codes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::{dot_u8_scalar, hamming_scalar, normalize, quantized_kernels};
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn random(n: usize, dim: usize, rng: &mut StdRng) -> Vec<f32> {
        (0..n * dim)
            .map(|_| rng.random_range(-2.0f32..3.0))
            .collect()
    }

    #[test]
    fn simd_kernels_equal_the_scalar_ones_on_every_isa() {
        let mut rng = StdRng::seed_from_u64(7);
        let kernels = quantized_kernels();
        eprintln!(
            "kernels on this CPU: {:?}",
            kernels.iter().map(|k| k.0).collect::<Vec<_>>()
        );
        for n in [
            1usize, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 128, 384, 768, 1536,
        ] {
            for _ in 0..20 {
                let w: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                let c: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                let d: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                let want = dot_u8_scalar(&w, &c);
                let want_h = hamming_scalar(&c, &d);
                let exact: f64 = w.iter().zip(&c).map(|(&a, &b)| a as f64 * b as f64).sum();
                let exact_h: u32 = c.iter().zip(&d).map(|(a, b)| (a ^ b).count_ones()).sum();
                assert_eq!(want_h, exact_h, "scalar hamming, {n} bytes");
                assert!((want as f64 - exact).abs() <= 1e-3 * exact.abs().max(1.0) + 0.05);
                for (isa, dot, ham) in &kernels {
                    let got = dot(&w, &c);
                    assert!(
                        (got - want).abs() <= 1e-4 * want.abs().max(1.0) + 0.05,
                        "{isa} dot_u8 over {n}: {got} vs {want}"
                    );
                    assert_eq!(ham(&c, &d), want_h, "{isa} hamming over {n} bytes");
                }
            }
        }
    }

    #[test]
    fn int8_round_trip_error_is_within_half_a_step() {
        let mut rng = StdRng::seed_from_u64(1);
        let (n, dim) = (2_000, 48);
        let v = random(n, dim, &mut rng);
        let c = Codes::build(
            Quantization::Int8,
            Metric::L2,
            dim,
            Row::F32(&v),
            n,
            &|_| true,
        )
        .unwrap();
        assert_eq!(c.len(), n);
        let (mut inside, mut total) = (0, 0);
        for o in 0..n {
            let back = c.decode_row(o);
            for d in 0..dim {
                let x = v[o * dim + d];
                let (lo, s) = (c.base[d], c.step[d]);
                let hi = lo + 255.0 * s;
                total += 1;
                if x >= lo && x <= hi {
                    inside += 1;
                    assert!(
                        (back[d] - x).abs() <= s * 0.5 + 1e-5,
                        "row {o} dim {d}: {x} came back as {}",
                        back[d]
                    );
                } else {
                    // Clamped: it decodes to the nearer end of the range.
                    let end = if x < lo { lo } else { hi };
                    assert!((back[d] - end).abs() <= 1e-4 * end.abs().max(1.0));
                }
            }
            let norm: f32 = back.iter().map(|x| x * x).sum();
            assert!((c.norms[o] - norm).abs() <= 1e-3 * norm.max(1.0));
        }
        // 0.1 % clipped at each end of each dimension.
        assert!(inside as f64 >= total as f64 * 0.995, "{inside} of {total}");
    }

    #[test]
    fn prepared_distances_rank_as_the_decoded_rows_do() {
        let mut rng = StdRng::seed_from_u64(2);
        let (n, dim) = (500, 40);
        for metric in [Metric::L2, Metric::Dot, Metric::Cosine] {
            let mut v = random(n, dim, &mut rng);
            if metric == Metric::Cosine {
                v.chunks_mut(dim).for_each(normalize);
            }
            let c =
                Codes::build(Quantization::Int8, metric, dim, Row::F32(&v), n, &|_| true).unwrap();
            let mut q = random(1, dim, &mut rng);
            if metric == Metric::Cosine {
                normalize(&mut q);
            }
            let p = c.prepare(&q);
            // The walk's distance differs from the exact one to the decoded row only by a
            // constant of the query.
            let exact = |o: usize| {
                let r = c.decode_row(o);
                match metric {
                    Metric::L2 => r
                        .iter()
                        .zip(&q)
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum::<f32>(),
                    _ => -r.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>(),
                }
            };
            let shift = p.dist(0) - exact(0);
            for o in 0..n {
                let (got, want) = (p.dist(o as u32) - shift, exact(o));
                assert!(
                    (got - want).abs() <= 1e-3 * want.abs().max(1.0),
                    "{metric:?} row {o}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn binary_codes_are_the_signs_around_the_mean() {
        let mut rng = StdRng::seed_from_u64(3);
        let (n, dim) = (300, 70);
        let v = random(n, dim, &mut rng);
        let c = Codes::build(
            Quantization::Binary,
            Metric::Dot,
            dim,
            Row::F32(&v),
            n,
            &|_| true,
        )
        .unwrap();
        assert_eq!(c.row_bytes, 16);
        for d in 0..dim {
            let mean = (0..n).map(|o| v[o * dim + d]).sum::<f32>() / n as f32;
            assert!((c.base[d] - mean).abs() < 1e-4);
        }
        let q = random(1, dim, &mut rng);
        let p = c.prepare(&q);
        for o in 0..n {
            let want = (0..dim)
                .filter(|&d| (v[o * dim + d] > c.base[d]) != (q[d] > c.base[d]))
                .count();
            assert_eq!(p.dist(o as u32), want as f32, "row {o}");
        }
    }

    #[test]
    fn encode_decode_round_trip_and_damage() {
        let mut rng = StdRng::seed_from_u64(4);
        let (n, dim) = (100, 24);
        let v = random(n, dim, &mut rng);
        for (kind, metric) in [
            (Quantization::Int8, Metric::L2),
            (Quantization::Int8, Metric::Dot),
            (Quantization::Binary, Metric::Cosine),
        ] {
            let c = Codes::build(kind, metric, dim, Row::F32(&v), n, &|o| o % 3 != 0).unwrap();
            let mut bytes = Vec::new();
            c.encode(&mut bytes).unwrap();
            assert_eq!(Codes::decode(&bytes, metric, dim).unwrap(), c);
            assert!(Codes::decode(&bytes, metric, dim + 1).is_err());
            for cut in [0, 5, 20, bytes.len() - 1] {
                assert!(
                    Codes::decode(&bytes[..cut], metric, dim).is_err(),
                    "cut {cut}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Codes::decode(&longer, metric, dim).is_err());
            // A huge row count is refused without allocating it.
            let mut huge = bytes.clone();
            huge[13..21].copy_from_slice(&u64::MAX.to_le_bytes());
            assert!(Codes::decode(&huge, metric, dim).is_err());
        }
    }
}
