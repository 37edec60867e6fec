//! Host-side helpers of the GEMM check: seeded inputs, an f64 reference, error measures and
//! tolerances. Pure Rust, so the CPU tests cover them.

/// The datasets crate's SplitMix64, with Box-Muller normals.
pub struct Rng {
    bits: r1kit_datasets::rng::Rng,
    /// The second normal of the last Box-Muller pair.
    spare: Option<f64>,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self { bits: r1kit_datasets::rng::Rng::new(seed), spare: None }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.bits.next_u64()
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub fn normal(&mut self) -> f64 {
        if let Some(x) = self.spare.take() {
            return x;
        }
        let (u, v) = (self.uniform(), self.uniform());
        let (r, (sin, cos)) = ((-2.0 * u.ln()).sqrt(), (2.0 * std::f64::consts::PI * v).sin_cos());
        self.spare = Some(r * sin);
        r * cos
    }

    /// `len` normals times `std`, as f32.
    pub fn normals(&mut self, len: usize, std: f64) -> Vec<f32> {
        (0..len).map(|_| (self.normal() * std) as f32).collect()
    }
}

/// A row-major host matrix and whether the GEMM reads it transposed: `op(X)(i, j)`.
#[derive(Clone, Copy)]
pub struct HostOperand<'a> {
    pub data: &'a [f32],
    /// Stored shape `[rows, cols]` (row-major, contiguous).
    pub shape: [usize; 2],
    pub transpose: bool,
}

impl HostOperand<'_> {
    /// Shape of `op(X)`.
    pub fn dims(&self) -> [usize; 2] {
        if self.transpose { [self.shape[1], self.shape[0]] } else { self.shape }
    }

    fn at(&self, i: usize, j: usize) -> f64 {
        let (r, c) = if self.transpose { (j, i) } else { (i, j) };
        self.data[r * self.shape[1] + c] as f64
    }
}

/// The rows of `op(A) op(B)` the reference computes: all of them for small problems, an evenly
/// spread subset (first and last included) when `m * k * n` is large.
pub fn reference_rows(m: usize, k: usize, n: usize, budget: usize) -> Vec<usize> {
    let per_row = (k * n).max(1);
    let want = (budget / per_row).max(2);
    if m <= want {
        return (0..m).collect();
    }
    let mut rows: Vec<usize> = (0..want).map(|i| i * (m - 1) / (want - 1)).collect();
    rows.dedup();
    rows
}

/// f64 reference of `op(A) op(B)` on the given rows: for each row, the values and the scale
/// `sum_p |op(A)(i,p)| |op(B)(p,j)|` that bounds rounding errors of any summation order.
pub fn reference(a: HostOperand, b: HostOperand, rows: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let [_, k] = a.dims();
    let [kb, n] = b.dims();
    assert_eq!(k, kb, "inner dimensions");
    // op(B) as a dense f64 [k, n] once, so the inner loop is contiguous.
    let mut bd = vec![0f64; k * n];
    for p in 0..k {
        for j in 0..n {
            bd[p * n + j] = b.at(p, j);
        }
    }
    let mut values = vec![0f64; rows.len() * n];
    let mut scale = vec![0f64; rows.len() * n];
    for (r, &i) in rows.iter().enumerate() {
        let (val, sc) = (&mut values[r * n..(r + 1) * n], &mut scale[r * n..(r + 1) * n]);
        for p in 0..k {
            let x = a.at(i, p);
            let brow = &bd[p * n..(p + 1) * n];
            for j in 0..n {
                val[j] += x * brow[j];
                sc[j] += (x * brow[j]).abs();
            }
        }
    }
    (values, scale)
}

/// How far a result is from the reference on the reference's rows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Errors {
    /// `max |c - ref| / sum_p |a||b|` (0 when every scale is 0): the measure the tolerances
    /// are for, meaningful near zero where a plain relative error is not.
    pub max_scaled: f64,
    /// `||c - ref|| / ||ref||` (Frobenius, on the rows compared).
    pub rel_fro: f64,
    /// Non-finite values in the result.
    pub non_finite: usize,
}

