//! The `r1kit reject` and `r1kit distill` subcommands: option structs and run functions.

use std::path::PathBuf;

use anyhow::{bail, Result};
use r1kit_datasets::{DatasetSpec, PromptTemplate};
use r1kit_model::device::parse_device;
use r1kit_rewards::RewardRegistry;
use r1kit_sampler::SamplingParams;
use r1kit_train::command::load_model_and_tokenizer;

use crate::config::load_config;
use crate::dedup::DedupOptions;
use crate::reject::{reject_sample, write_outputs, Criterion, RejectOptions, RejectReport};
use crate::run::distill;

#[derive(clap::Args, Debug, Clone)]
pub struct RejectArgs {
    /// Hugging Face model directory (with its tokenizer) or a .gguf file.
    #[arg(long)]
    pub model: PathBuf,
    /// Dataset spec of prompts with gold answers (gsm8k?limit=100, arithmetic:n=100, ...).
    #[arg(long)]
    pub dataset: String,
    /// Prompt template: r1-zero, r1-zero-prefill, plain, chat. Train on the output with the same one.
    #[arg(long, default_value = "r1-zero")]
    pub template: String,
    /// A plain template's text, `{prompt}` marking the problem (e.g. "Q: {prompt}\nA:");
    /// replaces --template.
    #[arg(long)]
    pub prompt_format: Option<String>,
    /// Rewards, comma-separated; the first is the accuracy reward.
    #[arg(long, default_value = "math,format", value_delimiter = ',')]
    pub rewards: Vec<String>,
    /// Weights of the rewards, comma-separated (default: all 1).
    #[arg(long, value_delimiter = ',')]
    pub weights: Vec<f64>,
    /// What reaches the threshold: `accuracy` (the first reward's value) or `total` (weighted sum).
    #[arg(long, default_value = "accuracy")]
    pub criterion: String,
    #[arg(long, default_value_t = 1.0)]
    pub threshold: f64,
    /// Completions sampled per prompt.
    #[arg(long, default_value_t = 4)]
    pub samples: usize,
    /// Keep at most K accepted completions per prompt, the shortest first.
    #[arg(long)]
    pub keep_shortest: Option<usize>,
    /// Drop near-duplicate accepted completions of a prompt.
    #[arg(long)]
    pub dedup: bool,
    /// Word n-gram size for --dedup.
    #[arg(long, default_value_t = 3)]
    pub dedup_ngram: usize,
    /// Jaccard similarity at which --dedup drops a completion (1.0: normalized duplicates only).
    #[arg(long, default_value_t = 0.9)]
    pub dedup_threshold: f64,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    #[arg(long, default_value_t = 512)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Prompts sampled together.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// SFT-ready JSONL of the kept completions; the report goes to FILE.report.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `r1kit reject` and returns its report (the command prints it).
pub fn reject_with_report(args: &RejectArgs) -> Result<RejectReport> {
    let criterion: Criterion = args.criterion.parse().map_err(anyhow::Error::msg)?;
    let template: PromptTemplate = match &args.prompt_format {
        Some(format) if !format.contains("{prompt}") => bail!("--prompt-format {format:?} has no `{{prompt}}` to put the problem in"),
        Some(format) => PromptTemplate::Plain { format: format.clone() },
        None => args.template.parse().map_err(anyhow::Error::msg)?,
    };
    if args.samples == 0 || args.rewards.is_empty() {
        bail!("--samples must be at least 1 and --rewards name at least one reward");
    }
    if !(args.dedup_threshold > 0.0 && args.dedup_threshold <= 1.0) {
        bail!("--dedup-threshold must be in (0, 1], got {}", args.dedup_threshold);
    }
    let rewards = RewardRegistry::with_builtins().build_weighted(&args.rewards, &args.weights)?;
    let records = DatasetSpec::parse(&args.dataset)?.load()?.records;
    if records.is_empty() {
        bail!("dataset `{}` has no records", args.dataset);
    }
    let device = parse_device(&args.device)?;
    let (model, tokenizer) = load_model_and_tokenizer(&args.model, &device)?;
    let options = RejectOptions {
        samples: args.samples,
        threshold: args.threshold,
        criterion,
        keep_shortest: args.keep_shortest,
        dedup: args.dedup.then_some(DedupOptions { ngram: args.dedup_ngram, threshold: args.dedup_threshold }),
        params: SamplingParams {
            temperature: args.temperature,
            top_p: args.top_p,
            top_k: args.top_k,
            min_p: args.min_p,
            max_new_tokens: args.max_new_tokens,
            seed: args.seed,
            ..Default::default()
        },
        prompts_per_batch: args.batch,
    };
    let (kept, report) = reject_sample(&model, &tokenizer, &template, &records, &rewards, &options)?;
    let report_path = write_outputs(&args.out, &kept, &report)?;
    eprintln!("{}", report.summary());
    eprintln!("wrote {} completions to {} (train with the same template: {}), report in {}", kept.len(), args.out.display(), serde_json::to_string(&template)?, report_path.display());
    Ok(report)
}

/// `r1kit reject`: sample N per prompt, keep what the rewards verify, write SFT data.
pub fn run_reject(args: &RejectArgs) -> Result<()> {
    reject_with_report(args).map(|_| ())
}

#[derive(clap::Args, Debug, Clone)]
pub struct DistillArgs {
    /// The recipe (see distill/configs/ for documented examples).
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config value: `--set kd.divergence=jsd` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// `r1kit distill`: traces, logit KD or on-policy distillation as the config says.
pub fn run_distill(args: &DistillArgs) -> Result<()> {
    let config = load_config(&args.config, &args.set)?;
    let outcome = distill(&config, &mut |_| {})?;
    eprintln!(
        "done: mode {}, {} steps, {} trained tokens, final loss {:.4}, student in {}",
        config.mode.name(),
        outcome.steps,
        outcome.trained_tokens,
        outcome.final_loss,
        outcome.final_dir.display()
    );
    if let Some(r) = &outcome.eval {
        let format = r.format_rate.map(|f| format!(", format {:.1}%", 100.0 * f)).unwrap_or_default();
        eprintln!("eval: {} prompts: accuracy {:.1}%{format}, mean {:.0} tokens", r.examples, 100.0 * r.accuracy, r.mean_completion_tokens);
    }
    Ok(())
}
