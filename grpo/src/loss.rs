//! The policy loss: the clipped surrogate per token, and its aggregation over the tokens of an
//! optimizer step. Every normalizer is a property of the whole step (counted across its
//! micro-batches), so gradient accumulation does not change the gradient.

use r1kit_model::burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Clipping of the probability ratio r = pi / pi_old.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClipConfig {
    /// r is clipped to [1 - eps_low, 1 + eps_high] (DAPO's clip-higher: eps_high > eps_low).
    pub eps_low: f64,
    pub eps_high: f64,
    /// Dual clip (for negative advantages the loss is capped at -c * A); None = off.
    pub dual_clip: Option<f64>,
}

/// Per-token loss of the clipped surrogate (to minimize): -min(r A, clip(r) A), with the dual
/// clip for A < 0 as verl computes it. `logp`, `old_logp` are `[rows, tokens]`, `advantages` `[rows, 1]`.
pub fn clipped_surrogate(logp: Tensor<2>, old_logp: Tensor<2>, advantages: Tensor<2>, clip: &ClipConfig) -> Tensor<2> {
    let [rows, tokens] = logp.dims();
    let a = advantages.expand([rows, tokens]);
    let ratio = (logp - old_logp).exp();
    let unclipped = a.clone().neg() * ratio.clone();
    let clipped = a.clone().neg() * ratio.clamp(1.0 - clip.eps_low, 1.0 + clip.eps_high);
    let loss = unclipped.max_pair(clipped);
    match clip.dual_clip {
        None => loss,
        Some(c) => {
            let capped = loss.clone().min_pair(a.clone().neg() * c);
            loss.mask_where(a.lower_elem(0.0), capped)
        }
    }
}

/// Fractions of the masked tokens whose ratio was clipped below / above (for metrics).
pub fn clip_fractions(logp: &[f32], old_logp: &[f32], advantages_per_token: &[f32], mask: &[f32], clip: &ClipConfig) -> (f64, f64) {
    let (mut low, mut high, mut n) = (0usize, 0usize, 0usize);
    for i in 0..logp.len() {
        if mask[i] == 0.0 {
            continue;
        }
        n += 1;
        let r = ((logp[i] - old_logp[i]) as f64).exp();
        let a = advantages_per_token[i];
        // a ratio is clipped when the clipped term is the one chosen
        if a < 0.0 && r < 1.0 - clip.eps_low {
            low += 1;
        }
        if a > 0.0 && r > 1.0 + clip.eps_high {
            high += 1;
        }
    }
    if n == 0 { (0.0, 0.0) } else { (low as f64 / n as f64, high as f64 / n as f64) }
}

/// How token losses become one number for the optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Aggregation {
    /// GRPO: each sequence's mean over its tokens, then the mean over the step's sequences.
    SequenceMean,
    /// DAPO: the mean over all tokens of the step.
    TokenMean,
    /// Dr. GRPO: the sum over tokens / (sequences in the step * configured max completion length),
    /// a constant that does not depend on the batch's lengths.
    SumOverMaxLength,
}

/// What the normalizers need to know about the whole optimizer step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepCounts {
    pub sequences: usize,
    pub tokens: usize,
    pub max_completion_length: usize,
}

