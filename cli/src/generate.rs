//! `r1kit generate`: load a model and tokenizer, encode a prompt or a chat turn, decode greedily.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use r1kit_model::generate::generate_greedy;
use r1kit_model::tokenizer::{ChatMessage, Tokenizer};

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// A Hugging Face model directory (config.json + safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// tokenizer.json, or a directory holding it (default: the model directory).
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
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Sampling temperature; only 0 (greedy) is implemented here.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// cpu or cuda
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print one JSON object: {"text", "tokens", "logprobs", "finish_reason"}.
    #[arg(long)]
    pub json: bool,
}

pub fn load_tokenizer(model_dir: &Path, tokenizer: Option<&Path>) -> Result<Tokenizer> {
    let tok = match tokenizer {
        None => Tokenizer::from_dir(model_dir)?,
        Some(p) if p.is_dir() => Tokenizer::from_dir(p)?,
        Some(p) => {
            let dir = p.parent().unwrap_or(Path::new("."));
            let config = dir.join("tokenizer_config.json");
            let gen = model_dir.join("generation_config.json");
            Tokenizer::from_files(p, config.exists().then_some(config.as_path()), gen.exists().then_some(gen.as_path()))?
        }
    };
    Ok(tok)
}

pub fn run(args: &GenerateArgs) -> Result<()> {
    if args.temperature != 0.0 {
        bail!("--temperature {}: only greedy decoding (--temperature 0) is available in this build", args.temperature);
    }
    let device = r1kit_model::device::parse_device(&args.device)?;
    let tokenizer = load_tokenizer(&args.model, args.tokenizer.as_deref())?;
    let model = r1kit_model::load_model_dir(&args.model, &device)?;
    tokenizer.check_vocab_fits(model.config.vocab_size)?;
    let prompt_ids = match (&args.prompt, &args.chat) {
        (Some(p), _) => tokenizer.encode(p, true)?,
        (None, Some(c)) => {
            let mut messages = Vec::new();
            if let Some(s) = &args.system {
                messages.push(ChatMessage::new("system", s));
            }
            messages.push(ChatMessage::new("user", c));
            tokenizer.encode_chat(&messages, true)?
        }
        (None, None) => unreachable!("clap requires --prompt or --chat"),
    };
    if prompt_ids.is_empty() {
        bail!("the prompt encodes to no tokens");
    }
    let mut stop = tokenizer.stop_token_ids();
    stop.extend(model.config.eos_token_ids.iter().copied());
    let generation = generate_greedy(&model, &[prompt_ids], args.max_new_tokens, &stop)
        .context("generation failed")?
        .remove(0);
    let text = tokenizer.decode(&generation.tokens, true)?;
    if args.json {
        let obj = serde_json::json!({
            "text": text,
            "tokens": generation.tokens,
            "logprobs": generation.logprobs,
            "finish_reason": generation.finish_reason,
        });
        println!("{obj}");
    } else {
        println!("{text}");
    }
    Ok(())
}
