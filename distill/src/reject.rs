//! Rejection sampling: N completions per prompt, kept when the rewards verify them, written as
//! SFT data that the datasets crate reads back (`{"prompt", "completion", ...}` lines: prompt is
//! the problem text before the template, so `train_sft` with the same template rebuilds exactly
//! the sequence that was sampled).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use r1kit_datasets::{PromptTemplate, Record};
use r1kit_model::tokenizer::Tokenizer;
use r1kit_model::Model;
use r1kit_rewards::WeightedRewards;
use r1kit_sampler::{Completion, SamplingParams};
use r1kit_train::data::{eval_items, EvalItem};
use serde::{Deserialize, Serialize};

use crate::dedup::{select_accepted, DedupOptions};

/// What the threshold is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Criterion {
    /// The first reward's own value (the accuracy reward: `math`, `countdown`, `code`).
    #[default]
    Accuracy,
    /// The weighted total of all rewards.
    Total,
}

impl std::str::FromStr for Criterion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "accuracy" => Ok(Criterion::Accuracy),
            "total" => Ok(Criterion::Total),
            other => Err(format!("unknown criterion `{other}` (accuracy: the first reward; total: the weighted sum)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RejectOptions {
    /// Completions sampled per prompt (N).
    pub samples: usize,
    /// A completion is accepted when its criterion value is >= threshold.
    pub threshold: f64,
    pub criterion: Criterion,
    /// Keep at most this many accepted completions per prompt, the shortest first.
    pub keep_shortest: Option<usize>,
    /// Drop near-duplicates among a prompt's accepted completions.
    pub dedup: Option<DedupOptions>,
    /// Sampling; empty stop ids mean the tokenizer's and the model's.
    pub params: SamplingParams,
    pub prompts_per_batch: usize,
}

/// One written line of the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptedCompletion {
    /// `<prompt id>/<sample index>`.
    pub id: String,
    /// The problem text (before the prompt template).
    pub prompt: String,
    /// The sampled completion, as the model continued the templated prompt.
    pub completion: String,
    /// Each reward's value.
    pub rewards: BTreeMap<String, f64>,
    /// The weighted total.
    pub reward: f64,
    pub completion_tokens: usize,
}

/// Acceptance of one prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptAcceptance {
    pub id: String,
    pub sampled: usize,
    /// Completions reaching the threshold.
    pub accepted: usize,
    /// Accepted completions written (after keep-shortest and dedup).
    pub kept: usize,
    pub acceptance_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectReport {
    pub prompts: usize,
    pub sampled: usize,
    pub accepted: usize,
    pub kept: usize,
    /// accepted / sampled over all prompts.
    pub acceptance_rate: f64,
    /// What was compared with the threshold, stated.
    pub criterion: String,
    pub threshold: f64,
    pub per_prompt: Vec<PromptAcceptance>,
    /// Ids of the prompts of which no completion was accepted.
    pub none_accepted: Vec<String>,
}

impl RejectReport {
    /// A few lines for the terminal: totals and the prompts without an accepted completion.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "accepted {}/{} completions ({:.1}%) over {} prompts by {} >= {}; kept {}; {} prompts with none accepted",
            self.accepted,
            self.sampled,
            100.0 * self.acceptance_rate,
            self.prompts,
            self.criterion,
            self.threshold,
            self.kept,
            self.none_accepted.len()
        );
        if !self.none_accepted.is_empty() {
            let shown: Vec<&str> = self.none_accepted.iter().take(20).map(String::as_str).collect();
            let more = if self.none_accepted.len() > 20 { format!(" ... (+{})", self.none_accepted.len() - 20) } else { String::new() };
            text.push_str(&format!("\nnone accepted: {}{more}", shown.join(", ")));
        }
        text
    }
}

/// The criterion value of one scored completion.
fn criterion_value(scores: &r1kit_rewards::CompositeOutput, criterion: Criterion) -> f64 {
    match criterion {
        Criterion::Accuracy => scores.values.first().map_or(f64::NAN, |(_, v)| *v),
        Criterion::Total => scores.total,
    }
}

fn criterion_name(rewards: &WeightedRewards, criterion: Criterion) -> String {
    match criterion {
        Criterion::Accuracy => format!("accuracy reward `{}`", rewards.names().first().cloned().unwrap_or_default()),
        Criterion::Total => {
            let terms: Vec<String> = rewards.names().iter().zip(rewards.weights()).map(|(n, w)| format!("{w}*{n}")).collect();
            format!("weighted total {}", terms.join(" + "))
        }
    }
}