/// This micro-batch's share of the step loss: summing it over the step's micro-batches gives the
/// step loss. `token_loss` and `mask` are `[rows, tokens]`; fully masked rows contribute 0.
pub fn aggregate(token_loss: Tensor<2>, mask: Tensor<2>, how: Aggregation, step: &StepCounts) -> Tensor<1> {
    let masked = token_loss * mask.clone();
    match how {
        Aggregation::SequenceMean => {
            let per_seq = masked.sum_dim(1) / mask.sum_dim(1).clamp_min(1.0);
            per_seq.sum() / step.sequences.max(1) as f64
        }
        Aggregation::TokenMean => masked.sum() / step.tokens.max(1) as f64,
        Aggregation::SumOverMaxLength => masked.sum() / (step.sequences.max(1) * step.max_completion_length.max(1)) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t2(v: Vec<f32>, rows: usize) -> Tensor<2> {
        let cols = v.len() / rows;
        Tensor::from_data(TensorData::new(v, [rows, cols]), &Device::flex())
    }
    fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec_as::<f32>().unwrap()
    }

    const CLIP: ClipConfig = ClipConfig { eps_low: 0.2, eps_high: 0.28, dual_clip: None };

    #[test]
    fn surrogate_by_hand() {
        // ratios e^0 = 1, e^0.5 = 1.6487, e^-0.5 = 0.6065 for A = +1 and A = -1
        let logp = t2(vec![0.0, 0.5, -0.5, 0.0, 0.5, -0.5], 2);
        let old = t2(vec![0.0; 6], 2);
        let adv = t2(vec![1.0, -1.0], 2);
        let l = vals(clipped_surrogate(logp, old, adv, &CLIP));
        let r = [1.0f32, 0.5f32.exp(), (-0.5f32).exp()];
        // A = +1: -min(r, clip(r)) -> -1, -1.28 (clipped high), -0.6065 (unclipped, smaller)
        let want = [-1.0, -1.28, -r[2], 1.0, r[1], 0.8];
        // A = -1: max(r, clip(r)) -> 1, 1.6487 (unclipped), 0.8 (clipped low)
        for (a, b) in l.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{l:?} vs {want:?}");
        }
    }

    #[test]
    fn dual_clip_caps_negative_advantages() {
        let logp = t2(vec![2.0], 1); // ratio e^2 = 7.39
        let old = t2(vec![0.0], 1);
        let adv = t2(vec![-1.0], 1);
        let plain = vals(clipped_surrogate(logp.clone(), old.clone(), adv.clone(), &CLIP))[0];
        assert!((plain - 2.0f32.exp()).abs() < 1e-4);
        let dual = ClipConfig { dual_clip: Some(3.0), ..CLIP };
        assert!((vals(clipped_surrogate(logp, old, adv, &dual))[0] - 3.0).abs() < 1e-6);
    }

    #[test]
    fn aggregations_by_hand_and_degenerate_rows() {
        // row 0: tokens 1, 2 (mask 1, 1, 0); row 1: fully masked (zero-length completion)
        let loss = t2(vec![1.0, 2.0, 100.0, 5.0, 5.0, 5.0], 2);
        let mask = t2(vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0], 2);
        let step = StepCounts { sequences: 2, tokens: 2, max_completion_length: 4 };
        let get = |how| vals(aggregate(loss.clone(), mask.clone(), how, &step))[0];
        assert!((get(Aggregation::SequenceMean) - 1.5 / 2.0).abs() < 1e-6);
        assert!((get(Aggregation::TokenMean) - 3.0 / 2.0).abs() < 1e-6);
        assert!((get(Aggregation::SumOverMaxLength) - 3.0 / 8.0).abs() < 1e-6);
        assert!(get(Aggregation::SequenceMean).is_finite());
    }

    #[test]
    fn micro_batch_shares_sum_to_the_step_loss() {
        let loss = t2(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], 4);
        let mask = t2(vec![1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 4);
        let step = StepCounts { sequences: 4, tokens: 6, max_completion_length: 2 };
        for how in [Aggregation::SequenceMean, Aggregation::TokenMean, Aggregation::SumOverMaxLength] {
            let whole = vals(aggregate(loss.clone(), mask.clone(), how, &step))[0];
            let a = vals(aggregate(loss.clone().slice([0..1, 0..2]), mask.clone().slice([0..1, 0..2]), how, &step))[0];
            let b = vals(aggregate(loss.clone().slice([1..4, 0..2]), mask.clone().slice([1..4, 0..2]), how, &step))[0];
            assert!((whole - (a + b)).abs() < 1e-6, "{how:?}");
        }
    }

    #[test]
    fn clip_fraction_counts() {
        let (low, high) = clip_fractions(&[0.5, -0.5, 0.0, 1.0], &[0.0; 4], &[1.0, -1.0, 1.0, 1.0], &[1.0, 1.0, 1.0, 0.0], &CLIP);
        assert!((high - 1.0 / 3.0).abs() < 1e-9 && (low - 1.0 / 3.0).abs() < 1e-9);
    }
}
