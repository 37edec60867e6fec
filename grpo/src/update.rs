//! One GRPO policy update: the old policy's log-probabilities recomputed by the training forward
//! (so the ratio is exactly 1 at the first inner iteration), the reference's when the KL is in the
//! loss, then `mu` optimizer steps over the same sequences, each accumulated over micro-batches
//! whose losses share the step's normalizers.

use r1kit_model::burn::prelude::*;
use r1kit_model::logprobs::{token_logprobs, token_logprobs_and_entropy, DEFAULT_CHUNK_ROWS};
use r1kit_model::device::autodiff_like;
use r1kit_model::{AttentionMask, Model};
use anyhow::{Context, Result};
use r1kit_dist::Group;
use r1kit_train::accumulate::tracked;
use r1kit_train::data_parallel::all_reduce_gradients;
use r1kit_train::clip::clip_global_norm;
use r1kit_train::grads::{accumulate, collect_gradients, GradMap};
use r1kit_train::optim::AdamW;
use r1kit_train::packing::{assign_rows, micro_batches, PackedBatch, TokenizedExample};
use r1kit_train::params::Freeze;
use serde::{Deserialize, Serialize};

use crate::kl::{kl_estimate, KlEstimator};
use crate::loss::{aggregate, clip_fractions, clipped_surrogate, Aggregation, ClipConfig, StepCounts};

/// What the update needs to know; the loop fills it from the config.
#[derive(Debug, Clone)]
pub struct UpdateConfig {
    pub clip: ClipConfig,
    pub aggregation: Aggregation,
    /// KL coefficient in the loss (0: no reference forward).
    pub beta: f64,
    pub kl_estimator: KlEstimator,
    /// Inner optimizer steps per batch (mu).
    pub mu: usize,
    /// Padded tokens per micro-batch.
    pub micro_batch_tokens: usize,
    pub max_completion_length: usize,
    pub max_grad_norm: Option<f64>,
    pub freeze: Freeze,
}

/// Statistics of one update, for the step's metrics line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdateStats {
    pub loss: f64,
    /// Mean per-token KL estimate to the reference (when beta > 0).
    pub kl: Option<f64>,
    pub clip_low: f64,
    pub clip_high: f64,
    pub grad_norm: f64,
    /// Mean |sampler logprob - trainer logprob| over completion tokens (when given).
    pub sampler_logprob_gap: Option<f64>,
    /// Mean entropy (nats) of the policy over completion tokens, before the update.
    pub entropy: f64,
    pub micro_batches: usize,
}

/// Log-probability of every target of `batch` under `model`, `[rows, seq]`.
pub fn batch_logprobs(model: &Model, batch: &PackedBatch) -> Tensor<2> {
    let mask = AttentionMask::causal_segments(&batch.segments, batch.batch);
    let hidden = model.forward_hidden(&batch.tokens, &batch.positions, batch.batch, &mask, None);
    token_logprobs(model, hidden, &batch.targets, DEFAULT_CHUNK_ROWS)
}

/// The sequences of one optimizer step: each a prompt + completion, one per row (never packed,
/// so a row is one sequence and per-sequence aggregation stays exact).
pub struct StepSequences {
    pub examples: Vec<TokenizedExample>,
    pub advantages: Vec<f64>,
    /// The sampler's log-probabilities of each completion's tokens, for the gap metric.
    pub sampler_logprobs: Option<Vec<Vec<f32>>>,
    pub prompt_lens: Vec<usize>,
}

impl StepSequences {
    pub fn new(prompts: &[&[u32]], completions: &[&[u32]], advantages: Vec<f64>) -> Self {
        let examples = prompts.iter().zip(completions).map(|(p, c)| TokenizedExample::prompt_completion(p, c)).collect();
        StepSequences { examples, advantages, sampler_logprobs: None, prompt_lens: prompts.iter().map(|p| p.len()).collect() }
    }

    /// Micro-batches in sequence order, with the index of each one's first sequence.
    pub(crate) fn micro_batches(&self, token_budget: usize) -> Vec<(usize, PackedBatch)> {
        let lengths: Vec<usize> = self.examples.iter().map(TokenizedExample::len).collect();
        let rows = assign_rows(&lengths, usize::MAX, false);
        let mut first = 0;
        micro_batches(&self.examples, rows, token_budget, 1, 0)
            .into_iter()
            .map(|b| {
                let at = first;
                first += b.batch;
                (at, b)
            })
            .collect()
    }
}

fn column(values: &[f64], device: &Device) -> Tensor<2> {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(v, [values.len(), 1]), device)
}

fn mask_tensor(batch: &PackedBatch, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(batch.loss_mask.clone(), [batch.batch, batch.seq]), device)
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 data")
}

