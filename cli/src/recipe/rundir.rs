//! The run directory: one folder per stage, each finished stage marked by a `done.json` written
//! atomically (so a killed run never leaves a marker of unfinished work), and `summary.json`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::spec::{PlannedStage, StageKind};

pub const DONE_FILE: &str = "done.json";

/// What a finished stage recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub name: String,
    pub kind: String,
    /// The resolved configuration the stage ran with.
    pub config: Value,
    /// Its model or data, relative to the run directory.
    pub output: Option<PathBuf>,
    /// The held-out evaluation of the stage's model (train's EvalReport as JSON).
    pub heldout: Option<Value>,
    /// RL stages: the mean total reward of the last step.
    pub final_mean_reward: Option<f64>,
    /// What the stage itself reported (steps, losses, acceptance...).
    pub details: Value,
    /// Wall time of the stage, its held-out evaluation included.
    pub seconds: f64,
}

impl Done {
    pub fn heldout_number(&self, key: &str) -> Option<f64> {
        self.heldout.as_ref()?.get(key)?.as_f64()
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

pub fn write_done(stage: &PlannedStage, done: &Done) -> Result<()> {
    write_atomic(&stage.dir.join(DONE_FILE), (serde_json::to_string_pretty(done)? + "\n").as_bytes())
}

/// The stage's marker when it finished; an error when it finished with another configuration
/// (the recipe changed under a run directory that already holds its results).
pub fn finished(stage: &PlannedStage) -> Result<Option<Done>> {
    let path = stage.dir.join(DONE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let done: Done = serde_json::from_str(&text).with_context(|| format!("{}: not a stage marker", path.display()))?;
    if done.config != stage.resolved || done.kind != stage.kind.name() {
        bail!(
            "stage `{}` finished earlier with another configuration ({}); delete {} to run it again, or use another --out",
            stage.name,
            path.display(),
            stage.dir.display()
        );
    }
    Ok(Some(done))
}

/// One stage in summary.json: what tools read instead of logs. Only results that a rerun
/// reproduces (no timings), so an interrupted and resumed run has the same summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSummary {
    pub name: String,
    pub kind: String,
    pub heldout_accuracy: Option<f64>,
    pub heldout_format_rate: Option<f64>,
    pub heldout_pass_at_k: Option<f64>,
    pub heldout_mean_completion_tokens: Option<f64>,
    /// RL stages only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_mean_reward: Option<f64>,
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub recipe: String,
    pub seed: u64,
    pub stages: Vec<StageSummary>,
}

pub fn stage_summary(done: &Done) -> StageSummary {
    let rl = done.kind == StageKind::Grpo.name();
    StageSummary {
        name: done.name.clone(),
        kind: done.kind.clone(),
        heldout_accuracy: done.heldout_number("accuracy"),
        heldout_format_rate: done.heldout_number("format_rate"),
        heldout_pass_at_k: done.heldout_number("pass_at_k"),
        heldout_mean_completion_tokens: done.heldout_number("mean_completion_tokens"),
        final_mean_reward: if rl { done.final_mean_reward } else { None },
        output: done.output.clone(),
    }
}

/// A path inside the run directory as recorded (relative), others as they are.
pub fn relative_to(path: &Path, run_dir: &Path) -> PathBuf {
    path.strip_prefix(run_dir).map(Path::to_path_buf).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("r1kit-rundir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("done.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn summary_keeps_reward_for_rl_stages_only() {
        let done = |kind: &str| Done {
            name: "s".into(),
            kind: kind.into(),
            config: Value::Null,
            output: None,
            heldout: Some(serde_json::json!({"accuracy": 0.25, "format_rate": 0.5})),
            final_mean_reward: Some(0.4),
            details: Value::Null,
            seconds: 1.0,
        };
        let grpo = stage_summary(&done("grpo"));
        assert_eq!((grpo.heldout_accuracy, grpo.heldout_format_rate, grpo.final_mean_reward), (Some(0.25), Some(0.5), Some(0.4)));
        assert_eq!(stage_summary(&done("sft")).final_mean_reward, None);
    }
}
