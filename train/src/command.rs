//! The `r1kit init`, `r1kit sft` and `r1kit eval` subcommands: option structs and run functions.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use r1kit_datasets::{DatasetSpec, PromptTemplate};
use r1kit_model::device::parse_device;
use r1kit_model::tokenizer::Tokenizer;
use r1kit_rewards::RewardRegistry;
use r1kit_sampler::SamplingParams;

use crate::config::load_config;
use crate::data::eval_items;
use crate::eval::{evaluate, write_results, EvalOptions};
use crate::init::{copy_tokenizer, model_config, scratch_beside, train_tokenizer, write_random_model, Shape};

#[derive(clap::Args, Debug, Clone)]
pub struct InitArgs {
    /// Architecture (qwen2, qwen3, llama) or a preset shape (tiny, smollm2-135m, qwen2.5-0.5b, ...).
    #[arg(long, default_value = "qwen2")]
    pub shape: String,
    #[arg(long)]
    pub hidden: Option<usize>,
    #[arg(long)]
    pub layers: Option<usize>,
    #[arg(long)]
    pub heads: Option<usize>,
    #[arg(long)]
    pub kv_heads: Option<usize>,
    #[arg(long)]
    pub intermediate: Option<usize>,
    /// Model vocabulary rows (default: the tokenizer's size rounded up to 64); with
    /// --train-tokenizer, also the tokenizer's target size.
    #[arg(long)]
    pub vocab_size: Option<usize>,
    #[arg(long)]
    pub max_positions: Option<usize>,
    /// Untie the output head from the embeddings.
    #[arg(long)]
    pub untie_embeddings: bool,
    /// Copy this tokenizer (a tokenizer.json, or a directory with one).
    #[arg(long, conflicts_with_all = ["train_tokenizer", "tokenizer_dataset"])]
    pub tokenizer: Option<PathBuf>,
    /// Train a byte-level BPE on this text file (one document per line).
    #[arg(long)]
    pub train_tokenizer: Option<PathBuf>,
    /// Train a byte-level BPE on the records of this dataset spec, rendered with --template.
    #[arg(long, conflicts_with = "train_tokenizer")]
    pub tokenizer_dataset: Option<String>,
    /// Template for --tokenizer-dataset.
    #[arg(long, default_value = "r1-zero")]
    pub template: String,
    /// Standard deviation of the initial weights (transformers' initializer_range).
    #[arg(long, default_value_t = 0.02)]
    pub init_std: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
}

