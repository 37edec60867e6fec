//! The full GRPO loss on a tiny model: a finite-difference gradient check, micro-batching that
//! does not change the step, and pi_old recomputed so that the ratio is exactly 1 at mu = 1.

use r1kit_grpo::kl::KlEstimator;
use r1kit_grpo::loss::{Aggregation, ClipConfig, StepCounts};
use r1kit_grpo::update::{batch_logprobs, micro_batch_loss, policy_update, StepSequences, UpdateConfig};
use r1kit_model::burn::prelude::*;
use r1kit_model::{normal_tensor, Checkpointing, Model, ModelConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;
use r1kit_train::accumulate::tracked;
use r1kit_train::grads::collect_gradients;
use r1kit_train::optim::{AdamW, AdamWConfig};
use r1kit_train::packing::{assign_rows, build_batch};
use r1kit_train::params::Freeze;

fn tiny(seed: u64) -> Model {
    let config = ModelConfig::from_json(&serde_json::json!({"model_type": "qwen3", "vocab_size": 32, "hidden_size": 16,
        "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
        "tie_word_embeddings": true}))
    .unwrap();
    Model::init_random(config, &Device::flex(), 0.3, seed)
}

fn sequences() -> StepSequences {
    let prompts: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![4, 5], vec![6, 7, 8, 9], vec![10]];
    let completions: Vec<Vec<u32>> = vec![vec![11, 12, 13], vec![14, 15, 16, 17], vec![18], vec![19, 20]];
    let p: Vec<&[u32]> = prompts.iter().map(|v| v.as_slice()).collect();
    let c: Vec<&[u32]> = completions.iter().map(|v| v.as_slice()).collect();
    StepSequences::new(&p, &c, vec![1.0, -0.5, 0.3, -0.8])
}

fn config(aggregation: Aggregation) -> UpdateConfig {
    UpdateConfig {
        clip: ClipConfig { eps_low: 0.2, eps_high: 0.28, dual_clip: None },
        aggregation,
        beta: 0.1,
        kl_estimator: KlEstimator::K3,
        mu: 1,
        micro_batch_tokens: usize::MAX,
        max_completion_length: 6,
        max_grad_norm: None,
        freeze: Freeze::default(),
    }
}

/// The step loss of `model` with pi_old from `old_model` and the reference `reference`.
fn step_loss(model: &Model, old_model: &Model, reference: &Model, seq: &StepSequences, cfg: &UpdateConfig) -> (f64, Option<r1kit_train::grads::GradMap>) {
    let lengths: Vec<usize> = seq.examples.iter().map(|e| e.len()).collect();
    let rows = assign_rows(&lengths, usize::MAX, false);
    let batch = build_batch(&seq.examples, &rows, 1, 0);
    let step = StepCounts { sequences: 4, tokens: batch.loss_tokens(), max_completion_length: cfg.max_completion_length };
    let old = batch_logprobs(old_model, &batch);
    let reference = batch_logprobs(reference, &batch);
    if model.device().is_autodiff() {
        let (loss, _, _) = micro_batch_loss(model, &batch, Some(&old), Some(&reference), &seq.advantages, cfg, &step);
        let value = loss.clone().inner().into_scalar::<f32>() as f64;
        (value, Some(collect_gradients(model, &loss)))
    } else {
        let (loss, _, _) = micro_batch_loss(&model.clone().map_parameters(|_, t| t.autodiff()), &batch, Some(&old), Some(&reference), &seq.advantages, cfg, &step);
        (loss.inner().into_scalar::<f32>() as f64, None)
    }
}

#[test]
fn finite_difference_gradient_check_of_the_full_loss() {
    let policy = tiny(1);
    let reference = tiny(2);
    // pi_old a little away from pi so that ratios differ from 1 (but stay inside the clip range)
    // (noise drawn from a fixed seed: the test must not depend on what else runs in the process)
    let mut rng = StdRng::seed_from_u64(7);
    let old = policy.clone().map_parameters(|_, t| {
        let noise = normal_tensor(t.dims(), 0.01, &mut rng, &t.device());
        t + noise
    });
    let seq = sequences();
    for aggregation in [Aggregation::SequenceMean, Aggregation::TokenMean, Aggregation::SumOverMaxLength] {
        let cfg = config(aggregation);
        let tracked_policy = tracked(&policy, &Freeze::default());
        let (_, grads) = step_loss(&tracked_policy, &old, &reference, &seq, &cfg);
        let grads = grads.unwrap();
        let h = 1e-2f32;
        let mut checked = 0;
        for (name, flat_index) in [
            ("model.embed_tokens.weight", 11 * 16 + 3),
            ("model.layers.0.self_attn.q_proj.weight", 5),
            ("model.layers.1.mlp.down_proj.weight", 40),
            ("model.layers.1.self_attn.k_norm.weight", 2),
            ("model.norm.weight", 7),
        ] {
            let g = grads[name].clone().into_data().try_into_vec_as::<f32>().unwrap()[flat_index] as f64;
            let shifted = |delta: f32| {
                policy.clone().map_parameters(|n, t| {
                    if n != name {
                        return t;
                    }
                    let mut v = t.clone().into_data().try_into_vec_as::<f32>().unwrap();
                    v[flat_index] += delta;
                    Tensor::from_data(TensorData::new(v, t.dims()), &t.device())
                })
            };
            let (plus, _) = step_loss(&shifted(h), &old, &reference, &seq, &cfg);
            let (minus, _) = step_loss(&shifted(-h), &old, &reference, &seq, &cfg);
            let fd = (plus - minus) / (2.0 * h as f64);
            assert!((fd - g).abs() <= 2e-3 + 3e-2 * g.abs(), "{aggregation:?} {name}[{flat_index}]: autodiff {g:.6} vs finite difference {fd:.6}");
            checked += (g.abs() > 1e-4) as usize;
        }
        assert!(checked >= 3, "most checked entries have a real gradient");
    }
}

