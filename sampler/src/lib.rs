//! Rollouts: a batch of prompts, G completions each, on the model's KV cache.
//!
//! Each prompt is prefilled once and its cache rows copied to its G completions; prompts of
//! different lengths are left-padded with per-row positions. Every step chooses tokens on the
//! device (see [`filters`]) and reads back only the chosen ids and their log-probabilities. Rows
//! that finish are compacted away once half the batch is done, so they stop costing work.

pub mod filters;
pub mod params;
pub mod rng;

use r1kit_model::burn::prelude::*;
use r1kit_model::generate::left_pad;
use r1kit_model::tokenizer::Tokenizer;
use r1kit_model::{KvCache, Model};

pub use params::{Completion, FinishReason, SamplingParams};
use rng::StreamRng;

#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    #[error("sampling parameters: {0}")]
    Params(String),
    #[error("prompt {0} is empty")]
    EmptyPrompt(usize),
    #[error(transparent)]
    Model(#[from] r1kit_model::ModelError),
    #[error("decoding a completion: {0}")]
    Decode(String),
}

/// One row of the running batch: which completion it is and where it stands.
struct Row {
    completion: usize,
    prompt_len: usize,
    rng: StreamRng,
    /// Finished rows keep decoding (their tokens ignored) until the batch is compacted.
    finished: bool,
}

/// Samples `group` completions for every prompt. Results are ordered by prompt, then sample.
pub fn sample(
    model: &Model,
    tokenizer: &Tokenizer,
    prompts: &[Vec<u32>],
    group: usize,
    params: &SamplingParams,
) -> Result<Vec<Completion>, SamplerError> {
    sample_with(model, Some(tokenizer), prompts, group, params)
}

/// [`sample`] where the tokenizer is optional: without one, completions carry no text and stop
/// strings cannot be used (benchmarks on random weights of a named shape).
pub fn sample_with(
    model: &Model,
    tokenizer: Option<&Tokenizer>,
    prompts: &[Vec<u32>],
    group: usize,
    params: &SamplingParams,
) -> Result<Vec<Completion>, SamplerError> {
    params.validate().map_err(SamplerError::Params)?;
    if tokenizer.is_none() && !params.stop_strings.is_empty() {
        return Err(SamplerError::Params("stop strings need a tokenizer".into()));
    }
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        return Err(SamplerError::EmptyPrompt(i));
    }
    let mut out: Vec<Completion> = (0..prompts.len() * group)
        .map(|c| Completion {
            prompt_index: c / group,
            sample_index: c % group,
            tokens: vec![],
            text: String::new(),
            logprobs: vec![],
            finish_reason: FinishReason::Length,
        })
        .collect();
    if out.is_empty() || params.max_new_tokens == 0 {
        return Ok(out);
    }
    let device = model.device();
    let vocab = model.config.vocab_size;
    let hidden_size = model.config.hidden_size;

    // Prefill each prompt once, then give each of its G completions a copy of its cache rows.
    let (tokens, positions, valid, len) = left_pad(prompts, 0);
    let mut cache = KvCache::new(&model.config, prompts.len(), len + params.max_new_tokens, model.compute, &device);
    let mask = cache.prepare(&valid, len)?;
    let hidden = model.forward_hidden(&tokens, &positions, prompts.len(), &mask, Some(&mut cache));
    let last = hidden.slice([0..prompts.len(), len - 1..len, 0..hidden_size]).reshape([prompts.len(), hidden_size]);
    let expand: Vec<usize> = (0..out.len()).map(|c| c / group).collect();
    cache.select_rows(&expand);
    let mut logits = model.logits_2d(last).select(0, int_tensor(&expand, &device));

    let mut rows: Vec<Row> = (0..out.len())
        .map(|c| Row {
            completion: c,
            prompt_len: prompts[c / group].len(),
            rng: StreamRng::new(params.seed, c / group, c % group),
            finished: false,
        })
        .collect();
    let penalize = params.repetition_penalty != 1.0;

    for step in 0..params.max_new_tokens {
        let seen = penalize.then(|| seen_mask(prompts, group, &out, &rows, vocab, &device));
        let processed = filters::processed_logits(logits, params, seen.as_ref());
        let uniforms: Vec<f32> = rows.iter_mut().map(|r| r.rng.uniform_open()).collect();
        let (ids, chosen) = filters::choose(processed, params, &uniforms);
        let ids = read_back::<i64>(ids.into_data())?;
        let logprobs = read_back::<f32>(chosen.into_data())?;
        for (r, row) in rows.iter_mut().enumerate().filter(|(_, row)| !row.finished) {
            let completion = &mut out[row.completion];
            let id = ids[r] as u32;
            completion.tokens.push(id);
            completion.logprobs.push(logprobs[r]);
            row.finished = params.stop_token_ids.contains(&id) || hits_stop_string(tokenizer, &completion.tokens, &params.stop_strings)?;
            if row.finished {
                completion.finish_reason = FinishReason::Stop;
            }
        }
        if step + 1 == params.max_new_tokens || rows.iter().all(|r| r.finished) {
            break;
        }
        let mut next: Vec<u32> = rows.iter().map(|r| *out[r.completion].tokens.last().expect("one token per step")).collect();
        // Drop finished rows once they are half the batch (each compaction copies the cache).
        let done = rows.iter().filter(|r| r.finished).count();
        if 2 * done >= rows.len() {
            let keep: Vec<usize> = (0..rows.len()).filter(|&r| !rows[r].finished).collect();
            cache.select_rows(&keep);
            next = keep.iter().map(|&r| next[r]).collect();
            rows.retain(|r| !r.finished);
        }
        let positions: Vec<i64> = rows.iter().map(|r| (r.prompt_len + step) as i64).collect();
        let mask = cache.prepare(&vec![true; rows.len()], 1)?;
        let hidden = model.forward_hidden(&next, &positions, rows.len(), &mask, Some(&mut cache));
        logits = model.logits_2d(hidden.reshape([rows.len(), hidden_size]));
    }
    if let Some(tokenizer) = tokenizer {
        for completion in &mut out {
            let text = tokenizer.decode(&completion.tokens, true).map_err(|e| SamplerError::Decode(e.to_string()))?;
            completion.text = cut_at_stop_strings(&text, &params.stop_strings).to_string();
        }
    }
    Ok(out)
}

