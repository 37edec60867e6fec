//! `r1kit check ...`: correctness checks meant for the GPU machine (no Rust toolchain there, so
//! the test suite's checks travel inside the binary). Each prints its figures and fails when a
//! tolerance is exceeded.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Subcommand;
use r1kit_model::burn::prelude::*;
use r1kit_model::burn::tensor::FloatDType;
use r1kit_model::device::{parse_compute_dtype, parse_device};
use r1kit_model::parity::{check_parity, load_fixture};

#[derive(Subcommand)]
pub enum CheckCommand {
    /// The parity fixtures (tiny HF checkpoints + transformers' logits) on a device.
    Parity {
        /// Device: cpu, cuda, cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Fixture directories (default: model/tests/fixtures/parity/*).
        #[arg(long = "fixture")]
        fixtures: Vec<PathBuf>,
        /// Compute dtype of the matrix products: f32 or bf16.
        #[arg(long, default_value = "f32")]
        compute: String,
        /// Largest |logit difference| accepted.
        #[arg(long, default_value_t = 1e-3)]
        tolerance: f32,
        /// Greedy positions whose transformers top-1/top-2 gap is at most this are not compared.
        #[arg(long, default_value_t = 1e-2)]
        min_gap: f64,
    },
    /// One SFT step from the same checkpoint on a device and on the CPU, compared.
    SftStep {
        #[command(flatten)]
        on: FixtureOnDevice,
        /// Largest |gradient difference| accepted, relative to the largest gradient.
        #[arg(long, default_value_t = 1e-3)]
        tolerance: f32,
    },
    /// Rollouts with the decode step captured as a graph and replayed against the eager steps
    /// (greedy, sampled, with stops and compaction), then again after the weights change.
    DecodeGraph {
        #[command(flatten)]
        on: FixtureOnDevice,
        /// Largest |logprob difference| accepted where both modes chose the same tokens.
        #[arg(long, default_value_t = 1e-3)]
        tolerance: f32,
    },
    /// Two saved models' parameters compared (one process against several ranks, a run against
    /// its resumed copy): each tensor's largest difference relative to its largest |value| (the
    /// worst and the median over the tensors), and the whole model's ||a - b|| / ||a||. It passes
    /// when the median and the whole-model figure are within the tolerance; the worst tensor is
    /// printed, not judged, because in bf16 a tensor whose true gradient is 0 (k_proj's bias: a
    /// shift of every score that softmax ignores) takes Adam steps of +-lr from rounding noise in
    /// any two runs that sum in another order.
    SameWeights {
        a: PathBuf,
        b: PathBuf,
        /// The starting model: how far `a` moved from it is printed too (a comparison that could fail).
        #[arg(long)]
        from: Option<PathBuf>,
        /// Largest relative difference accepted (bf16's rounding step is 2^-8 = 3.9e-3).
        #[arg(long, default_value_t = 3.9e-3)]
        tolerance: f32,
    },
    /// The fused kernels (RMSNorm, rotary embeddings, SwiGLU, the attention's softmax, the LM head's log-softmax, AdamW:
    /// r1kit_gpu::kernels) against burn's ops at a shape's sizes, with results in f32 and in bf16:
    /// outputs and gradients of a forward + backward (AdamW: one update, f32).
    Kernels(KernelsArgs),
    /// NCCL's all-reduce on this process's GPU: one process, or the ranks of `r1kit launch --nproc
    /// N -- check nccl`; rank-dependent values summed and compared with the host's sum, then timed.
    Nccl {
        #[arg(long, default_value = "cuda")]
        device: String,
        /// Floats per all-reduce.
        #[arg(long, default_value_t = 64 << 20)]
        elements: usize,
        #[arg(long, default_value_t = 10)]
        repeats: usize,
    },
}

/// Where and at which sizes the fused kernels are compared (`check kernels`, `bench kernels`).
#[derive(clap::Args, Debug)]
pub struct KernelsArgs {
    #[arg(long, default_value = "cuda")]
    pub device: String,
    /// A named shape: its hidden and intermediate sizes, heads, key/value heads and head dim.
    #[arg(long, default_value = "qwen2.5-0.5b")]
    pub shape: String,
    /// Rows (tokens) of the activations: 8 x 2048 by default, the training benchmark's micro-batch.
    #[arg(long, default_value_t = 16384)]
    pub rows: usize,
}

