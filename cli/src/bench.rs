//! `r1kit bench ...`: benchmarks that print figures.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use r1kit_model::burn::prelude::*;
use r1kit_model::{AttentionMask, Model, ModelConfig};

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Prefill throughput of the full forward pass (logits of every position).
    Forward(ForwardArgs),
    /// Rollout throughput: prompts x G completions on the KV cache.
    Rollout(RolloutArgs),
    /// Math reward throughput and latency on GSM8K and MATH-style answers.
    Rewards(RewardsArgs),
    /// Sandboxed code execution on HumanEval canonical solutions, against bare python3.
    Code(CodeArgs),
    /// One full GRPO step, its time split by phase.
    GrpoStep(GrpoStepArgs),
    /// Training throughput: forward + backward + AdamW on random tokens, a real shape with random weights.
    Train(TrainArgs),
    /// The cuBLASLt GEMM on burn's CUDA stream: correctness (f64 reference, burn's matmul),
    /// ordering under a no-sync chain, and TFLOP/s on Qwen2.5 training shapes against burn.
    Gemm(GemmArgs),
    /// The fused kernels (RMSNorm, rotary embeddings, SwiGLU, the attention's softmax, the LM head's log-softmax, AdamW) against
    /// burn's ops: forward + backward time at a shape's sizes, after the same comparison as `check kernels`.
    Kernels(crate::check::KernelsArgs),
}

#[derive(clap::Args, Debug)]
pub struct GemmArgs {
    #[arg(long, default_value = "cuda")]
    pub device: String,
    /// Write the results as JSON (also after each section).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Skip the speed section.
    #[arg(long)]
    pub skip_speed: bool,
    /// A few correctness shapes and the smaller model's speed shapes only.
    #[arg(long)]
    pub quick: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// A named shape (qwen2.5-0.5b, qwen2.5-1.5b, llama3.2-1b, smollm2-135m, tiny).
    #[arg(long, default_value = "tiny")]
    pub shape: String,
    /// Replace the shape's vocabulary size (to see what the LM head and log-softmax cost).
    #[arg(long)]
    pub vocab: Option<usize>,
    /// Sequences per optimizer step (of each rank under `r1kit launch`).
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 2048)]
    pub seq: usize,
    /// Sequences per micro-batch (gradient accumulation over batch / micro_batch).
    #[arg(long)]
    pub micro_batch: Option<usize>,
    /// Untimed steps, then timed ones: 2 and 5, as `scripts/bench_train_torch.py` times PyTorch.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Compute dtype of the matrix products (f32 master weights either way): f32 or bf16.
    #[arg(long, default_value = "f32")]
    pub compute: String,
    /// Gradient checkpointing: off, ops (burn's balanced strategy: cheap activations recomputed
    /// in the backward) or blocks (each transformer block recomputed from its input).
    #[arg(long, default_value = "off")]
    pub checkpointing: r1kit_model::Checkpointing,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct GrpoStepArgs {
    /// A Hugging Face model directory or GGUF file.
    #[arg(long, conflicts_with = "shape", required_unless_present = "shape")]
    pub model: Option<PathBuf>,
    /// A named shape with random weights (needs --tokenizer).
    #[arg(long, requires = "tokenizer")]
    pub shape: Option<String>,
    /// tokenizer.json or its directory (default: the model's).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Prompts of the step (shared by the ranks under `r1kit launch`).
    #[arg(long, default_value_t = 4)]
    pub prompts: usize,
    #[arg(long, default_value_t = 4)]
    pub group: usize,
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Dtype of the matrix products: f32 | bf16 (f32 master weights), as `[model] compute`.
    #[arg(long, default_value = "f32")]
    pub compute: String,
    /// Untimed steps first (kernel compilation, first allocations).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Gradient checkpointing of the update: off, ops or blocks (as `[optimizer] gradient_checkpointing`).
    #[arg(long, default_value = "off")]
    pub checkpointing: r1kit_model::Checkpointing,
}