/// The loss of one micro-batch (its share of the step loss) for a tracked model, with the
/// log-probabilities and (detached) entropies of its targets. Without `old_logp` (the first inner
/// iteration), pi_old is this very forward, detached: the ratio is then exactly 1, as in TRL.
pub fn micro_batch_loss(
    model: &Model,
    batch: &PackedBatch,
    old_logp: Option<&Tensor<2>>,
    ref_logp: Option<&Tensor<2>>,
    advantages: &[f64],
    config: &UpdateConfig,
    step: &StepCounts,
) -> (Tensor<1>, Tensor<2>, Tensor<2>) {
    let device = model.device();
    let mask = AttentionMask::causal_segments(&batch.segments, batch.batch);
    let hidden = model.forward_hidden(&batch.tokens, &batch.positions, batch.batch, &mask, None);
    let (logp, entropy) = token_logprobs_and_entropy(model, hidden, &batch.targets, DEFAULT_CHUNK_ROWS);
    let old = match old_logp {
        Some(o) => autodiff_like(o.clone(), &logp),
        None => logp.clone().detach(),
    };
    let mut token_loss = clipped_surrogate(logp.clone(), old, column(advantages, &device), &config.clip);
    if let (Some(r), true) = (ref_logp, config.beta > 0.0) {
        token_loss = token_loss + kl_estimate(logp.clone(), autodiff_like(r.clone(), &logp), config.kl_estimator) * config.beta;
    }
    (aggregate(token_loss, mask_tensor(batch, &device), config.aggregation, step), logp, entropy)
}

/// Runs the update and returns the new master weights.
pub fn policy_update(master: Model, optimizer: &mut AdamW, sequences: &StepSequences, reference: Option<&Model>, config: &UpdateConfig, lr: f64) -> (Model, UpdateStats) {
    update(master, optimizer, sequences, reference, config, lr, None).expect("a single process has no collective to fail")
}

/// [`policy_update`] of this rank's share of the step (its groups) when several processes train
/// together: the step's counts, gradients and statistics are summed over the ranks, so every
/// rank takes the same optimizer step.
pub fn policy_update_across(
    master: Model,
    optimizer: &mut AdamW,
    sequences: &StepSequences,
    reference: Option<&Model>,
    config: &UpdateConfig,
    lr: f64,
    group: &mut Group,
) -> Result<(Model, UpdateStats)> {
    update(master, optimizer, sequences, reference, config, lr, Some(group))
}

