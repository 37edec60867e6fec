//! One optimizer step's gradient, accumulated over micro-batches.
//!
//! Every micro-batch's loss is scaled by 1 / (trained tokens of the whole step), not of the
//! micro-batch, so the summed gradient equals the gradient of the step's batch taken at once: a
//! token mean over the step, however it is split.

use r1kit_model::burn::prelude::Tensor;
use r1kit_model::burn::tensor::GradientCheckpointingStrategy;
use r1kit_model::{Checkpointing, Model};

use crate::grads::{accumulate, collect_gradients, GradMap};
use crate::loss::masked_nll;
use crate::packing::PackedBatch;
use crate::params::Freeze;

#[derive(Debug)]
pub struct StepGradients {
    pub grads: GradMap,
    /// Mean NLL per trained token over the step.
    pub loss: f64,
    pub loss_tokens: usize,
}

/// The model with autodiff on and every non-frozen parameter requiring a gradient; with the
/// master's `Checkpointing::Ops`, the graph it builds uses burn's balanced strategy (cheap
/// activations recomputed in the backward pass, products kept); `Blocks` needs nothing here (the
/// model's forward makes each block one recomputed op).
pub fn tracked(master: &Model, freeze: &Freeze) -> Model {
    let strategy = (master.checkpointing == Checkpointing::Ops).then_some(GradientCheckpointingStrategy::Balanced);
    master.clone().map_parameters(|name, t| {
        let t = t.autodiff();
        let t = match strategy {
            Some(s) => t.with_gradient_checkpointing_strategy(s),
            None => t,
        };
        if freeze.is_frozen(name) { t } else { t.require_grad() }
    })
}

/// Gradients of the step's mean token NLL over `micro_batches`, one forward/backward each.
pub fn step_gradients(master: &Model, freeze: &Freeze, micro_batches: &[PackedBatch]) -> StepGradients {
    let loss_tokens: usize = micro_batches.iter().map(PackedBatch::loss_tokens).sum();
    step_gradients_over(master, freeze, micro_batches, loss_tokens)
}

