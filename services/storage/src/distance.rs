//! Vector distances. The hot kernels (dot product, squared L2) use AVX-512 or AVX2+FMA when
//! the CPU has them (detected once at run time) and a chunked scalar loop otherwise.
//!
//! Float16 collections keep their vectors as IEEE half-precision bit patterns (`u16`); the
//! `_f16` kernels compare a float32 query with such a vector, widening each component to
//! float32 (AVX-512F `vcvtph2ps`, or F16C with AVX2) and computing in float32.

use crate::model::{CollectionSpec, Metric, NamedVectors};
use std::sync::LazyLock;

type Kernel = fn(&[f32], &[f32]) -> f32;
type Kernel16 = fn(&[f32], &[u16]) -> f32;
type KernelU8 = fn(&[f32], &[u8]) -> f32;
type KernelBits = fn(&[u8], &[u8]) -> u32;

struct Kernels {
    dot: Kernel,
    l2: Kernel,
    dot16: Kernel16,
    l2_16: Kernel16,
    dot_u8: KernelU8,
    hamming: KernelBits,
    name: &'static str,
}

static KERNELS: LazyLock<Kernels> = LazyLock::new(|| {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Kernels {
                dot: x86::dot_avx512,
                l2: x86::l2_avx512,
                dot16: x86::dot16_avx512,
                l2_16: x86::l2_16_avx512,
                dot_u8: x86::dot_u8_avx512,
                hamming: x86::hamming_avx2,
                name: "avx512",
            };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            let f16c = std::arch::is_x86_feature_detected!("f16c");
            return Kernels {
                dot: x86::dot_avx2,
                l2: x86::l2_avx2,
                dot16: if f16c { x86::dot16_avx2 } else { dot16_scalar },
                l2_16: if f16c { x86::l2_16_avx2 } else { l2_16_scalar },
                dot_u8: x86::dot_u8_avx2,
                hamming: x86::hamming_avx2,
                name: if f16c { "avx2+fma+f16c" } else { "avx2+fma" },
            };
        }
    }
    Kernels {
        dot: dot_scalar,
        l2: l2_scalar,
        dot16: dot16_scalar,
        l2_16: l2_16_scalar,
        dot_u8: dot_u8_scalar,
        hamming: hamming_scalar,
        name: "scalar",
    }
});

/// A search candidate in a max-heap of the current top k: ordered by its rank key (smaller is
/// closer, see [`graph_distance`]), then by `K` so that ties resolve the same way every time;
/// the worst candidate is on top.
#[derive(Debug, PartialEq)]
pub struct Ranked<K>(pub f32, pub K);

impl<K: Ord> Eq for Ranked<K> {}

impl<K: Ord> PartialOrd for Ranked<K> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl<K: Ord> Ord for Ranked<K> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

/// Which kernel set this CPU uses (`avx512`, `avx2+fma` or `scalar`), for logs.
pub fn kernel_name() -> &'static str {
    KERNELS.name
}

#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    (KERNELS.dot)(a, b)
}

#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    (KERNELS.l2)(a, b)
}

/// Dot product of a float32 query and a float16 vector.
#[inline]
pub fn dot_f16(a: &[f32], b: &[u16]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    (KERNELS.dot16)(a, b)
}

/// Squared L2 distance of a float32 query and a float16 vector.
#[inline]
pub fn l2_squared_f16(a: &[f32], b: &[u16]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    (KERNELS.l2_16)(a, b)
}

/// Dot product of float32 weights and unsigned 8-bit codes (the int8 quantizer's kernel:
/// [`crate::quantize`] folds each dimension's step into the weights).
#[inline]
pub fn dot_u8(w: &[f32], c: &[u8]) -> f32 {
    debug_assert_eq!(w.len(), c.len());
    (KERNELS.dot_u8)(w, c)
}

/// Bits that differ between two bit strings of the same length (the binary quantizer's
/// kernel).
#[inline]
pub fn hamming(a: &[u8], b: &[u8]) -> u32 {
    debug_assert_eq!(a.len(), b.len());
    (KERNELS.hamming)(a, b)
}

