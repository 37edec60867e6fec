//! Evaluation: k samples per prompt, scored by the rewards; pass@1, pass@k (the unbiased
//! estimator of Chen et al. 2021), maj@k (majority vote over extracted answers), accuracy and
//! format rate reported separately, and one JSON line per example.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use r1kit_model::tokenizer::Tokenizer;
use r1kit_model::Model;
use r1kit_rewards::math::extract::{extract_answer, Fallback};
use r1kit_rewards::math::normalize::normalize;
use r1kit_rewards::WeightedRewards;
use r1kit_sampler::{FinishReason, SamplingParams};
use serde::Serialize;

use crate::data::EvalItem;

/// A completion counts as correct when the accuracy reward reaches this value.
pub const CORRECT_AT: f64 = 1.0 - 1e-9;

#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Completions per prompt (k).
    pub samples: usize,
    pub params: SamplingParams,
    /// Prompts sampled together.
    pub prompts_per_batch: usize,
    /// Index in the rewards of the one that decides correctness (the first by default).
    pub accuracy_reward: usize,
    /// Index of the format reward, when there is one.
    pub format_reward: Option<usize>,
}

/// Per-example results (one JSONL line each).
#[derive(Debug, Clone, Serialize)]
pub struct ExampleResult {
    pub id: String,
    pub prompt: String,
    pub gold: Option<String>,
    pub completions: Vec<String>,
    /// Each completion's reward values by name.
    pub rewards: Vec<BTreeMap<String, f64>>,
    pub correct: Vec<bool>,
    pub extracted: Vec<Option<String>>,
    pub majority_answer: Option<String>,
    pub majority_correct: bool,
    pub pass_at_k: f64,
    pub completion_tokens: Vec<usize>,
    pub truncated: Vec<bool>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EvalReport {
    pub examples: usize,
    pub samples: usize,
    /// Mean over prompts of the fraction of correct completions.
    pub pass_at_1: f64,
    /// Mean over prompts of the unbiased pass@k with k = samples.
    pub pass_at_k: f64,
    /// Mean over prompts of whether the most frequent extracted answer is correct.
    pub maj_at_k: f64,
    /// Fraction of all completions that are correct (pass@1 over completions).
    pub accuracy: f64,
    /// Fraction of all completions the format reward accepts (None without a format reward).
    pub format_rate: Option<f64>,
    /// Mean of each reward over all completions.
    pub mean_rewards: BTreeMap<String, f64>,
    pub mean_completion_tokens: f64,
    /// Fraction of completions cut by the token limit.
    pub truncation_rate: f64,
}

/// Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k).
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    if k == 0 || n == 0 {
        return 0.0;
    }
    if n - c < k {
        return 1.0;
    }
    // product form, stable for large n
    1.0 - ((n - c + 1)..=n).map(|i| 1.0 - k as f64 / i as f64).product::<f64>()
}

/// The most frequent answer (normalized) and the index of its first completion; ties go to the
/// answer seen first. Completions without an answer do not vote.
pub fn majority(answers: &[Option<String>]) -> Option<(String, usize)> {
    let mut counts: Vec<(String, usize, usize)> = Vec::new(); // (answer, count, first index)
    for (i, answer) in answers.iter().enumerate() {
        let Some(answer) = answer else { continue };
        let key = normalize(answer);
        match counts.iter_mut().find(|(a, _, _)| *a == key) {
            Some(entry) => entry.1 += 1,
            None => counts.push((key, 1, i)),
        }
    }
    let best = counts.iter().map(|(_, n, _)| *n).max()?;
    counts.into_iter().find(|(_, n, _)| *n == best).map(|(a, _, i)| (a, i))
}

/// Samples `options.samples` completions per item and scores them.
pub fn evaluate(model: &Model, tokenizer: &Tokenizer, items: &[EvalItem], rewards: &WeightedRewards, options: &EvalOptions) -> Result<(EvalReport, Vec<ExampleResult>)> {
    let mut results = Vec::with_capacity(items.len());
    let mut params = options.params.clone();
    if params.stop_token_ids.is_empty() {
        params.stop_token_ids = tokenizer.stop_token_ids();
    }
    for (chunk_index, chunk) in items.chunks(options.prompts_per_batch.max(1)).enumerate() {
        let prompts: Vec<Vec<u32>> = chunk.iter().map(|it| it.prompt_tokens.clone()).collect();
        // a different stream per chunk, reproducible from the seed
        let chunk_params = SamplingParams { seed: params.seed.wrapping_add(chunk_index as u64 * 0x9E37_79B9), ..params.clone() };
        let completions = r1kit_sampler::sample(model, tokenizer, &prompts, options.samples, &chunk_params).context("sampling")?;
        let pairs: Vec<(&str, &r1kit_rewards::Record)> =
            completions.iter().map(|c| (c.text.as_str(), &chunk[c.prompt_index].reward_record)).collect();
        let scores = rewards.score_batch(&pairs).context("scoring")?;
        for (p, item) in chunk.iter().enumerate() {
            let range = p * options.samples..(p + 1) * options.samples;
            results.push(score_example(item, &completions[range.clone()], &scores[range], options));
        }
    }
    Ok((summarize(&results, rewards, options), results))
}

