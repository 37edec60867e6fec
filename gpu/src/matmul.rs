//! [`matmul`]: every matrix product of the model (linear layers, LM head, attention's batched
//! products). On a CUDA device it runs through the cuBLASLt GEMM, forward and backward (an autodiff
//! op of ours: dA = dC B^T, dB = A^T dC, the transposes being free views); everywhere else, and
//! for operands the GEMM does not take (broadcast batch dims, an unsupported dtype), it is burn's
//! own `matmul`.
//!
//! The autodiff op is generic over the backend's primitive product ([`Gemm`]), so the CPU tests
//! run the very same op on flex (`matmul_through_op`) and compare it with burn's matmul.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn::backend::autodiff::NodeId;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor};
use burn::prelude::Tensor;
use burn::tensor::FloatDType;

use crate::kernels::reference::cast_to;

/// A backend's own (batched) product of primitives; `None` when it cannot take these operands
/// (the caller then uses burn's matmul).
pub trait Gemm: Backend {
    fn gemm(a: &FloatTensor<Self>, b: &FloatTensor<Self>) -> Option<FloatTensor<Self>>;

    /// [`Gemm::gemm`], or burn's matmul where it declines (the backward pass must produce a value).
    fn gemm_or_matmul(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::gemm(&a, &b).unwrap_or_else(|| Self::float_matmul(a, b))
    }
}

/// `a @ b` over the last two dims (either operand may be a transposed view). See the module doc.
pub fn matmul<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "cuda")]
    if let Some(c) = through_op::<burn::backend::Cube, D>(&a, &b) {
        return c;
    }
    a.matmul(b)
}

/// `a @ b` with both operands cast to `compute` and the product returned in f32: autocast's rule for
/// matrix products (f32 master weights, bf16 GEMMs with f32 accumulation); everything else stays f32.
/// The model's attention products, and `check kernels`' reference for the decode attention.
pub fn matmul_in<const D: usize>(a: Tensor<D>, b: Tensor<D>, compute: FloatDType) -> Tensor<D> {
    cast_to(matmul_compute(a, b, compute), FloatDType::F32)
}

/// `a @ b` with both operands cast to `compute` (no cast where one already is), the product left in `compute`.
pub fn matmul_compute<const D: usize>(a: Tensor<D>, b: Tensor<D>, compute: FloatDType) -> Tensor<D> {
    matmul(cast_to(a, compute), cast_to(b, compute))
}

/// `a @ b` written in f32 whatever the operands' dtype (a bf16 pair accumulates in f32 as ever):
/// on CUDA the cuBLASLt GEMM writes f32 itself, where a product then a cast took two passes over
/// it. For untracked tensors (the custom ops' own passes).
pub fn matmul_f32<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    #[cfg(all(feature = "cuda", not(feature = "fusion")))]
    if let Some(c) = cuda::matmul_f32(&a, &b) {
        return c;
    }
    matmul(a, b).cast(FloatDType::F32)
}

/// `acc[.., 0..rows, :] += a @ b` in f32, `acc` returned (without `acc`, [`matmul_f32`]), where
/// the product's `rows` are all of `acc`'s second-to-last dim or its first ones: a sum over chunks
/// (the LM head's gradient, attention's dK and dV). On CUDA the GEMM adds into `acc`'s buffer
/// (cuBLASLt's beta = 1), where a product, a cast, a slice, an addition and a slice assignment took
/// five passes. `acc` is f32 and the caller's own accumulator: no other tensor may share its
/// buffer, since it is written in place.
pub fn matmul_add_f32<const D: usize>(acc: Option<Tensor<D>>, a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    let Some(acc) = acc else { return matmul_f32(a, b) };
    #[cfg(all(feature = "cuda", not(feature = "fusion")))]
    let acc = match cuda::matmul_add_f32(acc, &a, &b) {
        Ok(sum) => return sum,
        Err(acc) => acc,
    };
    let c = matmul(a, b).cast(FloatDType::F32);
    if c.dims() == acc.dims() {
        return acc + c;
    }
    let ranges = c.dims().map(|d| 0..d);
    acc.clone().slice_assign(ranges.clone(), acc.slice(ranges) + c)
}

