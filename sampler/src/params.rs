//! Sampling parameters and the per-completion result.

use serde::{Deserialize, Serialize};

pub use r1kit_model::generate::FinishReason;

/// How completions are drawn. Defaults follow Hugging Face `generate` with sampling on
/// (temperature 1, no top-p / top-k / min-p filtering, no repetition penalty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingParams {
    /// 0 means greedy (argmax); otherwise logits are divided by it.
    pub temperature: f32,
    /// Keep the smallest set of tokens whose probability mass reaches top_p (1 = off).
    pub top_p: f32,
    /// Keep the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep tokens whose probability is at least min_p times the most likely one's (0 = off).
    pub min_p: f32,
    /// CTRL-style penalty on tokens already in the prompt or completion (1 = off): a positive
    /// logit is divided by it, a negative one multiplied, as transformers does.
    pub repetition_penalty: f32,
    pub max_new_tokens: usize,
    /// Token ids that end a completion (kept as its last token). Empty: the caller's defaults
    /// (the tokenizer's EOS and generation_config.json) are used by the CLI and trainers.
    pub stop_token_ids: Vec<u32>,
    /// Strings that end a completion; the text is cut before the first one.
    pub stop_strings: Vec<String>,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            max_new_tokens: 256,
            stop_token_ids: vec![],
            stop_strings: vec![],
            seed: 0,
        }
    }
}

impl SamplingParams {
    pub fn greedy(max_new_tokens: usize) -> Self {
        SamplingParams { temperature: 0.0, max_new_tokens, ..Default::default() }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(format!("temperature must be >= 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..1.0).contains(&self.min_p) {
            return Err(format!("min_p must be in [0, 1), got {}", self.min_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(format!("repetition_penalty must be > 0, got {}", self.repetition_penalty));
        }
        Ok(())
    }
}

/// One sampled completion.
#[derive(Debug, Clone, Serialize)]
pub struct Completion {
    /// Index of its prompt in the batch.
    pub prompt_index: usize,
    /// Index within the prompt's group (0..G).
    pub sample_index: usize,
    /// Generated token ids (a stop token, when one ended it, is the last).
    pub tokens: Vec<u32>,
    /// Decoded text, special tokens skipped, cut before a stop string.
    pub text: String,
    /// log-probability of each generated token under the sampling distribution (after
    /// temperature and filtering; the model's own distribution when greedy).
    pub logprobs: Vec<f32>,
    pub finish_reason: FinishReason,
}
