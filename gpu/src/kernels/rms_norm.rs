//! RMSNorm, forward and backward, one cube per row.
//!
//! Forward: `r = 1 / sqrt(mean(x^2) + eps)`, `y = x * r * w`; `r` is kept per row.
//! Backward, with `g = w * dy`: `dx = r * g - x * r^3 * sum(g * x) / n`, and
//! `dw = sum over rows of dy * x * r` (per block of rows in a kernel, the blocks summed by burn).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor};
use burn::prelude::Tensor;
use burn::tensor::{DType, FloatDType, Shape};
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::cube_reduce::cube_sum;
use super::launch::{autodiff_primitive, buffer, cast, contiguous, cube_primitive, elements, empty, row_units, with_float_type, Cube};

#[cube(launch_unchecked)]
fn rms_norm_forward<F: Float, O: Float>(x: &[F], weight: &[F], out: &mut [O], rstd: &mut [f32], cols: usize, eps: f32, #[comptime] units: usize) {
    let row = CUBE_POS;
    let base = row * cols;
    let mut squares = 0.0f32;
    let mut j = UNIT_POS as usize;
    while j < cols {
        let v = f32::cast_from(x[base + j]);
        squares += v * v;
        j += units;
    }
    let total = cube_sum(squares, units);
    let r = 1.0f32 / f32::sqrt(total / f32::cast_from(cols) + eps);
    if UNIT_POS == 0 {
        rstd[row] = r;
    }
    let mut j = UNIT_POS as usize;
    while j < cols {
        out[base + j] = O::cast_from(f32::cast_from(x[base + j]) * r * f32::cast_from(weight[j]));
        j += units;
    }
}

#[cube(launch_unchecked)]
fn rms_norm_backward_input<F: Float, O: Float>(x: &[F], weight: &[F], dy: &[O], rstd: &[f32], dx: &mut [F], cols: usize, #[comptime] units: usize) {
    let row = CUBE_POS;
    let base = row * cols;
    let mut dot = 0.0f32;
    let mut j = UNIT_POS as usize;
    while j < cols {
        dot += f32::cast_from(weight[j]) * f32::cast_from(dy[base + j]) * f32::cast_from(x[base + j]);
        j += units;
    }
    let total = cube_sum(dot, units);
    let r = rstd[row];
    let c = r * r * r * total / f32::cast_from(cols);
    let mut j = UNIT_POS as usize;
    while j < cols {
        let g = f32::cast_from(weight[j]) * f32::cast_from(dy[base + j]);
        dx[base + j] = F::cast_from(r * g - c * f32::cast_from(x[base + j]));
        j += units;
    }
}

/// `partials[block, col]` = the sum of `dy * x * r` over block `block`'s rows (one unit a column).
#[cube(launch_unchecked)]
fn rms_norm_backward_weight<F: Float, O: Float>(x: &[F], dy: &[O], rstd: &[f32], partials: &mut [f32], rows: usize, cols: usize, #[comptime] block_rows: usize) {
    let col = CUBE_POS_X as usize * CUBE_DIM_X as usize + UNIT_POS_X as usize;
    let block = CUBE_POS_Y as usize;
    if col < cols {
        let mut row = block * block_rows;
        let mut end = row + block_rows;
        if end > rows {
            end = rows;
        }
        let mut acc = 0.0f32;
        while row < end {
            acc += f32::cast_from(dy[row * cols + col]) * f32::cast_from(x[row * cols + col]) * rstd[row];
            row += 1;
        }
        partials[block * cols + col] = acc;
    }
}

/// The forward kernel: `(y of dtype out, r per row)`; `None` for dtypes it does not take.
fn forward(x: &CubeTensor, weight: &CubeTensor, eps: f32, out: DType) -> Option<(CubeTensor, CubeTensor)> {
    let cols = *x.meta.shape().last()?;
    let rows = elements(x) / cols.max(1);
    let y = empty(x, x.meta.shape().clone(), out);
    let rstd = empty(x, Shape::new([rows]), DType::F32);
    let units = row_units(x);
    with_float_type!(x.dtype, F => with_float_type!(out, O => unsafe {
        rms_norm_forward::launch_unchecked::<F, O>(
            &x.client,
            CubeCount::Static(rows as u32, 1, 1),
            CubeDim::new_1d(units as u32),
            buffer(x),
            buffer(weight),
            buffer(&y),
            buffer(&rstd),
            cols,
            eps,
            units,
        )
    }));
    Some((y, rstd))
}

