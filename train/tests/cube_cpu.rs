//! The model with the fused kernels (`r1kit_gpu::kernels`, on burn's `Cube` backend over CubeCL's
//! CPU runtime: `Device::cpu()`) against the model without them (the plain CPU backend, flex):
//! the parity fixtures' logits, and one SFT step's gradients. This is the wiring the CUDA build
//! runs (norms writing the GEMMs' dtype, the rotary kernel's layout, the MLP gate), checked without
//! a GPU. Only in the `cube-cpu` build: scripts/test-kernels.sh. In f32 only: burn's own matmul
//! cannot run bf16 on that runtime (it asks for more shared memory than the runtime allows), so
//! the bf16 dtype flow is checked on the GPU (`r1kit check parity --compute bf16`).
#![cfg(feature = "cube-cpu")]

use std::path::PathBuf;

use r1kit_model::burn::prelude::*;
use r1kit_model::parity::{check_parity, load_fixture, FIXTURES};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/parity").join(name)
}

#[test]
fn the_kernels_apply_on_the_cube_cpu_device_and_not_on_flex() {
    assert!(r1kit_gpu::kernels::applies(&Device::cpu()));
    assert!(r1kit_gpu::kernels::applies(&Device::cpu().autodiff()));
    assert!(!r1kit_gpu::kernels::applies(&Device::flex()));
}

#[test]
fn logits_with_the_fused_kernels_match_transformers() {
    for name in FIXTURES {
        let (model, reference) = load_fixture(&fixture(name), &Device::cpu()).unwrap();
        let report = check_parity(&model, &reference, 1e-2).unwrap();
        eprintln!("{name} f32, fused kernels: max |logit diff| {:e}, greedy {}/{}", report.max_logit_diff, report.greedy_agreed, report.greedy_checked);
        assert!(report.max_logit_diff <= 1e-4, "{name}: max |logit diff| {:e}", report.max_logit_diff);
        assert_eq!(report.greedy_agreed, report.greedy_checked, "{name}");
    }
}

/// On Qwen3's fixture alone (its per-head q/k norms take the norm kernel in 4-D too): on this
/// runtime every burn kernel is compiled on first use, and a step on each fixture took minutes.
#[test]
fn an_sft_step_with_the_fused_kernels_matches_the_plain_cpu_one() {
    for name in ["qwen3-tiny"] {
        let r = r1kit_train::device_check::sft_step_on_two_devices(&fixture(name), [&Device::flex(), &Device::cpu()]).unwrap();
        let relative = r.max_grad_diff / r.max_grad;
        eprintln!("{name}: loss {:.6} / {:.6}, max |grad diff| {:.3e} of the largest gradient", r.loss[0], r.loss[1], relative);
        assert!((r.loss[0] - r.loss[1]).abs() <= 1e-5 * r.loss[0].abs(), "{name}: losses {:?}", r.loss);
        assert!(relative <= 1e-4, "{name}: gradients differ by {relative:e} of the largest");
    }
}

/// Rollouts on the Cube device (each decode step's attention one kernel over the KV cache,
/// `r1kit_gpu::kernels::decode_attention`, switched on here, and its draw another, `draw_rows`) against rollouts on
/// flex (burn's ops): greedy and sampled at T 1 (the same uniform numbers; the kernel's one-level
/// inverse CDF and burn's two-level one agree but at rounding boundaries, which these draws do not
/// meet), prompts of different lengths (left padding blocks slots), eager and fixed-shape steps
/// (the latter over the cache's whole capacity, unwritten slots blocked).
#[test]
fn rollouts_with_the_decode_kernels_match_the_plain_cpu_ones() {
    use r1kit_sampler::{sample_in_mode, DecodeMode, SamplingParams};
    // no other test here decodes: the switch changes nothing else
    r1kit_gpu::kernels::set_decode_attention_in_rollouts(true);
    let (flex, _) = load_fixture(&fixture("qwen2-tiny"), &Device::flex()).unwrap();
    let (cube, _) = load_fixture(&fixture("qwen2-tiny"), &Device::cpu()).unwrap();
    let vocab = flex.config.vocab_size as u32;
    let prompts: Vec<Vec<u32>> = [5usize, 2, 9].iter().enumerate().map(|(p, &n)| (0..n).map(|i| (p as u32 * 131 + i as u32 * 17 + 3) % vocab).collect()).collect();
    for params in [SamplingParams::greedy(6), SamplingParams { temperature: 1.0, max_new_tokens: 6, seed: 3, ..Default::default() }] {
        let reference = sample_in_mode(&flex, None, &prompts, 2, &params, DecodeMode::Eager).unwrap();
        for mode in [DecodeMode::Eager, DecodeMode::Graph] {
            let ours = sample_in_mode(&cube, None, &prompts, 2, &params, mode).unwrap();
            let case = format!("T {}, {mode:?}", params.temperature);
            for (o, r) in ours.iter().zip(&reference) {
                assert_eq!(o.tokens, r.tokens, "{case}, prompt {} sample {}", r.prompt_index, r.sample_index);
                let worst = o.logprobs.iter().zip(&r.logprobs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(worst <= 1e-4, "{case}: log-probabilities differ by {worst}");
            }
        }
    }
}
