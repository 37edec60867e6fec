//! The SFT recipe: a TOML file, every key documented here with its default. Unknown keys are
//! errors naming the key; `--set section.key=value` overrides any value (the value is TOML:
//! `--set optimizer.lr=3e-4`, `--set data.train="arithmetic:n=100"`; a bare word is a string).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use r1kit_datasets::PromptTemplate;
use r1kit_model::Checkpointing;
use serde::{Deserialize, Serialize};

use crate::optim::AdamWConfig;
use crate::schedule::ScheduleKind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftConfig {
    pub model: ModelSection,
    pub data: DataSection,
    #[serde(default)]
    pub train: TrainSection,
    #[serde(default)]
    pub optimizer: AdamWConfig,
    #[serde(default)]
    pub checkpoint: CheckpointSection,
    #[serde(default)]
    pub eval: EvalSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Hugging Face model directory (weights, config.json and tokenizer files), or a GGUF file
    /// where the command reads one (GRPO). Required.
    pub path: PathBuf,
    /// A tokenizer other than the model's: a tokenizer.json or a directory holding one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<PathBuf>,
    /// `cpu` (default) or `cuda` / `cuda:N` (CUDA builds).
    #[serde(default = "default_device")]
    pub device: String,
    /// Dtype of the matrix products: `f32` (default) or `bf16` (f32 master weights either way).
    #[serde(default = "default_compute")]
    pub compute: String,
}

impl ModelSection {
    /// The model with its tokenizer (the override, else its own) and compute dtype, on `device`;
    /// errors name the keys of `section` (`model`, `teacher`, `student`).
    pub fn load_on(&self, device: &r1kit_model::burn::prelude::Device, section: &str) -> Result<(r1kit_model::Model, r1kit_model::tokenizer::Tokenizer)> {
        let compute = r1kit_model::device::parse_compute_dtype(&self.compute).with_context(|| format!("{section}.compute"))?;
        let (model, tokenizer) = r1kit_model::load_pretrained(&self.path, self.tokenizer.as_deref(), device)
            .with_context(|| format!("{section}.path {}", self.path.display()))?;
        Ok((model.with_compute(compute), tokenizer))
    }

    /// The device `device` names (`section` names the key in errors).
    pub fn device(&self, section: &str) -> Result<r1kit_model::burn::prelude::Device> {
        r1kit_model::device::parse_device(&self.device).with_context(|| format!("{section}.device"))
    }

    /// The directory whose tokenizer files saved models copy: the override's (a directory, or the
    /// one holding the file), else the model directory; `None` for a GGUF model without one (the
    /// tokenizer is then written from memory).
    pub fn tokenizer_dir(&self) -> Option<PathBuf> {
        match &self.tokenizer {
            Some(t) if t.is_dir() => Some(t.clone()),
            Some(t) => Some(t.parent().map(Path::to_path_buf).unwrap_or_default()),
            None => self.path.is_dir().then(|| self.path.clone()),
        }
    }
}

fn default_compute() -> String {
    "f32".into()
}

