//! AdamW on f32 master weights, as `torch.optim.AdamW` computes it (decoupled weight decay,
//! bias-corrected moments), with state per parameter name.
//!
//! Defaults, stated because burn's own AdamW differs from PyTorch's: `lr` 2e-5 (TRL `SFTConfig`),
//! betas (0.9, 0.999), eps 1e-8 and weight decay 0.0 (Hugging Face `TrainingArguments`). As the
//! HF Trainer does, weight decay skips biases and norm weights ([`crate::params::decays`]).

use std::collections::BTreeMap;

use r1kit_model::burn::prelude::*;
use r1kit_model::Model;
use serde::{Deserialize, Serialize};

use r1kit_gpu::kernels::{self, AdamWStep};

use crate::grads::GradMap;
use crate::params::decays;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    /// Peak learning rate (the schedule scales it). Default 2e-5.
    pub lr: f64,
    /// Default 0.9.
    pub beta1: f64,
    /// Default 0.999.
    pub beta2: f64,
    /// Added to the denominator after the square root, as torch does. Default 1e-8.
    pub eps: f64,
    /// Decoupled weight decay (`p -= lr * wd * p` before the Adam update). Default 0.0.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { lr: 2e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

impl AdamWConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.lr >= 0.0 && self.lr.is_finite()) {
            return Err(format!("optimizer.lr must be >= 0, got {}", self.lr));
        }
        for (key, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(format!("optimizer.{key} must be in [0, 1), got {b}"));
            }
        }
        if !(self.eps > 0.0) {
            return Err(format!("optimizer.eps must be > 0, got {}", self.eps));
        }
        if !(self.weight_decay >= 0.0) {
            return Err(format!("optimizer.weight_decay must be >= 0, got {}", self.weight_decay));
        }
        Ok(())
    }
}

/// First and second moments of one parameter.
#[derive(Debug, Clone)]
pub struct Moments {
    pub m: Tensor<2>,
    pub v: Tensor<2>,
}

#[derive(Debug, Clone)]
pub struct AdamW {
    pub config: AdamWConfig,
    /// Optimizer steps taken (the bias correction's t after the next step is `step + 1`).
    pub step: u64,
    pub moments: BTreeMap<String, Moments>,
}

impl AdamW {
    pub fn new(config: AdamWConfig) -> Self {
        AdamW { config, step: 0, moments: BTreeMap::new() }
    }

    /// One update of every parameter that has a gradient in `grads` at learning rate `lr`
    /// (the schedule's value); parameters without one (frozen) are returned unchanged.
    pub fn step(&mut self, model: Model, grads: &GradMap, lr: f64) -> Model {
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let (bc1, bc2) = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
        let moments = &mut self.moments;
        model.map_parameters(|name, param| {
            let Some(grad) = grads.get(name) else { return param };
            let grad = grad.clone();
            let (m, v) = match moments.remove(name) {
                Some(Moments { m, v }) => (m, v),
                None => (grad.zeros_like(), grad.zeros_like()),
            };
            let decay = if c.weight_decay > 0.0 && decays(name) { 1.0 - lr * c.weight_decay } else { 1.0 };
            let step = AdamWStep { lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, decay, bias_correction1: bc1, bias_correction2: bc2 };
            // one fused kernel on a Cube device (CUDA), else the same formula in burn's ops
            let (param, m, v) = kernels::adamw_update(&param, &grad, &m, &v, step).unwrap_or_else(|| kernels::reference::adamw_update(param, &grad, m, v, step));
            moments.insert(name.to_string(), Moments { m, v });
            param
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grads::to_vec;
    use r1kit_model::config::ModelConfig;

    /// torch.optim.AdamW's update for one scalar, in f64 (the reference the tensor code must match).
    fn torch_adamw(p0: f64, grads: &[f64], lrs: &[f64], c: AdamWConfig) -> f64 {
        let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
        for (i, (&g, &lr)) in grads.iter().zip(lrs).enumerate() {
            let t = (i + 1) as i32;
            p *= 1.0 - lr * c.weight_decay;
            m = c.beta1 * m + (1.0 - c.beta1) * g;
            v = c.beta2 * v + (1.0 - c.beta2) * g * g;
            let (bc1, bc2) = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
            p -= lr / bc1 * m / (v.sqrt() / bc2.sqrt() + c.eps);
        }
        p
    }

    fn tiny() -> Model {
        let config = ModelConfig::from_json(&serde_json::json!({"model_type": "llama", "vocab_size": 8, "hidden_size": 4,
            "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1, "tie_word_embeddings": true}))
        .unwrap();
        Model::init_random(config, &Device::flex(), 0.5, 3)
    }

    #[test]
    fn matches_torch_adamw_over_several_steps_with_decay_and_changing_lr() {
        let config = AdamWConfig { lr: 0.1, weight_decay: 0.1, ..Default::default() };
        let model = tiny();
        let name = "model.layers.0.self_attn.q_proj.weight".to_string();
        let p0 = to_vec(&model.parameters().into_iter().find(|(n, _)| *n == name).unwrap().1);
        let device = Device::flex();
        // gradient of element k at step s: a fixed, sign-changing sequence
        let grad_at = |s: usize, k: usize| ((k as f64 + 1.0) * 0.3 - 2.0) * if s == 1 { -0.5 } else { 1.0 + s as f64 };
        let lrs = [0.1, 0.05, 0.02];
        let mut opt = AdamW::new(config);
        let mut model = model;
        for (s, &lr) in lrs.iter().enumerate() {
            let values: Vec<f32> = (0..16).map(|k| grad_at(s, k) as f32).collect();
            let grads = GradMap::from([(name.clone(), Tensor::<2>::from_data(TensorData::new(values, [4, 4]), &device))]);
            model = opt.step(model, &grads, lr);
        }
        let after = to_vec(&model.parameters().into_iter().find(|(n, _)| *n == name).unwrap().1);
        for k in 0..16 {
            let grads: Vec<f64> = (0..3).map(|s| grad_at(s, k)).collect();
            let expect = torch_adamw(p0[k] as f64, &grads, &lrs, config);
            assert!((after[k] as f64 - expect).abs() < 1e-6, "element {k}: {} vs torch {expect}", after[k]);
        }
        assert_eq!(opt.step, 3);
    }

    #[test]
    fn first_step_moves_by_lr_times_sign_and_skips_parameters_without_gradients() {
        // Adam's first bias-corrected step is lr * g / (|g| + eps): lr * sign(g) for |g| >> eps.
        let model = tiny();
        let before = model.parameters();
        let device = Device::flex();
        let name = "model.norm.weight";
        let grads = GradMap::from([(name.to_string(), Tensor::<2>::from_data(TensorData::new(vec![3.0f32, -0.2, 1e-3, -50.0], [1, 4]), &device))]);
        let mut opt = AdamW::new(AdamWConfig { lr: 0.01, weight_decay: 0.5, ..Default::default() });
        let after = opt.step(model, &grads, 0.01).parameters();
        for ((n, b), (_, a)) in before.iter().zip(&after) {
            let (b, a) = (to_vec(b), to_vec(a));
            if n == name {
                // norm weights are 1 and take no weight decay
                let expect = [0.99f32, 1.01, 0.99, 1.01];
                for (x, e) in a.iter().zip(expect) {
                    assert!((x - e).abs() < 1e-5, "{a:?}");
                }
            } else {
                assert_eq!(a, b, "{n} has no gradient and must not move");
            }
        }
        assert_eq!(opt.moments.len(), 1);
    }
}
