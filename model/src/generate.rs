//! Greedy decoding on the KV cache, for `r1kit generate` and parity checks. (The sampler crate
//! holds the full sampling controls; this is the reference path they are checked against.)

use burn::tensor::activation::log_softmax;

use crate::error::Result;
use crate::kv_cache::KvCache;
use crate::transformer::Model;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// A stop token was produced (it is kept as the last token).
    Stop,
    /// `max_new_tokens` was reached.
    Length,
}

#[derive(Debug, Clone)]
pub struct Generation {
    pub tokens: Vec<u32>,
    /// log p(token) under the model (temperature 1) for each generated token.
    pub logprobs: Vec<f32>,
    pub finish_reason: FinishReason,
}

/// Left-pads prompts to one length: returns tokens, positions and validity, row-major `[batch, len]`.
pub fn left_pad(prompts: &[Vec<u32>], pad_id: u32) -> (Vec<u32>, Vec<i64>, Vec<bool>, usize) {
    let len = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut tokens = Vec::with_capacity(prompts.len() * len);
    let mut positions = Vec::with_capacity(prompts.len() * len);
    let mut valid = Vec::with_capacity(prompts.len() * len);
    for p in prompts {
        let pad = len - p.len();
        tokens.extend(std::iter::repeat_n(pad_id, pad).chain(p.iter().copied()));
        positions.extend(std::iter::repeat_n(0, pad).chain(0..p.len() as i64));
        valid.extend(std::iter::repeat_n(false, pad).chain(std::iter::repeat_n(true, p.len())));
    }
    (tokens, positions, valid, len)
}

/// Greedy decoding of a batch of prompts (of any lengths) for up to `max_new_tokens` each.
pub fn generate_greedy(model: &Model, prompts: &[Vec<u32>], max_new_tokens: usize, stop_ids: &[u32]) -> Result<Vec<Generation>> {
    let batch = prompts.len();
    let mut out: Vec<Generation> =
        (0..batch).map(|_| Generation { tokens: vec![], logprobs: vec![], finish_reason: FinishReason::Length }).collect();
    if batch == 0 || max_new_tokens == 0 {
        return Ok(out);
    }
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        return Err(crate::ModelError::Invalid(format!("prompt {i} is empty")));
    }
    let device = model.device();
    let (tokens, positions, valid, len) = left_pad(prompts, 0);
    let mut cache = KvCache::new(&model.config, batch, len + max_new_tokens, &device);
    let mask = cache.prepare(&valid, len)?;
    let hidden = model.forward_hidden(&tokens, &positions, batch, &mask, Some(&mut cache));
    let mut last = hidden.slice([0..batch, len - 1..len, 0..model.config.hidden_size]);
    let mut done = vec![false; batch];
    for step in 0..max_new_tokens {
        let logprobs = log_softmax(model.logits(last), 2);
        let logprobs = logprobs.into_data().try_into_vec_as::<f32>().map_err(|e| crate::ModelError::Invalid(format!("{e:?}")))?;
        let vocab = model.config.vocab_size;
        let mut next = Vec::with_capacity(batch);
        for (b, generation) in out.iter_mut().enumerate() {
            let row = &logprobs[b * vocab..(b + 1) * vocab];
            let (arg, &lp) = row.iter().enumerate().fold((0, &f32::NEG_INFINITY), |best, cur| if cur.1 > best.1 { cur } else { best });
            next.push(arg as u32);
            if !done[b] {
                generation.tokens.push(arg as u32);
                generation.logprobs.push(lp);
                if stop_ids.contains(&(arg as u32)) {
                    generation.finish_reason = FinishReason::Stop;
                    done[b] = true;
                }
            }
        }
        if done.iter().all(|d| *d) || step + 1 == max_new_tokens {
            break;
        }
        let positions: Vec<i64> = prompts.iter().map(|p| (p.len() + step) as i64).collect();
        let mask = cache.prepare(&vec![true; batch], 1)?;
        last = model.forward_hidden(&next, &positions, batch, &mask, Some(&mut cache));
    }
    Ok(out)
}