/// `dx` (dtype of `x`) from the kept row factors.
fn input_grad(x: &CubeTensor, weight: &CubeTensor, dy: &CubeTensor, rstd: &CubeTensor) -> Option<CubeTensor> {
    let cols = *x.meta.shape().last()?;
    let rows = elements(x) / cols.max(1);
    let dx = empty(x, x.meta.shape().clone(), x.dtype);
    let units = row_units(x);
    with_float_type!(x.dtype, F => with_float_type!(dy.dtype, O => unsafe {
        rms_norm_backward_input::launch_unchecked::<F, O>(
            &x.client,
            CubeCount::Static(rows as u32, 1, 1),
            CubeDim::new_1d(units as u32),
            buffer(x),
            buffer(weight),
            buffer(dy),
            buffer(rstd),
            buffer(&dx),
            cols,
            units,
        )
    }));
    Some(dx)
}

/// `dw` `[1, cols]` f32: per-block sums in a kernel, the blocks summed by another.
fn weight_grad(x: &CubeTensor, dy: &CubeTensor, rstd: &CubeTensor) -> Option<Tensor<2>> {
    let cols = *x.meta.shape().last()?;
    let rows = elements(x) / cols.max(1);
    let blocks = super::column_sums::blocks(rows);
    let partials = empty(x, Shape::new([blocks, cols]), DType::F32);
    let units = row_units(x);
    with_float_type!(x.dtype, F => with_float_type!(dy.dtype, O => unsafe {
        rms_norm_backward_weight::launch_unchecked::<F, O>(
            &x.client,
            CubeCount::Static(cols.div_ceil(units) as u32, blocks as u32, 1),
            CubeDim::new_1d(units as u32),
            buffer(x),
            buffer(dy),
            buffer(rstd),
            buffer(&partials),
            rows,
            cols,
            super::column_sums::BLOCK_ROWS,
        )
    }));
    Some(Tensor::<2>::from_primitive::<Cube>(super::column_sums::sum_partials(&partials)))
}

/// See [`super::rms_norm`].
pub(super) fn rms_norm<const D: usize>(x: &Tensor<D>, weight: &Tensor<2>, eps: f64, out: FloatDType) -> Option<Tensor<D>> {
    if x.dtype() != weight.dtype() || weight.dims()[0] != 1 || weight.dims()[1] != x.dims()[D - 1] {
        return None;
    }
    let settings = Settings { eps: eps as f32, out: out.into() };
    // A graph built with gradient checkpointing is another autodiff backend type.
    tracked::<NoCheckpointing, D>(x, weight, settings).or_else(|| tracked::<BalancedCheckpointing, D>(x, weight, settings)).or_else(|| {
        let (x, w) = (contiguous(cube_primitive(x)?), contiguous(cube_primitive(weight)?));
        let (y, _) = forward(&x, &w, settings.eps, settings.out)?;
        Some(Tensor::from_primitive::<Cube>(y))
    })
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    eps: f32,
    out: DType,
}

#[derive(Debug, Clone)]
struct Saved {
    x: NodeId,
    weight: NodeId,
    /// `[rows]` f32: each row's `1 / sqrt(mean(x^2) + eps)`.
    rstd: CubeTensor,
    out: DType,
}

#[derive(Debug)]
struct RmsNormBackward;

impl Backward<Cube, 2> for RmsNormBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let saved = ops.state;
        let x = contiguous(checkpointer.retrieve_node_output::<CubeTensor>(saved.x));
        let weight = contiguous(checkpointer.retrieve_node_output::<CubeTensor>(saved.weight));
        let dy = contiguous(cast(grads.consume::<Cube>(&ops.node), saved.out));
        let [x_parent, weight_parent] = ops.parents;
        if let Some(node) = x_parent {
            let dx = input_grad(&x, &weight, &dy, &saved.rstd).expect("dtypes the forward took");
            grads.register::<Cube>(node.id, dx);
        }
        if let Some(node) = weight_parent {
            let dw = weight_grad(&x, &dy, &saved.rstd).expect("dtypes the forward took").cast(FloatDType::from(weight.dtype));
            grads.register::<Cube>(node.id, crate::primitive::primitive::<Cube, 2>(dw));
        }
    }
}

