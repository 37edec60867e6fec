//! What every fused kernel's host side needs: burn tensors of the `Cube` backend as contiguous
//! buffers, new outputs, the cube size, and a dispatch from burn's runtime dtype to the kernel's
//! element type.

use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor};
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::prelude::Tensor;
use burn::tensor::{DType, FloatDType, Shape};
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::BufferArg;
use cubecl::server::Handle;

/// burn's backend of CubeCL runtimes (CUDA, or the CPU runtime in the `cube-cpu` tests).
pub(crate) type Cube = burn::backend::Cube;

/// Units per cube for the row kernels: a power of two, at most 256 and at most what the device
/// allows (on CubeCL's CPU runtime that is its core count).
pub(crate) fn row_units(t: &CubeTensor) -> usize {
    let max = (t.client.properties().hardware.max_units_per_cube as usize).clamp(1, 256);
    1 << max.ilog2()
}

/// `t` with a row-major buffer of its own shape (a copy only when it is a strided view).
pub(crate) fn contiguous(t: CubeTensor) -> CubeTensor {
    burn_cubecl::kernel::into_contiguous(t)
}

/// `t` as the dtype a kernel expects (no work when it already is).
pub(crate) fn cast(t: CubeTensor, dtype: DType) -> CubeTensor {
    if t.dtype == dtype { t } else { Cube::float_cast(t, FloatDType::from(dtype)) }
}

/// The elements of a tensor.
pub(crate) fn elements(t: &CubeTensor) -> usize {
    t.meta.shape().num_elements()
}

/// A kernel argument over the whole (contiguous) buffer of `t`.
pub(crate) fn buffer(t: &CubeTensor) -> BufferArg {
    // SAFETY: `t` is contiguous (callers pass tensors from `contiguous` or `empty`), so its
    // handle holds exactly `elements(t)` values of its dtype.
    unsafe { BufferArg::from_raw_parts(t.handle.clone(), elements(t)) }
}

/// A kernel argument over the whole (contiguous) buffer of `t` read `width` values at a time
/// (a kernel's `&[Vector<F, N>]`, launched with vector size `width`; see [`vector_width`]).
pub(crate) fn vector_buffer(t: &CubeTensor, width: usize) -> BufferArg {
    // SAFETY: as `buffer`; `width` divides the elements and the handle's offset is aligned to it
    // (`vector_width` chose it so).
    unsafe { BufferArg::from_raw_parts(t.handle.clone(), elements(t) / width) }
}

/// The widest vector the device reads at once (for these buffers' dtype) that divides `row` (the
/// length of the rows a kernel walks) and the offset of every buffer in its allocation; 1 where none.
pub(crate) fn vector_width(buffers: &[&CubeTensor], row: usize) -> usize {
    let Some(first) = buffers.first() else { return 1 };
    let bytes = first.dtype.size();
    first
        .client
        .io_optimized_vector_sizes(bytes)
        .map(|w| w as usize)
        .filter(|&w| w > 0 && row % w == 0)
        .filter(|&w| buffers.iter().all(|t| t.dtype.size() == bytes && t.handle.offset_start.unwrap_or(0) % (w * bytes) as u64 == 0))
        .max()
        .unwrap_or(1)
}

/// A new contiguous tensor of `shape` and `dtype` on the device of `like`, uninitialised.
pub(crate) fn empty(like: &CubeTensor, shape: Shape, dtype: DType) -> CubeTensor {
    let handle: Handle = like.client.empty(shape.num_elements() * dtype.size());
    CubeTensor::new_contiguous(like.client.clone(), like.device.clone(), shape, handle, dtype)
}

/// The primitive of a tensor on the (non-autodiff) `Cube` backend, `None` elsewhere.
pub(crate) fn cube_primitive<const D: usize>(t: &Tensor<D>) -> Option<CubeTensor> {
    t.clone().try_into_primitive::<Cube>().ok()
}

/// The primitive of a tensor on the autodiff `Cube` backend with checkpointing strategy `C`.
pub(crate) fn autodiff_primitive<C: CheckpointStrategy, const D: usize>(t: &Tensor<D>) -> Option<FloatTensor<Autodiff<Cube, C>>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Cube, C>>,
{
    t.clone().try_into_primitive::<Autodiff<Cube, C>>().ok()
}

/// Runs `$body` with `$t` the CubeCL float type of burn dtype `$dtype` (f32, bf16, f16);
/// evaluates to `None` (from the enclosing function) for any other dtype.
macro_rules! with_float_type {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            burn::tensor::DType::F32 => {
                type $t = f32;
                $body
            }
            burn::tensor::DType::BF16 => {
                type $t = half::bf16;
                $body
            }
            burn::tensor::DType::F16 => {
                type $t = half::f16;
                $body
            }
            _ => return None,
        }
    };
}
pub(crate) use with_float_type;

/// Runs `$body` with `$t` the CubeCL integer type of burn dtype `$dtype` (i32, i64); evaluates to
/// `None` (from the enclosing function) for any other dtype.
macro_rules! with_int_type {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            burn::tensor::DType::I32 => {
                type $t = i32;
                $body
            }
            burn::tensor::DType::I64 => {
                type $t = i64;
                $body
            }
            _ => return None,
        }
    };
}
pub(crate) use with_int_type;
