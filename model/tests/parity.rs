//! Parity with HF transformers on tiny random checkpoints (fixtures made by
//! scripts/make_parity_fixtures.py on a machine with PyTorch; committed with their reference
//! outputs), and the consistency of the KV-cache and packed paths with the full forward.

use std::path::PathBuf;

use r1kit_model::burn::prelude::*;
use r1kit_model::generate::left_pad;
use r1kit_model::logprobs::token_logprobs;
use r1kit_model::parity::{check_parity, fixture_batch_logits, FixtureBatch};
use r1kit_model::{load_model_dir, AttentionMask, KvCache, Model};
use serde_json::Value;

const CASES: [&str; 3] = r1kit_model::parity::FIXTURES;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity").join(name)
}

fn load(name: &str) -> (Model, Value) {
    let dir = fixture(name);
    let model = load_model_dir(&dir, &Device::flex()).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    (model, serde_json::from_str(&text).unwrap())
}

fn rows_u32(v: &Value) -> Vec<Vec<u32>> {
    v.as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()).collect()
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

#[test]
fn logits_match_transformers_on_left_padded_batch() {
    for name in CASES {
        let (model, reference) = load(name);
        let report = check_parity(&model, &reference, 1e-2).unwrap();
        assert!(report.max_logit_diff <= 1e-4, "{name}: max |logit diff| {:e} > 1e-4", report.max_logit_diff);
        assert!(report.greedy_checked >= 30, "{name}: only {} greedy positions checked", report.greedy_checked);
        assert_eq!(report.greedy_agreed, report.greedy_checked, "{name}: teacher-forced greedy tokens");
        eprintln!("{name}: max |logit diff| vs transformers {:e}", report.max_logit_diff);
    }
}

#[test]
fn bf16_compute_keeps_greedy_tokens_and_logits_near() {
    for name in CASES {
        let (model, reference) = load(name);
        let model = model.with_compute(r1kit_model::burn::tensor::FloatDType::BF16);
        // a greedy token may flip where transformers' top-1/top-2 gap is within bf16's logit error
        // (~0.3 here), as it would under torch autocast; compare where the gap is well above it
        let report = check_parity(&model, &reference, 0.5).unwrap();
        eprintln!("{name} bf16: max |logit diff| {:e}, greedy {}/{}", report.max_logit_diff, report.greedy_agreed, report.greedy_checked);
        assert!(report.max_logit_diff > 1e-6, "{name}: bf16 products differ from f32 (the cast is real)");
        // bf16 keeps 8 bits of mantissa (0.4% per rounding), compounded over the layers: 3% of the
        // largest logit (~17 in these fixtures) bounds it; a wrong cast or layout would be far off
        let scale = reference["logits"].as_array().unwrap().iter().fold(0f32, |m, x| m.max(x.as_f64().unwrap().abs() as f32));
        assert!(report.max_logit_diff <= 0.03 * scale, "{name}: bf16 max |logit diff| {:e} (largest logit {scale})", report.max_logit_diff);
        assert_eq!(report.greedy_agreed, report.greedy_checked, "{name}: teacher-forced greedy tokens in bf16");
    }
}

#[test]
fn frozen_copy_gives_the_same_logits() {
    // Weights cast once (frozen) against weights cast at every product: the same bf16 values
    // go into the same products, so the logits are equal, not just near.
    for name in CASES {
        let (model, reference) = load(name);
        let model = model.with_compute(r1kit_model::burn::tensor::FloatDType::BF16);
        let decoding = model.frozen();
        assert!(decoding.lm_head.is_some() && decoding.layers[0].q_proj.weight.dtype() != model.layers[0].q_proj.weight.dtype());
        let a = check_parity(&model, &reference, 0.5).unwrap();
        let b = check_parity(&decoding, &reference, 0.5).unwrap();
        assert_eq!(a.max_logit_diff, b.max_logit_diff, "{name}");
    }
}

#[test]
fn padded_row_equals_the_prompt_alone() {
    for name in CASES {
        let (model, reference) = load(name);
        let FixtureBatch { logits: padded, mask, seq: s } = fixture_batch_logits(&model, &reference).unwrap();
        let ids = rows_u32(&reference["input_ids"]);
        let pos = rows_u32(&reference["position_ids"]);
        let v = model.config.vocab_size;
        // row 0 is the shorter, padded prompt
        let pad = mask[0].iter().filter(|m| **m == 0).count();
        assert!(pad > 0);
        let alone: Vec<u32> = ids[0][pad..].to_vec();
        let positions: Vec<i64> = pos[0][pad..].iter().map(|&p| p as i64).collect();
        let n = alone.len();
        let hidden = model.forward_hidden(&alone, &positions, 1, &AttentionMask::causal_segments(&vec![1; n], 1), None);
        let single = to_vec(model.logits(hidden));
        let mut max_diff = 0f32;
        for i in 0..n {
            for k in 0..v {
                max_diff = max_diff.max((single[i * v + k] - padded[(pad + i) * v + k]).abs());
            }
        }
        assert!(max_diff <= 1e-4, "{name}: padded vs alone {max_diff:e}");
        let _ = s;
    }
}

