//! GPU kernels that burn does not have, behind plain functions on burn tensors.
//!
//! [`matmul`] is what the model calls for its linear layers: cuBLASLt on CUDA, forward and backward.
//!
//! Below it: [`gemm`], a cuBLASLt GEMM with f32 accumulation enqueued on burn's own CUDA
//! stream on burn-allocated memory (bf16, f16, f32), with no host synchronisation, in order with
//! burn's own kernels. It needs the `cuda` feature, which needs the patched cubecl-cuda that
//! `scripts/build-cuda.sh` swaps in (gpu/patches/); without the feature this crate is the CPU-
//! testable host side (layouts, reference, bench harness) and [`gemm`] returns an error.
//!
//! `r1kit bench gemm --device cuda` ([`bench::bench_gemm`]) checks it against an f64 host
//! reference and burn's matmul, stresses ordering, and times it against burn's matmul;
//! `gpu/bench_gemm_torch.py` times the same shapes with PyTorch.

pub mod bench;
pub mod check;
#[cfg(feature = "cuda")]
mod cuda;
#[cfg(feature = "fusion")]
mod fused;
#[cfg(all(feature = "cuda", not(feature = "fusion")))]
mod nccl;
pub mod attention;
pub mod kernels;
mod key_mask;
pub mod layout;
pub mod logprobs;
mod matmul;
mod primitive;

pub use key_mask::{KeyMask, BLOCKED};
pub use matmul::{Gemm, matmul, matmul_compute, matmul_in, matmul_through_op};

use burn::prelude::{Device, Tensor};

/// `(start, end)` of consecutive runs of `rows` out of `n` (the last one shorter): the chunks
/// the autodiff ops compute in.
pub(crate) fn row_chunks(n: usize, rows: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n).step_by(rows).map(move |start| (start, (start + rows).min(n)))
}

/// Whether this build has the CUDA GEMM.
pub const CUDA: bool = cfg!(feature = "cuda");

/// The error of CUDA-only entry points in a CPU build.
pub const NO_CUDA: &str = "this r1kit was built without CUDA; rebuild with `--features cuda` (scripts/build-cuda.sh)";

/// `C = op(a) @ op(b)` on a CUDA device, `op(x)` being `x^T` when its flag is set, through
/// cuBLASLt with f32 accumulation. `a` and `b` are 2-D, non-autodiff, of one dtype (bf16, f16 or
/// f32), row-major, padded-row or transposed views (a `transpose()` costs no copy); `C` is a new
/// row-major tensor of that dtype. Enqueued on burn's stream of this thread: nothing waits.
pub fn gemm(a: Tensor<2>, b: Tensor<2>, transpose_a: bool, transpose_b: bool) -> anyhow::Result<Tensor<2>> {
    #[cfg(feature = "cuda")]
    {
        cuda::gemm(a, b, transpose_a, transpose_b)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (a, b, transpose_a, transpose_b);
        anyhow::bail!("gemm: {NO_CUDA}")
    }
}

/// The error a GEMM or an NCCL all-reduce hit on cubecl's device-runner thread since the last
/// call (the enqueue happens there, after [`gemm`] returned). [`gemm`] checks it too.
pub fn take_async_error() -> anyhow::Result<()> {
    #[cfg(feature = "cuda")]
    {
        cuda::take_async_error()
    }
    #[cfg(not(feature = "cuda"))]
    {
        Ok(())
    }
}

/// Whether [`nccl_all_reduce_sum_each`] runs for tensors on `device`: a CUDA device of a CUDA build
/// without fusion, unless `R1KIT_NCCL=0` is set (then the caller's host collective does the job).
pub fn nccl_applies(device: &Device) -> bool {
    cfg!(all(feature = "cuda", not(feature = "fusion"))) && is_cuda(device) && !std::env::var("R1KIT_NCCL").is_ok_and(|v| v == "0")
}

/// Each of `tensors` (f32, on one GPU) summed over the `size` data-parallel ranks with NCCL, in
/// one NCCL group on burn's CUDA stream of this thread (one process per GPU). The first call
/// joins the communicator: `exchange_id` gets rank 0's NCCL unique id on rank 0 (`None`
/// elsewhere) and returns it on every rank. An error where [`nccl_applies`] is false.
pub fn nccl_all_reduce_sum_each(tensors: Vec<Tensor<1>>, rank: usize, size: usize, exchange_id: impl FnOnce(Option<Vec<u8>>) -> anyhow::Result<Vec<u8>>) -> anyhow::Result<Vec<Tensor<1>>> {
    #[cfg(all(feature = "cuda", not(feature = "fusion")))]
    {
        nccl::all_reduce_sum_each(tensors, rank, size, exchange_id)
    }
    #[cfg(not(all(feature = "cuda", not(feature = "fusion"))))]
    {
        let _ = (tensors, rank, size, exchange_id);
        anyhow::bail!("nccl: not in this build (a CUDA build without fusion has it)")
    }
}

/// Whether `device` is a (non-autodiff) CUDA device that [`gemm`] runs on.
pub fn is_cuda(device: &Device) -> bool {
    #[cfg(feature = "cuda")]
    {
        use burn::backend::DispatchDevice;
        matches!(device.as_dispatch(), DispatchDevice::Cube(burn_cubecl::CubeDevice::Cuda(_)))
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = device;
        false
    }
}