/// Errors of `c` (the full row-major `[m, n]` result) against `reference` on `rows`.
pub fn errors(c: &[f32], n: usize, rows: &[usize], values: &[f64], scale: &[f64]) -> Errors {
    let (mut max_scaled, mut num, mut den, mut non_finite) = (0f64, 0f64, 0f64, 0usize);
    for (r, &i) in rows.iter().enumerate() {
        for j in 0..n {
            let got = c[i * n + j] as f64;
            let (want, s) = (values[r * n + j], scale[r * n + j]);
            if !got.is_finite() {
                non_finite += 1;
                continue;
            }
            let e = (got - want).abs();
            if s > 0.0 {
                max_scaled = max_scaled.max(e / s);
            } else if e > 0.0 {
                max_scaled = f64::INFINITY;
            }
            num += e * e;
            den += want * want;
        }
    }
    let rel_fro = if den > 0.0 { (num / den).sqrt() } else if num > 0.0 { f64::INFINITY } else { 0.0 };
    Errors { max_scaled, rel_fro, non_finite }
}

/// Agreement of two results of the same GEMM (e.g. cuBLASLt and burn's matmul).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Agreement {
    /// Fraction of elements with identical bits.
    pub bitwise_equal: f64,
    /// `max |x - y| / sum_p |a||b|` on the reference rows.
    pub max_scaled: f64,
}

pub fn agreement(x: &[f32], y: &[f32], n: usize, rows: &[usize], scale: &[f64]) -> Agreement {
    assert_eq!(x.len(), y.len());
    let equal = x.iter().zip(y).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
    let mut max_scaled = 0f64;
    for (r, &i) in rows.iter().enumerate() {
        for j in 0..n {
            let e = (x[i * n + j] as f64 - y[i * n + j] as f64).abs();
            let s = scale[r * n + j];
            let v = if s > 0.0 { e / s } else if e > 0.0 || e.is_nan() { f64::INFINITY } else { 0.0 };
            max_scaled = if v.is_nan() { f64::INFINITY } else { max_scaled.max(v) };
        }
    }
    Agreement { bitwise_equal: if x.is_empty() { 1.0 } else { equal as f64 / x.len() as f64 }, max_scaled }
}

/// Tolerance on [`Errors::max_scaled`] against the f64 reference, by input/output dtype.
///
/// bf16 output: rounding to bf16 (8 significant bits) costs up to 2^-8 = 3.9e-3 relative to
/// |C| <= sum |a||b|, f32 accumulation at most ~k 2^-24 more (far less in practice): 5e-3.
/// f16 output: 2^-11 for the rounding: 1e-3.
/// f32 with f32 accumulation: errors are ~1e-7 in this measure; 1e-5 passes that and fails a
/// TF32 (10-bit mantissa) GEMM, whose errors are ~1e-4..1e-3.
pub fn tolerance(dtype: &str) -> f64 {
    match dtype {
        "bf16" => 5e-3,
        "f16" => 1e-3,
        _ => 1e-5,
    }
}

/// Tolerance on [`Agreement::max_scaled`] between cuBLASLt and burn's matmul: both round to the
/// output dtype (one bf16 ulp apart, 2^-7 relative, is expected), and burn may accumulate f32 GEMMs
/// in TF32, hence the looser f32 bound (reported, not hidden: see burn's own error column).
pub fn agreement_tolerance(dtype: &str) -> f64 {
    match dtype {
        "bf16" => 1e-2,
        "f16" => 2e-3,
        _ => 2e-3,
    }
}