/// `r1kit init`: a random model and its tokenizer as a Hugging Face directory.
pub fn run_init(args: &InitArgs) -> Result<()> {
    let scratch = scratch_beside(&args.out, "tokenizer");
    let result = init_into(args, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn init_into(args: &InitArgs, scratch: &std::path::Path) -> Result<()> {
    match (&args.tokenizer, &args.train_tokenizer, &args.tokenizer_dataset) {
        (Some(from), _, _) => copy_tokenizer(from, scratch)?,
        (None, Some(file), _) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let lines: Vec<String> = text.lines().filter(|l| !l.trim().is_empty()).map(String::from).collect();
            train_tokenizer(&lines, args.vocab_size.unwrap_or(1024), scratch)?;
        }
        (None, None, Some(spec)) => {
            let template: PromptTemplate = args.template.parse().map_err(anyhow::Error::msg)?;
            let records = DatasetSpec::parse(spec)?.load()?.records;
            let texts: Vec<String> = records
                .iter()
                .map(|r| {
                    let rendered = template.render_record(r);
                    format!("{}{}", rendered.prompt, rendered.completion.unwrap_or_default())
                })
                .collect();
            train_tokenizer(&texts, args.vocab_size.unwrap_or(1024), scratch)?;
        }
        (None, None, None) => bail!("give --tokenizer (copy one), --train-tokenizer TEXTFILE or --tokenizer-dataset SPEC"),
    }
    let tokenizer = Tokenizer::from_dir(scratch)?;
    let shape = Shape {
        arch: args.shape.clone(),
        hidden: args.hidden,
        layers: args.layers,
        heads: args.heads,
        kv_heads: args.kv_heads,
        intermediate: args.intermediate,
        vocab_size: args.vocab_size,
        max_positions: args.max_positions,
        tie_embeddings: args.untie_embeddings.then_some(false),
    };
    let config = model_config(&shape, tokenizer.vocab_size(), &tokenizer.stop_token_ids())?;
    let params = config.num_parameters();
    write_random_model(config, args.init_std, args.seed, scratch, &args.out)?;
    eprintln!("wrote {} ({} parameters, tokenizer of {} ids)", args.out.display(), params, tokenizer.vocab_size());
    Ok(())
}

#[derive(clap::Args, Debug, Clone)]
pub struct SftArgs {
    /// The recipe (see train/configs/ for documented examples).
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config value: `--set optimizer.lr=3e-4` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// `r1kit sft`: supervised fine-tuning as the config says.
pub fn run_sft(args: &SftArgs) -> Result<()> {
    let config = load_config(&args.config, &args.set)?;
    let outcome = crate::sft::train_sft(&config, &mut |_| {})?;
    eprintln!("done: {} steps, final loss {:.4}, model in {}", outcome.steps, outcome.final_loss, outcome.final_dir.display());
    if let Some(loss) = outcome.heldout_loss {
        eprintln!("held-out loss {loss:.4}");
    }
    if let Some(r) = &outcome.eval {
        eprintln!("{}", report_line(r));
    }
    Ok(())
}

#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// Hugging Face model directory (with its tokenizer).
    #[arg(long)]
    pub model: PathBuf,
    /// Dataset spec of prompts with gold answers (gsm8k?limit=100, arithmetic:n=100, ...).
    #[arg(long)]
    pub dataset: String,
    /// Rewards, comma-separated; the first decides correctness, a `format*` one gives the format rate.
    #[arg(long, default_value = "math,format", value_delimiter = ',')]
    pub rewards: Vec<String>,
    /// Completions per prompt (k of pass@k, maj@k).
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    /// Prompt template: r1-zero, r1-zero-prefill, plain, chat.
    #[arg(long, default_value = "r1-zero")]
    pub template: String,
    /// System prompt for --template chat.
    #[arg(long)]
    pub system: Option<String>,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 512)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Per-example results (JSONL).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `r1kit eval`: sample, score, report.
pub fn run_eval(args: &EvalArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let (model, tokenizer) = load_model_and_tokenizer(&args.model, &device)?;
    let mut template: PromptTemplate = args.template.parse().map_err(anyhow::Error::msg)?;
    if let Some(system) = &args.system {
        match &mut template {
            PromptTemplate::Chat { system: s } => *s = Some(system.clone()),
            _ => bail!("--system needs --template chat"),
        }
    }
    let records = DatasetSpec::parse(&args.dataset)?.load()?.records;
    let items = eval_items(&tokenizer, &template, &records)?;
    if args.rewards.is_empty() || args.samples == 0 {
        bail!("--rewards needs at least one reward and --samples at least 1");
    }
    let rewards = RewardRegistry::with_builtins().build_weighted(&args.rewards, &[])?;
    let names = rewards.names();
    let options = EvalOptions {
        samples: args.samples,
        params: SamplingParams { temperature: args.temperature, top_p: args.top_p, max_new_tokens: args.max_new_tokens, seed: args.seed, ..Default::default() },
        prompts_per_batch: args.batch,
        accuracy_reward: 0,
        format_reward: names.iter().position(|n| n.starts_with("format")),
    };
    let (report, results) = evaluate(&model, &tokenizer, &items, &rewards, &options)?;
    if let Some(out) = &args.out {
        write_results(out, &results)?;
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!("{}", report_line(&report));
    Ok(())
}

/// A Hugging Face directory, or a `.gguf` file (weights and tokenizer from its metadata): the
/// model crate's one loader.
pub fn load_model_and_tokenizer(path: &std::path::Path, device: &r1kit_model::burn::prelude::Device) -> Result<(r1kit_model::Model, Tokenizer)> {
    r1kit_model::load_pretrained(path, None, device).with_context(|| format!("loading {}", path.display()))
}

fn report_line(r: &crate::eval::EvalReport) -> String {
    let format = r.format_rate.map(|f| format!(", format {:.1}%", 100.0 * f)).unwrap_or_default();
    format!(
        "eval: {} prompts x {}: accuracy {:.1}%, pass@1 {:.3}, pass@{} {:.3}, maj@{} {:.3}{format}, mean {:.0} tokens, {:.1}% truncated",
        r.examples, r.samples, 100.0 * r.accuracy, r.pass_at_1, r.samples, r.pass_at_k, r.samples, r.maj_at_k, r.mean_completion_tokens, 100.0 * r.truncation_rate
    )
}