fn tracked<C: CheckpointStrategy, const D: usize>(x: &Tensor<D>, weight: &Tensor<2>, settings: Settings) -> Option<Tensor<D>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Cube, C>>,
{
    let (x, weight) = (autodiff_primitive::<C, D>(x)?, autodiff_primitive::<C, 2>(weight)?);
    let (xc, wc) = (contiguous(x.primitive().clone()), contiguous(weight.primitive().clone()));
    let (y, rstd) = forward(&xc, &wc, settings.eps, settings.out)?;
    let result = match RmsNormBackward.prepare::<C>([x.node(), weight.node()]).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let saved = Saved { x: prep.checkpoint(&x), weight: prep.checkpoint(&weight), rstd, out: settings.out };
            prep.finish(saved, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Some(Tensor::from_primitive::<Autodiff<Cube, C>>(result))
}

#[cfg(all(test, feature = "cube-cpu"))]
mod tests {
    use super::super::{reference, rms_norm};
    use crate::check::{assert_all_close, Rng};
    use burn::prelude::{Device, Tensor, TensorData};
    use burn::tensor::FloatDType;

    fn random<const D: usize>(shape: [usize; D], seed: u64, scale: f64, device: &Device) -> Tensor<D> {
        let values = Rng::new(seed).normals(shape.iter().product(), scale);
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// Output and gradients of x and weight under `sum(w ⊙ out)`, fused or by burn's ops.
    fn run(fused: bool, dtype: FloatDType, out: FloatDType, checkpointing: bool) -> [TensorData; 3] {
        let device = Device::cpu().autodiff();
        let device = if checkpointing { device.gradient_checkpointing() } else { device };
        let (rows, cols) = (37, 96);
        let x = random([2, rows, cols], 1, 2.0, &device).cast(dtype).require_grad();
        let weight = (random([1, cols], 2, 0.3, &device) + 1.0).cast(dtype).require_grad();
        let w = random([2, rows, cols], 3, 1.0, &device);
        let y = if fused { rms_norm(&x, &weight, 1e-6, out).expect("a Cube device") } else { reference::rms_norm(x.clone(), &weight, 1e-6, out) };
        assert_eq!(y.dtype(), out.into());
        let grads = (y.clone().cast(FloatDType::F32) * w).sum().backward();
        let f32_data = |t: Tensor<3>| t.cast(FloatDType::F32).into_data();
        [f32_data(y), f32_data(x.grad(&grads).unwrap()), weight.grad(&grads).unwrap().cast(FloatDType::F32).into_data()]
    }

    #[test]
    fn fused_rms_norm_gives_burns_values_and_gradients() {
        for (dtype, out, tol) in [
            (FloatDType::F32, FloatDType::F32, 2e-5),
            (FloatDType::F32, FloatDType::BF16, 1e-2),
            (FloatDType::BF16, FloatDType::BF16, 3e-2),
        ] {
            for checkpointing in [false, true] {
                let reference = run(false, dtype, out, false);
                let ours = run(true, dtype, out, checkpointing);
                assert_all_close(&["y", "dx", "dweight"], &ours, &reference, tol, &format!("{dtype:?} -> {out:?}, checkpointing {checkpointing}"));
            }
        }
    }

    #[test]
    fn untracked_forward_and_strided_input() {
        let device = Device::cpu();
        let x = random([24, 40], 4, 1.0, &device);
        let weight = random([1, 24], 5, 1.0, &device);
        // a transposed view: the op makes it contiguous first
        let xt = x.transpose();
        let ours = rms_norm(&xt, &weight, 1e-5, FloatDType::F32).expect("a Cube device").into_data();
        let theirs = reference::rms_norm(xt, &weight, 1e-5, FloatDType::F32).into_data();
        assert_all_close(&["y"], &[ours], &[theirs], 1e-5, "transposed input");
    }

    #[test]
    fn mismatched_weight_is_declined() {
        let device = Device::cpu();
        let x = random([3, 8], 6, 1.0, &device);
        assert!(rms_norm(&x, &random([1, 7], 7, 1.0, &device), 1e-6, FloatDType::F32).is_none());
        assert!(rms_norm(&x, &random([1, 8], 7, 1.0, &device).cast(FloatDType::BF16), 1e-6, FloatDType::F32).is_none());
    }
}
