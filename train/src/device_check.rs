//! One SFT step taken from the same checkpoint on two devices, compared: the GPU check (`r1kit
//! check sft-step --device cuda` runs it against the CPU), and on CPU a determinism test.

use std::path::Path;

use anyhow::{Context, Result};
use r1kit_model::burn::prelude::*;
use r1kit_model::load_model_dir;

use crate::accumulate::step_gradients;
use crate::clip::clip_global_norm;
use crate::grads::to_vec;
use crate::optim::{AdamW, AdamWConfig};
use crate::packing::{micro_batches, TokenizedExample};
use crate::params::Freeze;

/// What one step gave on each device: the loss, the (clipped) gradient, and the updated weights.
/// The gradients are the comparison that matters: Adam's first step is about lr * sign(g), so a
/// weight whose gradient is at rounding level may move by a full lr either way on either device.
#[derive(Debug, Clone)]
pub struct StepAgreement {
    pub loss: [f64; 2],
    pub grad_norm: [f64; 2],
    /// Largest |gradient difference| over all parameters, after clipping.
    pub max_grad_diff: f32,
    /// Largest |gradient| (first device): the scale the difference is read against.
    pub max_grad: f32,
    /// Largest |weight difference| between the two updated models.
    pub max_weight_diff: f32,
    /// Largest |weight change| the step made (on the first device).
    pub max_update: f32,
}

/// Loads `model_dir` on both devices and takes the same step: 6 prompt/completion examples in 2
/// micro-batches, global-norm clip 1.0, AdamW (lr 1e-3, weight decay 0.01).
pub fn sft_step_on_two_devices(model_dir: &Path, devices: [&Device; 2]) -> Result<StepAgreement> {
    let mut loss = [0.0; 2];
    let mut grad_norm = [0.0; 2];
    let mut weights: Vec<Vec<(String, Vec<f32>)>> = Vec::new();
    let mut gradients: Vec<Vec<Vec<f32>>> = Vec::new();
    let mut start = Vec::new();
    for (k, device) in devices.into_iter().enumerate() {
        let model = load_model_dir(model_dir, device).with_context(|| format!("loading {} on {device:?}", model_dir.display()))?;
        let vocab = model.config.vocab_size as u32;
        let examples: Vec<TokenizedExample> = (0..6u32)
            .map(|i| {
                let prompt: Vec<u32> = (0..3 + i).map(|j| (i * 37 + j * 11 + 1) % vocab).collect();
                let completion: Vec<u32> = (0..2 + i % 3).map(|j| (i * 53 + j * 7 + 5) % vocab).collect();
                TokenizedExample::prompt_completion(&prompt, &completion)
            })
            .collect();
        let rows: Vec<Vec<usize>> = (0..examples.len()).map(|i| vec![i]).collect();
        let batches = micro_batches(&examples, rows, 24, 1, 0);
        anyhow::ensure!(batches.len() >= 2, "the check wants at least 2 micro-batches");
        let freeze = Freeze::default();
        let mut step = step_gradients(&model, &freeze, &batches);
        grad_norm[k] = clip_global_norm(&mut step.grads, 1.0);
        loss[k] = step.loss;
        gradients.push(step.grads.values().map(to_vec).collect());
        if k == 0 {
            start = host(&model);
        }
        let mut optimizer = AdamW::new(AdamWConfig { lr: 1e-3, weight_decay: 0.01, ..Default::default() });
        weights.push(host(&optimizer.step(model, &step.grads, 1e-3)));
    }
    let mut max_weight_diff = 0f32;
    let mut max_update = 0f32;
    for (((name, a), (_, b)), (_, s)) in weights[0].iter().zip(&weights[1]).zip(&start) {
        anyhow::ensure!(a.len() == b.len(), "{name}: sizes differ across devices");
        for ((x, y), z) in a.iter().zip(b).zip(s) {
            max_weight_diff = max_weight_diff.max((x - y).abs());
            max_update = max_update.max((x - z).abs());
        }
    }
    let (mut max_grad_diff, mut max_grad) = (0f32, 0f32);
    for (a, b) in gradients[0].iter().zip(&gradients[1]) {
        for (x, y) in a.iter().zip(b) {
            max_grad_diff = max_grad_diff.max((x - y).abs());
            max_grad = max_grad.max(x.abs());
        }
    }
    Ok(StepAgreement { loss, grad_norm, max_grad_diff, max_grad, max_weight_diff, max_update })
}

fn host(model: &r1kit_model::Model) -> Vec<(String, Vec<f32>)> {
    model.parameters().into_iter().map(|(n, t)| (n, to_vec(&t))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_step_twice_on_cpu_is_identical_and_moves_the_weights() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/parity/qwen2-tiny");
        let cpu = Device::flex();
        let r = sft_step_on_two_devices(&dir, [&cpu, &cpu]).unwrap();
        assert_eq!(r.loss[0], r.loss[1]);
        assert_eq!((r.max_weight_diff, r.max_grad_diff), (0.0, 0.0));
        assert!(r.max_grad > 0.0);
        assert!(r.max_update > 1e-4, "the step moved the weights: {}", r.max_update);
        assert!(r.loss[0] > 1.0 && r.grad_norm[0] > 0.0, "{r:?}");
    }
}