/// The float32 value of an IEEE 754 half-precision bit pattern (exact).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match exp {
        0 if man == 0 => sign,
        0 => {
            // Subnormal: shift the mantissa up to an implicit leading one.
            let (mut e, mut m) = (113u32, man);
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
        31 => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// The nearest IEEE 754 half-precision value of `x` (ties to even), as its bit pattern.
/// Beyond ±65504 (after rounding) it is ±infinity: callers check the range first.
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 255 {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 31 {
        return sign | 0x7c00;
    }
    let round = |v: u32, rem: u32, half: u32| {
        if rem > half || (rem == half && v & 1 == 1) {
            v + 1
        } else {
            v
        }
    };
    if e <= 0 {
        if e < -11 {
            return sign;
        }
        // Subnormal result: the value is r * 2^-24.
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let r = round(m >> shift, m & ((1 << shift) - 1), 1 << (shift - 1));
        return sign | r as u16;
    }
    // A carry out of the mantissa moves to the next exponent (or to infinity): still right.
    let r = round(((e as u32) << 10) | (man >> 13), man & 0x1fff, 0x1000);
    sign | r as u16
}

/// Largest finite float16 value.
pub const F16_MAX: f32 = 65504.0;

/// Whether `x` rounds to a finite float16 value.
pub fn fits_f16(x: f32) -> bool {
    f32_to_f16(x) & 0x7c00 != 0x7c00
}

pub fn dot16_scalar(a: &[f32], b: &[u16]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, ra) = a.as_chunks::<16>();
    let (cb, rb) = b.as_chunks::<16>();
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * f16_to_f32(y[i]);
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * f16_to_f32(*y);
    }
    s
}

pub fn l2_16_scalar(a: &[f32], b: &[u16]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, ra) = a.as_chunks::<16>();
    let (cb, rb) = b.as_chunks::<16>();
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..16 {
            let d = x[i] - f16_to_f32(y[i]);
            acc[i] += d * d;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        let d = x - f16_to_f32(*y);
        s += d * d;
    }
    s
}

pub fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, ra) = a.as_chunks::<16>();
    let (cb, rb) = b.as_chunks::<16>();
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

pub fn l2_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, ra) = a.as_chunks::<16>();
    let (cb, rb) = b.as_chunks::<16>();
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..16 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        s += d * d;
    }
    s
}

pub fn dot_u8_scalar(w: &[f32], c: &[u8]) -> f32 {
    let mut acc = [0f32; 8];
    let mut wc = w.chunks_exact(8);
    let mut cc = c.chunks_exact(8);
    for (x, y) in (&mut wc).zip(&mut cc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i] as f32;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, &y) in wc.remainder().iter().zip(cc.remainder()) {
        s += x * y as f32;
    }
    s
}

pub fn hamming_scalar(a: &[u8], b: &[u8]) -> u32 {
    let mut ac = a.chunks_exact(8);
    let mut bc = b.chunks_exact(8);
    let mut n = 0;
    for (x, y) in (&mut ac).zip(&mut bc) {
        let x = u64::from_le_bytes(x.try_into().expect("8 bytes"));
        let y = u64::from_le_bytes(y.try_into().expect("8 bytes"));
        n += (x ^ y).count_ones();
    }
    for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
        n += (x ^ y).count_ones();
    }
    n
}

