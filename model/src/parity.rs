//! Parity with HF transformers on a fixture directory (a tiny checkpoint + `reference.json` made by
//! scripts/make_parity_fixtures.py): the same check serves the CPU test suite and `r1kit check
//! parity --device cuda` on the GPU machine.

use std::path::Path;

use burn::prelude::*;
use serde_json::Value;

use crate::error::{read_json, ModelError, Result};
use crate::{load_model_dir, AttentionMask, Model};

/// The committed fixtures, under `model/tests/fixtures/parity/` of the repository.
pub const FIXTURES: [&str; 3] = ["qwen2-tiny", "qwen3-tiny", "llama-tiny"];

/// How far apart two models' parameters are: each difference relative to its tensor's largest
/// |value| (at least 1e-3), the worst of them and where. Two runs that should end equal (one
/// process and several ranks; a run and its resumed copy) are compared with it.
#[derive(Debug, Clone)]
pub struct WeightsDiff {
    pub worst: f32,
    /// The tensor holding the worst difference.
    pub tensor: String,
    pub tensors: usize,
    /// The median over the tensors of each one's largest relative difference.
    pub median: f32,
    /// The whole model: ||a - b|| / ||a|| over every parameter (L2).
    pub whole: f64,
}

pub fn compare_parameters(a: &Model, b: &Model) -> Result<WeightsDiff> {
    let (pa, pb) = (a.parameters(), b.parameters());
    if pa.len() != pb.len() {
        return Err(ModelError::Invalid(format!("the models have {} and {} parameter tensors", pa.len(), pb.len())));
    }
    let mut diff = WeightsDiff { worst: 0.0, tensor: "none differs".into(), tensors: pa.len(), median: 0.0, whole: 0.0 };
    let (mut apart, mut norm) = (0f64, 0f64);
    let mut each = Vec::with_capacity(pa.len());
    for ((name, x), (other, y)) in pa.into_iter().zip(pb) {
        if name != other || x.dims() != y.dims() {
            return Err(ModelError::Invalid(format!("parameter {name} {:?} faces {other} {:?}", x.dims(), y.dims())));
        }
        let x = x.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| ModelError::Invalid(format!("{name}: {e:?}")))?;
        let y = y.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| ModelError::Invalid(format!("{other}: {e:?}")))?;
        let scale = x.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        // a NaN on either side counts as infinitely far
        let worst = x.iter().zip(&y).fold(0f32, |m, (p, q)| if (p - q).is_nan() { f32::INFINITY } else { m.max((p - q).abs()) }) / scale;
        each.push(worst);
        apart += x.iter().zip(&y).map(|(p, q)| ((p - q) as f64).powi(2)).sum::<f64>();
        norm += x.iter().map(|p| (*p as f64).powi(2)).sum::<f64>();
        if worst > diff.worst {
            diff.worst = worst;
            diff.tensor = name;
        }
    }
    each.sort_by(f32::total_cmp);
    diff.median = each.get(each.len() / 2).copied().unwrap_or(0.0);
    diff.whole = (apart / norm.max(f64::MIN_POSITIVE)).sqrt();
    Ok(diff)
}

/// How far the model on one device is from transformers' outputs on one fixture.
#[derive(Debug, Clone)]
pub struct ParityReport {
    /// Largest |logit difference| over the non-padded positions of the fixture's left-padded batch.
    pub max_logit_diff: f32,
    /// Teacher-forced greedy: positions of the reference's greedy continuations whose top-1 /
    /// top-2 gap (in transformers) exceeds the `min_gap` given, and how many of them we agree on.
    pub greedy_checked: usize,
    pub greedy_agreed: usize,
}

/// The fixture's model loaded onto `device`.
pub fn load_fixture(dir: &Path, device: &Device) -> Result<(Model, Value)> {
    let model = load_model_dir(dir, device)?;
    let reference: Value = read_json(&dir.join("reference.json"))?;
    Ok((model, reference))
}