#[test]
fn kv_cache_decode_reproduces_full_forward() {
    for name in CASES {
        let (model, reference) = load(name);
        let prompts: Vec<Vec<u32>> = reference["greedy"].as_array().unwrap().iter().map(|g| {
            g["prompt"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
        }).collect();
        let v = model.config.vocab_size;
        let h = model.config.hidden_size;
        // Prefill 2 left-padded prompts, then feed 5 fixed tokens one at a time through the cache.
        let (tokens, positions, valid, len) = left_pad(&prompts, 0);
        let b = prompts.len();
        let extra: Vec<u32> = vec![5, 17, 200, 3, 99];
        let mut cache = KvCache::new(&model.config, b, len + extra.len(), model.compute, &model.device());
        let mask = cache.prepare(&valid, len).unwrap();
        let hidden = model.forward_hidden(&tokens, &positions, b, &mask, Some(&mut cache));
        let mut step_logits = vec![to_vec(model.logits(hidden.slice([0..b, len - 1..len, 0..h])))];
        for (t, &tok) in extra.iter().enumerate() {
            let pos: Vec<i64> = prompts.iter().map(|p| (p.len() + t) as i64).collect();
            let mask = cache.prepare(&vec![true; b], 1).unwrap();
            let hidden = model.forward_hidden(&vec![tok; b], &pos, b, &mask, Some(&mut cache));
            step_logits.push(to_vec(model.logits(hidden)));
        }
        // Reference: each prompt + the extra tokens through the full forward, unpadded.
        let mut max_diff = 0f32;
        for (row, p) in prompts.iter().enumerate() {
            let seq: Vec<u32> = p.iter().copied().chain(extra.iter().copied()).collect();
            let n = seq.len();
            let positions: Vec<i64> = (0..n as i64).collect();
            let full = to_vec(model.logits(model.forward_hidden(&seq, &positions, 1, &AttentionMask::causal_segments(&vec![1; n], 1), None)));
            for (step, logits) in step_logits.iter().enumerate() {
                let at = p.len() - 1 + step;
                for k in 0..v {
                    max_diff = max_diff.max((logits[row * v + k] - full[at * v + k]).abs());
                }
            }
        }
        assert!(max_diff <= 1e-4, "{name}: cached decode vs full forward {max_diff:e}");
    }
}

#[test]
fn packed_row_equals_examples_alone() {
    let (model, _) = load("qwen3-tiny");
    let a: Vec<u32> = vec![10, 11, 12, 13];
    let b: Vec<u32> = vec![50, 60, 70, 80, 90, 100];
    let packed: Vec<u32> = a.iter().chain(b.iter()).copied().collect();
    let segments: Vec<u32> = [vec![1; a.len()], vec![2; b.len()]].concat();
    let positions: Vec<i64> = (0..a.len() as i64).chain(0..b.len() as i64).collect();
    let v = model.config.vocab_size;
    let packed_logits = to_vec(model.logits(model.forward_hidden(&packed, &positions, 1, &AttentionMask::causal_segments(&segments, 1), None)));
    let mut offset = 0;
    let mut max_diff = 0f32;
    for ex in [&a, &b] {
        let n = ex.len();
        let alone = to_vec(model.logits(model.forward_hidden(ex, &(0..n as i64).collect::<Vec<_>>(), 1, &AttentionMask::causal_segments(&vec![1; n], 1), None)));
        for i in 0..n * v {
            max_diff = max_diff.max((alone[i] - packed_logits[offset * v + i]).abs());
        }
        offset += n;
    }
    assert!(max_diff <= 1e-4, "packed vs alone {max_diff:e}");
}

#[test]
fn chunked_logprobs_equal_full_log_softmax() {
    let (model, _) = load("qwen2-tiny");
    let tokens: Vec<u32> = (0..24).map(|i| (i * 31 + 7) % 384).collect();
    let targets: Vec<u32> = tokens.iter().map(|t| (t * 3 + 1) % 384).collect();
    let positions: Vec<i64> = (0..12).chain(0..12).collect();
    let mask = AttentionMask::causal_segments(&vec![1; 24], 2);
    let hidden = model.forward_hidden(&tokens, &positions, 2, &mask, None);
    let full = to_vec(r1kit_model::burn::tensor::activation::log_softmax(model.logits(hidden.clone()), 2));
    for chunk in [1, 5, 24, 1000] {
        let lp = to_vec(token_logprobs(&model, hidden.clone(), &targets, chunk));
        let (lp2, entropy) = r1kit_model::logprobs::token_logprobs_and_entropy(&model, hidden.clone(), &targets, chunk);
        let (lp2, entropy) = (to_vec(lp2), to_vec(entropy));
        for (i, t) in targets.iter().enumerate() {
            assert!((lp[i] - full[i * 384 + *t as usize]).abs() <= 1e-5, "chunk {chunk} position {i}");
            assert_eq!(lp[i], lp2[i]);
            let h: f32 = -full[i * 384..(i + 1) * 384].iter().map(|l| l.exp() * l).sum::<f32>();
            assert!((entropy[i] - h).abs() <= 1e-4, "entropy at {i}: {} vs {h}", entropy[i]);
        }
    }
}