fn read_back<E: r1kit_model::burn::tensor::Element>(data: TensorData) -> Result<Vec<E>, SamplerError> {
    data.try_into_vec_as::<E>().map_err(|e| SamplerError::Decode(format!("reading sampled values: {e:?}")))
}

/// Whether the completion's text so far contains a stop string (decoded whole, so that strings
/// spanning token boundaries are found).
fn hits_stop_string(tokenizer: Option<&Tokenizer>, tokens: &[u32], stops: &[String]) -> Result<bool, SamplerError> {
    let Some(tokenizer) = tokenizer.filter(|_| !stops.is_empty()) else {
        return Ok(false);
    };
    let text = tokenizer.decode(tokens, true).map_err(|e| SamplerError::Decode(e.to_string()))?;
    Ok(stops.iter().any(|s| !s.is_empty() && text.contains(s.as_str())))
}

/// `[rows, vocab]` with 1.0 where a token occurs in the row's prompt or completion so far
/// (built on the host: the repetition penalty is rarely used in RL, and this keeps it simple).
fn seen_mask(prompts: &[Vec<u32>], group: usize, out: &[Completion], rows: &[Row], vocab: usize, device: &Device) -> Tensor<2> {
    let mut seen = vec![0f32; rows.len() * vocab];
    for (r, row) in rows.iter().enumerate() {
        let completion = &out[row.completion];
        for &t in prompts[row.completion / group].iter().chain(&completion.tokens) {
            if (t as usize) < vocab {
                seen[r * vocab + t as usize] = 1.0;
            }
        }
    }
    Tensor::from_data(TensorData::new(seen, [rows.len(), vocab]), device)
}

fn int_tensor(values: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = values.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, [values.len()]), device)
}

/// The text before the first stop string (the whole text when none occurs).
pub fn cut_at_stop_strings<'a>(text: &'a str, stops: &[String]) -> &'a str {
    let cut = stops.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min();
    match cut {
        Some(i) => &text[..i],
        None => text,
    }
}
