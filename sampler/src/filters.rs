//! Logit processing and token choice on the device, as small functions over `[rows, vocab]`
//! tensors. The order is transformers': repetition penalty, temperature, top-k, top-p, min-p.
//! Nothing here sorts (burn's sort runs on the host): top-k uses `topk`, top-p a bisection on the
//! probability threshold, and the draw inverts the cumulative distribution (in two levels, see
//! [`inverse_cdf`]) at one uniform number per row that the host supplies, so only `[rows]` values
//! cross to the host per step.

use r1kit_model::burn::prelude::*;
use r1kit_model::burn::tensor::activation::{log_softmax, softmax};

use crate::params::SamplingParams;

/// Logit given to filtered-out tokens.
const REMOVED: f32 = f32::NEG_INFINITY;

/// transformers' RepetitionPenaltyLogitsProcessor: for tokens seen so far (`seen` is 1.0 / 0.0),
/// a positive logit is divided by `penalty`, a negative one multiplied.
pub fn repetition_penalty(logits: Tensor<2>, seen: &Tensor<2>, penalty: f32) -> Tensor<2> {
    let positive = logits.clone().greater_elem(0.0);
    let factor = Tensor::ones_like(&logits).mask_fill(positive.clone(), 1.0 / penalty).mask_fill(positive.bool_not(), penalty);
    let penalized = logits.clone() * factor;
    logits.mask_where(seen.clone().greater_elem(0.5), penalized)
}

/// Keeps the k largest logits of each row (ties with the k-th are kept, as transformers does).
pub fn top_k(logits: Tensor<2>, k: usize) -> Tensor<2> {
    let [rows, vocab] = logits.dims();
    if k == 0 || k >= vocab {
        return logits;
    }
    let kth = logits.clone().topk(k, 1).slice([0..rows, k - 1..k]);
    let below = logits.clone().lower(kth.expand([rows, vocab]));
    logits.mask_fill(below, REMOVED)
}

/// Nucleus filtering: keeps token t iff the mass of tokens strictly more probable than t is below
/// `top_p` (transformers' TopPLogitsWarper, without sorting). The threshold is the smallest
/// probability tau with mass(p > tau) < top_p, found by bisection per row.
pub fn top_p(logits: Tensor<2>, top_p: f32) -> Tensor<2> {
    if top_p >= 1.0 {
        return logits;
    }
    let [rows, vocab] = logits.dims();
    let probs = softmax(logits.clone(), 1);
    // Invariant: mass(p > lo) >= top_p and mass(p > hi) < top_p.
    let mut lo = Tensor::<2>::zeros([rows, 1], &logits.device());
    let mut hi = probs.clone().max_dim(1);
    for _ in 0..BISECTION_STEPS {
        let mid = (lo.clone() + hi.clone()) * 0.5;
        let above = probs.clone().greater(mid.clone().expand([rows, vocab]));
        let mass = probs.clone().mask_fill(above.bool_not(), 0.0).sum_dim(1);
        let enough = mass.greater_equal_elem(top_p);
        lo = lo.mask_where(enough.clone(), mid.clone());
        hi = hi.mask_where(enough.bool_not(), mid);
    }
    // The first probability above `lo` is the threshold: keep p > lo.
    let removed = probs.lower_equal(lo.expand([rows, vocab]));
    logits.mask_fill(removed, REMOVED)
}

/// Halvings of the top-p threshold interval: 2^-30 of the largest probability, below f32's
/// resolution of the probabilities themselves.
const BISECTION_STEPS: usize = 30;

/// Keeps tokens whose probability is at least `min_p` times the most likely token's.
pub fn min_p(logits: Tensor<2>, min_p: f32) -> Tensor<2> {
    if min_p <= 0.0 {
        return logits;
    }
    let [rows, vocab] = logits.dims();
    let probs = softmax(logits.clone(), 1);
    let threshold = probs.clone().max_dim(1) * min_p;
    logits.mask_fill(probs.lower(threshold.expand([rows, vocab])), REMOVED)
}

/// The sampling distribution's logits: all processing but the draw.
pub fn processed_logits(logits: Tensor<2>, params: &SamplingParams, seen: Option<&Tensor<2>>) -> Tensor<2> {
    let mut x = logits;
    if let Some(seen) = seen.filter(|_| params.repetition_penalty != 1.0) {
        x = repetition_penalty(x, seen, params.repetition_penalty);
    }
    if params.temperature > 0.0 {
        if params.temperature != 1.0 {
            x = x / params.temperature;
        }
        x = top_k(x, params.top_k);
        x = top_p(x, params.top_p);
        x = min_p(x, params.min_p);
    }
    x
}

