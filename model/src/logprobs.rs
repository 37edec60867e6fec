//! Token log-probabilities computed in row chunks, so that a 150k vocabulary never materializes
//! `[batch, seq, vocab]` logits at once. On a CUDA autodiff device the chunks run inside one op
//! (`r1kit_gpu::logprobs`) whose backward pass recomputes them, so no chunk's logits are kept
//! for it either.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::transformer::Model;

pub use r1kit_gpu::logprobs::DEFAULT_CHUNK_ROWS;

/// log p(target | prefix) for every position: `hidden` is `[batch, seq, hidden]`, `targets`
/// row-major `[batch, seq]`; returns `[batch, seq]`. Differentiable when `hidden` is tracked.
pub fn token_logprobs(model: &Model, hidden: Tensor<3>, targets: &[u32], chunk_rows: usize) -> Tensor<2> {
    chunked(model, hidden, targets, chunk_rows, false).0
}

/// As [`token_logprobs`], also returning the entropy of the model's distribution at every
/// position (`[batch, seq]`, detached: a metric, not part of the loss).
pub fn token_logprobs_and_entropy(model: &Model, hidden: Tensor<3>, targets: &[u32], chunk_rows: usize) -> (Tensor<2>, Tensor<2>) {
    let (logp, entropy) = chunked(model, hidden, targets, chunk_rows, true);
    (logp, entropy.expect("asked for"))
}

/// The one chunk loop behind both: project `chunk_rows` rows to the vocabulary at a time.
fn chunked(model: &Model, hidden: Tensor<3>, targets: &[u32], chunk_rows: usize, with_entropy: bool) -> (Tensor<2>, Option<Tensor<2>>) {
    let [b, s, h] = hidden.dims();
    let n = b * s;
    assert_eq!(targets.len(), n, "one target per position");
    let device = hidden.device();
    let flat = hidden.reshape([n, h]);
    let chunk_rows = chunk_rows.max(1);
    // On a CUDA autodiff device: one op that keeps no chunk's logits for the backward pass.
    let head = model.lm_head.as_ref().unwrap_or(&model.embed_tokens);
    let options = r1kit_gpu::logprobs::LogprobOptions { compute: model.compute, chunk_rows, with_entropy };
    if let Some((logp, entropy)) = r1kit_gpu::logprobs::token_logprobs(&flat, head, targets, options) {
        return (logp.reshape([b, s]), entropy.map(|e| e.reshape([b, s])));
    }
    let (mut logps, mut entropies) = (Vec::new(), Vec::new());
    for start in (0..n).step_by(chunk_rows) {
        let end = (start + chunk_rows).min(n);
        let logp = log_softmax(model.logits_2d(flat.clone().slice([start..end, 0..h])), 1);
        let ids: Vec<i64> = targets[start..end].iter().map(|&t| t as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [end - start, 1]), &device);
        if with_entropy {
            let detached = logp.clone().detach();
            entropies.push((detached.clone().exp() * detached).sum_dim(1).neg());
        }
        logps.push(logp.gather(1, ids));
    }
    let entropy = with_entropy.then(|| Tensor::cat(entropies, 0).reshape([b, s]));
    (Tensor::cat(logps, 0).reshape([b, s]), entropy)
}