/// Compares the fused kernels with burn's ops and prints each op's differences (and times, when
/// `batch_seconds` > 0); an error when a difference is past its tolerance.
pub fn kernels(args: &KernelsArgs, batch_seconds: f64) -> Result<()> {
    let device = parse_device(&args.device)?;
    let Some(config) = r1kit_model::ModelConfig::preset(&args.shape) else { bail!("--shape: no shape named {:?}", args.shape) };
    let mut failed = Vec::new();
    let sizes = r1kit_gpu::kernels::compare::Sizes { rows: args.rows, hidden: config.hidden_size, intermediate: config.intermediate_size, heads: config.num_heads, kv_heads: config.num_kv_heads, head_dim: config.head_dim, vocab: config.vocab_size };
    for dtype in [FloatDType::F32, FloatDType::BF16] {
        for r in r1kit_gpu::kernels::compare::compare(&device, sizes, dtype, batch_seconds)? {
            let dtype = r.dtype;
            let tolerance = r1kit_gpu::kernels::compare::tolerance(dtype);
            let ok = r.worst() <= tolerance;
            let differences: Vec<String> = r.differences.iter().map(|(name, d)| format!("{name} {d:.2e}")).collect();
            let timing = match r.seconds {
                Some((fused, burn)) => format!("; forward + backward {:.3} ms fused vs {:.3} ms burn's ops = {:.2}x", fused * 1e3, burn * 1e3, burn / fused),
                None => String::new(),
            };
            println!(
                "kernels {:<8} {:?} {dtype:?}: relative differences {} (tolerance {tolerance:e}) {}{timing}",
                r.op, r.shape, differences.join(", "), if ok { "ok" } else { "FAILED" }
            );
            if !ok {
                failed.push(format!("{} {dtype:?}", r.op));
            }
        }
    }
    if !failed.is_empty() {
        bail!("kernels: {} differ from burn's ops past the tolerance", failed.join(", "));
    }
    Ok(())
}

/// The device a check runs on and the checkpoint it loads.
#[derive(clap::Args)]
pub struct FixtureOnDevice {
    #[arg(long, default_value = "cuda")]
    device: String,
    /// The checkpoint (default: the qwen2 parity fixture).
    #[arg(long, default_value = "model/tests/fixtures/parity/qwen2-tiny")]
    model: PathBuf,
}