/// Samples `options.samples` completions for every record's prompt and keeps the verified ones.
pub fn reject_sample(
    model: &Model,
    tokenizer: &Tokenizer,
    template: &PromptTemplate,
    records: &[Record],
    rewards: &WeightedRewards,
    options: &RejectOptions,
) -> Result<(Vec<AcceptedCompletion>, RejectReport)> {
    if options.samples == 0 {
        bail!("samples must be > 0");
    }
    if rewards.names().is_empty() {
        bail!("rejection sampling needs at least one reward");
    }
    let items = eval_items(tokenizer, template, records)?;
    let mut params = options.params.clone();
    if params.stop_token_ids.is_empty() {
        params.stop_token_ids = r1kit_model::pretrained::stop_token_ids(model, tokenizer);
    }
    let mut kept_all = Vec::new();
    let mut per_prompt = Vec::with_capacity(items.len());
    for (chunk_index, chunk) in items.chunks(options.prompts_per_batch.max(1)).enumerate() {
        let prompts: Vec<Vec<u32>> = chunk.iter().map(|it| it.prompt_tokens.clone()).collect();
        let chunk_params = SamplingParams { seed: params.seed.wrapping_add(chunk_index as u64 * 0x9E37_79B9), ..params.clone() };
        let completions = r1kit_sampler::sample(model, tokenizer, &prompts, options.samples, &chunk_params).context("sampling")?;
        let pairs: Vec<(&str, &r1kit_rewards::Record)> = completions.iter().map(|c| (c.text.as_str(), &chunk[c.prompt_index].reward_record)).collect();
        let scores = rewards.score_batch(&pairs).context("scoring")?;
        for (p, item) in chunk.iter().enumerate() {
            let range = p * options.samples..(p + 1) * options.samples;
            let record = &records[chunk_index * options.prompts_per_batch.max(1) + p];
            let (kept, acceptance) = judge_prompt(item, record.prompt_text(), &completions[range.clone()], &scores[range], options);
            kept_all.extend(kept);
            per_prompt.push(acceptance);
        }
    }
    let sampled: usize = per_prompt.iter().map(|p| p.sampled).sum();
    let accepted: usize = per_prompt.iter().map(|p| p.accepted).sum();
    let report = RejectReport {
        prompts: per_prompt.len(),
        sampled,
        accepted,
        kept: kept_all.len(),
        acceptance_rate: accepted as f64 / sampled.max(1) as f64,
        criterion: criterion_name(rewards, options.criterion),
        threshold: options.threshold,
        none_accepted: per_prompt.iter().filter(|p| p.accepted == 0).map(|p| p.id.clone()).collect(),
        per_prompt,
    };
    Ok((kept_all, report))
}

/// One prompt's accepted completions (selected) and its acceptance numbers.
fn judge_prompt(item: &EvalItem, problem: &str, completions: &[Completion], scores: &[r1kit_rewards::CompositeOutput], options: &RejectOptions) -> (Vec<AcceptedCompletion>, PromptAcceptance) {
    let accepted: Vec<usize> = (0..completions.len()).filter(|&i| criterion_value(&scores[i], options.criterion) >= options.threshold).collect();
    let texts: Vec<&str> = accepted.iter().map(|&i| completions[i].text.as_str()).collect();
    let lengths: Vec<usize> = accepted.iter().map(|&i| completions[i].tokens.len()).collect();
    let chosen = select_accepted(&texts, &lengths, options.keep_shortest, options.dedup);
    let kept: Vec<AcceptedCompletion> = chosen
        .into_iter()
        .map(|k| {
            let i = accepted[k];
            AcceptedCompletion {
                id: format!("{}/{}", item.id, completions[i].sample_index),
                prompt: problem.to_string(),
                completion: completions[i].text.clone(),
                rewards: scores[i].as_map(),
                reward: scores[i].total,
                completion_tokens: completions[i].tokens.len(),
            }
        })
        .collect();
    let acceptance = PromptAcceptance {
        id: item.id.clone(),
        sampled: completions.len(),
        accepted: accepted.len(),
        kept: kept.len(),
        acceptance_rate: accepted.len() as f64 / completions.len().max(1) as f64,
    };
    (kept, acceptance)
}

/// Writes the kept completions (one JSON line each) and the report beside them
/// (`<out>.report.json`); returns the report's path.
pub fn write_outputs(out: &Path, kept: &[AcceptedCompletion], report: &RejectReport) -> Result<std::path::PathBuf> {
    r1kit_datasets::write_jsonl(out, kept).with_context(|| format!("writing {}", out.display()))?;
    let report_path = out.with_extension("report.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(report)? + "\n").with_context(|| format!("writing {}", report_path.display()))?;
    Ok(report_path)
}