fn score_example(item: &EvalItem, completions: &[r1kit_sampler::Completion], scores: &[r1kit_rewards::CompositeOutput], options: &EvalOptions) -> ExampleResult {
    let correct: Vec<bool> = scores.iter().map(|s| s.values[options.accuracy_reward].1 >= CORRECT_AT).collect();
    let extracted: Vec<Option<String>> = completions.iter().map(|c| extract_answer(&c.text, Fallback::None)).collect();
    let majority = majority(&extracted);
    let n = completions.len();
    ExampleResult {
        id: item.id.clone(),
        prompt: item.prompt_text.clone(),
        gold: item.reward_record.gold.clone(),
        completions: completions.iter().map(|c| c.text.clone()).collect(),
        rewards: scores.iter().map(|s| s.as_map()).collect(),
        majority_correct: majority.as_ref().is_some_and(|(_, i)| correct[*i]),
        majority_answer: majority.map(|(a, _)| a),
        pass_at_k: pass_at_k(n, correct.iter().filter(|&&c| c).count(), n),
        correct,
        extracted,
        completion_tokens: completions.iter().map(|c| c.tokens.len()).collect(),
        truncated: completions.iter().map(|c| c.finish_reason == FinishReason::Length).collect(),
    }
}

/// The report over per-example results.
pub fn summarize(results: &[ExampleResult], rewards: &WeightedRewards, options: &EvalOptions) -> EvalReport {
    let prompts = results.len().max(1) as f64;
    let all: usize = results.iter().map(|r| r.correct.len()).sum();
    let all_f = all.max(1) as f64;
    let count = |f: &dyn Fn(&ExampleResult) -> usize| results.iter().map(f).sum::<usize>() as f64;
    let names = rewards.names();
    let mean_rewards = names
        .iter()
        .map(|name| (name.clone(), results.iter().flat_map(|r| r.rewards.iter().map(|m| m[name])).sum::<f64>() / all_f))
        .collect::<BTreeMap<_, _>>();
    EvalReport {
        examples: results.len(),
        samples: options.samples,
        pass_at_1: results.iter().map(|r| r.correct.iter().filter(|&&c| c).count() as f64 / r.correct.len().max(1) as f64).sum::<f64>() / prompts,
        pass_at_k: results.iter().map(|r| r.pass_at_k).sum::<f64>() / prompts,
        maj_at_k: count(&|r| r.majority_correct as usize) / prompts,
        accuracy: count(&|r| r.correct.iter().filter(|&&c| c).count()) / all_f,
        format_rate: options.format_reward.map(|i| {
            let name = &names[i];
            results.iter().flat_map(|r| r.rewards.iter().map(|m| (m[name] >= CORRECT_AT) as usize)).sum::<usize>() as f64 / all_f
        }),
        mean_rewards,
        mean_completion_tokens: count(&|r| r.completion_tokens.iter().sum()) / all_f,
        truncation_rate: count(&|r| r.truncated.iter().filter(|&&t| t).count()) / all_f,
    }
}

/// Writes one JSON line per example.
pub fn write_results(path: &Path, results: &[ExampleResult]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?);
    for r in results {
        writeln!(file, "{}", serde_json::to_string(r)?)?;
    }
    file.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_at_k_is_the_unbiased_estimator() {
        assert_eq!(pass_at_k(4, 0, 1), 0.0);
        assert_eq!(pass_at_k(4, 4, 1), 1.0);
        assert!((pass_at_k(4, 1, 1) - 0.25).abs() < 1e-12);
        // 1 - C(3,2)/C(5,2) = 1 - 3/10
        assert!((pass_at_k(5, 2, 2) - 0.7).abs() < 1e-12);
        assert_eq!(pass_at_k(5, 2, 4), 1.0, "fewer wrong than k: always a hit");
        // k = n: any correct completion is a hit
        assert_eq!(pass_at_k(8, 1, 8), 1.0);
    }

    #[test]
    fn majority_vote_normalizes_and_breaks_ties_by_first_seen() {
        let a = |s: &str| Some(s.to_string());
        assert_eq!(majority(&[a("12"), None, a("7"), a("7"), a("12.0")]).map(|(_, i)| i), Some(0).filter(|_| normalize("12.0") == normalize("12")).or(Some(2)));
        assert_eq!(majority(&[a("3"), a("5"), a("5")]), Some((normalize("5"), 1)));
        assert_eq!(majority(&[a("3"), a("5")]), Some((normalize("3"), 0)));
        assert_eq!(majority(&[None, None]), None);
    }
}
