//! Run-time device choice: `cpu` (burn's flex backend) or `cuda` (the `cuda` cargo feature).

use burn::prelude::Device;

pub use r1kit_gpu::is_cuda;

use crate::error::{ModelError, Result};

pub fn parse_device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::flex()),
        // one process per GPU (r1kit launch, torchrun): a bare `cuda` is this process's own
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(std::env::var("LOCAL_RANK").ok().and_then(|v| v.parse().ok()).unwrap_or(0))),
        #[cfg(feature = "cuda")]
        s if s.starts_with("cuda:") => {
            let index: usize = s[5..].parse().map_err(|_| ModelError::Invalid(format!("bad device '{s}' (cuda:N)")))?;
            Ok(Device::cuda(index))
        }
        #[cfg(not(feature = "cuda"))]
        s if s.starts_with("cuda") => Err(ModelError::Invalid(
            "this r1kit was built without CUDA; rebuild with `--features cuda` (scripts/build-cuda.sh)".into(),
        )),
        other => Err(ModelError::Invalid(format!("unknown device '{other}' (cpu or cuda)"))),
    }
}

/// Run-time compute dtype of the matrix products: `f32` or `bf16` (master weights stay f32).
pub fn parse_compute_dtype(name: &str) -> Result<burn::tensor::FloatDType> {
    match name {
        "f32" => Ok(burn::tensor::FloatDType::F32),
        "bf16" => Ok(burn::tensor::FloatDType::BF16),
        other => Err(ModelError::Invalid(format!("unknown compute dtype '{other}' (f32 or bf16)"))),
    }
}

/// `t` on the autodiff backend with `like`'s gradient-checkpointing strategy: the operands of one
/// operation must share it (burn panics otherwise), so a constant joining a checkpointed graph
/// takes the graph's strategy.
pub fn autodiff_like<const D: usize, const E: usize>(t: burn::prelude::Tensor<D>, like: &burn::prelude::Tensor<E>) -> burn::prelude::Tensor<D> {
    let t = t.autodiff();
    match like.gradient_checkpointing_strategy() {
        Some(strategy) => t.with_gradient_checkpointing_strategy(strategy),
        None => t,
    }
}
