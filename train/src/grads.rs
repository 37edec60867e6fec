//! Gradients by parameter name, outside autodiff, and their accumulation over micro-batches.

use std::collections::BTreeMap;

use r1kit_model::burn::prelude::*;
use r1kit_model::Model;

/// Gradient of every trainable parameter, keyed by its checkpoint name (plain tensors, no graph).
pub type GradMap = BTreeMap<String, Tensor<2>>;

/// Adds `more` into `total` (a parameter absent from `total` starts at `more`).
pub fn accumulate(total: &mut GradMap, more: GradMap) {
    for (name, grad) in more {
        match total.remove(&name) {
            Some(sum) => total.insert(name, sum + grad),
            None => total.insert(name, grad),
        };
    }
}

/// The gradients of `tracked`'s parameters after `loss.backward()`; parameters that do not require
/// a gradient (frozen) or took no part in the loss are left out.
pub fn collect_gradients(tracked: &Model, loss: &Tensor<1>) -> GradMap {
    let mut grads = loss.backward();
    tracked
        .parameters()
        .into_iter()
        .filter_map(|(name, t)| t.grad_remove(&mut grads).map(|g| (name, g.inner())))
        .collect()
}

/// Values of a rank-2 tensor as a flat f32 vector (tests, checkpoints, norms).
pub fn to_vec(t: &Tensor<2>) -> Vec<f32> {
    t.clone().try_into_vec_as::<f32>().expect("f32 tensor data")
}
