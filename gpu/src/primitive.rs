//! Moving between a backend's primitives (what an autodiff op's forward and backward get) and
//! burn tensors of that backend (what they compute with).

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, DispatchKindConversion, DispatchTensor};
use burn::prelude::Tensor;

/// A primitive of backend `B` as a tensor (on `B`'s own device, not tracked).
pub(crate) fn inner<B: Backend, const D: usize>(p: FloatTensor<B>) -> Tensor<D>
where
    DispatchTensor: DispatchKindConversion<B>,
{
    Tensor::from_primitive::<B>(p)
}

/// The primitive of a tensor computed on backend `B` (from [`inner`] tensors).
pub(crate) fn primitive<B: Backend, const D: usize>(t: Tensor<D>) -> FloatTensor<B>
where
    DispatchTensor: DispatchKindConversion<B>,
{
    t.try_into_primitive::<B>().unwrap_or_else(|_| unreachable!("computed on the inner backend"))
}