#[derive(clap::Args, Debug)]
pub struct RolloutArgs {
    /// A Hugging Face model directory or GGUF file.
    #[arg(long, conflicts_with = "shape", required_unless_present = "shape")]
    pub model: Option<PathBuf>,
    /// A named shape with random weights.
    #[arg(long)]
    pub shape: Option<String>,
    #[arg(long, default_value_t = 16)]
    pub prompts: usize,
    #[arg(long, default_value_t = 4)]
    pub group: usize,
    #[arg(long, default_value_t = 64)]
    pub prompt_tokens: usize,
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Compute dtype of the matrix products: f32 or bf16.
    #[arg(long, default_value = "f32")]
    pub compute: String,
    /// Decode steps: `graph` (captured and replayed; the default on CUDA) or `eager` (the default elsewhere).
    #[arg(long)]
    pub mode: Option<String>,
    /// Untimed full rollouts first (on CUDA the first one compiles and autotunes kernels).
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct RewardsArgs {
    /// Passes over the answer sets.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

#[derive(clap::Args, Debug)]
pub struct CodeArgs {
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Passes over the tasks.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// HumanEval tasks used (the first N).
    #[arg(long, default_value_t = 40)]
    pub tasks: usize,
    /// Sequential runs timed sandboxed and bare, for the per-run overhead.
    #[arg(long, default_value_t = 20)]
    pub samples: usize,
}

#[derive(clap::Args, Debug)]
pub struct ForwardArgs {
    /// A Hugging Face model directory.
    #[arg(long, conflicts_with = "shape", required_unless_present = "shape")]
    pub model: Option<PathBuf>,
    /// A named shape with random weights (tiny, smollm2-135m, qwen2.5-0.5b, qwen2.5-1.5b, llama3.2-1b).
    #[arg(long)]
    pub shape: Option<String>,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 512)]
    pub tokens: usize,
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Timed repetitions (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 3)]
    pub iters: usize,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(cmd: &BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Forward(a) => bench_forward(a),
        BenchCommand::Rollout(a) => bench_rollout(a),
        BenchCommand::Rewards(a) => {
            let dir = r1kit_datasets::find_assets_dir()?;
            let report = r1kit_rewards::bench::bench_rewards(&dir, a.rounds).map_err(anyhow::Error::msg)?;
            println!("{report}");
            Ok(())
        }
        BenchCommand::Code(a) => bench_code(a),
        BenchCommand::Gemm(a) => {
            let device = r1kit_model::device::parse_device(&a.device)?;
            let opts = r1kit_gpu::bench::GemmBenchOptions { out: a.out.clone(), skip_speed: a.skip_speed, quick: a.quick, seed: a.seed };
            r1kit_gpu::bench::bench_gemm(&device, &opts)
        }
        BenchCommand::Kernels(a) => crate::check::kernels(a, 0.2),
        BenchCommand::Train(a) => {
            let device = r1kit_model::device::parse_device(&a.device)?;
            let Some(mut config) = ModelConfig::preset(&a.shape) else { bail!("--shape {}: not a known shape", a.shape) };
            if let Some(vocab) = a.vocab {
                config.vocab_size = vocab;
            }
            let compute = r1kit_model::device::parse_compute_dtype(&a.compute)?;
            let run = r1kit_train::bench::TrainBenchRun {
                compute,
                checkpointing: a.checkpointing,
                batch: a.batch,
                seq: a.seq,
                micro_batch: a.micro_batch.unwrap_or(a.batch),
                warmup: a.warmup,
                steps: a.steps,
            };
            // under `r1kit launch`: data parallel, every rank its own batch; rank 0 reports
            let mut group = r1kit_dist::Group::from_env()?;
            let r = r1kit_train::bench::bench_train(config, &device, &run, group.as_mut())?;
            if let Some(g) = group.as_ref().filter(|g| !g.world().is_main()) {
                // the other ranks' share of the step, to see which rank the others wait for
                eprintln!(
                    "bench train: rank {}: step {:.3} s, forward + backward {:.3} s of which all-reduce {:.3} s",
                    g.rank(), r.mean_step_seconds(), r.gradient_seconds, r.all_reduce_seconds
                );
                return Ok(());
            }
            println!(
                "bench train {} on {device:?} x {} rank(s) ({} products): {} parameters, {} x {} tokens per rank in {} micro-batches; step {:.3} s (steps {:?}; forward + backward {:.3} s of which all-reduce {:.3} s, clip + AdamW the rest); {:.0} tokens/s; MFU {:.1}% of {:.0} TFLOP/s per device; loss {:.3}",
                a.shape, r.ranks, a.compute, r.parameters, r.batch, r.seq, r.micro_batches,
                r.mean_step_seconds(),
                r.step_seconds.iter().map(|s| (s * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
                r.gradient_seconds, r.all_reduce_seconds,
                r.tokens_per_s, 100.0 * r.mfu, r1kit_train::bench::PEAK_FLOPS / 1e12, r.loss
            );
            if let Some(out) = &a.out {
                std::fs::write(out, serde_json::to_string_pretty(&r)?).map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
            }
            Ok(())
        }
        BenchCommand::GrpoStep(a) => {
            let device = r1kit_model::device::parse_device(&a.device)?;
            let (model, tokenizer) = match (&a.model, &a.shape) {
                (Some(path), _) => r1kit_model::load_pretrained(path, a.tokenizer.as_deref(), &device)?,
                _ => {
                    let model = load_or_init(&None, &a.shape, &device)?;
                    let tok = a.tokenizer.as_deref().expect("clap requires --tokenizer with --shape");
                    let dir = if tok.is_dir() { tok.to_path_buf() } else { tok.parent().unwrap_or(std::path::Path::new(".")).to_path_buf() };
                    let tokenizer = r1kit_model::tokenizer::Tokenizer::from_dir(&dir)?;
                    tokenizer.check_vocab_fits(model.config.vocab_size)?;
                    (model, tokenizer)
                }
            };
            let model = model.with_compute(r1kit_model::device::parse_compute_dtype(&a.compute)?).with_checkpointing(a.checkpointing);
            // under `r1kit launch`: the ranks share the prompts, as in `r1kit grpo`; rank 0 reports
            let mut ranks = r1kit_dist::Group::from_env()?;
            let report = r1kit_grpo::bench::bench_grpo_step(&model, &tokenizer, a.prompts, a.group, a.max_new_tokens, a.warmup, ranks.as_mut())?;
            if ranks.as_ref().is_none_or(|g| g.world().is_main()) {
                println!("compute {} on {}, checkpointing {:?}", a.compute, a.device, a.checkpointing);
                println!("{report}");
            }
            Ok(())
        }
    }
}

fn load_or_init(model: &Option<PathBuf>, shape: &Option<String>, device: &Device) -> Result<Model> {
    match (model, shape) {
        (Some(path), _) => Ok(r1kit_model::load_pretrained(path, None, device)?.0),
        (None, Some(name)) => match ModelConfig::preset(name) {
            Some(cfg) => Ok(Model::init_random(cfg, device, 0.02, 0)),
            None => bail!("unknown --shape '{name}' (one of {})", r1kit_model::config::PRESET_SHAPES.join(", ")),
        },
        (None, None) => bail!("give --model or --shape"),
    }
}

fn bench_forward(a: &ForwardArgs) -> Result<()> {
    let device = r1kit_model::device::parse_device(&a.device)?;
    let model = load_or_init(&a.model, &a.shape, &device)?;
    let (b, s) = (a.batch, a.tokens);
    let vocab = model.config.vocab_size as u32;
    let tokens: Vec<u32> = (0..b * s).map(|i| (i as u32 * 7919 + 13) % vocab).collect();
    let positions: Vec<i64> = (0..b * s).map(|i| (i % s) as i64).collect();
    let mask = AttentionMask::causal_segments(&vec![1; b * s], b);
    let run_once = || {
        let hidden = model.forward_hidden(&tokens, &positions, b, &mask, None);
        // Read one value back so the whole computation is done before the clock stops.
        let logits = model.logits(hidden);
        let _ = logits.slice([0..1, s - 1..s, 0..1]).into_data();
    };
    let t = Instant::now();
    run_once();
    let warmup = t.elapsed().as_secs_f64();
    let mut times: Vec<f64> = (0..a.iters.max(1))
        .map(|_| {
            let t = Instant::now();
            run_once();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(|x, y| x.total_cmp(y));
    let median = times[times.len() / 2];
    let params = model.config.num_parameters() as f64;
    let flops = 2.0 * params * (b * s) as f64;
    println!(
        "bench forward: {} ({:.1}M params), batch {b} x {s} tokens on {}: {:.0} prefill tokens/s, {:.3} s/forward (median of {}), {:.1} GFLOP/s (2*params*tokens), warm-up {:.2} s",
        a.model.as_ref().map(|p| p.display().to_string()).or(a.shape.clone()).unwrap_or_default(),
        params / 1e6,
        a.device,
        (b * s) as f64 / median,
        median,
        times.len(),
        flops / median / 1e9,
        warmup
    );
    Ok(())
}

fn bench_rollout(a: &RolloutArgs) -> Result<()> {
    use r1kit_sampler::{sample_in_mode, DecodeMode, SamplingParams};
    let device = r1kit_model::device::parse_device(&a.device)?;
    let mode = match a.mode.as_deref() {
        None => DecodeMode::for_device(&device),
        Some("graph") => DecodeMode::Graph,
        Some("eager") => DecodeMode::Eager,
        Some(other) => bail!("--mode {other}: graph or eager"),
    };
    let (model, tokenizer) = match (&a.model, &a.shape) {
        (Some(path), _) => {
            let (m, t) = r1kit_model::load_pretrained(path, None, &device)?;
            (m, Some(t))
        }
        _ => (load_or_init(&None, &a.shape, &device)?, None),
    };
    let model = model.with_compute(r1kit_model::device::parse_compute_dtype(&a.compute)?);
    let vocab = model.config.vocab_size as u32;
    // Prompts of the requested length from a fixed pattern of ids (no EOS, no stop: every
    // completion runs its full length, so the figure is per generated token).
    let prompts: Vec<Vec<u32>> =
        (0..a.prompts).map(|p| (0..a.prompt_tokens).map(|i| ((p * 7919 + i * 104729) as u32 + 11) % vocab).collect()).collect();
    let params = SamplingParams { temperature: a.temperature, max_new_tokens: a.max_new_tokens, seed: 1, ..Default::default() };
    for i in 0..a.warmup {
        let t = Instant::now();
        sample_in_mode(&model, tokenizer.as_ref(), &prompts, a.group, &params, mode)?;
        println!("bench rollout: warm-up {} took {:.2} s", i + 1, t.elapsed().as_secs_f64());
    }
    let _ = r1kit_sampler::timing::take();
    let t = Instant::now();
    let out = sample_in_mode(&model, tokenizer.as_ref(), &prompts, a.group, &params, mode)?;
    let elapsed = t.elapsed().as_secs_f64();
    println!("bench rollout: {}", r1kit_sampler::timing::take());
    let generated: usize = out.iter().map(|c| c.tokens.len()).sum();
    let steps = out.iter().map(|c| c.tokens.len()).max().unwrap_or(0);
    let tokens_per_s = generated as f64 / elapsed;
    println!(
        "bench rollout: {} on {} ({} products, {:?} decode): {} prompts x G={} ({} rows), {} prompt + {} new tokens, T={}: {:.1} generated tokens/s, {:.1} ms per decode step ({} steps, prefill included), {:.2} s total",
        a.model.as_ref().map(|p| p.display().to_string()).or(a.shape.clone()).unwrap_or_default(),
        a.device,
        a.compute,
        mode,
        a.prompts,
        a.group,
        a.prompts * a.group,
        a.prompt_tokens,
        a.max_new_tokens,
        a.temperature,
        tokens_per_s,
        elapsed / steps.max(1) as f64 * 1e3,
        steps,
        elapsed
    );
    if let Some(out) = &a.out {
        let json = serde_json::json!({"rows": a.prompts * a.group, "generated": generated, "seconds": elapsed, "tokens_per_s": tokens_per_s});
        std::fs::write(out, json.to_string()).map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
    }
    Ok(())
}

fn bench_code(a: &CodeArgs) -> Result<()> {
    use r1kit_datasets::{Gold, Record};
    let records = r1kit_datasets::load_records("humaneval")?;
    let tasks: Vec<(String, String, String)> = records
        .into_iter()
        .filter_map(|r| match r {
            Record::Rl(p) => match (p.gold, p.solution) {
                (Gold::Code { tests, entry_point, .. }, Some(solution)) => Some((format!("{}{}", p.prompt, solution), tests, entry_point)),
                _ => None,
            },
            _ => None,
        })
        .take(a.tasks)
        .collect();
    if tasks.is_empty() {
        bail!("no HumanEval tasks with canonical solutions found (run scripts/fetch-assets.sh)");
    }
    let b = r1kit_rewards::code::bench_code(&tasks, a.threads, a.rounds, a.samples)?;
    println!(
        "bench code: {} HumanEval executions on {} threads: {:.1} executions/s, {} all-passed; per run sandboxed {:.1} ms vs bare python3 {:.1} ms (overhead {:.1} ms, {:.2}x)",
        b.executions,
        b.threads,
        b.executions_per_sec,
        b.all_passed,
        b.sandboxed_run.as_secs_f64() * 1e3,
        b.bare_run.as_secs_f64() * 1e3,
        (b.sandboxed_run.as_secs_f64() - b.bare_run.as_secs_f64()) * 1e3,
        b.sandboxed_run.as_secs_f64() / b.bare_run.as_secs_f64()
    );
    Ok(())
}