/// For the autodiff ops' tests: each of `ours` equals the same-named `reference` tensor (shape,
/// and values within `tol`); `case` names the setting in the failure message.
#[cfg(test)]
pub(crate) fn assert_all_close(names: &[&str], ours: &[burn::prelude::TensorData], reference: &[burn::prelude::TensorData], tol: f32, case: &str) {
    for (what, (o, r)) in names.iter().zip(ours.iter().zip(reference)) {
        assert_eq!(o.shape(), r.shape(), "{what}, {case}");
        let (o, r) = (o.try_to_vec::<f32>().unwrap(), r.try_to_vec::<f32>().unwrap());
        let worst = o.iter().zip(&r).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= tol, "{what}, {case}: off by {worst}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], ar: usize, ac: usize, ta: bool, b: &[f32], br: usize, bc: usize, tb: bool) -> Vec<f64> {
        let at = |x: &[f32], c: usize, t: bool, i: usize, j: usize| if t { x[j * c + i] as f64 } else { x[i * c + j] as f64 };
        let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
        let n = if tb { br } else { bc };
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| at(a, ac, ta, i, p) * at(b, bc, tb, p, j)).sum();
            }
        }
        out
    }

    #[test]
    fn reference_matches_naive_with_transposes() {
        let mut rng = Rng::new(3);
        let (m, k, n) = (5, 7, 3);
        for ta in [false, true] {
            for tb in [false, true] {
                let a = rng.normals(m * k, 1.0);
                let b = rng.normals(k * n, 1.0);
                let a_shape = if ta { [k, m] } else { [m, k] };
                let b_shape = if tb { [n, k] } else { [k, n] };
                let rows: Vec<usize> = (0..m).collect();
                let (v, s) = reference(
                    HostOperand { data: &a, shape: a_shape, transpose: ta },
                    HostOperand { data: &b, shape: b_shape, transpose: tb },
                    &rows,
                );
                let want = naive(&a, a_shape[0], a_shape[1], ta, &b, b_shape[0], b_shape[1], tb);
                for (x, y) in v.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-12);
                }
                assert!(s.iter().zip(&v).all(|(s, v)| *s >= v.abs()));
                // a result equal to the reference rounded to f32 has tiny errors; garbage does not
                let c: Vec<f32> = want.iter().map(|x| *x as f32).collect();
                let e = errors(&c, n, &rows, &v, &s);
                assert!(e.max_scaled < 1e-7 && e.rel_fro < 1e-7 && e.non_finite == 0, "{e:?}");
                let bad: Vec<f32> = c.iter().map(|x| x + 0.5).collect();
                assert!(errors(&bad, n, &rows, &v, &s).max_scaled > 1e-2);
            }
        }
    }

    #[test]
    fn bf16_rounding_is_within_tolerance() {
        let mut rng = Rng::new(11);
        let (m, k, n) = (8, 512, 16);
        let round = |x: f32| half::bf16::from_f32(x).to_f32();
        let a: Vec<f32> = rng.normals(m * k, 1.0).into_iter().map(round).collect();
        let b: Vec<f32> = rng.normals(k * n, 1.0).into_iter().map(round).collect();
        let rows: Vec<usize> = (0..m).collect();
        let (v, s) = reference(HostOperand { data: &a, shape: [m, k], transpose: false }, HostOperand { data: &b, shape: [k, n], transpose: false }, &rows);
        let c: Vec<f32> = v.iter().map(|x| round(*x as f32)).collect();
        let e = errors(&c, n, &rows, &v, &s);
        assert!(e.max_scaled < tolerance("bf16"), "{e:?}");
        assert!(e.max_scaled > 0.0);
        // one bf16 ulp on every element still agrees
        let c2: Vec<f32> = c.iter().map(|x| half::bf16::from_bits(half::bf16::from_f32(*x).to_bits() + 1).to_f32()).collect();
        let ag = agreement(&c, &c2, n, &rows, &s);
        assert_eq!(ag.bitwise_equal, 0.0);
        assert!(ag.max_scaled < agreement_tolerance("bf16"), "{ag:?}");
        assert_eq!(agreement(&c, &c, n, &rows, &s).bitwise_equal, 1.0);
        let mut nan = c.clone();
        nan[3] = f32::NAN;
        assert_eq!(errors(&nan, n, &rows, &v, &s).non_finite, 1);
        assert!(agreement(&c, &nan, n, &rows, &s).max_scaled.is_infinite());
    }

    #[test]
    fn normals_look_normal() {
        let mut rng = Rng::new(7);
        let x = rng.normals(100_000, 2.0);
        let mean = x.iter().map(|v| *v as f64).sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / x.len() as f64;
        assert!(mean.abs() < 0.03 && (var.sqrt() - 2.0).abs() < 0.03, "mean {mean} std {}", var.sqrt());
        assert_ne!(x[0], x[1]);
    }

    #[test]
    fn reference_rows_cover_ends() {
        assert_eq!(reference_rows(5, 10, 10, 1 << 20), vec![0, 1, 2, 3, 4]);
        let r = reference_rows(16384, 896, 4864, 1 << 26);
        assert_eq!(r.first(), Some(&0));
        assert_eq!(r.last(), Some(&16383));
        assert!(r.len() >= 2 && r.len() <= 16);
        assert_eq!(reference_rows(1000, 100_000, 100_000, 10), vec![0, 999]);
    }
}