/// The kernels of [`dot_u8`] and [`hamming`] this CPU can run, by ISA name, for the tests
/// that compare each with the scalar one.
#[cfg(test)]
#[allow(clippy::type_complexity)]
pub(crate) fn quantized_kernels() -> Vec<(&'static str, KernelU8, KernelBits)> {
    #[allow(unused_mut)]
    let mut v: Vec<(&'static str, KernelU8, KernelBits)> =
        vec![("scalar", dot_u8_scalar, hamming_scalar)];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            v.push(("avx2", x86::dot_u8_avx2, x86::hamming_avx2));
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            v.push(("avx512", x86::dot_u8_avx512, x86::hamming_avx2));
        }
    }
    v
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! Each public function here is only ever selected after its CPU features were detected.
    use std::arch::x86_64::*;

    pub fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: chosen only when `avx512f` is detected.
        unsafe { dot512(a, b) }
    }
    pub fn l2_avx512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: chosen only when `avx512f` is detected.
        unsafe { l2_512(a, b) }
    }
    pub fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: chosen only when `avx2` and `fma` are detected.
        unsafe { dot256(a, b) }
    }
    pub fn l2_avx2(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: chosen only when `avx2` and `fma` are detected.
        unsafe { l2_256(a, b) }
    }
    pub fn dot16_avx512(a: &[f32], b: &[u16]) -> f32 {
        // SAFETY: chosen only when `avx512f` is detected.
        unsafe { dot16_512(a, b) }
    }
    pub fn l2_16_avx512(a: &[f32], b: &[u16]) -> f32 {
        // SAFETY: chosen only when `avx512f` is detected.
        unsafe { l2_16_512(a, b) }
    }
    pub fn dot16_avx2(a: &[f32], b: &[u16]) -> f32 {
        // SAFETY: chosen only when `avx2`, `fma` and `f16c` are detected.
        unsafe { dot16_256(a, b) }
    }
    pub fn l2_16_avx2(a: &[f32], b: &[u16]) -> f32 {
        // SAFETY: chosen only when `avx2`, `fma` and `f16c` are detected.
        unsafe { l2_16_256(a, b) }
    }

    pub fn dot_u8_avx512(w: &[f32], c: &[u8]) -> f32 {
        // SAFETY: chosen only when `avx512f` is detected.
        unsafe { dot_u8_512(w, c) }
    }
    pub fn dot_u8_avx2(w: &[f32], c: &[u8]) -> f32 {
        // SAFETY: chosen only when `avx2` and `fma` are detected.
        unsafe { dot_u8_256(w, c) }
    }
    pub fn hamming_avx2(a: &[u8], b: &[u8]) -> u32 {
        // SAFETY: chosen only when `avx2` is detected (every AVX-512 CPU has it).
        unsafe { hamming_256(a, b) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn dot_u8_512(w: &[f32], c: &[u8]) -> f32 {
        let n = w.len().min(c.len());
        let (pw, pc) = (w.as_ptr(), c.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        // SAFETY: every load stays below `n`, the length of both slices.
        unsafe {
            while i + 32 <= n {
                let c0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                    pc.add(i) as *const __m128i
                )));
                let c1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                    pc.add(i + 16) as *const __m128i
                )));
                acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pw.add(i)), c0, acc0);
                acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(pw.add(i + 16)), c1, acc1);
                i += 32;
            }
            if i + 16 <= n {
                let c0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                    pc.add(i) as *const __m128i
                )));
                acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pw.add(i)), c0, acc0);
                i += 16;
            }
            let mut s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
            while i < n {
                s += *pw.add(i) * *pc.add(i) as f32;
                i += 1;
            }
            s
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_u8_256(w: &[f32], c: &[u8]) -> f32 {
        let n = w.len().min(c.len());
        let (pw, pc) = (w.as_ptr(), c.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY: every load stays below `n`, the length of both slices.
        unsafe {
            while i + 16 <= n {
                let b = _mm_loadu_si128(pc.add(i) as *const __m128i);
                let c0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
                let c1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)));
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pw.add(i)), c0, acc0);
                acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(pw.add(i + 8)), c1, acc1);
                i += 16;
            }
            if i + 8 <= n {
                let b = _mm_loadl_epi64(pc.add(i) as *const __m128i);
                let c0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pw.add(i)), c0, acc0);
                i += 8;
            }
            let mut s = hsum256(_mm256_add_ps(acc0, acc1));
            while i < n {
                s += *pw.add(i) * *pc.add(i) as f32;
                i += 1;
            }
            s
        }
    }

    /// Popcount of 32 bytes per step with the nibble lookup (`vpshufb`), summed with
    /// `vpsadbw`.
    #[target_feature(enable = "avx2")]
    unsafe fn hamming_256(a: &[u8], b: &[u8]) -> u32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let lut = _mm256_setr_epi8(
            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2,
            3, 3, 4,
        );
        let low = _mm256_set1_epi8(0x0f);
        let mut acc = _mm256_setzero_si256();
        let mut i = 0;
        // SAFETY: every load stays below `n`, the length of both slices.
        unsafe {
            while i + 32 <= n {
                let x = _mm256_xor_si256(
                    _mm256_loadu_si256(pa.add(i) as *const __m256i),
                    _mm256_loadu_si256(pb.add(i) as *const __m256i),
                );
                let lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(x, low));
                let hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), low));
                acc = _mm256_add_epi64(
                    acc,
                    _mm256_sad_epu8(_mm256_add_epi8(lo, hi), _mm256_setzero_si256()),
                );
                i += 32;
            }
            let mut lanes = [0u64; 4];
            _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, acc);
            let mut s = lanes.iter().sum::<u64>() as u32;
            while i + 8 <= n {
                let x = (pa.add(i) as *const u64).read_unaligned()
                    ^ (pb.add(i) as *const u64).read_unaligned();
                s += x.count_ones();
                i += 8;
            }
            while i < n {
                s += (*pa.add(i) ^ *pb.add(i)).count_ones();
                i += 1;
            }
            s
        }
    }

    /// 16 float16 values at `p`, widened.
    #[target_feature(enable = "avx512f")]
    unsafe fn load16_512(p: *const u16) -> __m512 {
        // SAFETY: the caller guarantees 16 readable values at `p`.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn dot16_512(a: &[f32], b: &[u16]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        // SAFETY: every load stays below `n`, the length of both slices.
        unsafe {
            while i + 32 <= n {
                acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), load16_512(pb.add(i)), acc0);
                acc1 = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i + 16)),
                    load16_512(pb.add(i + 16)),
                    acc1,
                );
                i += 32;
            }
            if i + 16 <= n {
                acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), load16_512(pb.add(i)), acc0);
                i += 16;
            }
            let mut s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
            while i < n {
                s += *pa.add(i) * super::f16_to_f32(*pb.add(i));
                i += 1;
            }
            s
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn l2_16_512(a: &[f32], b: &[u16]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        // SAFETY: every load stays below `n`, the length of both slices.
        unsafe {
            while i + 32 <= n {
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), load16_512(pb.add(i)));
                let d1 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i + 16)), load16_512(pb.add(i + 16)));
                acc0 = _mm512_fmadd_ps(d0, d0, acc0);
                acc1 = _mm512_fmadd_ps(d1, d1, acc1);
                i += 32;
            }
            if i + 16 <= n {
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), load16_512(pb.add(i)));
                acc0 = _mm512_fmadd_ps(d0, d0, acc0);
                i += 16;
            }
            let mut s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
            while i < n {
                let d = *pa.add(i) - super::f16_to_f32(*pb.add(i));
                s += d * d;
                i += 1;
            }
            s
        }
    }

    /// 8 float16 values at `p`, widened.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8_256(p: *const u16) -> __m256 {
        // SAFETY: the caller guarantees 8 readable values at `p`.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot16_256(a: &[f32], b: &[u16]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY: every load stays below `n`, the length of both slices.
        unsafe {
            while i + 16 <= n {
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), load8_256(pb.add(i)), acc0);
                acc1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 8)),
                    load8_256(pb.add(i + 8)),
                    acc1,
                );
                i += 16;
            }
            if i + 8 <= n {
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), load8_256(pb.add(i)), acc0);
                i += 8;
            }
            let mut s = hsum256(_mm256_add_ps(acc0, acc1));
            while i < n {
                s += *pa.add(i) * super::f16_to_f32(*pb.add(i));
                i += 1;
            }
            s
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn l2_16_256(a: &[f32], b: &[u16]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY: every load stays below `n`, the length of both slices.
        unsafe {
            while i + 16 <= n {
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), load8_256(pb.add(i)));
                let d1 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i + 8)), load8_256(pb.add(i + 8)));
                acc0 = _mm256_fmadd_ps(d0, d0, acc0);
                acc1 = _mm256_fmadd_ps(d1, d1, acc1);
                i += 16;
            }
            if i + 8 <= n {
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), load8_256(pb.add(i)));
                acc0 = _mm256_fmadd_ps(d0, d0, acc0);
                i += 8;
            }
            let mut s = hsum256(_mm256_add_ps(acc0, acc1));
            while i < n {
                let d = *pa.add(i) - super::f16_to_f32(*pb.add(i));
                s += d * d;
                i += 1;
            }
            s
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn dot512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        // SAFETY: every load stays below `n`, the length of both slices.
        unsafe {
            while i + 32 <= n {
                acc0 =
                    _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
                acc1 = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i + 16)),
                    _mm512_loadu_ps(pb.add(i + 16)),
                    acc1,
                );
                i += 32;
            }
            if i + 16 <= n {
                acc0 =
                    _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
                i += 16;
            }
            if i < n {
                let m: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
                acc1 = _mm512_fmadd_ps(
                    _mm512_maskz_loadu_ps(m, pa.add(i)),
                    _mm512_maskz_loadu_ps(m, pb.add(i)),
                    acc1,
                );
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn l2_512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        // SAFETY: every load stays below `n`, the length of both slices.
        unsafe {
            while i + 32 <= n {
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                let d1 = _mm512_sub_ps(
                    _mm512_loadu_ps(pa.add(i + 16)),
                    _mm512_loadu_ps(pb.add(i + 16)),
                );
                acc0 = _mm512_fmadd_ps(d0, d0, acc0);
                acc1 = _mm512_fmadd_ps(d1, d1, acc1);
                i += 32;
            }
            if i + 16 <= n {
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                acc0 = _mm512_fmadd_ps(d0, d0, acc0);
                i += 16;
            }
            if i < n {
                let m: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
                let d = _mm512_sub_ps(
                    _mm512_maskz_loadu_ps(m, pa.add(i)),
                    _mm512_maskz_loadu_ps(m, pb.add(i)),
                );
                acc1 = _mm512_fmadd_ps(d, d, acc1);
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum256(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot256(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY: every load stays below `n`, the length of both slices.
        unsafe {
            while i + 16 <= n {
                acc0 =
                    _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                acc1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 8)),
                    _mm256_loadu_ps(pb.add(i + 8)),
                    acc1,
                );
                i += 16;
            }
            if i + 8 <= n {
                acc0 =
                    _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                i += 8;
            }
            let mut s = hsum256(_mm256_add_ps(acc0, acc1));
            while i < n {
                s += *pa.add(i) * *pb.add(i);
                i += 1;
            }
            s
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn l2_256(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY: every load stays below `n`, the length of both slices.
        unsafe {
            while i + 16 <= n {
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                let d1 = _mm256_sub_ps(
                    _mm256_loadu_ps(pa.add(i + 8)),
                    _mm256_loadu_ps(pb.add(i + 8)),
                );
                acc0 = _mm256_fmadd_ps(d0, d0, acc0);
                acc1 = _mm256_fmadd_ps(d1, d1, acc1);
                i += 16;
            }
            if i + 8 <= n {
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                acc0 = _mm256_fmadd_ps(d0, d0, acc0);
                i += 8;
            }
            let mut s = hsum256(_mm256_add_ps(acc0, acc1));
            while i < n {
                let d = *pa.add(i) - *pb.add(i);
                s += d * d;
                i += 1;
            }
            s
        }
    }
}

/// The distance the HNSW graph orders by: non-negative (`hnsw_rs`, still used for old
/// snapshots and benchmark baselines, asserts it), smaller is closer, and monotone in the
/// collection's score so the graph and exact search agree.
#[inline]
pub fn graph_distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::L2 => l2_squared(a, b),
        // Both vectors are unit length: 1 - cos is in [0, 2] up to rounding.
        Metric::Cosine => (1.0 - dot(a, b)).max(0.0),
        // Any real dot product: a positive, strictly decreasing map of it.
        Metric::Dot => {
            let d = dot(a, b);
            if d >= 0.0 { 1.0 / (1.0 + d) } else { 1.0 - d }
        }
    }
}

