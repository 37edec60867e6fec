//! The SwiGLU gate, `silu(gate) * up`, forward and backward, elementwise in vectors of up to 4.
//!
//! With `s = sigmoid(g)`: `d up = dy * g * s`, `d gate = dy * up * s * (1 + g * (1 - s))`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor};
use burn::prelude::Tensor;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::launch::{autodiff_primitive, buffer, cast, contiguous, cube_primitive, elements, empty, with_float_type, Cube};

/// Units per cube of the elementwise kernels.
const UNITS: usize = 256;

#[cube(launch_unchecked)]
fn swiglu_forward<F: Float, N: Size>(gate: &[Vector<F, N>], up: &[Vector<F, N>], out: &mut [Vector<F, N>]) {
    if ABSOLUTE_POS < out.len() {
        let g = Vector::<f32, N>::cast_from(gate[ABSOLUTE_POS]);
        let u = Vector::<f32, N>::cast_from(up[ABSOLUTE_POS]);
        let one = Vector::<f32, N>::new(1.0);
        out[ABSOLUTE_POS] = Vector::<F, N>::cast_from(g / (one + Vector::exp(-g)) * u);
    }
}

#[cube(launch_unchecked)]
fn swiglu_backward<F: Float, N: Size>(gate: &[Vector<F, N>], up: &[Vector<F, N>], dy: &[Vector<F, N>], dgate: &mut [Vector<F, N>], dup: &mut [Vector<F, N>]) {
    if ABSOLUTE_POS < dgate.len() {
        let g = Vector::<f32, N>::cast_from(gate[ABSOLUTE_POS]);
        let u = Vector::<f32, N>::cast_from(up[ABSOLUTE_POS]);
        let d = Vector::<f32, N>::cast_from(dy[ABSOLUTE_POS]);
        let one = Vector::<f32, N>::new(1.0);
        let s = one / (one + Vector::exp(-g));
        dup[ABSOLUTE_POS] = Vector::<F, N>::cast_from(d * g * s);
        dgate[ABSOLUTE_POS] = Vector::<F, N>::cast_from(d * u * s * (one + g * (one - s)));
    }
}

/// The widest vector (4, 2 or 1 elements) that divides `n`.
fn vector_size(n: usize) -> usize {
    [4, 2, 1].into_iter().find(|v| n % v == 0).unwrap_or(1)
}

/// Cubes for `n` elements in vectors of `vector`.
fn cube_count(n: usize, vector: usize) -> CubeCount {
    CubeCount::Static((n / vector).div_ceil(UNITS).max(1) as u32, 1, 1)
}

fn forward(gate: &CubeTensor, up: &CubeTensor) -> Option<CubeTensor> {
    let n = elements(gate);
    let out = empty(gate, gate.meta.shape().clone(), gate.dtype);
    let vector = vector_size(n);
    with_float_type!(gate.dtype, F => unsafe {
        swiglu_forward::launch_unchecked::<F>(&gate.client, cube_count(n, vector), CubeDim::new_1d(UNITS as u32), vector, buffer(gate), buffer(up), buffer(&out))
    });
    Some(out)
}

fn backward(gate: &CubeTensor, up: &CubeTensor, dy: &CubeTensor) -> Option<(CubeTensor, CubeTensor)> {
    let n = elements(gate);
    let (dgate, dup) = (empty(gate, gate.meta.shape().clone(), gate.dtype), empty(gate, gate.meta.shape().clone(), gate.dtype));
    let vector = vector_size(n);
    with_float_type!(gate.dtype, F => unsafe {
        swiglu_backward::launch_unchecked::<F>(&gate.client, cube_count(n, vector), CubeDim::new_1d(UNITS as u32), vector, buffer(gate), buffer(up), buffer(dy), buffer(&dgate), buffer(&dup))
    });
    Some((dgate, dup))
}

/// See [`super::swiglu`].
pub(super) fn swiglu<const D: usize>(gate: &Tensor<D>, up: &Tensor<D>) -> Option<Tensor<D>> {
    if gate.dtype() != up.dtype() || gate.dims() != up.dims() {
        return None;
    }
    // A graph built with gradient checkpointing is another autodiff backend type.
    tracked::<NoCheckpointing, D>(gate, up).or_else(|| tracked::<BalancedCheckpointing, D>(gate, up)).or_else(|| {
        let (g, u) = (contiguous(cube_primitive(gate)?), contiguous(cube_primitive(up)?));
        forward(&g, &u).map(Tensor::from_primitive::<Cube>)
    })
}

