//! The LM head's log-softmax over the vocabulary, for one chunk of rows of logits as the GEMM wrote
//! them (`crate::logprobs`), forward and backward, one kernel each.
//!
//! Forward, one cube per row, one pass over the row: each unit keeps a running maximum with the
//! sums `sum exp(x - max)` and `sum exp(x - max) (x - max)` rescaled as the maximum grows; the cube
//! combines them into the row's log-sum-exp, the target's log-probability and the entropy
//! `ln sum exp(x - max) - sum p (x - max)`. Backward, one unit per element: `d logits = g (onehot(target) - exp(x - lse))`,
//! written in the GEMMs' dtype. burn's ops took ~12 kernels per chunk for this, each a pass over the
//! `[rows, vocab]` logits in f32 (151,936 ids: 0.6 GB per 1,024 rows and pass).

use burn::prelude::Tensor;
use burn::tensor::{DType, FloatDType, Shape};
use cubecl::prelude::*;

use super::cube_reduce::{cube_max, cube_sum};
use super::launch::{buffer, cast, contiguous, cube_primitive, empty, row_units, with_float_type, with_int_type, Cube};

/// Target ids `[rows, 1]` (burn's integer tensors; CubeCL's `Int` is the kernels' element trait).
type Ids = Tensor<2, burn::tensor::Int>;

#[cube(launch_unchecked)]
fn vocab_log_softmax_forward<F: Float, I: Int>(
    logits: &[F],
    targets: &[I],
    logp: &mut [f32],
    lse: &mut [f32],
    entropy: &mut [f32],
    vocab: usize,
    #[comptime] units: usize,
) {
    let row = CUBE_POS;
    let base = row * vocab;
    // below any logit, so that a unit without elements adds exp(-huge) = 0 to the sums
    let mut largest = f32::new(-3.0e38);
    // sum exp(x - largest) and sum exp(x - largest) (x - largest): the entropy from shifted
    // logits, as the sum of p x would cancel against the log-sum-exp (logits ~100: 1e-5 off)
    let mut sum = 0.0f32;
    let mut weighted = 0.0f32;
    let mut j = UNIT_POS as usize;
    while j < vocab {
        let x = f32::cast_from(logits[base + j]);
        if x > largest {
            let shift = largest - x;
            let rescale = f32::exp(shift);
            weighted = rescale * (weighted + shift * sum);
            sum = sum * rescale + 1.0;
            largest = x;
        } else {
            let e = f32::exp(x - largest);
            sum += e;
            weighted += e * (x - largest);
        }
        j += units;
    }
    let max = cube_max(largest, units);
    let shift = largest - max;
    let rescale = f32::exp(shift);
    let total = cube_sum(sum * rescale, units);
    let weighted_total = cube_sum(rescale * (weighted + shift * sum), units);
    if UNIT_POS == 0 {
        let row_lse = max + f32::ln(total);
        lse[row] = row_lse;
        logp[row] = f32::cast_from(logits[base + usize::cast_from(targets[row])]) - row_lse;
        entropy[row] = f32::ln(total) - weighted_total / total;
    }
}

#[cube(launch_unchecked)]
fn vocab_log_softmax_backward<F: Float, G: Float, I: Int>(
    logits: &[F],
    lse: &[f32],
    grad: &[f32],
    targets: &[I],
    dlogits: &mut [G],
    vocab: usize,
) {
    let row = CUBE_POS_Y as usize;
    let j = CUBE_POS_X as usize * CUBE_DIM_X as usize + UNIT_POS_X as usize;
    if j < vocab {
        let i = row * vocab + j;
        let g = grad[row];
        let p = f32::exp(f32::cast_from(logits[i]) - lse[row]);
        let mut d = -g * p;
        if j == usize::cast_from(targets[row]) {
            d += g;
        }
        dlogits[i] = G::cast_from(d);
    }
}

/// The logits `[rows, vocab]` and targets `[rows, 1]` as contiguous buffers; `None` where they do
/// not fit each other or are not on a `Cube` device.
fn prepare(logits: &Tensor<2>, targets: &Ids) -> Option<(burn_cubecl::tensor::CubeTensor, burn_cubecl::tensor::CubeTensor, usize, usize)> {
    let [rows, vocab] = logits.dims();
    if targets.dims() != [rows, 1] || rows == 0 || vocab == 0 {
        return None;
    }
    let logits = contiguous(cube_primitive(logits)?);
    let targets = contiguous(targets.clone().try_into_primitive::<Cube>().ok()?);
    Some((logits, targets, rows, vocab))
}

/// See [`super::logprob_rows`].
pub(super) fn logprob_rows(logits: &Tensor<2>, targets: &Ids, with_entropy: bool) -> Option<(Tensor<1>, Tensor<1>, Option<Tensor<1>>)> {
    let (logits, targets, rows, vocab) = prepare(logits, targets)?;
    let [logp, lse, entropy] = [(); 3].map(|_| empty(&logits, Shape::new([rows]), DType::F32));
    let units = row_units(&logits);
    with_float_type!(logits.dtype, F => with_int_type!(targets.dtype, I => unsafe {
        vocab_log_softmax_forward::launch_unchecked::<F, I>(
            &logits.client,
            CubeCount::Static(rows as u32, 1, 1),
            CubeDim::new_1d(units as u32),
            buffer(&logits),
            buffer(&targets),
            buffer(&logp),
            buffer(&lse),
            buffer(&entropy),
            vocab,
            units,
        )
    }));
    let [logp, lse, entropy] = [logp, lse, entropy].map(Tensor::from_primitive::<Cube>);
    Some((logp, lse, with_entropy.then_some(entropy)))
}

