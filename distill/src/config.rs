//! The distillation recipe (`r1kit distill --config FILE.toml`). Every key is documented here
//! with its default; unknown keys are errors naming the key; `--set section.key=value` overrides
//! (train's `apply_override`). `teacher` and `student` are train's `[model]` section; `train`,
//! `optimizer`, `checkpoint` and `eval` are train's SFT sections, with the same keys.

use std::path::Path;

use anyhow::{bail, Context, Result};
use r1kit_datasets::PromptTemplate;
use r1kit_train::config::{apply_override, CheckpointSection, EvalSection, ModelSection, TrainSection};
use r1kit_train::optim::AdamWConfig;
use serde::{Deserialize, Serialize};

use crate::divergence::DivergenceKind;
use crate::reject::Criterion;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The teacher's verified completions (or a file of traces) -> SFT of the student.
    Traces,
    /// The student matches the teacher's next-token distribution on sequences (shared vocabulary).
    LogitKd,
    /// The student samples, the teacher scores its tokens: per-token reverse KL.
    OnPolicy,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Traces => "traces",
            Mode::LogitKd => "logit-kd",
            Mode::OnPolicy => "on-policy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// `traces`, `logit-kd` or `on-policy`. Required.
    pub mode: Mode,
    /// The teacher: a Hugging Face directory or a GGUF file (train's `[model]` keys: path,
    /// tokenizer, device, compute).
    pub teacher: ModelSection,
    /// The student's starting weights and tokenizer: a Hugging Face directory (e.g. made by
    /// `r1kit init --shape qwen2.5-1.5b --tokenizer TEACHER_DIR --out DIR`).
    pub student: ModelSection,
    pub data: DataSection,
    #[serde(default)]
    pub generate: GenerateSection,
    #[serde(default)]
    pub kd: KdSection,
    #[serde(default)]
    pub on_policy: OnPolicySection,
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
pub struct DataSection {
    /// Dataset spec of the prompts (with gold answers): the teacher answers them in `traces`
    /// mode when `traces` is unset, and the student samples on them in `on-policy` mode.
    #[serde(default)]
    pub prompts: Option<String>,
    /// Dataset spec of training sequences (traces, prompt/completion pairs, chats): read instead
    /// of generating in `traces` mode (trace records marked `correct = false` are dropped), and
    /// the sequences of `logit-kd` (when unset, logit-kd distills on teacher-generated traces).
    #[serde(default)]
    pub traces: Option<String>,
    /// Prompt template (as train's data.template). Default r1-zero.
    #[serde(default)]
    pub template: PromptTemplate,
    /// Longest sequence in tokens; longer ones are truncated. Default 1024.
    #[serde(default = "default_max_seq_len")]
    pub max_seq_len: usize,
    /// Pack several sequences into a row (traces and logit-kd). Default true.
    #[serde(default = "yes")]
    pub packing: bool,
    /// Shuffle each epoch (seeded by train.seed). Default true.
    #[serde(default = "yes")]
    pub shuffle: bool,
}

fn default_max_seq_len() -> usize {
    1024
}
fn yes() -> bool {
    true
}

/// The teacher's trace generation (rejection sampling), for `traces` mode and for logit-kd
/// without `data.traces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateSection {
    /// Completions per prompt. Default 4.
    pub samples: usize,
    /// Rewards, the first being the accuracy reward. Default ["math", "format"].
    pub rewards: Vec<String>,
    /// Weights of the rewards (empty: all 1). Default [].
    pub weights: Vec<f64>,
    /// `accuracy` (the first reward's value, default) or `total` (the weighted sum).
    pub criterion: Criterion,
    /// Accepted when the criterion value >= threshold. Default 1.0.
    pub threshold: f64,
    /// Keep at most this many accepted completions per prompt, the shortest first (0: all).
    /// Default 1.
    pub keep_shortest: usize,
    /// Drop near-duplicate completions of a prompt (3-gram Jaccard >= 0.9). Default true.
    pub dedup: bool,
    /// Default 1.0.
    pub temperature: f32,
    /// Default 1.0.
    pub top_p: f32,
    /// Default 256.
    pub max_new_tokens: usize,
    /// Default 32.
    pub prompts_per_batch: usize,
    /// Default 0.
    pub seed: u64,
}

