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
    }
}

fn load_or_init(model: &Option<PathBuf>, shape: &Option<String>, device: &Device) -> Result<Model> {
    match (model, shape) {
        (Some(dir), _) => Ok(r1kit_model::load_model_dir(dir, device)?),
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