/// Compares `model` with the fixture's `reference`; greedy positions whose reference gap is at most
/// `min_gap` are skipped (a rounding-level tie may flip either way).
pub fn check_parity(model: &Model, reference: &Value, min_gap: f64) -> Result<ParityReport> {
    let batch = fixture_batch_logits(model, reference)?;
    let (s, v) = (batch.seq, model.config.vocab_size);
    let theirs: Vec<f32> = reference["logits"].as_array().ok_or_else(|| malformed("logits"))?.iter().map(|x| x.as_f64().unwrap_or(f64::NAN) as f32).collect();
    if theirs.len() != batch.logits.len() {
        return Err(ModelError::Invalid(format!("reference.json: {} logits for a {} x {s} batch of vocabulary {v}", theirs.len(), batch.mask.len())));
    }
    let mut max_logit_diff = 0f32;
    for (row, m) in batch.mask.iter().enumerate() {
        for (i, _) in m.iter().enumerate().filter(|(_, m)| **m != 0) {
            let at = (row * s + i) * v;
            for k in at..at + v {
                max_logit_diff = max_logit_diff.max((batch.logits[k] - theirs[k]).abs());
            }
        }
    }

    let (mut greedy_checked, mut greedy_agreed) = (0, 0);
    for g in reference["greedy"].as_array().ok_or_else(|| malformed("greedy"))? {
        let prompt = row(&g["prompt"]).ok_or_else(|| malformed("greedy.prompt"))?;
        let tokens = row(&g["tokens"]).ok_or_else(|| malformed("greedy.tokens"))?;
        let gaps: Vec<f64> = g["top1_top2_gap"].as_array().ok_or_else(|| malformed("greedy.top1_top2_gap"))?.iter().filter_map(|x| x.as_f64()).collect();
        let sequence: Vec<u32> = prompt.iter().chain(&tokens).copied().collect();
        let n = sequence.len();
        let hidden = model.forward_hidden(&sequence, &(0..n as i64).collect::<Vec<_>>(), 1, &AttentionMask::causal_segments(&vec![1; n], 1), None);
        let logits = host_f32(model.logits(hidden));
        for (step, (&token, &gap)) in tokens.iter().zip(&gaps).enumerate() {
            if gap <= min_gap {
                continue;
            }
            let at = (prompt.len() - 1 + step) * v;
            let argmax = logits[at..at + v].iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (k, &x)| if x > best.1 { (k, x) } else { best }).0;
            greedy_checked += 1;
            greedy_agreed += (argmax as u32 == token) as usize;
        }
    }
    Ok(ParityReport { max_logit_diff, greedy_checked, greedy_agreed })
}

/// The model's logits on the fixture's left-padded batch, with the fixture's position ids.
pub struct FixtureBatch {
    /// Row-major `[batch, seq, vocab]`.
    pub logits: Vec<f32>,
    /// The fixture's attention mask (0 = padding), one row per sequence.
    pub mask: Vec<Vec<u32>>,
    pub seq: usize,
}

/// Runs `model` on the fixture's batch (`input_ids`, `attention_mask`, `position_ids`).
pub fn fixture_batch_logits(model: &Model, reference: &Value) -> Result<FixtureBatch> {
    let ids = rows(&reference["input_ids"]).ok_or_else(|| malformed("input_ids"))?;
    let mask = rows(&reference["attention_mask"]).ok_or_else(|| malformed("attention_mask"))?;
    let pos = rows(&reference["position_ids"]).ok_or_else(|| malformed("position_ids"))?;
    let (b, seq) = (ids.len(), ids.first().map_or(0, |r| r.len()));
    let positions: Vec<i64> = pos.concat().into_iter().map(i64::from).collect();
    let hidden = model.forward_hidden(&ids.concat(), &positions, b, &AttentionMask::causal_segments(&mask.concat(), b), None);
    Ok(FixtureBatch { logits: host_f32(model.logits(hidden)), mask, seq })
}

fn malformed(what: &str) -> ModelError {
    ModelError::Invalid(format!("reference.json: missing or malformed `{what}`"))
}

fn row(v: &Value) -> Option<Vec<u32>> {
    v.as_array()?.iter().map(|x| x.as_u64().map(|x| x as u32)).collect()
}

fn rows(v: &Value) -> Option<Vec<Vec<u32>>> {
    v.as_array()?.iter().map(row).collect()
}

fn host_f32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("logits convert to f32")
}
