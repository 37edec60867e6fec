//! `r1kit generate`: load a model and tokenizer, encode a prompt or a chat turn, sample.

use std::path::PathBuf;

use anyhow::{bail, Result};
use r1kit_model::pretrained::{load_pretrained, stop_token_ids};
use r1kit_model::tokenizer::ChatMessage;
use r1kit_sampler::{sample, SamplingParams};

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// A Hugging Face model directory (config.json + safetensors) or a GGUF file.
    #[arg(long)]
    pub model: PathBuf,
    /// tokenizer.json, or a directory holding it (default: the model's own).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Raw prompt text (no chat template).
    #[arg(long, conflicts_with = "chat", required_unless_present = "chat")]
    pub prompt: Option<String>,
    /// A user message, rendered with the tokenizer's chat template and a generation prompt.
    #[arg(long)]
    pub chat: Option<String>,
    /// An optional system message for --chat.
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    /// Completions to sample for the prompt.
    #[arg(long, default_value_t = 1)]
    pub n: usize,
    #[command(flatten)]
    pub sampling: SamplingFlags,
    /// cpu or cuda
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print one JSON object per completion: {"text", "tokens", "logprobs", "finish_reason"}.
    #[arg(long)]
    pub json: bool,
}

/// The sampler's controls as command-line flags (shared by every command that samples).
#[derive(clap::Args, Debug, Clone)]
pub struct SamplingFlags {
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// 0 is off.
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// A string that ends a completion (repeatable).
    #[arg(long = "stop")]
    pub stop_strings: Vec<String>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SamplingFlags {
    pub fn params(&self, stop_token_ids: Vec<u32>) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            max_new_tokens: self.max_new_tokens,
            stop_token_ids,
            stop_strings: self.stop_strings.clone(),
            seed: self.seed,
        }
    }
}

pub fn run(args: &GenerateArgs) -> Result<()> {
    let device = r1kit_model::device::parse_device(&args.device)?;
    let (model, tokenizer) = load_pretrained(&args.model, args.tokenizer.as_deref(), &device)?;
    let prompt_ids = match (&args.prompt, &args.chat) {
        (Some(p), _) => tokenizer.encode(p, true)?,
        (None, Some(c)) => {
            let mut messages = Vec::new();
            if let Some(s) = &args.system {
                messages.push(ChatMessage::new("system", s));
            }
            messages.push(ChatMessage::new("user", c));
            tokenizer.encode_chat(&messages, true, None)?
        }
        (None, None) => unreachable!("clap requires --prompt or --chat"),
    };
    if prompt_ids.is_empty() {
        bail!("the prompt encodes to no tokens");
    }
    let params = args.sampling.params(stop_token_ids(&model, &tokenizer));
    for c in sample(&model, &tokenizer, &[prompt_ids], args.n.max(1), &params)? {
        if args.json {
            let obj = serde_json::json!({
                "text": c.text,
                "tokens": c.tokens,
                "logprobs": c.logprobs,
                "finish_reason": c.finish_reason,
            });
            println!("{obj}");
        } else {
            println!("{}", c.text);
        }
    }
    Ok(())
}
