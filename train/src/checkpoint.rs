//! Training checkpoints: `checkpoints/step-N/` is a Hugging Face model directory (config.json,
//! model.safetensors in f32, tokenizer files) plus `optimizer.safetensors` (AdamW's `m.<name>` and
//! `v.<name>` per parameter) and `trainer_state.json` (step, data position, RNG, optimizer step
//! and config, metrics). The whole directory is written under a temporary name and renamed, so a
//! `step-N/` that exists is complete. Older checkpoints are pruned to the last N plus the best.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use r1kit_model::burn::prelude::*;
use r1kit_model::{load_model_dir, save_model_dir, Model, SaveDtype};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::optim::{AdamW, AdamWConfig, Moments};

pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "trainer_state.json";

/// Where the data stream stands and what else a resumed run needs to continue identically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub step: u64,
    /// Epoch the next example comes from (0-based).
    pub epoch: u64,
    /// Examples of that epoch's order already consumed.
    pub position: usize,
    /// Seed of the data order (each epoch's permutation is a function of seed and epoch).
    pub data_seed: u64,
    /// State of the trainer's own RNG (sampling seeds for evaluation).
    pub rng_state: u64,
    /// AdamW's configuration and step count (its moments are in optimizer.safetensors).
    pub optimizer: AdamWConfig,
    pub optimizer_step: u64,
    /// The best value so far of the metric that keep-best watches, and its step.
    pub best: Option<(u64, f64)>,
    /// Metrics of the step that was checkpointed.
    pub metrics: serde_json::Value,
}

pub fn step_dir(checkpoints: &Path, step: u64) -> PathBuf {
    checkpoints.join(format!("step-{step}"))
}

/// The final model as a Hugging Face directory with its tokenizer: the tokenizer files of
/// `tokenizer_dir`, else (a GGUF source has none) the loaded tokenizer written out.
pub fn save_final_model(model: &Model, dir: &Path, tokenizer_dir: Option<&Path>, tokenizer: &r1kit_model::tokenizer::Tokenizer) -> Result<()> {
    save_model_dir(model, dir, SaveDtype::F32, tokenizer_dir)?;
    if tokenizer_dir.is_none() {
        tokenizer.save_to_dir(dir)?;
    }
    Ok(())
}

/// Writes `checkpoints/step-N/` atomically: everything goes to a temporary sibling first.
pub fn save_checkpoint(checkpoints: &Path, model: &Model, optimizer: &AdamW, state: &TrainerState, tokenizer_dir: Option<&Path>) -> Result<PathBuf> {
    let out = step_dir(checkpoints, state.step);
    let tmp = checkpoints.join(format!(".step-{}.tmp-{}", state.step, std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing stale {}", tmp.display()))?;
    }
    save_model_dir(model, &tmp, SaveDtype::F32, tokenizer_dir)?;
    write_optimizer(&tmp.join(OPTIMIZER_FILE), optimizer)?;
    let state_path = tmp.join(STATE_FILE);
    std::fs::write(&state_path, serde_json::to_string_pretty(state)?).with_context(|| format!("writing {}", state_path.display()))?;
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("replacing {}", out.display()))?;
    }
    std::fs::rename(&tmp, &out).with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    Ok(out)
}

/// Model, optimizer and trainer state from a `step-N/` directory, on `device`.
pub fn load_checkpoint(dir: &Path, device: &Device) -> Result<(Model, AdamW, TrainerState)> {
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path).with_context(|| format!("reading {}", state_path.display()))?;
    let state: TrainerState = serde_json::from_str(&text).with_context(|| format!("{}: not a trainer state", state_path.display()))?;
    let model = load_model_dir(dir, device)?;
    let mut optimizer = AdamW::new(state.optimizer);
    optimizer.step = state.optimizer_step;
    optimizer.moments = read_optimizer(&dir.join(OPTIMIZER_FILE), device)?;
    Ok((model, optimizer, state))
}

