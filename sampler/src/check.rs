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
