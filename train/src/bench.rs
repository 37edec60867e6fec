//! `r1kit bench train`: forward + backward + AdamW of a model of a real shape with random weights
//! on random tokens, timed per optimizer step. MFU as issue "GPU I" defines it, against the bf16
//! rate measured on the H200: (6 x parameters + 12 x layers x hidden x sequence) x tokens / time.
//! Under `r1kit launch` every rank trains its own `batch` and the gradients are summed over the
//! ranks as in SFT, so the figure of N ranks against one is the data-parallel scaling.

use std::time::Instant;

use anyhow::Result;
use r1kit_dist::Group;
use r1kit_model::burn::prelude::*;
use r1kit_model::burn::tensor::FloatDType;
use r1kit_model::{Checkpointing, Model, ModelConfig};
use serde::Serialize;

use crate::accumulate::step_gradients;
use crate::clip::clip_global_norm;
use crate::data_parallel::all_reduce_gradients;
use crate::optim::{AdamW, AdamWConfig};
use crate::packing::{micro_batches, TokenizedExample};
use crate::params::Freeze;
use crate::rng::TrainRng;

/// The H200's measured dense bf16 rate, the MFU denominator.
pub const PEAK_FLOPS: f64 = 790e12;

#[derive(Debug, Clone, Serialize)]
pub struct TrainBenchReport {
    pub parameters: usize,
    /// Processes training together (each on its own `batch`).
    pub ranks: usize,
    pub batch: usize,
    pub seq: usize,
    pub micro_batches: usize,
    /// Seconds of each timed optimizer step (after the warm-up steps).
    pub step_seconds: Vec<f64>,
    /// Of those, the forward + backward passes of all micro-batches (mean over the timed steps);
    /// the rest is clipping and the AdamW update.
    pub gradient_seconds: f64,
    /// Of those, summing the gradients over the ranks (0 for one process).
    pub all_reduce_seconds: f64,
    /// Every rank's tokens.
    pub tokens_per_s: f64,
    /// Per device.
    pub mfu: f64,
    pub loss: f64,
}