pub fn run(command: &CheckCommand) -> Result<()> {
    match command {
        CheckCommand::Parity { device, compute, fixtures, tolerance, min_gap } => {
            let device = parse_device(device)?;
            let dtype = parse_compute_dtype(compute)?;
            let fixtures = if fixtures.is_empty() {
                r1kit_model::parity::FIXTURES.iter().map(|n| PathBuf::from("model/tests/fixtures/parity").join(n)).collect()
            } else {
                fixtures.clone()
            };
            let mut failed = Vec::new();
            for dir in &fixtures {
                let (model, reference) = load_fixture(dir, &device)?;
                let model = model.with_compute(dtype);
                let r = check_parity(&model, &reference, *min_gap)?;
                let ok = r.max_logit_diff <= *tolerance && r.greedy_agreed == r.greedy_checked && r.greedy_checked > 0;
                println!(
                    "parity {:<40} {:?} {compute}: max |logit diff| {:.3e} (tolerance {tolerance:e}); greedy {}/{} {}",
                    dir.display(), device, r.max_logit_diff, r.greedy_agreed, r.greedy_checked, if ok { "ok" } else { "FAILED" }
                );
                if !ok {
                    failed.push(dir.display().to_string());
                }
            }
            if !failed.is_empty() {
                bail!("parity failed for {}", failed.join(", "));
            }
            Ok(())
        }
        CheckCommand::SftStep { on: FixtureOnDevice { device, model }, tolerance } => {
            let device = parse_device(device)?;
            let cpu = Device::flex();
            let r = r1kit_train::device_check::sft_step_on_two_devices(model, [&cpu, &device])?;
            let relative = r.max_grad_diff / r.max_grad.max(f32::MIN_POSITIVE);
            println!(
                "sft-step cpu vs {device:?}: loss {:.6} / {:.6}, grad norm {:.6} / {:.6}, max |grad diff| {:.3e} = {:.3e} x the largest gradient ({:.3e}); after AdamW max |weight diff| {:.3e} (largest update {:.3e})",
                r.loss[0], r.loss[1], r.grad_norm[0], r.grad_norm[1], r.max_grad_diff, relative, r.max_grad, r.max_weight_diff, r.max_update
            );
            if relative > *tolerance {
                bail!("sft-step: the {device:?} gradient differs from the CPU one by {relative:.3e} of the largest (tolerance {tolerance:e})");
            }
            Ok(())
        }
        CheckCommand::Kernels(args) => kernels(args, 0.0),
        CheckCommand::DecodeGraph { on: FixtureOnDevice { device, model }, tolerance } => check_decode_graph(&parse_device(device)?, model, *tolerance),
        CheckCommand::SameWeights { a, b, from, tolerance } => {
            let load = |dir: &PathBuf| r1kit_model::load_model_dir(dir, &Device::flex()).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()));
            let first = load(a)?;
            let d = r1kit_model::parity::compare_parameters(&first, &load(b)?)?;
            print!(
                "same-weights {} vs {}: {} tensors; the whole model's ||a - b|| / ||a|| {:.3e}; each tensor's largest difference relative to its largest value: median {:.3e}, worst {:.3e} ({}); tolerance {tolerance:e}",
                a.display(), b.display(), d.tensors, d.whole, d.median, d.worst, d.tensor
            );
            if let Some(init) = from {
                let moved = r1kit_model::parity::compare_parameters(&load(init)?, &first)?;
                print!("; {} moved from {} by up to {:.3e} ({})", a.display(), init.display(), moved.worst, moved.tensor);
            }
            println!();
            if !(d.median <= *tolerance && d.whole <= *tolerance as f64) {
                bail!("same-weights: the models differ by {:.3e} (whole model), {:.3e} (median tensor) (tolerance {tolerance:e})", d.whole, d.median);
            }
            Ok(())
        }
        CheckCommand::Nccl { device, elements, repeats } => {
            let c = r1kit_train::data_parallel::check_nccl(&parse_device(device)?, *elements, *repeats)?;
            let bytes = (c.elements * 4) as f64;
            // NCCL's bus bandwidth: what a ring all-reduce moves per rank, over the time
            let bus = bytes * 2.0 * (c.ranks as f64 - 1.0) / c.ranks as f64 / c.seconds / 1e9;
            println!(
                "nccl: rank {} of {}: {} floats summed, max |error| {:e}; {:.3} ms per all-reduce ({:.1} GB/s algorithm, {:.1} GB/s bus)",
                c.rank, c.ranks, c.elements, c.max_error, c.seconds * 1e3, bytes / c.seconds / 1e9, bus
            );
            if c.max_error != 0.0 {
                bail!("nccl: the all-reduce differs from the host's sum by {:e}", c.max_error);
            }
            Ok(())
        }
    }
}

fn check_decode_graph(device: &Device, dir: &std::path::Path, tolerance: f32) -> Result<()> {
    let model = r1kit_model::load_model_dir(dir, device)?;
    let mut failed = 0;
    for (case, c) in r1kit_sampler::check::decode_graph_cases(&model)? {
        let ok = c.differing == 0 && c.max_logprob_diff <= tolerance;
        failed += !ok as usize;
        println!(
            "decode-graph {device:?} {case}: {} completions, {} tokens; {} differ; max |logprob diff| {:.2e} (tolerance {tolerance:e}); eager {:.2} s, graph {:.2} s {}",
            c.completions, c.tokens, c.differing, c.max_logprob_diff, c.eager_seconds, c.graph_seconds, if ok { "ok" } else { "FAILED" }
        );
    }
    if failed > 0 {
        bail!("decode-graph: {failed} case(s) differ between the captured and the eager decode");
    }
    Ok(())
}