/// The cuBLASLt side of [`matmul_f32`] and [`matmul_add_f32`].
#[cfg(all(feature = "cuda", not(feature = "fusion")))]
mod cuda {
    use crate::cuda::{gemm_cube_to, GemmOutput};
    use burn::backend::Cube;
    use burn::prelude::Tensor;
    use burn::tensor::DType;
    use burn_cubecl::tensor::CubeTensor;

    fn operands<const D: usize>(a: &Tensor<D>, b: &Tensor<D>) -> Option<(CubeTensor, CubeTensor)> {
        Some((a.clone().try_into_primitive::<Cube>().ok()?, b.clone().try_into_primitive::<Cube>().ok()?))
    }

    pub(super) fn matmul_f32<const D: usize>(a: &Tensor<D>, b: &Tensor<D>) -> Option<Tensor<D>> {
        let (pa, pb) = operands(a, b)?;
        gemm_cube_to(&pa, &pb, false, false, GemmOutput::New(DType::F32)).ok().map(Tensor::from_primitive::<Cube>)
    }

    /// `Err` hands `acc` back where the GEMM does not apply: not CUDA tensors, a non-f32 `acc`,
    /// shapes the GEMM declines.
    pub(super) fn matmul_add_f32<const D: usize>(acc: Tensor<D>, a: &Tensor<D>, b: &Tensor<D>) -> Result<Tensor<D>, Tensor<D>> {
        let Some((pa, pb)) = operands(a, b) else { return Err(acc) };
        let rows = pa.meta.shape()[D - 2];
        if acc.dtype() != DType::F32 || acc.dims()[D - 2] < rows || acc.clone().try_into_primitive::<Cube>().is_err() {
            return Err(acc);
        }
        // not `can_mut()`: the GEMM that wrote `acc` may still hold its handle on the runner thread
        let pacc = acc.try_into_primitive::<Cube>().unwrap_or_else(|_| unreachable!("checked above"));
        // the product's rows of `acc`: a view of its buffer with its strides
        let mut view = pacc.clone();
        view.meta.shape_mut()[D - 2] = rows;
        let added = gemm_cube_to(&pa, &pb, false, false, GemmOutput::AddTo(&view)).is_ok();
        drop(view);
        if added { Ok(Tensor::from_primitive::<Cube>(pacc)) } else { Err(Tensor::from_primitive::<Cube>(pacc)) }
    }
}

/// [`matmul`] with flex's matmul as the primitive product, so that CPU tests exercise the
/// autodiff op itself; `None` when the operands are not flex tensors.
#[doc(hidden)]
pub fn matmul_through_op<const D: usize>(a: &Tensor<D>, b: &Tensor<D>) -> Option<Tensor<D>> {
    through_op::<burn::backend::Flex, D>(a, b)
}

impl Gemm for burn::backend::Flex {
    fn gemm(a: &FloatTensor<Self>, b: &FloatTensor<Self>) -> Option<FloatTensor<Self>> {
        Some(Self::float_matmul(a.clone(), b.clone()))
    }
}

#[cfg(feature = "cuda")]
impl Gemm for burn::backend::Cube {
    fn gemm(a: &FloatTensor<Self>, b: &FloatTensor<Self>) -> Option<FloatTensor<Self>> {
        // A GEMM that failed on the runner thread left garbage in a tensor already in use: stop.
        if let Err(e) = crate::cuda::take_async_error() {
            panic!("{e}");
        }
        #[cfg(not(feature = "fusion"))]
        return crate::cuda::gemm_cube(a, b, false, false).ok();
        #[cfg(feature = "fusion")]
        return crate::fused::gemm(a, b, false, false);
    }
}

/// On CubeCL's CPU runtime (the `cube-cpu` tests, no CUDA) the product is burn's own matmul, so
/// that ops generic over [`Gemm`] (the attention) run there with the fused kernels.
#[cfg(all(feature = "cube-cpu", not(feature = "cuda")))]
impl Gemm for burn::backend::Cube {
    fn gemm(a: &FloatTensor<Self>, b: &FloatTensor<Self>) -> Option<FloatTensor<Self>> {
        Some(Self::float_matmul(a.clone(), b.clone()))
    }
}