impl Default for GenerateSection {
    fn default() -> Self {
        GenerateSection {
            samples: 4,
            rewards: vec!["math".into(), "format".into()],
            weights: vec![],
            criterion: Criterion::Accuracy,
            threshold: 1.0,
            keep_shortest: 1,
            dedup: true,
            temperature: 1.0,
            top_p: 1.0,
            max_new_tokens: 256,
            prompts_per_batch: 32,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KdSection {
    /// `forward-kl` (default), `reverse-kl` or `jsd`.
    pub divergence: DivergenceKind,
    /// JSD's weight on the teacher, in (0, 1). Default 0.5.
    pub jsd_beta: f64,
    /// Softmax temperature on both sides (the loss is multiplied by its square). Default 1.0.
    pub temperature: f64,
    /// Positions projected to the vocabulary at a time (teacher logits are never stored whole).
    /// Default 1024.
    pub chunk_rows: usize,
}

impl Default for KdSection {
    fn default() -> Self {
        KdSection { divergence: DivergenceKind::ForwardKl, jsd_beta: 0.5, temperature: 1.0, chunk_rows: 1024 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Estimator {
    /// The exact per-token reverse KL over the whole vocabulary at each sampled position.
    Full,
    /// The sampled-token estimator: sg(log p_S(x) - log p_T(x)) * log p_S(x).
    Sampled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnPolicySection {
    /// `full` (default) or `sampled`.
    pub estimator: Estimator,
    /// Completions the student samples per prompt at each step. Default 1.
    pub samples: usize,
    /// Default 1.0.
    pub temperature: f32,
    /// Default 256.
    pub max_new_tokens: usize,
}

impl Default for OnPolicySection {
    fn default() -> Self {
        OnPolicySection { estimator: Estimator::Full, samples: 1, temperature: 1.0, max_new_tokens: 256 }
    }
}

impl DistillConfig {
    pub fn validate(&self) -> Result<()> {
        self.optimizer.validate().map_err(anyhow::Error::msg)?;
        if self.train.examples_per_step == 0 {
            bail!("train.examples_per_step must be > 0");
        }
        if self.train.epochs == 0 && self.train.max_steps == 0 {
            bail!("train.epochs and train.max_steps are both 0: nothing to train");
        }
        if self.data.max_seq_len < 2 {
            bail!("data.max_seq_len must be >= 2");
        }
        let needs_prompts = match self.mode {
            Mode::Traces | Mode::LogitKd => self.data.traces.is_none(),
            Mode::OnPolicy => true,
        };
        if needs_prompts && self.data.prompts.is_none() {
            bail!("mode `{}` needs data.prompts{}", self.mode.name(), if self.mode == Mode::OnPolicy { "" } else { " (or data.traces)" });
        }
        if self.generate.samples == 0 || self.on_policy.samples == 0 {
            bail!("generate.samples and on_policy.samples must be > 0");
        }
        if !(self.kd.jsd_beta > 0.0 && self.kd.jsd_beta < 1.0) {
            bail!("kd.jsd_beta must be in (0, 1), got {}", self.kd.jsd_beta);
        }
        if !(self.kd.temperature > 0.0) {
            bail!("kd.temperature must be > 0, got {}", self.kd.temperature);
        }
        Ok(())
    }
}

/// Reads `path`, applies `KEY=VALUE` overrides, and checks the result.
pub fn load_config(path: &Path, overrides: &[String]) -> Result<DistillConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_config(&text, overrides).with_context(|| format!("config {}", path.display()))
}

pub fn parse_config(text: &str, overrides: &[String]) -> Result<DistillConfig> {
    let mut table: toml::Table = toml::from_str(text)?;
    for o in overrides {
        apply_override(&mut table, o)?;
    }
    let config = DistillConfig::deserialize(toml::Value::Table(table)).map_err(|e| anyhow::anyhow!("{e}"))?;
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "mode = \"logit-kd\"\n[teacher]\npath = \"t\"\n[student]\npath = \"s\"\n[data]\ntraces = \"arithmetic:n=10,traces=true\"\n";

    #[test]
    fn defaults_and_overrides() {
        let c = parse_config(MINIMAL, &[]).unwrap();
        assert_eq!(c.mode, Mode::LogitKd);
        assert_eq!(c.kd, KdSection::default());
        assert_eq!(c.train, TrainSection::default());
        let c = parse_config(MINIMAL, &["kd.divergence=jsd".into(), "mode=on-policy".into(), "data.prompts=arithmetic:n=5".into()]).unwrap();
        assert_eq!((c.mode, c.kd.divergence), (Mode::OnPolicy, DivergenceKind::Jsd));
    }

    #[test]
    fn errors_name_the_key() {
        let err = parse_config(&format!("{MINIMAL}[kd]\ndivergense = \"jsd\"\n"), &[]).unwrap_err();
        assert!(format!("{err:#}").contains("divergense"), "{err:#}");
        let err = parse_config(MINIMAL, &["kd.divergence=kl".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("kl"), "{err:#}");
        let err = parse_config(MINIMAL, &["mode=on-policy".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("data.prompts"), "{err:#}");
    }
}
