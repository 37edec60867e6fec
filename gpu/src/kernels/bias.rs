//! A linear layer's bias added to its product, `y + bias` (`y` `[rows, cols]` in the product's
//! dtype, `bias` `[1, cols]` f32), as an autodiff op whose backward sums `dy` over the rows with
//! [`column_sums`](super::column_sums) into an f32 gradient. Through burn's ops the bias was cast to
//! `y`'s dtype and its gradient a bf16 reduction over the 8,192 rows of a micro-batch, 66 us each
//! for q, k and v of every layer on an H200 (docs/gpu/RESULTS.md, Step 11).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor};
use burn::prelude::Tensor;
use burn_cubecl::tensor::CubeTensor;

use super::column_sums::column_sums;
use super::launch::{autodiff_primitive, cast, contiguous, cube_primitive, Cube};

/// `y + bias` on the inner backend, in `y`'s dtype.
fn forward(y: CubeTensor, bias: CubeTensor) -> CubeTensor {
    let dtype = y.dtype;
    let (y, bias): (Tensor<2>, Tensor<2>) = (Tensor::from_primitive::<Cube>(y), Tensor::from_primitive::<Cube>(cast(bias, dtype)));
    (y + bias).try_into_primitive::<Cube>().unwrap_or_else(|_| unreachable!("computed on Cube"))
}

/// See [`super::add_bias`].
pub(super) fn add_bias(y: &Tensor<2>, bias: &Tensor<2>) -> Option<Tensor<2>> {
    if bias.dims() != [1, y.dims()[1]] {
        return None;
    }
    // A graph built with gradient checkpointing is another autodiff backend type.
    tracked::<NoCheckpointing>(y, bias)
        .or_else(|| tracked::<BalancedCheckpointing>(y, bias))
        .or_else(|| Some(Tensor::from_primitive::<Cube>(forward(cube_primitive(y)?, cube_primitive(bias)?))))
}

#[derive(Debug)]
struct BiasBackward;

impl Backward<Cube, 2> for BiasBackward {
    /// The bias's dtype, for its gradient.
    type State = burn::tensor::DType;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Cube>(&ops.node);
        let [y_parent, bias_parent] = ops.parents;
        if let Some(node) = bias_parent {
            let dbias = column_sums(&contiguous(dy.clone())).expect("a float gradient of rank 2");
            grads.register::<Cube>(node.id, cast(dbias, ops.state));
        }
        if let Some(node) = y_parent {
            grads.register::<Cube>(node.id, dy);
        }
    }
}

fn tracked<C: CheckpointStrategy>(y: &Tensor<2>, bias: &Tensor<2>) -> Option<Tensor<2>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Cube, C>>,
{
    let (y, bias) = (autodiff_primitive::<C, 2>(y)?, autodiff_primitive::<C, 2>(bias)?);
    let bias_dtype = bias.primitive().dtype;
    let out = forward(y.primitive().clone(), bias.primitive().clone());
    let result = match BiasBackward.prepare::<C>([y.node(), bias.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(bias_dtype, out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(Tensor::from_primitive::<Autodiff<Cube, C>>(result))
}

#[cfg(all(test, feature = "cube-cpu"))]
mod tests {
    use super::super::add_bias;
    use crate::check::{assert_all_close, Rng};
    use burn::prelude::{Device, Tensor, TensorData};
    use burn::tensor::FloatDType;

    fn random(shape: [usize; 2], seed: u64, device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(Rng::new(seed).normals(shape[0] * shape[1], 1.0), shape), device)
    }

    /// Output and gradients of y and the bias under `sum(w ⊙ out)`, by the op or by burn's ops.
    fn run(fused: bool, dtype: FloatDType, rows: usize, checkpointing: bool) -> [TensorData; 3] {
        let device = Device::cpu().autodiff();
        let device = if checkpointing { device.gradient_checkpointing() } else { device };
        let y = random([rows, 12], 1, &device).cast(dtype).require_grad();
        let bias = random([1, 12], 2, &device).require_grad();
        let w = random([rows, 12], 3, &device);
        let out = if fused { add_bias(&y, &bias).expect("a Cube device") } else { y.clone() + bias.clone().cast(dtype) };
        assert_eq!(out.dtype(), dtype.into());
        let grads = (out.clone().cast(FloatDType::F32) * w).sum().backward();
        let dbias = bias.grad(&grads).unwrap();
        assert_eq!(dbias.dtype(), FloatDType::F32.into(), "the bias's own dtype");
        let f32_data = |t: Tensor<2>| t.cast(FloatDType::F32).into_data();
        [f32_data(out), f32_data(y.grad(&grads).unwrap()), dbias.into_data()]
    }

    #[test]
    fn the_op_gives_burns_values_and_gradients() {
        // 150 rows: two full blocks of 64 and a short one
        for rows in [5, 150] {
            for (dtype, tol) in [(FloatDType::F32, 1e-5), (FloatDType::BF16, 5e-2)] {
                for checkpointing in [false, true] {
                    let reference = run(false, dtype, rows, false);
                    let ours = run(true, dtype, rows, checkpointing);
                    assert_all_close(&["out", "dy", "dbias"], &ours, &reference, tol, &format!("{rows} rows, {dtype:?}, checkpointing {checkpointing}"));
                }
            }
        }
    }

    #[test]
    fn a_bias_of_another_width_is_declined() {
        let device = Device::cpu();
        assert!(add_bias(&random([3, 12], 4, &device), &random([1, 5], 5, &device)).is_none());
    }
}
