//! Rotary position embeddings (Hugging Face's rotate-half convention) fused with the move of the
//! heads in front of the positions: `x` `[b, s, heads, hd]` (a projection's output, reshaped) in,
//! `y = x * cos + rotate_half(x) * sin` `[b, heads, s, hd]` out, one unit per element.
//!
//! With `h = hd / 2`, `rotate_half(x) = [-x[h..], x[..h]]`, so the backward pass is
//! `dx[j] = dy[j] cos[j] + dy[j + h] sin[j + h]` for `j < h` and `dx[j] = dy[j] cos[j] - dy[j - h] sin[j - h]`
//! above, written back in `x`'s layout.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor};
use burn::prelude::Tensor;
use burn::tensor::{DType, Shape};
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::launch::{autodiff_primitive, buffer, cast, contiguous, cube_primitive, elements, empty, with_float_type, Cube};

const UNITS: usize = 256;

#[cube(launch_unchecked)]
fn rope_forward<F: Float>(x: &[F], cos: &[f32], sin: &[f32], out: &mut [F], seq: usize, heads: usize, head_dim: usize) {
    if ABSOLUTE_POS < out.len() {
        // out is [b, heads, s, hd]
        let j = ABSOLUTE_POS % head_dim;
        let rest = ABSOLUTE_POS / head_dim;
        let p = rest % seq;
        let rest = rest / seq;
        let head = rest % heads;
        let b = rest / heads;
        let x_row = ((b * seq + p) * heads + head) * head_dim;
        let table = (b * seq + p) * head_dim + j;
        let half = head_dim / 2;
        // rotate_half: -x[j + h] below h, x[j - h] above
        let mut partner = x_row + j;
        let mut sign = 1.0f32;
        if j < half {
            partner += half;
            sign = -1.0f32;
        } else {
            partner -= half;
        }
        let xj = f32::cast_from(x[x_row + j]);
        out[ABSOLUTE_POS] = F::cast_from(xj * cos[table] + sign * f32::cast_from(x[partner]) * sin[table]);
    }
}

#[cube(launch_unchecked)]
fn rope_backward<F: Float>(dy: &[F], cos: &[f32], sin: &[f32], dx: &mut [F], seq: usize, heads: usize, head_dim: usize) {
    if ABSOLUTE_POS < dx.len() {
        // dx is [b, s, heads, hd]
        let j = ABSOLUTE_POS % head_dim;
        let rest = ABSOLUTE_POS / head_dim;
        let head = rest % heads;
        let rest = rest / heads;
        let p = rest % seq;
        let b = rest / seq;
        let dy_row = ((b * heads + head) * seq + p) * head_dim;
        let table = (b * seq + p) * head_dim;
        let half = head_dim / 2;
        let mut value = f32::cast_from(dy[dy_row + j]) * cos[table + j];
        if j < half {
            value += f32::cast_from(dy[dy_row + j + half]) * sin[table + j + half];
        } else {
            value -= f32::cast_from(dy[dy_row + j - half]) * sin[table + j - half];
        }
        dx[ABSOLUTE_POS] = F::cast_from(value);
    }
}

/// `[b, s, heads, hd]` of `x`.
fn dims(x: &CubeTensor) -> [usize; 4] {
    let s = x.meta.shape();
    [s[0], s[1], s[2], s[3]]
}

fn forward(x: &CubeTensor, cos: &CubeTensor, sin: &CubeTensor) -> Option<CubeTensor> {
    let [b, s, heads, hd] = dims(x);
    let out = empty(x, Shape::new([b, heads, s, hd]), x.dtype);
    let n = elements(x);
    with_float_type!(x.dtype, F => unsafe {
        rope_forward::launch_unchecked::<F>(&x.client, CubeCount::Static(n.div_ceil(UNITS).max(1) as u32, 1, 1), CubeDim::new_1d(UNITS as u32), buffer(x), buffer(cos), buffer(sin), buffer(&out), s, heads, hd)
    });
    Some(out)
}

fn backward(dy: &CubeTensor, cos: &CubeTensor, sin: &CubeTensor, x_shape: [usize; 4]) -> Option<CubeTensor> {
    let [_, s, heads, hd] = x_shape;
    let dx = empty(dy, Shape::new(x_shape), dy.dtype);
    let n = elements(dy);
    with_float_type!(dy.dtype, F => unsafe {
        rope_backward::launch_unchecked::<F>(&dy.client, CubeCount::Static(n.div_ceil(UNITS).max(1) as u32, 1, 1), CubeDim::new_1d(UNITS as u32), buffer(dy), buffer(cos), buffer(sin), buffer(&dx), s, heads, hd)
    });
    Some(dx)
}

