//! `r1kit bench grpo-step`: one full GRPO step on a given model, its time split by phase
//! (generate, score, reference forward, policy update), on arithmetic prompts, after warm-up steps
//! (the first step of a process pays for kernel compilation and first allocations). Under
//! `r1kit launch` the ranks share the step's prompts as the trainer does (each generates, scores
//! and takes the reference forward of its own groups; the update sums over the ranks).

use std::time::Instant;

use anyhow::{Context, Result};
use r1kit_dist::Group;
use r1kit_model::pretrained::stop_token_ids;
use r1kit_model::tokenizer::Tokenizer;
use r1kit_model::Model;
use r1kit_rewards::RewardRegistry;
use r1kit_model::logprobs::{token_logprobs, DEFAULT_CHUNK_ROWS};
use r1kit_model::AttentionMask;
use r1kit_sampler::timing::DecodeTimings;
use r1kit_sampler::{sample, SamplingParams};
use r1kit_train::data::eval_items;
use r1kit_train::optim::{AdamW, AdamWConfig};
use r1kit_train::params::Freeze;

use crate::advantages::{advantages, AdvantageKind};
use crate::kl::KlEstimator;
use crate::loss::{Aggregation, ClipConfig};
use crate::update::{batch_logprobs_of, policy_update, policy_update_across, StepSequences, UpdateConfig};

/// Padded tokens per micro-batch of the reference forward and the update (SFT's default).
const TOKEN_BUDGET: usize = 8192;

#[derive(Debug, Clone)]
pub struct StepBench {
    /// Processes sharing the step; the phase times below are rank 0's (its update includes
    /// waiting for the slowest rank), the counts every rank's.
    pub ranks: usize,
    pub completions: usize,
    pub completion_tokens: usize,
    pub generate_s: f64,
    pub score_s: f64,
    pub reference_s: f64,
    pub update_s: f64,
    /// Where the generate phase's time went (rank 0's).
    pub decode: DecodeTimings,
    /// With `R1KIT_BENCH_REFERENCE_VARIANTS=1`: the reference forward split and varied, one line each.
    pub reference_variants: Vec<String>,
    /// The whole of each warm-up step, seconds.
    pub warmup_s: Vec<f64>,
}

impl std::fmt::Display for StepBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.generate_s + self.score_s + self.reference_s + self.update_s;
        writeln!(f, "bench grpo-step: {} rank(s), {} completions, {} completion tokens, {:.2} s in all ({:.1} completion tokens/s)", self.ranks, self.completions, self.completion_tokens, total, self.completion_tokens as f64 / total)?;
        for (name, t) in [("generate", self.generate_s), ("score", self.score_s), ("reference", self.reference_s), ("update", self.update_s)] {
            writeln!(f, "  {name:<10} {t:>8.3} s  {:>5.1}%", 100.0 * t / total.max(1e-12))?;
        }
        writeln!(f, "  generate: {}", self.decode)?;
        for line in &self.reference_variants {
            writeln!(f, "  reference variant: {line}")?;
        }
        write!(f, "  generated {:.1} tokens/s; update {:.1} tokens/s", self.completion_tokens as f64 / self.generate_s, self.completion_tokens as f64 / self.update_s)?;
        if self.ranks > 1 {
            write!(f, " (every rank's tokens over rank 0's phase times)")?;
        }
        if !self.warmup_s.is_empty() {
            write!(f, "\n  after {} warm-up step(s) of {:?} s", self.warmup_s.len(), self.warmup_s.iter().map(|s| (s * 100.0).round() / 100.0).collect::<Vec<_>>())?;
        }
        Ok(())
    }
}

/// `warmup` untimed steps, then one timed step: `prompts` arithmetic prompts (R1-Zero template) x
/// `group` completions of up to `max_new_tokens`, math + format rewards; the reference forward (as
/// with beta > 0) is timed on its own. Every step starts from `model` (updates are dropped). With
/// `ranks`, this process takes its share of the prompts (every size-th, as the trainer does).
pub fn bench_grpo_step(model: &Model, tokenizer: &Tokenizer, prompts: usize, group: usize, max_new_tokens: usize, warmup: usize, mut ranks: Option<&mut Group>) -> Result<StepBench> {
    if let Some(g) = ranks.as_deref().filter(|g| prompts < g.size()) {
        anyhow::bail!("--prompts {prompts} is fewer than the {} ranks: every rank needs a prompt", g.size());
    }
    let mut warmup_s = Vec::with_capacity(warmup);
    for _ in 0..warmup {
        let t = Instant::now();
        timed_step(model, tokenizer, prompts, group, max_new_tokens, ranks.as_deref_mut())?;
        warmup_s.push(t.elapsed().as_secs_f64());
    }
    if let Some(g) = ranks.as_deref_mut() {
        // the ranks start the timed step together (else it times a rank's wait for another's warm-up)
        g.barrier().context("the ranks' barrier before the timed step")?;
    }
    Ok(StepBench { warmup_s, ..timed_step(model, tokenizer, prompts, group, max_new_tokens, ranks)? })
}