fn update(
    mut master: Model,
    optimizer: &mut AdamW,
    sequences: &StepSequences,
    reference: Option<&Model>,
    config: &UpdateConfig,
    lr: f64,
    mut group: Option<&mut Group>,
) -> Result<(Model, UpdateStats)> {
    let batches = sequences.micro_batches(config.micro_batch_tokens);
    // [sequences, trained tokens] of the whole step, every rank's
    let mut counts = [sequences.examples.len() as f64, batches.iter().map(|(_, b)| b.loss_tokens()).sum::<usize>() as f64];
    if let Some(g) = group.as_deref_mut() {
        g.all_reduce_sum_f64(&mut counts).context("summing the step's counts over the ranks")?;
    }
    let step = StepCounts { sequences: counts[0] as usize, tokens: counts[1] as usize, max_completion_length: config.max_completion_length };
    // pi_ref without gradients; pi_old is taken from the first iteration's own forward.
    let mut old: Vec<Tensor<2>> = Vec::with_capacity(batches.len());
    let reference_logp: Option<Vec<Tensor<2>>> =
        reference.filter(|_| config.beta > 0.0).map(|r| batches.iter().map(|(_, b)| batch_logprobs(r, b)).collect());
    let mut stats = UpdateStats { micro_batches: batches.len(), ..Default::default() };

    // Clip fractions are counted over every inner iteration (at the first the ratio is exactly 1).
    let (mut low, mut high, mut clip_tokens) = (0.0, 0.0, 0usize);
    for iteration in 0..config.mu.max(1) {
        let model = tracked(&master, &config.freeze);
        let mut grads = GradMap::new();
        let (mut loss, mut kl_sum, mut entropy_sum, mut tokens) = (0.0, 0.0, 0.0, 0usize);
        // Every micro-batch's forward and backward queued before the first read of the device (a
        // read waits for all queued work): the host builds micro-batch k + 1 while the device
        // runs k. The statistics are read afterwards.
        let mut queued = Vec::with_capacity(batches.len());
        for (k, (first, batch)) in batches.iter().enumerate() {
            let adv = &sequences.advantages[*first..first + batch.batch];
            let ref_k = reference_logp.as_ref().map(|r| &r[k]);
            let (l, logp, entropy) = micro_batch_loss(&model, batch, old.get(k), ref_k, adv, config, &step);
            if iteration == 0 {
                old.push(logp.clone().detach().inner());
            }
            accumulate(&mut grads, collect_gradients(&model, &l));
            queued.push((l.inner(), logp.inner(), entropy.inner()));
        }
        for (k, ((first, batch), (l, logp, entropy))) in batches.iter().zip(queued).enumerate() {
            let adv = &sequences.advantages[*first..first + batch.batch];
            let ref_k = reference_logp.as_ref().map(|r| &r[k]);
            loss += l.into_scalar::<f32>() as f64;
            let logp_host = host(logp);
            let old_host = host(old[k].clone());
            let adv_tok: Vec<f32> = (0..batch.batch * batch.seq).map(|i| adv[i / batch.seq] as f32).collect();
            let (lo, hi) = clip_fractions(&logp_host, &old_host, &adv_tok, &batch.loss_mask, &config.clip);
            let n = batch.loss_tokens();
            low += lo * n as f64;
            high += hi * n as f64;
            clip_tokens += n;
            tokens += n;
            if iteration == 0 {
                let entropy = host(entropy);
                entropy_sum += entropy.iter().zip(&batch.loss_mask).map(|(e, m)| (e * m) as f64).sum::<f64>();
                if let Some(r) = ref_k {
                    let kl = host(kl_estimate(old[k].clone(), r.clone(), config.kl_estimator));
                    kl_sum += kl.iter().zip(&batch.loss_mask).map(|(k, m)| (k * m) as f64).sum::<f64>();
                }
            }
        }
        if let Some(g) = group.as_deref_mut() {
            all_reduce_gradients(g, &mut grads, &master, &config.freeze)?;
            let mut sums = [loss, kl_sum, entropy_sum, tokens as f64];
            g.all_reduce_sum_f64(&mut sums).context("summing the step's loss over the ranks")?;
            [loss, kl_sum, entropy_sum] = [sums[0], sums[1], sums[2]];
            tokens = sums[3] as usize;
        }
        stats.grad_norm = match config.max_grad_norm {
            Some(max) => clip_global_norm(&mut grads, max),
            None => r1kit_train::clip::global_norm(&grads),
        };
        if iteration == 0 {
            stats.loss = loss;
            stats.kl = reference_logp.as_ref().map(|_| kl_sum / tokens.max(1) as f64);
            stats.entropy = entropy_sum / tokens.max(1) as f64;
        }
        master = optimizer.step(master, &grads, lr);
    }
    let (mut gap_sum, mut gap_n) = (0.0, 0usize);
    if let Some(sampler) = &sequences.sampler_logprobs {
        for ((first, b), old) in batches.iter().zip(&old) {
            let old = host(old.clone());
            for r in 0..b.batch {
                let s = first + r;
                // completion token i sits at target position prompt_len - 1 + i of its row
                for (i, lp) in sampler[s].iter().enumerate() {
                    let at = r * b.seq + sequences.prompt_lens[s] - 1 + i;
                    if at < (r + 1) * b.seq && b.loss_mask[at] > 0.0 {
                        gap_sum += (old[at] - lp).abs() as f64;
                        gap_n += 1;
                    }
                }
            }
        }
    }
    if let Some(g) = group.as_deref_mut() {
        let mut sums = [low, high, clip_tokens as f64, gap_sum, gap_n as f64];
        g.all_reduce_sum_f64(&mut sums).context("summing the step's statistics over the ranks")?;
        [low, high, gap_sum] = [sums[0], sums[1], sums[3]];
        [clip_tokens, gap_n] = [sums[2] as usize, sums[4] as usize];
    }
    stats.sampler_logprob_gap = (gap_n > 0).then(|| gap_sum / gap_n as f64);
    stats.clip_low = low / clip_tokens.max(1) as f64;
    stats.clip_high = high / clip_tokens.max(1) as f64;
    Ok((master, stats))
}

/// Log-probabilities of each completion's tokens under `model` (no gradients), one vector per
/// sequence, computed in micro-batches of at most `token_budget` padded tokens.
pub fn batch_logprobs_of(model: &Model, prompts: &[&[u32]], completions: &[&[u32]], token_budget: usize) -> Vec<Vec<f32>> {
    let sequences = StepSequences::new(prompts, completions, vec![0.0; prompts.len()]);
    let batches = sequences.micro_batches(token_budget);
    // Every forward queued before the first read: the host builds micro-batch k + 1 (its mask
    // above all) while the device runs k, instead of the device waiting for it.
    let logps: Vec<Tensor<2>> = batches.iter().map(|(_, batch)| batch_logprobs(model, batch)).collect();
    let mut out = Vec::with_capacity(prompts.len());
    for ((first, batch), logp) in batches.into_iter().zip(logps) {
        let values = host(logp);
        for r in 0..batch.batch {
            let s = first + r;
            let start = r * batch.seq + sequences.prompt_lens[s] - 1;
            out.push(values[start..start + completions[s].len()].to_vec());
        }
    }
    out
}