/// The product on backend `B` when both operands live there (tracked through our op on an autodiff
/// device, with or without gradient checkpointing), `None` otherwise.
fn through_op<B: Gemm, const D: usize>(a: &Tensor<D>, b: &Tensor<D>) -> Option<Tensor<D>>
where
    DispatchTensor: DispatchKindConversion<B>
        + DispatchKindConversion<Autodiff<B, NoCheckpointing>>
        + DispatchKindConversion<Autodiff<B, BalancedCheckpointing>>,
{
    // A graph built with gradient checkpointing is another autodiff backend type.
    tracked_through_op::<B, NoCheckpointing, D>(a, b).or_else(|| tracked_through_op::<B, BalancedCheckpointing, D>(a, b)).or_else(|| {
        let (pa, pb) = (a.clone().try_into_primitive::<B>().ok()?, b.clone().try_into_primitive::<B>().ok()?);
        B::gemm(&pa, &pb).map(Tensor::from_primitive::<B>)
    })
}

fn tracked_through_op<B: Gemm, C: CheckpointStrategy, const D: usize>(a: &Tensor<D>, b: &Tensor<D>) -> Option<Tensor<D>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<B, C>>,
{
    let (pa, pb) = (a.clone().try_into_primitive::<Autodiff<B, C>>().ok()?, b.clone().try_into_primitive::<Autodiff<B, C>>().ok()?);
    autodiff_gemm::<B, C>(pa, pb).map(Tensor::from_primitive::<Autodiff<B, C>>)
}

#[derive(Debug)]
struct GemmBackward;

impl<B: Gemm> Backward<B, 2> for GemmBackward {
    /// The operands, kept only when the other side needs them (dA needs B, dB needs A).
    type State = (Option<NodeId>, Option<NodeId>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let (lhs, rhs) = ops.state;
        let lhs: Option<FloatTensor<B>> = lhs.map(|id| checkpointer.retrieve_node_output(id));
        let rhs: Option<FloatTensor<B>> = rhs.map(|id| checkpointer.retrieve_node_output(id));
        binary::<B, _, _>(
            ops.parents,
            ops.node,
            grads,
            |grad| B::gemm_or_matmul(grad, B::float_transpose(rhs.expect("kept when lhs is tracked"))),
            |grad| rhs_gradient::<B>(lhs.expect("kept when rhs is tracked"), grad),
        );
    }
}

/// dB = A^T dC. A rank-2 product's `b` is a weight's transposed view `W^T` wherever the graph tracks
/// it (linear layers, the LM head), so dB is made as `(dC^T A)^T`: the same values, written in `W`'s
/// own layout, so that the transpose's backward hands the weight a contiguous gradient instead of
/// a strided one that a copy kernel packs before the optimizer (120 copies per micro-batch at 0.5B).
fn rhs_gradient<B: Gemm>(lhs: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    use burn::backend::TensorMetadata;
    if grad.shape().num_dims() == 2 {
        B::float_transpose(B::gemm_or_matmul(B::float_transpose(grad), lhs))
    } else {
        B::gemm_or_matmul(B::float_transpose(lhs), grad)
    }
}