fn default_device() -> String {
    "cpu".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Dataset spec of the training examples (prompt/completion pairs, chats, or generated traces
    /// such as `arithmetic:n=5000,seed=1?split=train`). Required.
    pub train: String,
    /// Dataset spec of held-out examples for the held-out loss (none by default).
    #[serde(default)]
    pub heldout: Option<String>,
    /// Prompt template (`r1-zero`, `r1-zero-prefill`, `plain`, `chat`, or a table). Default r1-zero.
    #[serde(default)]
    pub template: PromptTemplate,
    /// Longest example in tokens; longer ones are truncated (TRL's max_length). Default 1024.
    #[serde(default = "default_max_seq_len")]
    pub max_seq_len: usize,
    /// Pack several examples into rows of max_seq_len tokens. Default true.
    #[serde(default = "yes")]
    pub packing: bool,
    /// Shuffle the examples each epoch (seeded by train.seed). Default true.
    #[serde(default = "yes")]
    pub shuffle: bool,
}

fn default_max_seq_len() -> usize {
    1024
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// Run directory: config.toml, metrics.jsonl, checkpoints/, final/. Default `runs/sft`.
    pub out_dir: PathBuf,
    /// Passes over the training set. Default 1.
    pub epochs: u64,
    /// Stop after this many optimizer steps (0: epochs decide). Default 0.
    pub max_steps: u64,
    /// Examples per optimizer step (the global batch). Default 16.
    pub examples_per_step: usize,
    /// Padded tokens per forward/backward (micro-batch); a step's examples are split into as many
    /// micro-batches as this needs, without changing the gradient. Default 8192.
    pub micro_batch_tokens: usize,
    /// What the backward pass recomputes instead of keeping: false (nothing), true or "ops"
    /// (burn's balanced strategy: cheap activations), "blocks" (each transformer block keeps only
    /// its input and runs again: the least memory, about one more forward). Default false.
    pub gradient_checkpointing: Checkpointing,
    /// Seed of the data order and of evaluation sampling. Default 0.
    pub seed: u64,
    /// Global gradient-norm clip (0: off). Default 1.0 (TRL's max_grad_norm).
    pub max_grad_norm: f64,
    /// LR schedule after warmup: linear (default, as TRL), cosine or constant.
    pub schedule: ScheduleKind,
    /// Warmup as a fraction of the total steps (rounded up). Default 0.0.
    pub warmup_ratio: f64,
    /// Warmup steps; overrides warmup_ratio when set.
    pub warmup_steps: Option<u64>,
    /// Parameter name patterns (`*` wildcard) that stay frozen. Default none.
    pub freeze: Vec<String>,
    /// Print a progress line every N steps (0: never). Default 1.
    pub log_every: u64,
    /// Continue from the last checkpoint in out_dir when there is one. Default true.
    pub resume: bool,
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            out_dir: PathBuf::from("runs/sft"),
            epochs: 1,
            max_steps: 0,
            examples_per_step: 16,
            micro_batch_tokens: 8192,
            gradient_checkpointing: Checkpointing::Off,
            seed: 0,
            max_grad_norm: 1.0,
            schedule: ScheduleKind::Linear,
            warmup_ratio: 0.0,
            warmup_steps: None,
            freeze: vec![],
            log_every: 1,
            resume: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointSection {
    /// Save every N steps (0: only at the end). The last step is always saved. Default 0.
    pub every: u64,
    /// Keep the last N checkpoints (0: all). Default 2.
    pub keep_last: usize,
    /// Also keep the checkpoint with the best held-out metric (accuracy when evaluated, else the
    /// lowest held-out loss). Default true.
    pub keep_best: bool,
}

impl Default for CheckpointSection {
    fn default() -> Self {
        CheckpointSection { every: 0, keep_last: 2, keep_best: true }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSection {
    /// Evaluate every N steps (0: only at the end); the held-out loss and, with a dataset, the
    /// accuracy. Default 0.
    pub every: u64,
    /// Dataset spec of evaluation prompts with gold answers (e.g. `arithmetic:n=100,seed=9`);
    /// none: no accuracy. Default none.
    pub dataset: Option<String>,
    /// Rewards, the first deciding correctness; a `format*` one gives the format rate.
    /// Default ["math", "format"].
    pub rewards: Vec<String>,
    /// Completions per prompt (k of pass@k and maj@k). Default 1.
    pub samples: usize,
    /// Sampling temperature (0: greedy). Default 0.
    pub temperature: f32,
    /// Default 1.0 (off).
    pub top_p: f32,
    /// Default 256.
    pub max_new_tokens: usize,
    /// Prompts sampled together. Default 32.
    pub prompts_per_batch: usize,
    /// Per-example results of the final evaluation, relative to out_dir. Default `eval.jsonl`.
    pub results_file: PathBuf,
}

impl Default for EvalSection {
    fn default() -> Self {
        EvalSection {
            every: 0,
            dataset: None,
            rewards: vec!["math".into(), "format".into()],
            samples: 1,
            temperature: 0.0,
            top_p: 1.0,
            max_new_tokens: 256,
            prompts_per_batch: 32,
            results_file: PathBuf::from("eval.jsonl"),
        }
    }
}

impl SftConfig {
    pub fn validate(&self) -> Result<()> {
        self.optimizer.validate().map_err(anyhow::Error::msg)?;
        let t = &self.train;
        if t.examples_per_step == 0 {
            bail!("train.examples_per_step must be > 0");
        }
        if t.epochs == 0 && t.max_steps == 0 {
            bail!("train.epochs and train.max_steps are both 0: nothing to train");
        }
        if !(0.0..=1.0).contains(&t.warmup_ratio) {
            bail!("train.warmup_ratio must be in [0, 1], got {}", t.warmup_ratio);
        }
        if self.data.max_seq_len < 2 {
            bail!("data.max_seq_len must be >= 2");
        }
        if self.eval.samples == 0 {
            bail!("eval.samples must be > 0");
        }
        if self.eval.rewards.is_empty() {
            bail!("eval.rewards is empty: the first reward decides correctness");
        }
        Ok(())
    }
}

/// Reads `path`, applies `KEY=VALUE` overrides, and checks the result.
pub fn load_config(path: &Path, overrides: &[String]) -> Result<SftConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_config(&text, overrides).with_context(|| format!("config {}", path.display()))
}

pub fn parse_config(text: &str, overrides: &[String]) -> Result<SftConfig> {
    let config: SftConfig = if overrides.is_empty() {
        toml::from_str(text)?
    } else {
        let mut table: toml::Table = toml::from_str(text)?;
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        SftConfig::deserialize(toml::Value::Table(table)).map_err(|e| anyhow::anyhow!("after --set: {e}"))?
    };
    config.validate()?;
    Ok(config)
}

/// `a.b.c=value`: sets the key, creating tables on the way; the value is parsed as TOML, and a
/// text that is not TOML is taken as a string.
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment.split_once('=').with_context(|| format!("--set `{assignment}`: expected KEY=VALUE"))?;
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("parsed"),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.trim().split('.').collect();
    let mut current = table;
    for part in &parts[..parts.len() - 1] {
        let entry = current.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().with_context(|| format!("--set `{assignment}`: `{part}` is not a table"))?;
    }
    current.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[model]\npath = \"m\"\n[data]\ntrain = \"arithmetic:n=10\"\n";

    #[test]
    fn defaults_fill_everything_but_model_and_data() {
        let c = parse_config(MINIMAL, &[]).unwrap();
        assert_eq!(c.train, TrainSection::default());
        assert_eq!(c.optimizer.eps, 1e-8);
        assert_eq!(c.data.max_seq_len, 1024);
        assert!(c.data.packing);
        assert_eq!(c.data.template, PromptTemplate::r1_zero());
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = parse_config(&format!("{MINIMAL}[optimizer]\nlearning_rate = 1e-3\n"), &[]).unwrap_err();
        assert!(format!("{err:#}").contains("learning_rate"), "{err:#}");
        let err = parse_config(MINIMAL, &["train.epoch=3".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("epoch"), "{err:#}");
    }

    #[test]
    fn overrides_set_typed_values_and_strings() {
        let c = parse_config(MINIMAL, &["optimizer.lr=3e-4".into(), "train.epochs=3".into(), "data.train=countdown:n=5".into(), "eval.rewards=[\"countdown\"]".into()]).unwrap();
        assert_eq!(c.optimizer.lr, 3e-4);
        assert_eq!(c.train.epochs, 3);
        assert_eq!(c.data.train, "countdown:n=5");
        assert_eq!(c.eval.rewards, vec!["countdown"]);
        assert!(parse_config(MINIMAL, &["optimizer.lr=-1".into()]).is_err());
    }
}