#[test]
fn ratio_is_exactly_one_at_the_first_iteration_and_micro_batching_changes_nothing() {
    let policy = tiny(3);
    let reference = tiny(4);
    let seq = sequences();
    let mut cfg = config(Aggregation::SequenceMean);
    // any ratio != 1 would count as clipped with these bounds
    cfg.clip = ClipConfig { eps_low: 1e-7, eps_high: 1e-7, dual_clip: None };
    // Adam's first step is lr * sign(g) wherever |g| >> eps, so a rounding-level gradient would move
    // a weight by a full lr either way; a large eps makes the step proportional to g instead.
    let adam = AdamWConfig { lr: 1e-2, eps: 1e-2, ..Default::default() };
    let mut opt_a = AdamW::new(adam);
    let (a, stats_a) = policy_update(policy.clone(), &mut opt_a, &seq, Some(&reference), &cfg, 1e-2);
    assert_eq!((stats_a.clip_low, stats_a.clip_high), (0.0, 0.0), "pi_old is recomputed: ratio exactly 1");
    assert!(stats_a.kl.unwrap() > 0.0);
    assert!(stats_a.entropy > 0.1 && stats_a.entropy <= (32f64).ln() + 1e-6, "entropy {}", stats_a.entropy);
    // the same step in micro-batches of at most 8 padded tokens
    cfg.micro_batch_tokens = 8;
    let mut opt_b = AdamW::new(adam);
    let (b, stats_b) = policy_update(policy.clone(), &mut opt_b, &seq, Some(&reference), &cfg, 1e-2);
    assert!(stats_b.micro_batches >= 3, "{} micro-batches", stats_b.micro_batches);
    assert!((stats_a.loss - stats_b.loss).abs() < 1e-5, "{} vs {}", stats_a.loss, stats_b.loss);
    assert!((stats_a.grad_norm - stats_b.grad_norm).abs() < 1e-4 * stats_a.grad_norm.max(1.0));
    for ((n, x), (_, y)) in a.parameters().into_iter().zip(b.parameters()) {
        let (x, y) = (x.into_data().try_into_vec_as::<f32>().unwrap(), y.into_data().try_into_vec_as::<f32>().unwrap());
        assert!(x.iter().zip(&y).all(|(p, q)| (p - q).abs() < 1e-5), "{n}");
    }
    // and the update moved the weights
    let moved = a.parameters().into_iter().zip(policy.parameters()).any(|((_, x), (_, y))| {
        let d = (x - y).abs().max().into_scalar::<f32>();
        d > 1e-3
    });
    assert!(moved);
}

#[test]
fn gradient_checkpointing_gives_the_same_update() {
    // two inner iterations (pi_old from the first) and a reference: every constant that joins the
    // checkpointed graph must carry its strategy
    let (policy, reference, seq) = (tiny(5), tiny(6), sequences());
    let mut cfg = config(Aggregation::SequenceMean);
    cfg.mu = 2;
    let adam = AdamWConfig { lr: 1e-2, eps: 1e-2, ..Default::default() };
    let (a, stats_a) = policy_update(policy.clone(), &mut AdamW::new(adam), &seq, Some(&reference), &cfg, 1e-2);
    for mode in [Checkpointing::Ops, Checkpointing::Blocks] {
        let (b, stats_b) = policy_update(policy.clone().with_checkpointing(mode), &mut AdamW::new(adam), &seq, Some(&reference), &cfg, 1e-2);
        assert!((stats_a.loss - stats_b.loss).abs() < 1e-6 && (stats_a.grad_norm - stats_b.grad_norm).abs() < 1e-5, "{mode:?}: {stats_a:?} vs {stats_b:?}");
        assert_eq!(b.checkpointing, mode, "the updated model keeps the setting");
        for ((n, x), (_, y)) in a.parameters().into_iter().zip(b.parameters()) {
            let (x, y) = (x.into_data().try_into_vec_as::<f32>().unwrap(), y.into_data().try_into_vec_as::<f32>().unwrap());
            assert!(x.iter().zip(&y).all(|(p, q)| (p - q).abs() < 1e-5), "{mode:?}: {n}");
        }
    }
}

#[test]
fn positive_advantages_raise_log_probability_and_negative_lower_it() {
    use r1kit_grpo::update::batch_logprobs_of;
    let policy = tiny(5);
    let prompts: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![1, 2, 3]];
    let completions: Vec<Vec<u32>> = vec![vec![11, 12, 13], vec![21, 22, 23]];
    let p: Vec<&[u32]> = prompts.iter().map(|v| v.as_slice()).collect();
    let c: Vec<&[u32]> = completions.iter().map(|v| v.as_slice()).collect();
    let seq = StepSequences::new(&p, &c, vec![1.0, -1.0]);
    let mut cfg = config(Aggregation::SequenceMean);
    cfg.beta = 0.0;
    let before: Vec<f32> = batch_logprobs_of(&policy, &p, &c, 1 << 20).iter().map(|v| v.iter().sum()).collect();
    let mut opt = AdamW::new(AdamWConfig { lr: 1e-3, ..Default::default() });
    let (after_model, _) = policy_update(policy, &mut opt, &seq, None, &cfg, 1e-3);
    let after: Vec<f32> = batch_logprobs_of(&after_model, &p, &c, 1 << 20).iter().map(|v| v.iter().sum()).collect();
    assert!(after[0] > before[0], "rewarded completion: {} -> {}", before[0], after[0]);
    assert!(after[1] < before[1], "penalized completion: {} -> {}", before[1], after[1]);
}
