//! The SFT loss: negative log-likelihood of the trained (completion) tokens, summed and scaled by
//! one normalizer for the whole optimizer step, so that micro-batching does not change it.

use r1kit_model::burn::prelude::*;
use r1kit_model::logprobs::{token_logprobs, DEFAULT_CHUNK_ROWS};
use r1kit_model::{AttentionMask, Model};

use crate::packing::PackedBatch;

/// `-sum(logp(target) * mask) * scale` over the block, a scalar tensor (tracked when the model is).
pub fn masked_nll(model: &Model, batch: &PackedBatch, scale: f64) -> Tensor<1> {
    let mask = AttentionMask::causal_segments(&batch.segments, batch.batch);
    let hidden = model.forward_hidden(&batch.tokens, &batch.positions, batch.batch, &mask, None);
    let logp = token_logprobs(model, hidden, &batch.targets, DEFAULT_CHUNK_ROWS);
    let weights: Vec<f32> = batch.loss_mask.iter().map(|&m| m * scale as f32).collect();
    let weights = Tensor::<2>::from_data(TensorData::new(weights, [batch.batch, batch.seq]), &model.device());
    (logp * weights).sum().neg()
}

/// Mean NLL per trained token over several blocks, without gradients (held-out loss).
pub fn mean_nll(model: &Model, batches: &[PackedBatch]) -> f64 {
    let tokens: usize = batches.iter().map(PackedBatch::loss_tokens).sum();
    if tokens == 0 {
        return f64::NAN;
    }
    batches
        .iter()
        .map(|b| masked_nll(model, b, 1.0 / tokens as f64).into_scalar::<f32>() as f64)
        .sum()
}