/// One stored vector, in its collection's datatype.
#[derive(Clone, Copy, Debug)]
pub enum Row<'a> {
    F32(&'a [f32]),
    F16(&'a [u16]),
}

impl<'a> From<&'a [f32]> for Row<'a> {
    fn from(v: &'a [f32]) -> Self {
        Row::F32(v)
    }
}

impl<'a> From<&'a Vec<f32>> for Row<'a> {
    fn from(v: &'a Vec<f32>) -> Self {
        Row::F32(v)
    }
}

impl<'a> Row<'a> {
    /// Vector `o` of the `dim`-component vectors held contiguously in this row.
    #[inline]
    pub fn row(self, dim: usize, o: usize) -> Row<'a> {
        let r = o * dim..(o + 1) * dim;
        match self {
            Row::F32(v) => Row::F32(&v[r]),
            Row::F16(v) => Row::F16(&v[r]),
        }
    }
    /// Components.
    pub fn len(self) -> usize {
        match self {
            Row::F32(v) => v.len(),
            Row::F16(v) => v.len(),
        }
    }
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
    pub fn to_vec(self) -> Vec<f32> {
        match self {
            Row::F32(v) => v.to_vec(),
            Row::F16(v) => v.iter().map(|&h| f16_to_f32(h)).collect(),
        }
    }
}

