//! The cuBLASLt GEMM under burn's fusion (the `fusion` feature). There a CUDA tensor is a lazy
//! handle with a shape and a dtype but no buffer: the product joins the fusion stream as a custom
//! operation, which gets real `CubeTensor`s when the stream runs it, on the CUDA stream the fused
//! kernels around it are launched on (docs/gpu/FUSION-NOTES.md, section 2A).
//!
//! Built and type-checked, not yet run on a GPU: the next device session compares the fused build
//! with the unfused one (`check sft-step`, `check decode-graph`, `bench gemm|train|rollout`).

use burn::backend::fusion::custom::{CustomOpIr, HandleContainer, Operation, OperationIr, OperationOutput, StreamId, TensorIr};
use burn::backend::fusion::{ExecutionError, FusionTensor};
use burn::backend::ops::FloatTensorOps;
use burn_cubecl::fusion::{CubeFusionHandle, FusionCubeRuntime};
use burn_cubecl::CubeBackend;

pub(crate) type LazyTensor = FusionTensor<FusionCubeRuntime>;

#[derive(Debug)]
struct GemmOp {
    a: TensorIr,
    b: TensorIr,
    out: TensorIr,
    transpose_a: bool,
    transpose_b: bool,
}

impl Operation<FusionCubeRuntime> for GemmOp {
    fn execute(&self, handles: &mut HandleContainer<CubeFusionHandle>) -> Result<(), ExecutionError> {
        let a = handles.get_float_tensor::<CubeBackend>(&self.a);
        let b = handles.get_float_tensor::<CubeBackend>(&self.b);
        // Strides are known only now: a layout the GEMM declines takes burn's own product.
        let c = match crate::cuda::gemm_cube(&a, &b, self.transpose_a, self.transpose_b) {
            Ok(c) => c,
            Err(_) => {
                let a = if self.transpose_a { CubeBackend::float_swap_dims(a, self.a.shape.num_dims() - 2, self.a.shape.num_dims() - 1) } else { a };
                let b = if self.transpose_b { CubeBackend::float_swap_dims(b, self.b.shape.num_dims() - 2, self.b.shape.num_dims() - 1) } else { b };
                CubeBackend::float_matmul(a, b)
            }
        };
        handles.register_float_tensor::<CubeBackend>(&self.out.id, c);
        Ok(())
    }
}

/// `op(a) @ op(b)` queued on the fusion stream; `None` (burn's matmul then) for operands the GEMM
/// never takes: ranks or batch dims that differ, inner dims that disagree, dtypes that differ.
pub(crate) fn gemm(a: &LazyTensor, b: &LazyTensor, transpose_a: bool, transpose_b: bool) -> Option<LazyTensor> {
    let (sa, sb) = (a.shape.to_vec(), b.shape.to_vec());
    let rank = sa.len();
    if rank < 2 || sb.len() != rank || sa[..rank - 2] != sb[..rank - 2] || a.dtype != b.dtype {
        return None;
    }
    let (m, k) = if transpose_a { (sa[rank - 1], sa[rank - 2]) } else { (sa[rank - 2], sa[rank - 1]) };
    let (kb, n) = if transpose_b { (sb[rank - 1], sb[rank - 2]) } else { (sb[rank - 2], sb[rank - 1]) };
    if k != kb {
        return None;
    }
    let out_shape: Vec<usize> = sa[..rank - 2].iter().copied().chain([m, n]).collect();
    let client = a.client.clone();
    let out = TensorIr::uninit(client.create_empty_handle(), out_shape.into(), a.dtype);
    // Clones: the inputs stay readable by the caller (read-only in the op's description).
    let (a, b) = (a.clone().into_ir(), b.clone().into_ir());
    let description = CustomOpIr { id: "r1kit/cublaslt-gemm".into(), inputs: vec![a.clone(), b.clone()], outputs: vec![out.clone()], scalars: vec![] };
    Some(client.register(StreamId::current(), OperationIr::Custom(description), GemmOp { a, b, out, transpose_a, transpose_b }).output())
}