impl TrainBenchReport {
    /// Seconds of the mean timed step.
    pub fn mean_step_seconds(&self) -> f64 {
        mean(&self.step_seconds)
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// Model FLOPs per trained token (forward + backward), the issue's formula.
pub fn flops_per_token(config: &ModelConfig, parameters: usize, seq: usize) -> f64 {
    6.0 * parameters as f64 + 12.0 * (config.num_layers * config.hidden_size * seq) as f64
}

/// What one `r1kit bench train` run does.
#[derive(Debug, Clone)]
pub struct TrainBenchRun {
    pub compute: FloatDType,
    pub checkpointing: Checkpointing,
    /// Sequences per optimizer step (of each rank).
    pub batch: usize,
    pub seq: usize,
    /// Sequences per micro-batch.
    pub micro_batch: usize,
    pub warmup: usize,
    pub steps: usize,
}

/// `steps` timed optimizer steps after `warmup` untimed ones; each step is `batch` sequences of
/// `seq` random tokens (every position trained), in micro-batches of `micro_batch` sequences.
/// With a `group`, every rank draws its own tokens and the gradients are summed over the ranks.
pub fn bench_train(config: ModelConfig, device: &Device, run: &TrainBenchRun, mut group: Option<&mut Group>) -> Result<TrainBenchReport> {
    let TrainBenchRun { compute, checkpointing, batch, seq, micro_batch, warmup, steps } = run.clone();
    let mut model = Model::init_random(config.clone(), device, 0.02, 0).with_compute(compute).with_checkpointing(checkpointing);
    let parameters: usize = model.parameters().iter().map(|(_, t)| t.dims().iter().product::<usize>()).sum();
    let vocab = config.vocab_size as u64;
    let (rank, ranks) = group.as_ref().map_or((0, 1), |g| (g.rank(), g.size()));
    let mut rng = TrainRng::new(rank as u64);
    let examples: Vec<TokenizedExample> = (0..batch)
        .map(|_| {
            let tokens: Vec<u32> = (0..seq).map(|_| rng.below(vocab) as u32).collect();
            TokenizedExample::prompt_completion(&tokens[..1], &tokens[1..])
        })
        .collect();
    let rows: Vec<Vec<usize>> = (0..batch).map(|i| vec![i]).collect();
    let batches = micro_batches(&examples, rows, micro_batch.max(1) * seq, 1, 0);
    let mut optimizer = AdamW::new(AdamWConfig { lr: 1e-5, weight_decay: 0.01, ..Default::default() });
    let freeze = Freeze::default();
    let mut step_seconds = Vec::new();
    let mut gradient_seconds = 0.0;
    let mut all_reduce_seconds = 0.0;
    let mut loss = f64::NAN;
    // each phase is timed once the device has finished it (the loss is read back already, the
    // last kernels may still run)
    let wait = || device.sync().map_err(|e| anyhow::anyhow!("device sync: {e:?}"));
    for step in 0..warmup + steps {
        if let Some(g) = group.as_deref_mut().filter(|_| step == warmup) {
            // the ranks start the timed steps together (else the first one times a rank's wait
            // for another's slower warm-up)
            g.barrier()?;
        }
        let t = Instant::now();
        let mut grads = step_gradients(&model, &freeze, &batches);
        wait()?;
        if let Some(g) = group.as_deref_mut() {
            let reduce = Instant::now();
            all_reduce_gradients(g, &mut grads.grads, &model, &freeze)?;
            wait()?;
            if step >= warmup {
                all_reduce_seconds += reduce.elapsed().as_secs_f64() / steps as f64;
            }
        }
        if step >= warmup {
            gradient_seconds += t.elapsed().as_secs_f64() / steps as f64;
        }
        clip_global_norm(&mut grads.grads, 1.0);
        model = optimizer.step(model, &grads.grads, 1e-5);
        wait()?;
        loss = grads.loss;
        if step >= warmup {
            step_seconds.push(t.elapsed().as_secs_f64());
        }
    }
    let tokens = (ranks * batch * seq) as f64;
    let tokens_per_s = tokens / mean(&step_seconds);
    Ok(TrainBenchReport {
        parameters,
        ranks,
        batch,
        seq,
        micro_batches: batches.len(),
        mfu: flops_per_token(&config, parameters, seq) * tokens_per_s / (PEAK_FLOPS * ranks as f64),
        tokens_per_s,
        step_seconds,
        gradient_seconds,
        all_reduce_seconds,
        loss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_formula_reproduces_the_pytorch_reference_mfu() {
        // 78,500 tok/s on Qwen2.5-0.5B at 8 x 2048 was quoted as MFU 34.7%
        let config = ModelConfig::preset("qwen2.5-0.5b").unwrap();
        let mfu = flops_per_token(&config, 494_032_768, 2048) * 78_500.0 / PEAK_FLOPS;
        assert!((mfu - 0.347).abs() < 0.002, "{mfu}");
    }

    #[test]
    fn a_tiny_bench_runs_and_learns_nothing_strange() {
        let config = ModelConfig::preset("tiny").unwrap();
        let run = TrainBenchRun { compute: FloatDType::F32, checkpointing: Checkpointing::Off, batch: 4, seq: 32, micro_batch: 2, warmup: 1, steps: 2 };
        let r = bench_train(config, &Device::flex(), &run, None).unwrap();
        assert_eq!((r.micro_batches, r.step_seconds.len()), (2, 2));
        assert!(r.loss.is_finite() && r.loss > 5.0, "random tokens over 512 ids: loss near ln 512, got {}", r.loss);
        assert!(r.tokens_per_s > 0.0 && r.parameters > 500_000);
    }

    #[test]
    fn two_ranks_count_both_ranks_tokens_and_time_the_all_reduce() {
        let master = format!("127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
        let reports: Vec<TrainBenchReport> = (0..2)
            .map(|rank| {
                let world = r1kit_dist::World { rank, size: 2, local_rank: rank, master: master.clone() };
                std::thread::spawn(move || {
                    let mut group = Group::connect(&world, std::time::Duration::from_secs(30)).unwrap();
                    let run = TrainBenchRun { compute: FloatDType::F32, checkpointing: Checkpointing::Off, batch: 2, seq: 16, micro_batch: 2, warmup: 0, steps: 1 };
                    bench_train(ModelConfig::preset("tiny").unwrap(), &Device::flex(), &run, Some(&mut group)).unwrap()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        for r in &reports {
            assert_eq!(r.ranks, 2);
            assert!(r.all_reduce_seconds > 0.0 && r.all_reduce_seconds < r.gradient_seconds, "{r:?}");
            let step = r.step_seconds[0];
            assert!((r.tokens_per_s * step - 64.0).abs() < 1e-6 * r.tokens_per_s, "2 ranks x 2 x 16 tokens per step: {r:?}");
        }
        assert_ne!(reports[0].loss, reports[1].loss, "each rank draws its own tokens");
    }
}