/// [`graph_distance`] of a float32 query and a stored float16 vector.
#[inline]
pub fn graph_distance_f16(metric: Metric, q: &[f32], b: &[u16]) -> f32 {
    match metric {
        Metric::L2 => l2_squared_f16(q, b),
        Metric::Cosine => (1.0 - dot_f16(q, b)).max(0.0),
        Metric::Dot => {
            let d = dot_f16(q, b);
            if d >= 0.0 { 1.0 / (1.0 + d) } else { 1.0 - d }
        }
    }
}

/// [`score`] of a query and a stored vector of either datatype.
#[inline]
pub fn score_row(metric: Metric, q: &[f32], row: Row<'_>) -> f32 {
    match row {
        Row::F32(v) => score(metric, q, v),
        Row::F16(v) => match metric {
            Metric::Cosine | Metric::Dot => dot_f16(q, v),
            Metric::L2 => l2_squared_f16(q, v).sqrt(),
        },
    }
}

/// Normalize the vectors of a point that its collection scores by cosine: the unnamed one
/// (`vector`, when given) and each named one.
pub fn normalize_cosine(spec: &CollectionSpec, vector: &mut [f32], named: &mut NamedVectors) {
    if spec.metric == Metric::Cosine {
        normalize(vector);
    }
    for (name, v) in named {
        if spec.vectors.get(name).map(|s| s.metric) == Some(Metric::Cosine) {
            normalize(v);
        }
    }
}