/// The forward product as a node of the autodiff graph; `None` when `B` declines the operands.
fn autodiff_gemm<B: Gemm, C: CheckpointStrategy>(
    lhs: FloatTensor<Autodiff<B, C>>,
    rhs: FloatTensor<Autodiff<B, C>>,
) -> Option<FloatTensor<Autodiff<B, C>>> {
    let output = B::gemm(lhs.primitive(), rhs.primitive())?;
    let (lhs_tracked, rhs_tracked) = (lhs.is_tracked(), rhs.is_tracked());
    Some(match GemmBackward.prepare::<C>([lhs.node(), rhs.node()]).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let lhs_state = rhs_tracked.then(|| prep.checkpoint(&lhs));
            let rhs_state = lhs_tracked.then(|| prep.checkpoint(&rhs));
            prep.finish((lhs_state, rhs_state), output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::{Device, TensorData};
    use burn::tensor::{FloatDType, Tolerance};

    fn random(shape: [usize; 2], seed: u64, device: &Device) -> Tensor<2> {
        let values = crate::check::Rng::new(seed).normals(shape[0] * shape[1], 1.0);
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// Loss `sum(w ⊙ (a @ b))` with fixed weights, so every output element gets its own gradient.
    fn gradients(use_op: bool, transpose_b: bool, dtype: FloatDType, checkpointing: bool) -> [TensorData; 3] {
        let device = Device::default().autodiff();
        let device = if checkpointing { device.gradient_checkpointing() } else { device };
        let a = random([5, 7], 1, &device).require_grad();
        let b_param = random(if transpose_b { [3, 7] } else { [7, 3] }, 2, &device).require_grad();
        let w = random([5, 3], 3, &device);
        let b = if transpose_b { b_param.clone().transpose() } else { b_param.clone() };
        let (ac, bc) = (a.clone().cast(dtype), b.cast(dtype));
        let c = if use_op { matmul_through_op(&ac, &bc).expect("flex tensors") } else { ac.matmul(bc) };
        let c = c.cast(FloatDType::F32);
        let grads = (c.clone() * w).sum().backward();
        [c.into_data(), a.grad(&grads).unwrap().into_data(), b_param.grad(&grads).unwrap().into_data()]
    }

    #[test]
    fn the_op_gives_burns_values_and_gradients() {
        // with gradient checkpointing the graph is another autodiff backend type: the op still runs
        for (transpose_b, checkpointing) in [(false, false), (true, false), (false, true), (true, true)] {
            for (dtype, tol) in [(FloatDType::F32, 1e-6), (FloatDType::BF16, 1e-2)] {
                let ours = gradients(true, transpose_b, dtype, checkpointing);
                let burns = gradients(false, transpose_b, dtype, false);
                for (o, r) in ours.iter().zip(&burns) {
                    assert_eq!(o.shape(), r.shape());
                    o.assert_approx_eq::<f32>(r, Tolerance::absolute(tol));
                }
            }
        }
    }

    #[test]
    fn batched_products_with_a_transposed_view() {
        let device = Device::default().autodiff();
        let data = |shape: [usize; 4], seed| {
            let values = crate::check::Rng::new(seed).normals(shape.iter().product(), 1.0);
            Tensor::<4>::from_data(TensorData::new(values, shape), &device).require_grad()
        };
        let (q, k, w) = (data([2, 3, 4, 5], 8), data([2, 3, 6, 5], 9), data([2, 3, 4, 6], 10));
        let run = |use_op: bool| {
            let kt = k.clone().swap_dims(2, 3);
            let s = if use_op { matmul_through_op(&q, &kt).unwrap() } else { q.clone().matmul(kt) };
            let grads = (s.clone() * w.clone()).sum().backward();
            [s.into_data(), q.grad(&grads).unwrap().into_data(), k.grad(&grads).unwrap().into_data()]
        };
        for (o, r) in run(true).iter().zip(&run(false)) {
            assert_eq!(o.shape(), r.shape());
            o.assert_approx_eq::<f32>(r, Tolerance::absolute(1e-5));
        }
    }

    #[test]
    fn untracked_operand_gets_no_gradient_and_the_other_still_does() {
        let device = Device::default().autodiff();
        let a = random([4, 6], 4, &device);
        let b = random([6, 2], 5, &device).require_grad();
        let c = matmul_through_op(&a, &b).unwrap();
        let grads = c.sum().backward();
        assert!(a.grad(&grads).is_none());
        // d sum(a @ b) / db = a^T @ ones: each row of the gradient is the column sum of a.
        let expected = a.clone().transpose().matmul(Tensor::ones([4, 2], &device));
        b.grad(&grads).unwrap().into_data().assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
    }

    #[test]
    fn without_autodiff_it_is_the_plain_product() {
        let device = Device::default();
        let (a, b) = (random([3, 4], 6, &device), random([5, 4], 7, &device).transpose());
        let ours = matmul_through_op(&a, &b).unwrap();
        ours.into_data().assert_approx_eq::<f32>(&a.clone().matmul(b.clone()).into_data(), Tolerance::absolute(1e-6));
        matmul(a.clone(), b.clone()).into_data().assert_approx_eq::<f32>(&a.matmul(b).into_data(), Tolerance::absolute(0.0));
    }
}
