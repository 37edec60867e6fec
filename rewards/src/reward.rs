//! The one `Reward` trait, the record it scores against, weighted composition and the
//! name -> reward registry used by `--rewards math,format`.

use std::collections::BTreeMap;
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a reward may need to know about the task a completion answers.
/// Fields not named here (countdown's `nums`/`target`, a language tag...) live in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Gold answer as the dataset writes it (`$...$`, `#### N`, a MATH solution...).
    pub gold: Option<String>,
    pub prompt: Option<String>,
    /// Test code for code rewards (HumanEval `test`, Rust `#[cfg(test)]` module...).
    pub tests: Option<String>,
    pub entry_point: Option<String>,
    /// Every other field of the source record, kept as JSON.
    #[serde(default)]
    pub extra: Map<String, Value>,
}

impl Record {
    pub fn with_gold(gold: impl Into<String>) -> Self {
        Record { gold: Some(gold.into()), ..Default::default() }
    }

    /// A field of `extra` as a string, if it is one.
    pub fn extra_str(&self, key: &str) -> Option<&str> {
        self.extra.get(key).and_then(Value::as_str)
    }
}

/// One reward's verdict on one completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardOutput {
    pub value: f64,
    /// Short human-readable why (e.g. "no answer found"), for logs and samples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RewardOutput {
    pub fn new(value: f64) -> Self {
        RewardOutput { value, reason: None }
    }
    pub fn with_reason(value: f64, reason: impl Into<String>) -> Self {
        RewardOutput { value, reason: Some(reason.into()) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RewardError {
    #[error("unknown reward `{name}` (known: {known})")]
    UnknownReward { name: String, known: String },
    #[error("reward `{name}`: bad argument `{arg}`: {why}")]
    BadArgument { name: String, arg: String, why: String },
    #[error("reward `{name}` failed: {why}")]
    Failed { name: String, why: String },
}

/// A reward: a pure, thread-safe function of (completion, record), with bounded work per call.
pub trait Reward: Send + Sync {
    fn name(&self) -> &str;
    fn score(&self, completion: &str, record: &Record) -> RewardOutput;

    /// Scores many completions. The default runs `score` in parallel with rayon; rewards that
    /// talk to a process (external command, code sandbox) override it to batch and to report
    /// infrastructure failures as errors instead of zeros.
    fn score_batch(&self, items: &[(&str, &Record)]) -> Result<Vec<RewardOutput>, RewardError> {
        Ok(batch(self, items))
    }
}

/// Runs `reward.score` over many (completion, record) pairs in parallel, results in input order.
/// A reward that panics on some text (a bug) scores that completion 0 with the reason, instead of
/// ending a training run: model output is arbitrary text.
pub fn batch<R: Reward + ?Sized>(reward: &R, items: &[(&str, &Record)]) -> Vec<RewardOutput> {
    items
        .par_iter()
        .map(|(completion, record)| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reward.score(completion, record)))
                .unwrap_or_else(|_| RewardOutput::with_reason(0.0, format!("reward '{}' panicked on this completion (a bug); scored 0", reward.name())))
        })
        .collect()
}

/// Each reward's value and the weighted total for one completion.
#[derive(Debug, Clone, PartialEq)]
pub struct CompositeOutput {
    /// (reward name, value), in the composition's order.
    pub values: Vec<(String, f64)>,
    pub total: f64,
}

impl CompositeOutput {
    pub fn as_map(&self) -> BTreeMap<String, f64> {
        self.values.iter().cloned().collect()
    }
}

/// A weighted sum of rewards that also reports each reward's own value.
#[derive(Clone, Default)]
pub struct WeightedRewards {
    entries: Vec<(Arc<dyn Reward>, f64)>,
}

impl WeightedRewards {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(mut self, reward: Arc<dyn Reward>, weight: f64) -> Self {
        self.entries.push((reward, weight));
        self
    }

    pub fn names(&self) -> Vec<String> {
        self.entries.iter().map(|(r, _)| r.name().to_string()).collect()
    }

    pub fn weights(&self) -> Vec<f64> {
        self.entries.iter().map(|(_, w)| *w).collect()
    }

    pub fn score(&self, completion: &str, record: &Record) -> CompositeOutput {
        let values: Vec<(String, f64)> = self
            .entries
            .iter()
            .map(|(r, _)| (r.name().to_string(), r.score(completion, record).value))
            .collect();
        self.combine(values)
    }

