//! What the trainers do when several processes share a step (r1kit-dist's `Group`): sum the
//! ranks' gradients, so each rank holds the gradient of the whole step and takes the same
//! optimizer step from the same weights.

use anyhow::{Context, Result};
use r1kit_dist::Group;
use r1kit_model::burn::prelude::*;
use r1kit_model::Model;

use crate::grads::{to_vec, GradMap};
use crate::params::Freeze;

/// Sums `grads` over the ranks, in place. A parameter that took no part in any rank's loss stays
/// absent (as in a single process); one that did on some ranks only counts zeros for the others.
pub fn all_reduce_gradients(group: &mut Group, grads: &mut GradMap, model: &Model, freeze: &Freeze) -> Result<()> {
    let params: Vec<(String, Tensor<2>)> = model.parameters().into_iter().filter(|(name, _)| !freeze.is_frozen(name)).collect();
    // one message: a presence flag per parameter, then every gradient (zeros where absent)
    let total: usize = params.iter().map(|(_, t)| t.shape().num_elements()).sum();
    let mut flat = Vec::with_capacity(params.len() + total);
    flat.extend(params.iter().map(|(name, _)| grads.contains_key(name) as u8 as f32));
    for (name, t) in &params {
        match grads.get(name) {
            Some(g) => flat.extend(to_vec(g)),
            None => flat.extend(std::iter::repeat_n(0.0, t.shape().num_elements())),
        }
    }
    group.all_reduce_sum(&mut flat).context("summing the gradients over the ranks")?;
    let (present, mut values) = flat.split_at(params.len());
    grads.clear();
    for ((name, t), &seen) in params.iter().zip(present) {
        let n = t.shape().num_elements();
        let (mine, rest) = values.split_at(n);
        values = rest;
        if seen > 0.0 {
            let dims: [usize; 2] = t.shape().dims();
            grads.insert(name.clone(), Tensor::from_data(TensorData::new(mine.to_vec(), dims), &t.device()));
        }
    }
    Ok(())
}