/// One decode step's choice from the LM head's logits: the processing, then the draw at the
/// uniform numbers `u` `[rows, 1]`. Where only the temperature shapes the distribution (no
/// penalty, top-k, top-p or min-p: RL's usual setting), on a Cube device (CUDA), that is one fused
/// kernel (`r1kit_gpu::kernels::draw_rows`: the same inverse CDF in one level, without the
/// two-level blocks); elsewhere [`processed_logits`] then [`choose_at`].
pub fn draw(logits: Tensor<2>, params: &SamplingParams, seen: Option<&Tensor<2>>, u: Tensor<2>) -> (Tensor<2, Int>, Tensor<2>) {
    let [_, vocab] = logits.dims();
    let temperature_only = (seen.is_none() || params.repetition_penalty == 1.0)
        && (params.temperature == 0.0 || ((params.top_k == 0 || params.top_k >= vocab) && params.top_p >= 1.0 && params.min_p <= 0.0));
    if temperature_only {
        if let Some(drawn) = r1kit_gpu::kernels::draw_rows(&logits, &u, params.temperature) {
            return drawn;
        }
    }
    choose_at(processed_logits(logits, params, seen), params, u, DRAW_BLOCK)
}

/// The host's uniform numbers, one per row, as the `[rows, 1]` tensor [`choose_at`] takes.
pub fn uniforms_tensor(uniforms: &[f32], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(uniforms.to_vec(), [uniforms.len(), 1]), device)
}

/// Tokens per block of the two-level inverse CDF: about the square root of a 150k vocabulary, so
/// both prefix sums stay short (burn-cubecl's cumsum costs the square of its length per row).
pub const DRAW_BLOCK: usize = 512;

/// Chooses one token per row of the processed logits: argmax when greedy, else the inverse CDF at
/// the uniform numbers `u` `[rows, 1]` (one in (0, 1) per row, on the device: a captured decode
/// step reads them from a buffer), the vocabulary cut into blocks of `block` tokens for the draw.
/// Returns the ids `[rows, 1]` and their log-probabilities under the sampling distribution
/// `[rows, 1]`.
pub fn choose_at(processed: Tensor<2>, params: &SamplingParams, u: Tensor<2>, block: usize) -> (Tensor<2, Int>, Tensor<2>) {
    let logp = log_softmax(processed, 1);
    let ids = if params.temperature == 0.0 {
        logp.clone().argmax(1)
    } else {
        inverse_cdf(logp.clone().exp(), u, block)
    };
    let chosen = logp.gather(1, ids.clone());
    (ids, chosen)
}

/// The token at which each row's cumulative mass first reaches `u` times the row's total
/// (`probs` `[rows, vocab]` unnormalized, `u` `[rows, 1]` in (0, 1)), in two levels: the block whose
/// cumulative mass reaches it, then the token inside that block. A token of zero mass is never
/// chosen, whatever the rounding of the two sums.
pub fn inverse_cdf(probs: Tensor<2>, u: Tensor<2>, block: usize) -> Tensor<2, Int> {
    let [rows, vocab] = probs.dims();
    let device = probs.device();
    let blocks = vocab.div_ceil(block);
    let padded = if blocks * block > vocab {
        Tensor::cat(vec![probs, Tensor::zeros([rows, blocks * block - vocab], &device)], 1)
    } else {
        probs
    };
    let tokens = padded.reshape([rows, blocks, block]);
    let block_mass = tokens.clone().sum_dim(2).reshape([rows, blocks]);
    let block_cdf = block_mass.clone().cumsum(1);
    let target = u * block_cdf.clone().slice([0..rows, blocks - 1..blocks]);
    // the chosen block: the number of blocks whose cumulative mass lies strictly below the target
    let chosen_block = block_cdf.clone().lower(target.clone().expand([rows, blocks])).int().sum_dim(1).clamp_max((blocks - 1) as i64);
    let before = (block_cdf - block_mass).gather(1, chosen_block.clone());
    let inner = tokens.gather(1, chosen_block.clone().reshape([rows, 1, 1]).expand([rows, 1, block])).reshape([rows, block]);
    let inner_cdf = inner.cumsum(1);
    let inner_total = inner_cdf.clone().slice([0..rows, block - 1..block]);
    // Inside (0, the block's mass]: at the mass, the count stops at the block's last token of
    // nonzero mass; above 0, leading tokens of zero mass are passed over.
    let inner_target = (target - before).clamp_min(f32::MIN_POSITIVE).min_pair(inner_total);
    let offset = inner_cdf.lower(inner_target.expand([rows, block])).int().sum_dim(1).clamp_max((block - 1) as i64);
    chosen_block * block as i64 + offset
}