/// [`step_gradients`] of this process's share of a step whose trained tokens, over all ranks,
/// number `step_loss_tokens`: summed over the ranks, the gradients and losses are the step's.
pub fn step_gradients_over(master: &Model, freeze: &Freeze, micro_batches: &[PackedBatch], step_loss_tokens: usize) -> StepGradients {
    let loss_tokens: usize = micro_batches.iter().map(PackedBatch::loss_tokens).sum();
    let scale = 1.0 / step_loss_tokens.max(1) as f64;
    let model = tracked(master, freeze);
    let mut grads = GradMap::new();
    let mut losses = Vec::with_capacity(micro_batches.len());
    for batch in micro_batches {
        let l = masked_nll(&model, batch, scale);
        accumulate(&mut grads, collect_gradients(&model, &l));
        losses.push(l.inner());
    }
    // Read once per step: a read per micro-batch made the host wait for each forward pass on the
    // device before it could queue the backward pass (the GPU then idles while it does).
    let loss = if losses.is_empty() { 0.0 } else { Tensor::cat(losses, 0).sum().into_scalar::<f32>() as f64 };
    StepGradients { grads, loss, loss_tokens }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grads::to_vec;
    use crate::packing::{assign_rows, build_batch, micro_batches, TokenizedExample};
    use r1kit_model::burn::prelude::*;
    use r1kit_model::config::ModelConfig;

    pub(crate) fn tiny_model() -> Model {
        let config = ModelConfig::from_json(&serde_json::json!({"model_type": "qwen2", "vocab_size": 96, "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "tie_word_embeddings": false}))
        .unwrap();
        Model::init_random(config, &Device::flex(), 0.2, 7)
    }

    fn examples() -> Vec<TokenizedExample> {
        let e = |p: &[u32], c: &[u32]| TokenizedExample::prompt_completion(p, c);
        vec![
            e(&[5, 6, 7], &[8, 9]),
            e(&[11, 12], &[13, 14, 15, 16]),
            e(&[20], &[21, 22]),
            e(&[30, 31, 32, 33, 34], &[35]),
            e(&[40, 41], &[42, 43, 44]),
        ]
    }

    fn lengths(ex: &[TokenizedExample]) -> Vec<usize> {
        ex.iter().map(|e| e.len()).collect()
    }

    fn assert_grads_close(a: &GradMap, b: &GradMap, tol: f32) {
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (name, ga) in a {
            let (va, vb) = (to_vec(ga), to_vec(&b[name]));
            let scale = va.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
            for (x, y) in va.iter().zip(&vb) {
                assert!((x - y).abs() <= tol * scale, "{name}: {x} vs {y} (scale {scale})");
            }
        }
    }

    #[test]
    fn accumulated_gradient_equals_single_batch_gradient() {
        let model = tiny_model();
        let ex = examples();
        let rows = assign_rows(&lengths(&ex), 16, false);
        let whole = micro_batches(&ex, rows.clone(), usize::MAX, 1, 0);
        let split = micro_batches(&ex, rows, 8, 1, 0);
        assert_eq!(whole.len(), 1);
        assert!(split.len() >= 3, "the budget splits the step into several micro-batches");
        let a = step_gradients(&model, &Freeze::default(), &whole);
        let b = step_gradients(&model, &Freeze::default(), &split);
        assert_eq!(a.loss_tokens, 12);
        assert!((a.loss - b.loss).abs() < 1e-5, "{} vs {}", a.loss, b.loss);
        assert!(a.loss > 3.0, "random init: loss near ln(96) = 4.56, got {}", a.loss);
        assert_grads_close(&a.grads, &b.grads, 1e-4);
        // a per-micro-batch mean would weight tokens differently: make sure the test can tell
        let per_mb: f64 = split.iter().map(|m| step_gradients(&model, &Freeze::default(), std::slice::from_ref(m)).loss).sum::<f64>() / split.len() as f64;
        assert!((per_mb - a.loss).abs() > 1e-4, "per-micro-batch mean {per_mb} should differ from token mean {}", a.loss);
    }

    #[test]
    fn gradient_checkpointing_changes_neither_loss_nor_gradients() {
        let model = tiny_model();
        let ex = examples();
        let batches = micro_batches(&ex, assign_rows(&lengths(&ex), 16, false), 8, 1, 0);
        let plain = step_gradients(&model, &Freeze::default(), &batches);
        for mode in [Checkpointing::Ops, Checkpointing::Blocks] {
            let checkpointed = step_gradients(&model.clone().with_checkpointing(mode), &Freeze::default(), &batches);
            assert!((plain.loss - checkpointed.loss).abs() < 1e-6, "{mode:?}: {} vs {}", plain.loss, checkpointed.loss);
            assert_eq!(plain.grads.len(), checkpointed.grads.len(), "{mode:?}: every parameter gets its gradient");
            assert_grads_close(&plain.grads, &checkpointed.grads, 1e-5);
        }
        let strategy = tracked(&model.clone().with_checkpointing(Checkpointing::Ops), &Freeze::default()).embed_tokens.gradient_checkpointing_strategy();
        assert_eq!(strategy, Some(GradientCheckpointingStrategy::Balanced), "the tracked parameters carry the strategy");
        // a frozen block parameter gets no gradient through the recomputed block either
        let freeze = Freeze::new(&["model.layers.0.mlp.up_proj.weight".to_string()]);
        let frozen = step_gradients(&model.with_checkpointing(Checkpointing::Blocks), &freeze, &batches);
        assert!(!frozen.grads.contains_key("model.layers.0.mlp.up_proj.weight") && frozen.grads.contains_key("model.layers.0.mlp.down_proj.weight"));
    }

    #[test]
    fn packed_batch_gives_the_same_loss_and_gradients_as_unpacked() {
        let model = tiny_model();
        let ex = examples();
        let packed_rows = assign_rows(&lengths(&ex), 12, true);
        assert!(packed_rows.len() < ex.len(), "some rows hold several examples: {packed_rows:?}");
        let packed = vec![build_batch(&ex, &packed_rows, 1, 0)];
        let unpacked = vec![build_batch(&ex, &assign_rows(&lengths(&ex), 12, false), 1, 0)];
        let a = step_gradients(&model, &Freeze::default(), &packed);
        let b = step_gradients(&model, &Freeze::default(), &unpacked);
        assert!((a.loss - b.loss).abs() < 1e-5, "{} vs {}", a.loss, b.loss);
        assert_grads_close(&a.grads, &b.grads, 1e-4);
    }

    #[test]
    fn prompt_targets_do_not_change_loss_or_gradients() {
        let model = tiny_model();
        let ex = examples();
        let batch = build_batch(&ex, &assign_rows(&lengths(&ex), 16, true), 1, 0);
        let mut scrambled = batch.clone();
        for (i, t) in scrambled.targets.iter_mut().enumerate() {
            if scrambled.loss_mask[i] == 0.0 {
                *t = (*t + 37 + i as u32) % 96;
            }
        }
        let a = step_gradients(&model, &Freeze::default(), &[batch.clone()]);
        let b = step_gradients(&model, &Freeze::default(), &[scrambled]);
        assert_eq!(a.loss, b.loss);
        assert_grads_close(&a.grads, &b.grads, 0.0);
        // ...while changing one completion target does change the loss
        let mut changed = batch.clone();
        let i = changed.loss_mask.iter().position(|&m| m > 0.0).unwrap();
        changed.targets[i] = (changed.targets[i] + 1) % 96;
        let c = step_gradients(&model, &Freeze::default(), &[changed]);
        assert!((a.loss - c.loss).abs() > 1e-6);
    }

    #[test]
    fn loss_is_the_mean_completion_nll_from_full_logits() {
        let model = tiny_model();
        let e = TokenizedExample::prompt_completion(&[3, 4, 5], &[6, 7]);
        let batch = build_batch(std::slice::from_ref(&e), &[vec![0]], 1, 0);
        let got = step_gradients(&model, &Freeze::default(), &[batch.clone()]).loss;
        // reference: log-softmax on the host over the model's full logits
        let mask = r1kit_model::AttentionMask::causal_segments(&batch.segments, 1);
        let hidden = model.forward_hidden(&batch.tokens, &batch.positions, 1, &mask, None);
        let logits = model.logits(hidden).try_into_vec_as::<f32>().unwrap();
        let nll = |pos: usize, target: usize| {
            let row = &logits[pos * 96..(pos + 1) * 96];
            let max = row.iter().fold(f32::MIN, |m, &x| m.max(x)) as f64;
            let lse = max + row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
            lse - row[target] as f64
        };
        let expect = (nll(2, 6) + nll(3, 7)) / 2.0;
        assert!((got - expect).abs() < 1e-5, "{got} vs {expect}");
    }

    #[test]
    fn frozen_parameters_get_no_gradient() {
        let model = tiny_model();
        let ex = examples();
        let batch = build_batch(&ex, &assign_rows(&lengths(&ex), 16, true), 1, 0);
        let freeze = Freeze::new(&["model.embed_tokens.weight".into(), "model.layers.0.*".into()]);
        let g = step_gradients(&model, &freeze, &[batch]).grads;
        assert!(!g.contains_key("model.embed_tokens.weight"));
        assert!(!g.keys().any(|k| k.starts_with("model.layers.0.")));
        assert!(g.contains_key("model.layers.1.mlp.up_proj.weight") && g.contains_key("lm_head.weight"));
    }
}