/// See [`super::logprob_rows_backward`].
pub(super) fn logprob_rows_backward(logits: &Tensor<2>, lse: &Tensor<1>, grad: &Tensor<1>, targets: &Ids, out: FloatDType) -> Option<Tensor<2>> {
    let (logits, targets, rows, vocab) = prepare(logits, targets)?;
    // one row per cube row of the grid, whose height CUDA caps at 65,535
    if rows > 65_535 || lse.dims() != [rows] || grad.dims() != [rows] {
        return None;
    }
    let row_values = |t: &Tensor<1>| Some(contiguous(cast(cube_primitive(t)?, DType::F32)));
    let (lse, grad) = (row_values(lse)?, row_values(grad)?);
    let dlogits = empty(&logits, logits.meta.shape().clone(), out.into());
    const UNITS: u32 = 256;
    with_float_type!(logits.dtype, F => with_float_type!(dlogits.dtype, G => with_int_type!(targets.dtype, I => unsafe {
        vocab_log_softmax_backward::launch_unchecked::<F, G, I>(
            &logits.client,
            CubeCount::Static(vocab.div_ceil(UNITS as usize) as u32, rows as u32, 1),
            CubeDim::new_1d(UNITS),
            buffer(&logits),
            buffer(&lse),
            buffer(&grad),
            buffer(&targets),
            buffer(&dlogits),
            vocab,
        )
    })));
    Some(Tensor::from_primitive::<Cube>(dlogits))
}

#[cfg(all(test, feature = "cube-cpu"))]
mod tests {
    use super::super::{logprob_rows, logprob_rows_backward, reference};
    use crate::check::{assert_all_close, Rng};
    use burn::prelude::{Device, Int, Tensor, TensorData};
    use burn::tensor::FloatDType;

    fn random<const D: usize>(shape: [usize; D], seed: u64, scale: f64, device: &Device) -> Tensor<D> {
        let values = Rng::new(seed).normals(shape.iter().product(), scale);
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    fn targets(rows: usize, vocab: usize, device: &Device) -> Tensor<2, Int> {
        // the first id (row 0) and the last (the last row) included
        let ids: Vec<i64> = (0..rows).map(|r| if r + 1 == rows { vocab - 1 } else { (r * 7919) % vocab } as i64).collect();
        Tensor::from_data(TensorData::new(ids, [rows, 1]), device)
    }

    fn f32_data<const D: usize>(t: Tensor<D>) -> TensorData {
        t.cast(FloatDType::F32).into_data()
    }

    /// Row lengths below, at and above a cube's units, and one that is not a multiple of them;
    /// logits large enough that a naive exp overflows f32.
    const SHAPES: [(usize, usize); 3] = [(5, 3), (4, 1000), (3, 4099)];

    #[test]
    fn forward_gives_burns_log_softmax_entropy_and_log_sum_exp() {
        let device = Device::cpu();
        // absolute: a few f32 ulps at the logits' ~100 (7.6e-6 each), whatever the logits' dtype
        // (both sides read the same rounded bf16 values and compute in f32)
        for (dtype, tol) in [(FloatDType::F32, 4e-5), (FloatDType::BF16, 4e-5)] {
            for (rows, vocab) in SHAPES {
                let logits = (random([rows, vocab], 1, 4.0, &device) + 100.0).cast(dtype);
                let ids = targets(rows, vocab, &device);
                let (logp, lse, entropy) = logprob_rows(&logits, &ids, true).expect("a Cube device");
                let (logp_ref, lse_ref, entropy_ref) = reference::logprob_rows(&logits, &ids, true);
                let (entropy, entropy_ref) = (entropy.expect("asked for"), entropy_ref.expect("asked for"));
                assert_eq!(logp.dims(), [rows]);
                let what = format!("{dtype:?}, {rows} x {vocab}");
                assert_all_close(&["logp", "lse", "entropy"], &[logp.into_data(), lse.into_data(), entropy.into_data()], &[logp_ref.into_data(), lse_ref.into_data(), entropy_ref.into_data()], tol, &what);
                assert!(logprob_rows(&logits, &ids, false).expect("a Cube device").2.is_none(), "{what}: entropy only when asked");
            }
        }
    }

    #[test]
    fn backward_gives_burns_logit_gradients() {
        let device = Device::cpu();
        for (dtype, out, tol) in [(FloatDType::F32, FloatDType::F32, 1e-5), (FloatDType::BF16, FloatDType::BF16, 1e-2), (FloatDType::BF16, FloatDType::F32, 1e-5)] {
            for (rows, vocab) in SHAPES {
                let logits = random([rows, vocab], 2, 3.0, &device).cast(dtype);
                let ids = targets(rows, vocab, &device);
                let grad = random([rows], 3, 1.0, &device);
                let (_, lse, _) = reference::logprob_rows(&logits, &ids, false);
                let d = logprob_rows_backward(&logits, &lse, &grad, &ids, out).expect("a Cube device");
                let d_ref = reference::logprob_rows_backward(&logits, &lse, &grad, &ids, out);
                assert_eq!(d.dtype(), out.into());
                assert_all_close(&["d logits"], &[f32_data(d)], &[f32_data(d_ref)], tol, &format!("{dtype:?} -> {out:?}, {rows} x {vocab}"));
            }
        }
    }

    #[test]
    fn targets_that_do_not_fit_are_declined() {
        let device = Device::cpu();
        let logits = random([4, 10], 4, 1.0, &device);
        assert!(logprob_rows(&logits, &targets(3, 10, &device), false).is_none());
        let lse = random([3], 5, 1.0, &device);
        assert!(logprob_rows_backward(&logits, &lse, &lse, &targets(4, 10, &device), FloatDType::F32).is_none());
    }
}
