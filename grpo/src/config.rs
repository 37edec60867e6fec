//! `r1kit grpo --config FILE.toml [--set key=value ...]`: every option, its default and what it
//! does. Unknown keys are errors that name the key (serde's deny_unknown_fields).
//!
//! ```toml
//! [model]
//! path = "runs/sft/final"        # HF directory or GGUF file (required)
//! # tokenizer = "..."            # tokenizer.json or its directory (default: the model's own)
//! device = "cpu"                 # cpu | cuda
//! compute = "f32"                # dtype of the matrix products: f32 | bf16 (f32 master weights)
//!
//! [data]
//! train = "countdown:n=4000,seed=1"      # dataset spec (required; see `r1kit data show`)
//! heldout = "countdown:n=200,seed=999"   # held-out evaluation set (optional)
//! template = "r1-zero"                   # prompt template (r1-zero, plain, chat, or a table)
//!
//! [rollout]
//! prompts_per_step = 8     # prompts per optimizer step (groups)
//! group = 8                # completions per prompt (G)
//! max_new_tokens = 128     # also the "max completion length" of Dr. GRPO's normalizer
//! temperature = 1.0
//! top_p = 1.0
//! top_k = 0
//! min_p = 0.0
//! stop_strings = []
//!
//! [rewards]
//! rewards = ["math", "format"]   # reward specs (see `r1kit reward --help`)
//! weights = [1.0, 0.2]           # default: 1 each
//! accuracy = "math"              # the reward that decides correctness (default: the first)
//! format = "format"              # the reward counted as the format rate (default: the one named format, if any)
//!
//! [algorithm]
//! advantage = "group-zscore"     # group-zscore | group-mean (Dr. GRPO) | group-mean-batch-std | rloo
//! aggregation = "sequence-mean"  # sequence-mean (GRPO) | token-mean (DAPO) | sum-over-max-length (Dr. GRPO)
//! eps_low = 0.2                  # ratio clipped to [1 - eps_low, 1 + eps_high]
//! eps_high = 0.2                 # DAPO's clip-higher uses 0.28
//! # dual_clip = 3.0              # cap on the loss for negative advantages (off by default)
//! beta = 0.0                     # KL coefficient; 0 loads no reference model
//! kl_estimator = "k3"            # k1 | k2 | k3 (see grpo/src/kl.rs for their gradients)
//! kl_in = "loss"                 # loss | reward (subtracted from each sequence's reward)
//! mu = 1                         # optimizer steps per batch of rollouts
//! dynamic_sampling = false       # drop groups whose accuracy values all agree, resample
//! max_resample_rounds = 3        # extra sampling rounds dynamic sampling may take per step
//! mask_truncated = false         # completions cut by max_new_tokens get no loss
//! shuffle_rewards = false        # control run: rewards permuted across the step's completions
//!
//! [optimizer]
//! lr = 1e-6
//! schedule = "constant"          # constant | linear | cosine, after warmup
//! warmup_steps = 0
//! beta1 = 0.9
//! beta2 = 0.99
//! eps = 1e-8
//! weight_decay = 0.0
//! max_grad_norm = 1.0            # global-norm clip (0 = off)
//! micro_batch_tokens = 4096      # padded tokens per forward/backward
//! gradient_checkpointing = false # true / "ops": recompute cheap activations; "blocks": recompute each block (least memory)
//!
//! [run]
//! out = "runs/grpo"
//! steps = 100
//! seed = 0
//! eval_every = 20                # 0 = only at the start and the end
//! eval_limit = 200               # held-out prompts evaluated
//! eval_samples = 1               # completions per held-out prompt (k)
//! eval_temperature = 0.0         # greedy held-out accuracy by default
//! save_every = 20
//! keep_last = 2
//! samples_every = 5              # write some completions to samples.jsonl (0 = never)
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use r1kit_model::Checkpointing;
use serde::{Deserialize, Serialize};

pub use r1kit_train::config::ModelSection;