fn timed_step(model: &Model, tokenizer: &Tokenizer, prompts: usize, group: usize, max_new_tokens: usize, mut ranks: Option<&mut Group>) -> Result<StepBench> {
    let records = r1kit_datasets::load_records(&format!("arithmetic:n={prompts},seed=5"))?;
    let records = match ranks.as_deref() {
        Some(g) => g.world().shard(&records),
        None => records,
    };
    let template = r1kit_datasets::PromptTemplate::r1_zero();
    let items = eval_items(tokenizer, &template, &records)?;
    let rewards = RewardRegistry::with_builtins().build_weighted(&["math".into(), "format".into()], &[1.0, 0.2])?;
    let params = SamplingParams { temperature: 1.0, max_new_tokens, stop_token_ids: stop_token_ids(model, tokenizer), seed: 1, ..Default::default() };
    let prompt_tokens: Vec<Vec<u32>> = items.iter().map(|i| i.prompt_tokens.clone()).collect();

    let _ = r1kit_sampler::timing::take();
    let t = Instant::now();
    let completions = sample(model, tokenizer, &prompt_tokens, group, &params).context("sampling")?;
    let generate_s = t.elapsed().as_secs_f64();
    let decode = r1kit_sampler::timing::take();

    let t = Instant::now();
    let pairs: Vec<(&str, &r1kit_rewards::Record)> = completions.iter().map(|c| (c.text.as_str(), &items[c.prompt_index].reward_record)).collect();
    let scores = rewards.score_batch(&pairs)?;
    let totals: Vec<f64> = scores.iter().map(|s| s.total).collect();
    let adv = advantages(&totals, group, AdvantageKind::GroupZscore);
    let score_s = t.elapsed().as_secs_f64();

    let prompts_of: Vec<&[u32]> = completions.iter().map(|c| prompt_tokens[c.prompt_index].as_slice()).collect();
    let tokens_of: Vec<&[u32]> = completions.iter().map(|c| c.tokens.as_slice()).collect();
    let reference = model.clone();
    let t = Instant::now();
    let _ = batch_logprobs_of(&reference, &prompts_of, &tokens_of, TOKEN_BUDGET);
    let reference_s = t.elapsed().as_secs_f64();
    let reference_variants = if std::env::var("R1KIT_BENCH_REFERENCE_VARIANTS").is_ok_and(|v| v == "1") {
        reference_variants_of(model, &prompts_of, &tokens_of)?
    } else {
        Vec::new()
    };

    let config = UpdateConfig {
        clip: ClipConfig { eps_low: 0.2, eps_high: 0.28, dual_clip: None },
        aggregation: Aggregation::TokenMean,
        beta: 0.0, // the reference forward is timed above; the update itself is timed without it
        kl_estimator: KlEstimator::K3,
        mu: 1,
        micro_batch_tokens: TOKEN_BUDGET,
        max_completion_length: max_new_tokens,
        max_grad_norm: Some(1.0),
        freeze: Freeze::default(),
    };
    let sequences = StepSequences::new(&prompts_of, &tokens_of, adv);
    let mut optimizer = AdamW::new(AdamWConfig { lr: 1e-6, ..Default::default() });
    let t = Instant::now();
    match ranks.as_deref_mut() {
        Some(g) => drop(policy_update_across(model.clone(), &mut optimizer, &sequences, None, &config, 1e-6, g)?),
        None => drop(policy_update(model.clone(), &mut optimizer, &sequences, None, &config, 1e-6)),
    }
    // timed once the device has finished the update (its optimizer kernels may still run)
    model.device().sync().map_err(|e| anyhow::anyhow!("device sync: {e:?}"))?;
    let update_s = t.elapsed().as_secs_f64();
    let mut counts = [completions.len() as f64, tokens_of.iter().map(|t| t.len()).sum::<usize>() as f64];
    if let Some(g) = ranks.as_deref_mut() {
        g.all_reduce_sum_f64(&mut counts).context("summing the completions over the ranks")?;
    }
    Ok(StepBench { ranks: ranks.map_or(1, |g| g.size()), completions: counts[0] as usize, completion_tokens: counts[1] as usize, generate_s, score_s, reference_s, update_s, decode, reference_variants, warmup_s: Vec::new() })
}

/// Where the reference forward's time goes: its layers and its LM head's log-probabilities
/// timed apart (each waited for), then the whole at other token budgets, with the weights as
/// stored and cast once to the compute dtype (`Model::frozen`).
fn reference_variants_of(model: &Model, prompts_of: &[&[u32]], tokens_of: &[&[u32]]) -> Result<Vec<String>> {
    let sync = |m: &Model| m.device().sync().map_err(|e| anyhow::anyhow!("device sync: {e:?}"));
    let mut lines = Vec::new();
    let sequences = StepSequences::new(prompts_of, tokens_of, vec![0.0; prompts_of.len()]);
    let (mut layers_s, mut head_s) = (0.0, 0.0);
    for (_, batch) in sequences.micro_batches(TOKEN_BUDGET) {
        let t = Instant::now();
        let mask = AttentionMask::causal_segments(&batch.segments, batch.batch);
        let hidden = model.forward_hidden(&batch.tokens, &batch.positions, batch.batch, &mask, None);
        sync(model)?;
        layers_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _ = token_logprobs(model, hidden, &batch.targets, DEFAULT_CHUNK_ROWS).into_data();
        head_s += t.elapsed().as_secs_f64();
    }
    lines.push(format!("budget {TOKEN_BUDGET}, each half waited for: layers {layers_s:.3} s, LM head log-probabilities {head_s:.3} s"));
    let cast_once = model.frozen();
    for (name, m) in [("weights as stored", model), ("weights cast once", &cast_once)] {
        for budget in [TOKEN_BUDGET, 2 * TOKEN_BUDGET, 4 * TOKEN_BUDGET] {
            let t = Instant::now();
            let _ = batch_logprobs_of(m, prompts_of, tokens_of, budget);
            lines.push(format!("{name}, budget {budget}: {:.3} s", t.elapsed().as_secs_f64()));
        }
    }
    Ok(lines)
}
