//! The graph decode mode against the eager one on the same model and prompts: the GPU check that
//! a captured, replayed step reads its refreshed inputs and its cache (`r1kit check decode-graph`).

use std::time::Instant;

use r1kit_model::Model;

use crate::{sample_in_mode, DecodeMode, SamplerError, SamplingParams};

/// How the two modes' completions compare.
#[derive(Debug)]
pub struct ModeComparison {
    pub completions: usize,
    pub tokens: usize,
    /// Completions whose tokens differ (a stale input or cache makes nearly all of them differ).
    pub differing: usize,
    /// Largest |logprob difference| over the tokens both chose alike.
    pub max_logprob_diff: f32,
    pub eager_seconds: f64,
    pub graph_seconds: f64,
}

pub fn compare_modes(
    model: &Model,
    prompts: &[Vec<u32>],
    group: usize,
    params: &SamplingParams,
) -> Result<ModeComparison, SamplerError> {
    let t = Instant::now();
    let eager = sample_in_mode(model, None, prompts, group, params, DecodeMode::Eager)?;
    let eager_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let graph = sample_in_mode(model, None, prompts, group, params, DecodeMode::Graph)?;
    let graph_seconds = t.elapsed().as_secs_f64();
    let mut comparison = ModeComparison { completions: eager.len(), tokens: 0, differing: 0, max_logprob_diff: 0.0, eager_seconds, graph_seconds };
    for (e, g) in eager.iter().zip(&graph) {
        comparison.tokens += e.tokens.len();
        if e.tokens != g.tokens || e.finish_reason != g.finish_reason {
            comparison.differing += 1;
            continue;
        }
        for (x, y) in e.logprobs.iter().zip(&g.logprobs) {
            comparison.max_logprob_diff = comparison.max_logprob_diff.max((x - y).abs());
        }
    }
    Ok(comparison)
}

/// `r1kit check decode-graph`'s cases on `model`: 6 prompts of 3 to 13 tokens (left padding) x 4
/// completions, greedy, T 1 with top-p 0.95, and T 1 with stop ids so that rows finish and the
/// batch is compacted (and re-captured); then the same after every weight changed (a graph captured
/// for the old weights would read them no longer: each rollout captures its own). Each case named.
pub fn decode_graph_cases(model: &Model) -> Result<Vec<(String, ModeComparison)>, SamplerError> {
    let vocab = model.config.vocab_size as u32;
    let prompts: Vec<Vec<u32>> = (0..6u32).map(|p| (0..3 + 2 * p).map(|i| (p * 131 + i * 17 + 5) % vocab).collect()).collect();
    let sampled = SamplingParams { temperature: 1.0, top_p: 0.95, max_new_tokens: 24, seed: 3, ..Default::default() };
    let eager = sample_in_mode(model, None, &prompts, 4, &sampled, DecodeMode::Eager)?;
    let stops: Vec<u32> = eager.iter().filter_map(|c| c.tokens.get(6).copied()).take(4).collect();
    let cases = [
        ("greedy", SamplingParams::greedy(24)),
        ("T 1, top-p 0.95", sampled.clone()),
        ("T 1 with stop ids (compaction)", SamplingParams { stop_token_ids: stops, ..sampled.clone() }),
    ];
    let updated = model.clone().map_parameters(|_, t| t.clone() + t * 0.05);
    let mut out = Vec::new();
    for (weights, m) in [("weights", model), ("updated weights", &updated)] {
        for (label, params) in &cases {
            out.push((format!("{weights}, {label}"), compare_modes(m, &prompts, 4, params)?));
        }
    }
    Ok(out)
}