/// See [`super::rope`]. The tables are constants (no gradient).
pub(super) fn rope(x: &Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Option<Tensor<4>> {
    let [b, s, _, hd] = x.dims();
    if hd % 2 != 0 || cos.dims() != [b, 1, s, hd] || sin.dims() != [b, 1, s, hd] {
        return None;
    }
    let table = |t: &Tensor<4>| -> Option<CubeTensor> {
        let t = t.clone().inner();
        Some(contiguous(cast(cube_primitive(&t)?, DType::F32)))
    };
    let (cos, sin) = (table(cos)?, table(sin)?);
    // A graph built with gradient checkpointing is another autodiff backend type.
    tracked::<NoCheckpointing>(x, &cos, &sin).or_else(|| tracked::<BalancedCheckpointing>(x, &cos, &sin)).or_else(|| {
        forward(&contiguous(cube_primitive(x)?), &cos, &sin).map(Tensor::from_primitive::<Cube>)
    })
}

#[derive(Debug, Clone)]
struct Saved {
    cos: CubeTensor,
    sin: CubeTensor,
    x_shape: [usize; 4],
    dtype: DType,
}

#[derive(Debug)]
struct RopeBackward;

impl Backward<Cube, 1> for RopeBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let saved = ops.state;
        let dy = contiguous(cast(grads.consume::<Cube>(&ops.node), saved.dtype));
        let [x_parent] = ops.parents;
        if let Some(node) = x_parent {
            let dx = backward(&dy, &saved.cos, &saved.sin, saved.x_shape).expect("the dtype the forward took");
            grads.register::<Cube>(node.id, dx);
        }
    }
}

fn tracked<C: CheckpointStrategy>(x: &Tensor<4>, cos: &CubeTensor, sin: &CubeTensor) -> Option<Tensor<4>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Cube, C>>,
{
    let x = autodiff_primitive::<C, 4>(x)?;
    let xc = contiguous(x.primitive().clone());
    let out = forward(&xc, cos, sin)?;
    let saved = Saved { cos: cos.clone(), sin: sin.clone(), x_shape: dims(&xc), dtype: xc.dtype };
    let result = match RopeBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(saved, out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(Tensor::from_primitive::<Autodiff<Cube, C>>(result))
}

#[cfg(all(test, feature = "cube-cpu"))]
mod tests {
    use super::super::{reference, rope};
    use crate::check::{assert_all_close, Rng};
    use burn::prelude::{Device, Tensor, TensorData};
    use burn::tensor::FloatDType;

    fn random(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
        let values = Rng::new(seed).normals(shape.iter().product(), 1.0);
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// cos and sin of real angles (each table's two halves equal, as the model builds them).
    fn tables(b: usize, s: usize, hd: usize, device: &Device) -> (Tensor<4>, Tensor<4>) {
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        for r in 0..b * s {
            for j in 0..hd {
                let angle = (r as f64 + 1.0) * 0.37 / (1.0 + (j % (hd / 2)) as f64);
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let t = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [b, 1, s, hd]), device);
        (t(cos), t(sin))
    }

    fn run(fused: bool, dtype: FloatDType, checkpointing: bool) -> [TensorData; 2] {
        let device = Device::cpu().autodiff();
        let device = if checkpointing { device.gradient_checkpointing() } else { device };
        let (b, s, heads, hd) = (2, 5, 3, 8);
        let x = random([b, s, heads, hd], 1, &device).cast(dtype).require_grad();
        let (cos, sin) = tables(b, s, hd, &device);
        let w = random([b, heads, s, hd], 2, &device);
        let y = if fused { rope(&x, &cos, &sin).expect("a Cube device") } else { reference::rope(x.clone(), &cos, &sin) };
        assert_eq!(y.dims(), [b, heads, s, hd]);
        let grads = (y.clone().cast(FloatDType::F32) * w).sum().backward();
        [y.cast(FloatDType::F32).into_data(), x.grad(&grads).unwrap().cast(FloatDType::F32).into_data()]
    }

    #[test]
    fn fused_rope_gives_burns_values_and_gradients() {
        for (dtype, tol) in [(FloatDType::F32, 1e-5), (FloatDType::BF16, 3e-2)] {
            for checkpointing in [false, true] {
                assert_all_close(&["y", "dx"], &run(true, dtype, checkpointing), &run(false, dtype, false), tol, &format!("{dtype:?}, checkpointing {checkpointing}"));
            }
        }
    }

    #[test]
    fn untracked_and_declined() {
        let device = Device::cpu();
        let x = random([1, 4, 2, 6], 3, &device);
        let (cos, sin) = tables(1, 4, 6, &device);
        let ours = rope(&x, &cos, &sin).expect("a Cube device").into_data();
        assert_all_close(&["y"], &[ours], &[reference::rope(x.clone(), &cos, &sin).into_data()], 1e-5, "untracked");
        let (cos3, sin3) = tables(1, 3, 6, &device);
        assert!(rope(&x, &cos3, &sin3).is_none(), "tables of another length");
    }
}