/// Steps of the complete checkpoints under `checkpoints`, ascending.
pub fn list_checkpoints(checkpoints: &Path) -> Result<Vec<u64>> {
    if !checkpoints.exists() {
        return Ok(vec![]);
    }
    let mut steps = Vec::new();
    for entry in std::fs::read_dir(checkpoints).with_context(|| format!("listing {}", checkpoints.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(step) = name.strip_prefix("step-").and_then(|s| s.parse::<u64>().ok())
            && entry.path().join(STATE_FILE).exists()
        {
            steps.push(step);
        }
    }
    steps.sort_unstable();
    Ok(steps)
}

pub fn latest_checkpoint(checkpoints: &Path) -> Result<Option<PathBuf>> {
    Ok(list_checkpoints(checkpoints)?.last().map(|&s| step_dir(checkpoints, s)))
}

/// Deletes checkpoints other than the last `keep_last` and `keep` (the best); returns the steps
/// removed. `keep_last` 0 keeps them all.
pub fn prune_checkpoints(checkpoints: &Path, keep_last: usize, keep: Option<u64>) -> Result<Vec<u64>> {
    if keep_last == 0 {
        return Ok(vec![]);
    }
    let steps = list_checkpoints(checkpoints)?;
    let cut = steps.len().saturating_sub(keep_last);
    let mut removed = Vec::new();
    for &step in &steps[..cut] {
        if Some(step) != keep {
            let dir = step_dir(checkpoints, step);
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            removed.push(step);
        }
    }
    Ok(removed)
}

fn write_optimizer(path: &Path, optimizer: &AdamW) -> Result<()> {
    let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for (name, Moments { m, v }) in &optimizer.moments {
        for (prefix, t) in [("m", m), ("v", v)] {
            let shape = t.dims().to_vec();
            let values = t.clone().try_into_vec_as::<f32>().map_err(|e| anyhow::anyhow!("reading {prefix}.{name}: {e:?}"))?;
            tensors.push((format!("{prefix}.{name}"), values.iter().flat_map(|x| x.to_le_bytes()).collect(), shape));
        }
    }
    let views = tensors
        .iter()
        .map(|(name, bytes, shape)| Ok((name.clone(), safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)?)))
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("step".to_string(), optimizer.step.to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn read_optimizer(path: &Path, device: &Device) -> Result<BTreeMap<String, Moments>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes).with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let mut halves: BTreeMap<String, (Option<Tensor<2>>, Option<Tensor<2>>)> = BTreeMap::new();
    for (key, view) in st.tensors() {
        let (prefix, name) = key.split_once('.').with_context(|| format!("{}: unexpected tensor `{key}`", path.display()))?;
        if view.dtype() != Dtype::F32 || view.shape().len() != 2 {
            bail!("{}: tensor `{key}` must be a rank-2 F32 tensor", path.display());
        }
        let values: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let t = Tensor::<2>::from_data(TensorData::new(values, [view.shape()[0], view.shape()[1]]), device);
        let slot = halves.entry(name.to_string()).or_default();
        match prefix {
            "m" => slot.0 = Some(t),
            "v" => slot.1 = Some(t),
            _ => bail!("{}: unexpected tensor `{key}` (m.* or v.*)", path.display()),
        }
    }
    halves
        .into_iter()
        .map(|(name, pair)| match pair {
            (Some(m), Some(v)) => Ok((name, Moments { m, v })),
            _ => bail!("{}: `{name}` lacks its m or v tensor", path.display()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grads::{to_vec, GradMap};
    use r1kit_model::config::ModelConfig;

    fn tiny() -> Model {
        let config = ModelConfig::from_json(&serde_json::json!({"model_type": "qwen2", "vocab_size": 40, "hidden_size": 16,
            "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "tie_word_embeddings": true}))
        .unwrap();
        Model::init_random(config, &Device::flex(), 0.3, 11)
    }

    fn state(step: u64) -> TrainerState {
        TrainerState {
            step,
            epoch: 2,
            position: 17,
            data_seed: 5,
            rng_state: 0xDEAD_BEEF,
            optimizer: AdamWConfig { lr: 1e-3, ..Default::default() },
            optimizer_step: step,
            best: Some((1, 0.5)),
            metrics: serde_json::json!({"loss": 1.25}),
        }
    }

    #[test]
    fn round_trip_restores_weights_optimizer_rng_and_step() {
        let dir = tempfile::tempdir().unwrap();
        let ckpts = dir.path().join("checkpoints");
        let mut model = tiny();
        let mut opt = AdamW::new(AdamWConfig { lr: 1e-3, ..Default::default() });
        for _ in 0..2 {
            let grads: GradMap = model.parameters().into_iter().map(|(n, t)| (n, t.clone().sin())).collect();
            model = opt.step(model, &grads, 1e-3);
        }
        let path = save_checkpoint(&ckpts, &model, &opt, &state(2), None).unwrap();
        assert_eq!(path, ckpts.join("step-2"));
        assert!(path.join("config.json").exists() && path.join("model.safetensors").exists());
        let leftovers: Vec<_> = std::fs::read_dir(&ckpts).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 1, "no temporary directory left: {leftovers:?}");

        let (loaded, loaded_opt, loaded_state) = load_checkpoint(&path, &Device::flex()).unwrap();
        assert_eq!(loaded_state, state(2));
        for ((n, a), (_, b)) in model.parameters().iter().zip(loaded.parameters().iter()) {
            assert_eq!(to_vec(a), to_vec(b), "{n}");
        }
        assert_eq!(loaded_opt.step, 2);
        assert_eq!(loaded_opt.moments.len(), opt.moments.len());
        for (name, m) in &opt.moments {
            assert_eq!(to_vec(&m.m), to_vec(&loaded_opt.moments[name].m));
            assert_eq!(to_vec(&m.v), to_vec(&loaded_opt.moments[name].v));
        }
        // the next step from the loaded state equals the next step from memory
        let grads: GradMap = model.parameters().into_iter().map(|(n, t)| (n, t.clone().cos())).collect();
        let mut opt_b = loaded_opt;
        let a = opt.step(model, &grads, 1e-3);
        let b = opt_b.step(loaded, &grads, 1e-3);
        for ((n, x), (_, y)) in a.parameters().iter().zip(b.parameters().iter()) {
            assert_eq!(to_vec(x), to_vec(y), "{n}");
        }
    }

    #[test]
    fn prune_keeps_the_last_n_and_the_best() {
        let dir = tempfile::tempdir().unwrap();
        let ckpts = dir.path().join("checkpoints");
        let model = tiny();
        let opt = AdamW::new(AdamWConfig::default());
        for step in [10, 20, 30, 40, 50] {
            save_checkpoint(&ckpts, &model, &opt, &state(step), None).unwrap();
        }
        // an incomplete directory (no trainer_state.json) is not a checkpoint
        std::fs::create_dir_all(ckpts.join("step-60")).unwrap();
        assert_eq!(list_checkpoints(&ckpts).unwrap(), vec![10, 20, 30, 40, 50]);
        let removed = prune_checkpoints(&ckpts, 2, Some(20)).unwrap();
        assert_eq!(removed, vec![10, 30]);
        assert_eq!(list_checkpoints(&ckpts).unwrap(), vec![20, 40, 50]);
        assert_eq!(latest_checkpoint(&ckpts).unwrap(), Some(ckpts.join("step-50")));
    }

    #[test]
    fn corrupt_optimizer_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = save_checkpoint(dir.path(), &tiny(), &AdamW::new(AdamWConfig::default()), &state(1), None).unwrap();
        std::fs::write(path.join(OPTIMIZER_FILE), b"garbage").unwrap();
        let err = load_checkpoint(&path, &Device::flex()).unwrap_err();
        assert!(format!("{err:#}").contains("optimizer.safetensors"), "{err:#}");
    }
}