    /// Scores a batch reward by reward (each reward batched and parallel), then combines.
    pub fn score_batch(&self, items: &[(&str, &Record)]) -> Result<Vec<CompositeOutput>, RewardError> {
        let mut per_reward = Vec::with_capacity(self.entries.len());
        for (reward, _) in &self.entries {
            let outs = reward.score_batch(items)?;
            if outs.len() != items.len() {
                return Err(RewardError::Failed {
                    name: reward.name().to_string(),
                    why: format!("returned {} scores for {} completions", outs.len(), items.len()),
                });
            }
            per_reward.push(outs);
        }
        Ok((0..items.len())
            .map(|i| {
                let values = self
                    .entries
                    .iter()
                    .zip(&per_reward)
                    .map(|((r, _), outs)| (r.name().to_string(), outs[i].value))
                    .collect();
                self.combine(values)
            })
            .collect())
    }

    fn combine(&self, values: Vec<(String, f64)>) -> CompositeOutput {
        let total = values.iter().zip(&self.entries).map(|((_, v), (_, w))| v * w).sum();
        CompositeOutput { values, total }
    }
}

/// Builds a reward from the argument text after `name:` in a spec (empty when absent).
pub type RewardFactory = Arc<dyn Fn(&str) -> Result<Arc<dyn Reward>, RewardError> + Send + Sync>;

/// Name -> factory. Specs look like `math`, `cosine:4096`, `external:path/to/scorer`.
#[derive(Clone, Default)]
pub struct RewardRegistry {
    factories: BTreeMap<String, (String, RewardFactory)>,
}

impl RewardRegistry {
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every reward this crate provides.
    pub fn with_builtins() -> Self {
        let mut registry = Self::empty();
        crate::builtins::register_builtins(&mut registry);
        registry
    }

    pub fn register(
        &mut self,
        name: &str,
        description: &str,
        factory: impl Fn(&str) -> Result<Arc<dyn Reward>, RewardError> + Send + Sync + 'static,
    ) {
        self.factories.insert(name.to_string(), (description.to_string(), Arc::new(factory)));
    }

    pub fn names(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }

    pub fn describe(&self) -> Vec<(&str, &str)> {
        self.factories.iter().map(|(n, (d, _))| (n.as_str(), d.as_str())).collect()
    }

    /// Builds one reward from a spec `name` or `name:args`.
    pub fn build(&self, spec: &str) -> Result<Arc<dyn Reward>, RewardError> {
        let spec = spec.trim();
        let (name, args) = spec.split_once(':').unwrap_or((spec, ""));
        match self.factories.get(name) {
            Some((_, factory)) => factory(args),
            None => Err(RewardError::UnknownReward {
                name: name.to_string(),
                known: self.names().join(", "),
            }),
        }
    }

    /// Builds a weighted composition; `weights` empty means all 1.0.
    pub fn build_weighted(&self, specs: &[String], weights: &[f64]) -> Result<WeightedRewards, RewardError> {
        if !weights.is_empty() && weights.len() != specs.len() {
            return Err(RewardError::BadArgument {
                name: "weights".into(),
                arg: format!("{weights:?}"),
                why: format!("{} weights for {} rewards", weights.len(), specs.len()),
            });
        }
        let mut composite = WeightedRewards::new();
        for (i, spec) in specs.iter().enumerate() {
            composite = composite.push(self.build(spec)?, weights.get(i).copied().unwrap_or(1.0));
        }
        Ok(composite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Len;
    impl Reward for Len {
        fn name(&self) -> &str {
            "len"
        }
        fn score(&self, completion: &str, _: &Record) -> RewardOutput {
            RewardOutput::new(completion.len() as f64)
        }
    }

    #[test]
    fn weighted_total_and_per_reward_values() {
        let composite = WeightedRewards::new().push(Arc::new(Len), 0.5).push(Arc::new(Len), 2.0);
        let out = composite.score("abcd", &Record::default());
        assert_eq!(out.values, vec![("len".into(), 4.0), ("len".into(), 4.0)]);
        assert_eq!(out.total, 10.0);
    }

    #[test]
    fn batch_keeps_input_order() {
        let record = Record::default();
        let texts: Vec<String> = (0..100).map(|i| "x".repeat(i)).collect();
        let items: Vec<(&str, &Record)> = texts.iter().map(|t| (t.as_str(), &record)).collect();
        let outs = batch(&Len, &items);
        assert!(outs.iter().enumerate().all(|(i, o)| o.value == i as f64));
    }

    #[test]
    fn registry_reports_unknown_names_and_weight_mismatch() {
        let mut registry = RewardRegistry::empty();
        registry.register("len", "length", |_| Ok(Arc::new(Len) as Arc<dyn Reward>));
        assert!(registry.build("len").is_ok());
        let err = registry.build("nope").err().unwrap().to_string();
        assert!(err.contains("nope") && err.contains("len"), "{err}");
        assert!(registry.build_weighted(&["len".into()], &[1.0, 2.0]).is_err());
    }
}