#[derive(Debug)]
struct SwigluBackward;

impl Backward<Cube, 2> for SwigluBackward {
    /// Both operands (each gradient needs both).
    type State = (NodeId, NodeId);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let (gate, up) = ops.state;
        let gate = contiguous(checkpointer.retrieve_node_output::<CubeTensor>(gate));
        let up = contiguous(checkpointer.retrieve_node_output::<CubeTensor>(up));
        let dy = contiguous(cast(grads.consume::<Cube>(&ops.node), gate.dtype));
        let (dgate, dup) = backward(&gate, &up, &dy).expect("dtypes the forward took");
        let [gate_parent, up_parent] = ops.parents;
        if let Some(node) = gate_parent {
            grads.register::<Cube>(node.id, dgate);
        }
        if let Some(node) = up_parent {
            grads.register::<Cube>(node.id, dup);
        }
    }
}

fn tracked<C: CheckpointStrategy, const D: usize>(gate: &Tensor<D>, up: &Tensor<D>) -> Option<Tensor<D>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Cube, C>>,
{
    let (gate, up) = (autodiff_primitive::<C, D>(gate)?, autodiff_primitive::<C, D>(up)?);
    let out = forward(&contiguous(gate.primitive().clone()), &contiguous(up.primitive().clone()))?;
    let result = match SwigluBackward.prepare::<C>([gate.node(), up.node()]).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let saved = (prep.checkpoint(&gate), prep.checkpoint(&up));
            prep.finish(saved, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(Tensor::from_primitive::<Autodiff<Cube, C>>(result))
}

#[cfg(all(test, feature = "cube-cpu"))]
mod tests {
    use super::super::{reference, swiglu};
    use crate::check::{assert_all_close, Rng};
    use burn::prelude::{Device, Tensor, TensorData};
    use burn::tensor::FloatDType;

    fn random(shape: [usize; 3], seed: u64, scale: f64, device: &Device) -> Tensor<3> {
        let values = Rng::new(seed).normals(shape.iter().product(), scale);
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// Output and gradients of gate and up under `sum(w ⊙ out)`, fused or by burn's ops.
    fn run(fused: bool, dtype: FloatDType, shape: [usize; 3], checkpointing: bool) -> [TensorData; 3] {
        let device = Device::cpu().autodiff();
        let device = if checkpointing { device.gradient_checkpointing() } else { device };
        let gate = random(shape, 1, 3.0, &device).cast(dtype).require_grad();
        let up = random(shape, 2, 1.0, &device).cast(dtype).require_grad();
        let w = random(shape, 3, 1.0, &device);
        let y = if fused { swiglu(&gate, &up).expect("a Cube device") } else { reference::swiglu(gate.clone(), up.clone()) };
        assert_eq!(y.dtype(), gate.dtype());
        let grads = (y.clone().cast(FloatDType::F32) * w).sum().backward();
        let f32_data = |t: Tensor<3>| t.cast(FloatDType::F32).into_data();
        [f32_data(y), f32_data(gate.grad(&grads).unwrap()), f32_data(up.grad(&grads).unwrap())]
    }

    #[test]
    fn fused_swiglu_gives_burns_values_and_gradients() {
        // 2*5*24 takes vectors of 4; 3*5*7 of 1
        for shape in [[2, 5, 24], [3, 5, 7]] {
            for (dtype, tol) in [(FloatDType::F32, 1e-5), (FloatDType::BF16, 6e-2)] {
                for checkpointing in [false, true] {
                    let reference = run(false, dtype, shape, false);
                    let ours = run(true, dtype, shape, checkpointing);
                    assert_all_close(&["y", "dgate", "dup"], &ours, &reference, tol, &format!("{dtype:?} {shape:?}, checkpointing {checkpointing}"));
                }
            }
        }
    }

    #[test]
    fn untracked_forward_and_mismatched_operands() {
        let device = Device::cpu();
        let (gate, up) = (random([2, 3, 8], 4, 2.0, &device), random([2, 3, 8], 5, 1.0, &device));
        let ours = swiglu(&gate, &up).expect("a Cube device").into_data();
        assert_all_close(&["y"], &[ours], &[reference::swiglu(gate.clone(), up.clone()).into_data()], 1e-5, "untracked");
        assert!(swiglu(&gate, &up.clone().cast(FloatDType::BF16)).is_none());
        assert!(swiglu(&gate, &random([2, 3, 4], 6, 1.0, &device)).is_none());
    }
}