/// Normalize in place; a zero vector stays zero.
pub fn normalize(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// The score reported to clients: cosine similarity or dot product (higher is closer), or the
/// Euclidean distance (lower is closer). Cosine expects both vectors normalized.
#[inline]
pub fn score(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::Cosine | Metric::Dot => dot(a, b),
        Metric::L2 => l2_squared(a, b).sqrt(),
    }
}

/// An ordering key where smaller is closer, for every metric.
#[inline]
pub fn rank_key(metric: Metric, score: f32) -> f32 {
    if metric.higher_is_better() {
        -score
    } else {
        score
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_matches_scalar() {
        for n in [1usize, 7, 15, 16, 17, 31, 32, 33, 100, 128, 1536] {
            let a: Vec<f32> = (0..n)
                .map(|i| ((i * 37) % 11) as f32 * 0.25 - 1.0)
                .collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 13) % 7) as f32 * 0.5 - 1.5).collect();
            let (d, ds) = (dot(&a, &b), dot_scalar(&a, &b));
            let (l, ls) = (l2_squared(&a, &b), l2_scalar(&a, &b));
            assert!(
                (d - ds).abs() <= 1e-3 * ds.abs().max(1.0),
                "{n}: {d} vs {ds}"
            );
            assert!(
                (l - ls).abs() <= 1e-3 * ls.abs().max(1.0),
                "{n}: {l} vs {ls}"
            );
        }
    }

    #[test]
    fn f16_conversions_round_trip_and_round_to_nearest_even() {
        // Every finite or infinite half value survives the round trip.
        for h in 0..=u16::MAX {
            if h & 0x7c00 == 0x7c00 && h & 0x3ff != 0 {
                assert!(f16_to_f32(h).is_nan());
                continue;
            }
            assert_eq!(f32_to_f16(f16_to_f32(h)), h, "{h:#06x}");
        }
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0x7bff), F16_MAX);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        // Integers 0..=2048 are exact; 2049 is a tie and goes to the even 2048.
        for i in 0..=2048 {
            assert_eq!(f16_to_f32(f32_to_f16(i as f32)), i as f32);
        }
        assert_eq!(f16_to_f32(f32_to_f16(2049.0)), 2048.0);
        assert_eq!(f16_to_f32(f32_to_f16(2051.0)), 2052.0);
        assert!(fits_f16(65504.0) && fits_f16(-65519.0) && !fits_f16(65520.0));
        assert!(!fits_f16(f32::INFINITY));
        // Against the CPU's own conversion (F16C, round to nearest even), when it has one.
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("f16c") {
            #[target_feature(enable = "f16c")]
            unsafe fn hw(x: f32) -> u16 {
                use std::arch::x86_64::*;
                _mm_extract_epi16::<0>(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set1_ps(x)))
                    as u16
            }
            let mut bits = 0x1234_5678u32;
            for _ in 0..1_000_000 {
                bits ^= bits << 13;
                bits ^= bits >> 17;
                bits ^= bits << 5;
                let x = f32::from_bits(bits);
                if x.is_nan() {
                    continue;
                }
                // SAFETY: f16c was detected above.
                assert_eq!(f32_to_f16(x), unsafe { hw(x) }, "{x:e}");
            }
        }
    }

    #[test]
    fn f16_kernels_match_scalar_and_f32() {
        for n in [1usize, 7, 8, 15, 16, 17, 31, 32, 33, 100, 128, 1536] {
            let q: Vec<f32> = (0..n)
                .map(|i| ((i * 37) % 11) as f32 * 0.25 - 1.0)
                .collect();
            let v: Vec<f32> = (0..n).map(|i| ((i * 13) % 7) as f32 * 0.5 - 1.5).collect();
            let h: Vec<u16> = v.iter().map(|&x| f32_to_f16(x)).collect();
            // These values are exact in float16: every kernel equals the float32 one.
            for (got, want) in [
                (dot_f16(&q, &h), dot(&q, &v)),
                (dot16_scalar(&q, &h), dot_scalar(&q, &v)),
                (l2_squared_f16(&q, &h), l2_squared(&q, &v)),
                (l2_16_scalar(&q, &h), l2_scalar(&q, &v)),
            ] {
                assert!(
                    (got - want).abs() <= 1e-3 * want.abs().max(1.0),
                    "{n}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn graph_distance_is_monotone_and_non_negative() {
        let q = [1.0f32, 0.0];
        let mut last = -1.0;
        for d in [-3.0f32, -1.0, -0.1, 0.0, 0.1, 1.0, 5.0] {
            let g = graph_distance(Metric::Dot, &q, &[-d, 0.0]);
            assert!(g >= 0.0 && g > last, "{d}: {g}");
            last = g;
        }
    }

    #[test]
    fn matches_naive() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| (37 - i) as f32).collect();
        let naive_dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let naive_l2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((dot(&a, &b) - naive_dot).abs() < 1e-3);
        assert!((l2_squared(&a, &b) - naive_l2).abs() < 1e-3);
        let mut c = vec![3.0, 4.0];
        normalize(&mut c);
        assert_eq!(c, vec![0.6, 0.8]);
    }
}