use crate::advantages::AdvantageKind;
use crate::kl::KlEstimator;
use crate::loss::Aggregation;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoConfig {
    pub model: ModelSection,
    pub data: DataSection,
    #[serde(default)]
    pub rollout: RolloutSection,
    #[serde(default)]
    pub rewards: RewardsSection,
    #[serde(default)]
    pub algorithm: AlgorithmSection,
    #[serde(default)]
    pub optimizer: OptimSection,
    #[serde(default)]
    pub run: RunSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    pub train: String,
    #[serde(default)]
    pub heldout: Option<String>,
    #[serde(default = "default_template")]
    pub template: r1kit_datasets::PromptTemplate,
}

fn default_template() -> r1kit_datasets::PromptTemplate {
    serde_json::from_value(serde_json::json!("r1-zero")).expect("r1-zero is a template")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutSection {
    pub prompts_per_step: usize,
    pub group: usize,
    pub max_new_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: usize,
    pub min_p: f32,
    pub stop_strings: Vec<String>,
}

impl Default for RolloutSection {
    fn default() -> Self {
        RolloutSection { prompts_per_step: 8, group: 8, max_new_tokens: 128, temperature: 1.0, top_p: 1.0, top_k: 0, min_p: 0.0, stop_strings: vec![] }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardsSection {
    pub rewards: Vec<String>,
    pub weights: Vec<f64>,
    pub accuracy: Option<String>,
    pub format: Option<String>,
}

impl Default for RewardsSection {
    fn default() -> Self {
        RewardsSection { rewards: vec!["math".into(), "format".into()], weights: vec![], accuracy: None, format: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KlPlacement {
    Loss,
    Reward,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlgorithmSection {
    pub advantage: AdvantageKind,
    pub aggregation: Aggregation,
    pub eps_low: f64,
    pub eps_high: f64,
    pub dual_clip: Option<f64>,
    pub beta: f64,
    pub kl_estimator: KlEstimator,
    pub kl_in: KlPlacement,
    pub mu: usize,
    pub dynamic_sampling: bool,
    pub max_resample_rounds: usize,
    pub mask_truncated: bool,
    pub shuffle_rewards: bool,
}

impl Default for AlgorithmSection {
    fn default() -> Self {
        AlgorithmSection {
            advantage: AdvantageKind::GroupZscore,
            aggregation: Aggregation::SequenceMean,
            eps_low: 0.2,
            eps_high: 0.2,
            dual_clip: None,
            beta: 0.0,
            kl_estimator: KlEstimator::K3,
            kl_in: KlPlacement::Loss,
            mu: 1,
            dynamic_sampling: false,
            max_resample_rounds: 3,
            mask_truncated: false,
            shuffle_rewards: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimSection {
    pub lr: f64,
    pub schedule: r1kit_train::schedule::ScheduleKind,
    pub warmup_steps: u64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub micro_batch_tokens: usize,
    pub gradient_checkpointing: Checkpointing,
}

impl Default for OptimSection {
    fn default() -> Self {
        OptimSection {
            lr: 1e-6,
            schedule: r1kit_train::schedule::ScheduleKind::Constant,
            warmup_steps: 0,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            micro_batch_tokens: 4096,
            gradient_checkpointing: Checkpointing::Off,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    pub out: PathBuf,
    pub steps: u64,
    pub seed: u64,
    pub eval_every: u64,
    pub eval_limit: usize,
    pub eval_samples: usize,
    pub eval_temperature: f32,
    pub save_every: u64,
    pub keep_last: usize,
    pub samples_every: u64,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            out: PathBuf::from("runs/grpo"),
            steps: 100,
            seed: 0,
            eval_every: 20,
            eval_limit: 200,
            eval_samples: 1,
            eval_temperature: 0.0,
            save_every: 20,
            keep_last: 2,
            samples_every: 5,
        }
    }
}

impl GrpoConfig {
    /// Reads a TOML file and applies `key=value` overrides (dotted keys, TOML values; a value
    /// that is not TOML is taken as a string).
    pub fn load(path: &Path, overrides: &[String]) -> Result<GrpoConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let mut value: toml::Table = toml::from_str(&text).with_context(|| format!("{}: not valid TOML", path.display()))?;
        for o in overrides {
            r1kit_train::config::apply_override(&mut value, o)?;
        }
        let config: GrpoConfig =
            GrpoConfig::deserialize(toml::Value::Table(value)).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        config.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(config)
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        let r = &self.rollout;
        if r.group == 0 || r.prompts_per_step == 0 || r.max_new_tokens == 0 {
            return Err("rollout.group, rollout.prompts_per_step and rollout.max_new_tokens must be positive".into());
        }
        if self.rewards.rewards.is_empty() {
            return Err("rewards.rewards is empty".into());
        }
        if !self.rewards.weights.is_empty() && self.rewards.weights.len() != self.rewards.rewards.len() {
            return Err(format!("rewards.weights has {} values for {} rewards", self.rewards.weights.len(), self.rewards.rewards.len()));
        }
        for (key, name) in [("accuracy", &self.rewards.accuracy), ("format", &self.rewards.format)] {
            if let Some(name) = name.as_deref().filter(|n| !self.rewards.rewards.iter().any(|r| reward_name(r) == *n)) {
                return Err(format!("rewards.{key}: '{name}' is not one of rewards.rewards"));
            }
        }
        let a = &self.algorithm;
        if a.eps_low < 0.0 || a.eps_high < 0.0 || a.beta < 0.0 || a.mu == 0 {
            return Err("algorithm: eps_low, eps_high and beta must be >= 0 and mu >= 1".into());
        }
        if self.optimizer.lr <= 0.0 || !self.optimizer.lr.is_finite() {
            return Err(format!("optimizer.lr must be positive, got {}", self.optimizer.lr));
        }
        Ok(())
    }
}

/// The name a reward spec registers under (`math:whole` -> `math`).
pub fn reward_name(spec: &str) -> &str {
    spec.split(':').next().unwrap_or(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/r1zero-arithmetic.toml")
    }

    #[test]
    fn example_config_loads_with_overrides() {
        let c = GrpoConfig::load(&example(), &["run.steps=7".into(), "algorithm.advantage=\"rloo\"".into()]).unwrap();
        assert_eq!(c.run.steps, 7);
        assert_eq!(c.algorithm.advantage, AdvantageKind::Rloo);
        assert_eq!(c.rollout.group, 8);
        assert_eq!(c.algorithm.eps_high, 0.28);
    }

    #[test]
    fn every_example_config_loads_and_its_data_specs_parse() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let c = GrpoConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                for spec in std::iter::once(&c.data.train).chain(c.data.heldout.as_ref()) {
                    r1kit_datasets::DatasetSpec::parse(spec).unwrap_or_else(|e| panic!("{}: {spec}: {e}", path.display()));
                }
                n += 1;
            }
        }
        assert!(n >= 3, "{n} example configs");
    }

    #[test]
    fn typos_and_bad_values_are_named() {
        let err = GrpoConfig::load(&example(), &["algorithm.epsilon=0.1".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("epsilon"), "{err:#}");
        let err = GrpoConfig::load(&example(), &["rewards.accuracy=\"code\"".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("rewards.accuracy: 'code' is not one of rewards.rewards"), "{err:#}");
        let err = GrpoConfig::load(&example(), &["rewards.format=\"tag_count\"".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("rewards.format: 'tag_count' is not one of rewards.rewards"), "{err:#}");
        // no format key and no reward named format (the default): nothing to count as the format rate, no error
        let mut c = GrpoConfig::load(&example(), &["rewards.rewards=[\"math\", \"repetition\"]".into(), "rewards.format=\"math\"".into()]).unwrap();
        c.rewards.format = RewardsSection::default().format;
        c.validate().unwrap();
        let c = GrpoConfig::load(&example(), &["optimizer.gradient_checkpointing=\"blocks\"".into()]).unwrap();
        assert_eq!(c.optimizer.gradient_checkpointing, r1kit_model::Checkpointing::Blocks);
        let err = GrpoConfig::load(&example(), &["optimizer.gradient_checkpointing=\"layers\"".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("gradient checkpointing 'layers'"), "{err:#}");
        let err = GrpoConfig::load(&example(), &["rollout.group=0".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("rollout.group"), "{err:#}");
    }
}
