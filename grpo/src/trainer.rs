//! The GRPO loop: prompts -> G completions each (sampler) -> rewards -> advantages -> the policy
//! update (update.rs) -> metrics, samples, held-out evaluation and checkpoints. Each step is a
//! function of (weights, optimizer state, data position, seed, step), all of which a checkpoint
//! holds, so a resumed run continues the same trajectory.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use r1kit_model::pretrained::stop_token_ids;
use r1kit_model::tokenizer::Tokenizer;
use r1kit_model::Model;
use r1kit_rewards::{RewardRegistry, WeightedRewards};
use r1kit_sampler::{sample_share, Completion, FinishReason, SamplingParams};
use r1kit_train::checkpoint::{latest_checkpoint, load_checkpoint, prune_checkpoints, save_checkpoint, save_final_model, TrainerState};
use r1kit_train::data::{eval_items, EvalItem};
use r1kit_train::eval::{evaluate, write_results, EvalOptions, EvalReport, CORRECT_AT};
use r1kit_train::metrics::{non_finite, MetricsLog};
use r1kit_train::optim::{AdamW, AdamWConfig};
use r1kit_train::params::Freeze;
use r1kit_train::rng::TrainRng;
use r1kit_train::schedule::Schedule;
use serde_json::{json, Map, Value};

use crate::advantages::{advantages, zero_variance_groups};
use crate::config::{reward_name, GrpoConfig, KlPlacement};
use crate::kl::kl_estimate_scalar;
use crate::loss::ClipConfig;
use crate::update::{batch_logprobs_of, policy_update, policy_update_across, StepSequences, UpdateConfig};

/// Fisher-Yates with train's seeded generator (data order and the shuffled-reward control).
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut rng = TrainRng::new(seed);
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// Every rank's rows of `columns` values (rank order) and the sums of their `counts`, in one
/// all-gather: each rank sends its row count, its counts, then its rows.
fn gather_rows(group: &mut r1kit_dist::Group, columns: usize, rows: Vec<f64>, counts: [f64; 3]) -> Result<(Vec<f64>, [f64; 3])> {
    let mut message = vec![(rows.len() / columns) as f64];
    message.extend(counts);
    message.extend(rows);
    let gathered = group.all_gather_f64(&message).context("gathering the step's metrics")?;
    let (mut rows, mut sums, mut at) = (Vec::new(), [0.0; 3], 0);
    while at < gathered.len() {
        let n = gathered[at] as usize;
        for (sum, value) in sums.iter_mut().zip(&gathered[at + 1..at + 4]) {
            *sum += value;
        }
        rows.extend_from_slice(&gathered[at + 4..at + 4 + n * columns]);
        at += 4 + n * columns;
    }
    Ok((rows, sums))
}

/// The order of the training prompts in `epoch` (a function of seed and epoch only).
fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, seed ^ epoch.wrapping_mul(0xA24B_AED4_963E_E407));
    order
}

/// Summary of a finished run, for recipes and reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GrpoSummary {
    pub steps: u64,
    pub final_dir: PathBuf,
    pub initial_eval: Option<EvalReport>,
    pub final_eval: Option<EvalReport>,
    pub final_mean_reward: Option<f64>,
}

struct Run<'a> {
    config: &'a GrpoConfig,
    tokenizer: Tokenizer,
    rewards: WeightedRewards,
    accuracy_index: usize,
    format_index: Option<usize>,
    train: Vec<EvalItem>,
    heldout: Vec<EvalItem>,
    stop_ids: Vec<u32>,
    reference: Option<Model>,
    out: PathBuf,
    tokenizer_dir: Option<PathBuf>,
}

pub fn run_grpo(config: &GrpoConfig) -> Result<GrpoSummary> {
    // Several processes (r1kit launch, torchrun): each samples and scores its share of the step's
    // prompts (a group never spans ranks), the update sums over the ranks, rank 0 alone evaluates
    // and writes.
    let group = r1kit_dist::Group::from_env()?;
    if let Some(g) = &group {
        if config.rollout.prompts_per_step < g.size() {
            bail!("rollout.prompts_per_step = {} is fewer than the {} ranks: every rank needs a group", config.rollout.prompts_per_step, g.size());
        }
    }
    let main = group.as_ref().is_none_or(|g| g.world().is_main());
    let device = config.model.device("model")?;
    let out = config.run.out.clone();
    std::fs::create_dir_all(&out).with_context(|| format!("{}: cannot create the run directory", out.display()))?;
    if main {
        std::fs::write(out.join("config.json"), serde_json::to_string_pretty(config)?).context("writing the resolved config")?;
    }

    let (initial, tokenizer) = config.model.load_on(&device, "model")?;
    let initial = initial.with_checkpointing(config.optimizer.gradient_checkpointing);
    let registry = RewardRegistry::with_builtins();
    let weights = if config.rewards.weights.is_empty() { vec![1.0; config.rewards.rewards.len()] } else { config.rewards.weights.clone() };
    let rewards = registry.build_weighted(&config.rewards.rewards, &weights).context("rewards")?;
    let names: Vec<&str> = config.rewards.rewards.iter().map(|s| reward_name(s)).collect();
    let accuracy_index = config.rewards.accuracy.as_deref().map(|a| names.iter().position(|n| *n == a).expect("validated")).unwrap_or(0);
    let format_index = names.iter().position(|n| *n == config.rewards.format.as_deref().unwrap_or("format"));

    let load_items = |spec: &str, what: &str| -> Result<Vec<EvalItem>> {
        let records = r1kit_datasets::load_records(spec).with_context(|| format!("data.{what} '{spec}'"))?;
        eval_items(&tokenizer, &config.data.template, &records)
    };
    let train = load_items(&config.data.train, "train")?;
    if train.is_empty() {
        bail!("data.train '{}' holds no prompts", config.data.train);
    }
    let mut heldout = match &config.data.heldout {
        Some(spec) => load_items(spec, "heldout")?,
        None => vec![],
    };
    heldout.truncate(config.run.eval_limit);
    let stop_ids = stop_token_ids(&initial, &tokenizer);
    let tokenizer_dir = config.model.tokenizer_dir();
    let run = Run {
        config,
        reference: (config.algorithm.beta > 0.0).then(|| initial.frozen()),
        tokenizer,
        rewards,
        accuracy_index,
        format_index,
        train,
        heldout,
        stop_ids,
        out: out.clone(),
        tokenizer_dir,
    };
    run.train_loop(initial, &device, group)
}

impl Run<'_> {
    fn checkpoints(&self) -> PathBuf {
        self.out.join("checkpoints")
    }

    fn eval(&self, model: &Model, tag: &str) -> Result<Option<EvalReport>> {
        if self.heldout.is_empty() {
            return Ok(None);
        }
        let r = &self.config.run;
        let params = SamplingParams {
            temperature: r.eval_temperature,
            max_new_tokens: self.config.rollout.max_new_tokens,
            stop_token_ids: self.stop_ids.clone(),
            stop_strings: self.config.rollout.stop_strings.clone(),
            seed: r.seed ^ 0xE7A1,
            ..Default::default()
        };
        let options = EvalOptions {
            samples: r.eval_samples.max(1),
            params,
            prompts_per_batch: 32,
            accuracy_reward: self.accuracy_index,
            format_reward: self.format_index,
        };
        let (report, results) = evaluate(model, &self.tokenizer, &self.heldout, &self.rewards, &options)?;
        write_results(&self.out.join(format!("eval-{tag}.jsonl")), &results)?;
        Ok(Some(report))
    }

    fn train_loop(&self, initial: Model, device: &r1kit_model::burn::prelude::Device, mut group: Option<r1kit_dist::Group>) -> Result<GrpoSummary> {
        let main = group.as_ref().is_none_or(|g| g.world().is_main());
        let c = self.config;
        let adam = AdamWConfig { lr: c.optimizer.lr, beta1: c.optimizer.beta1, beta2: c.optimizer.beta2, eps: c.optimizer.eps, weight_decay: c.optimizer.weight_decay };
        let schedule = Schedule { kind: c.optimizer.schedule, warmup_steps: c.optimizer.warmup_steps, total_steps: c.run.steps };
        let update = UpdateConfig {
            clip: ClipConfig { eps_low: c.algorithm.eps_low, eps_high: c.algorithm.eps_high, dual_clip: c.algorithm.dual_clip },
            aggregation: c.algorithm.aggregation,
            beta: if c.algorithm.kl_in == KlPlacement::Loss { c.algorithm.beta } else { 0.0 },
            kl_estimator: c.algorithm.kl_estimator,
            mu: c.algorithm.mu,
            micro_batch_tokens: c.optimizer.micro_batch_tokens,
            max_completion_length: c.rollout.max_new_tokens,
            max_grad_norm: (c.optimizer.max_grad_norm > 0.0).then_some(c.optimizer.max_grad_norm),
            freeze: Freeze::default(),
        };

        // Resume from the last checkpoint when there is one.
        let (mut model, mut optimizer, mut state) = match latest_checkpoint(&self.checkpoints())? {
            Some(dir) => {
                let (m, o, s) = load_checkpoint(&dir, device)?;
                let m = m.with_compute(initial.compute).with_checkpointing(initial.checkpointing);
                eprintln!("grpo: resuming from {} (step {})", dir.display(), s.step);
                (m, o, s)
            }
            None => (
                initial,
                AdamW::new(adam),
                TrainerState {
                    step: 0,
                    epoch: 0,
                    position: 0,
                    data_seed: c.run.seed,
                    rng_state: c.run.seed,
                    optimizer: adam,
                    optimizer_step: 0,
                    best: None,
                    metrics: Value::Null,
                },
            ),
        };
        let resumed = state.step > 0;
        let mut metrics = if main { Some(MetricsLog::open(&self.out.join("metrics.jsonl"), resumed.then_some(state.step))?) } else { None };
        let initial_eval = if resumed || !main { None } else { self.eval(&model, "step-0")? };
        if let Some(e) = &initial_eval {
            eprintln!("grpo: held-out before training: accuracy {:.3}, format {:?}", e.accuracy, e.format_rate);
            let mut m = Map::new();
            m.insert("step".into(), json!(0));
            m.insert("heldout_accuracy".into(), json!(e.accuracy));
            m.insert("heldout_format_rate".into(), json!(e.format_rate));
            m.insert("heldout_pass_at_k".into(), json!(e.pass_at_k));
            if let Some(log) = &mut metrics {
                log.write(&m)?;
            }
        }
        let mut last_mean_reward = None;
        let mut final_eval = None;
        while state.step < c.run.steps {
            let step = state.step;
            let t_step = Instant::now();
            let mut record = Map::new();
            record.insert("step".into(), json!(step + 1));

            // Rollouts, with dynamic sampling when asked.
            let mut kept: Vec<(usize, Vec<Completion>, Vec<r1kit_rewards::CompositeOutput>)> = Vec::new();
            let (mut t_generate, mut t_score) = (0.0, 0.0);
            let (mut zero_var_groups, mut groups_seen) = (0usize, 0usize);
            let rounds = if c.algorithm.dynamic_sampling { 1 + c.algorithm.max_resample_rounds } else { 1 };
            for round in 0..rounds {
                // the groups kept so far over every rank: all ranks agree on the next round
                let kept_so_far = match &mut group {
                    Some(g) => {
                        let mut n = [kept.len() as f64];
                        g.all_reduce_sum_f64(&mut n).context("counting the groups kept over the ranks")?;
                        n[0] as usize
                    }
                    None => kept.len(),
                };
                let need = c.rollout.prompts_per_step - kept_so_far;
                if need == 0 {
                    break;
                }
                let indices = self.next_prompts(&mut state, need);
                // this rank's groups, each drawn with the random streams of its place in the whole
                // round, so the completions do not depend on the number of ranks
                let places: Vec<usize> = (0..indices.len()).collect();
                let (indices, places) = match &group {
                    Some(g) => (g.world().shard(&indices), g.world().shard(&places)),
                    None => (indices, places),
                };
                let params = self.sampling_params(step, round);
                if indices.is_empty() {
                    continue; // a resampling round with fewer prompts than ranks
                }
                let prompts: Vec<Vec<u32>> = indices.iter().map(|&i| self.train[i].prompt_tokens.clone()).collect();
                let (completions, scores, generate_s, score_s) = self.sample_and_score(&model, &prompts, &indices, &places, &params)?;
                t_generate += generate_s;
                t_score += score_s;
                let g = c.rollout.group;
                let acc: Vec<f64> = scores.iter().map(|s| s.values[self.accuracy_index].1).collect();
                let flat = zero_variance_groups(&acc, g);
                for (p, &index) in indices.iter().enumerate() {
                    groups_seen += 1;
                    zero_var_groups += flat[p] as usize;
                    if c.algorithm.dynamic_sampling && flat[p] && round + 1 < rounds {
                        continue;
                    }
                    kept.push((index, completions[p * g..(p + 1) * g].to_vec(), scores[p * g..(p + 1) * g].to_vec()));
                }
            }
            let g = c.rollout.group;
            let all: Vec<&Completion> = kept.iter().flat_map(|(_, cs, _)| cs.iter()).collect();
            let scores: Vec<&r1kit_rewards::CompositeOutput> = kept.iter().flat_map(|(_, _, s)| s.iter()).collect();
            let mut totals: Vec<f64> = scores.iter().map(|s| s.total).collect();
            if c.algorithm.shuffle_rewards {
                shuffle(&mut totals, c.run.seed ^ (step + 1).wrapping_mul(0x5851_F42D_4C95_7F2D));
            }

            // Sequences: prompt + completion; truncated completions masked when asked.
            let prompt_tokens: Vec<&[u32]> = kept.iter().flat_map(|(i, cs, _)| cs.iter().map(move |_| self.train[*i].prompt_tokens.as_slice())).collect();
            let completion_tokens: Vec<&[u32]> = all.iter().map(|x| x.tokens.as_slice()).collect();

            // KL folded into the reward: beta * sum of per-token estimates, before advantages.
            let mut t_reference = 0.0;
            if c.algorithm.beta > 0.0 && c.algorithm.kl_in == KlPlacement::Reward {
                let t = Instant::now();
                let reference = self.reference.as_ref().expect("reference loaded when beta > 0");
                let pol = batch_logprobs_of(&model, &prompt_tokens, &completion_tokens, c.optimizer.micro_batch_tokens);
                let refl = batch_logprobs_of(reference, &prompt_tokens, &completion_tokens, c.optimizer.micro_batch_tokens);
                for (i, (p, r)) in pol.iter().zip(&refl).enumerate() {
                    let kl: f64 = p.iter().zip(r).map(|(&a, &b)| kl_estimate_scalar(a as f64, b as f64, c.algorithm.kl_estimator)).sum();
                    totals[i] -= c.algorithm.beta * kl;
                }
                t_reference = t.elapsed().as_secs_f64();
            }
            let adv = advantages(&totals, g, c.algorithm.advantage);
            let mut sequences = StepSequences::new(&prompt_tokens, &completion_tokens, adv.clone());
            sequences.sampler_logprobs = Some(all.iter().map(|x| x.logprobs.clone()).collect());
            if c.algorithm.mask_truncated {
                for (e, x) in sequences.examples.iter_mut().zip(&all) {
                    if x.finish_reason == FinishReason::Length {
                        e.trained.iter_mut().for_each(|t| *t = false);
                    }
                }
            }

            let lr = schedule.lr(c.optimizer.lr, step);
            let t = Instant::now();
            let (next, stats) = match &mut group {
                Some(g) => policy_update_across(model.clone(), &mut optimizer, &sequences, self.reference.as_ref(), &update, lr, g)?,
                None => policy_update(model.clone(), &mut optimizer, &sequences, self.reference.as_ref(), &update, lr),
            };
            let t_train = t.elapsed().as_secs_f64();

            // Metrics of the step, over every rank's completions: one row per completion, gathered
            // in one message.
            let names = self.rewards.names();
            let columns = names.len() + 6;
            let mut rows = Vec::with_capacity(all.len() * columns);
            for ((s, x), a) in scores.iter().zip(&all).zip(&adv) {
                rows.extend(s.values.iter().map(|v| v.1));
                let format_ok = self.format_index.map_or(0.0, |f| (s.values[f].1 >= CORRECT_AT) as u8 as f64);
                let correct = (s.values[self.accuracy_index].1 >= CORRECT_AT) as u8 as f64;
                rows.extend([s.total, correct, format_ok, *a, x.tokens.len() as f64, (x.finish_reason == FinishReason::Length) as u8 as f64]);
            }
            let counts = [zero_var_groups as f64, groups_seen as f64, kept.len() as f64];
            let (rows, [zero_var_groups, groups_seen, groups]) = match &mut group {
                Some(g) => gather_rows(g, columns, rows, counts)?,
                None => (rows, counts),
            };
            let column = |j: usize| -> Vec<f64> { rows.iter().skip(j).step_by(columns).copied().collect() };
            for (k, name) in names.iter().enumerate() {
                let v = column(k);
                record.insert(format!("reward/{name}/mean"), json!(mean(&v)));
                record.insert(format!("reward/{name}/std"), json!(std(&v)));
            }
            let k = names.len();
            let reward_mean = mean(&column(k));
            last_mean_reward = Some(reward_mean);
            record.insert("reward/total/mean".into(), json!(reward_mean));
            record.insert("accuracy".into(), json!(mean(&column(k + 1))));
            if self.format_index.is_some() {
                record.insert("format_rate".into(), json!(mean(&column(k + 2))));
            }
            let adv = column(k + 3);
            record.insert("advantage/mean".into(), json!(mean(&adv)));
            record.insert("advantage/std".into(), json!(std(&adv)));
            record.insert("advantage/min".into(), json!(adv.iter().cloned().fold(f64::INFINITY, f64::min)));
            record.insert("advantage/max".into(), json!(adv.iter().cloned().fold(f64::NEG_INFINITY, f64::max)));
            let zero_var = zero_var_groups / groups_seen.max(1.0);
            record.insert("zero_variance_groups".into(), json!(zero_var));
            let lengths = column(k + 4);
            record.insert("completion_length/mean".into(), json!(mean(&lengths)));
            record.insert("completion_length/min".into(), json!(lengths.iter().cloned().fold(f64::INFINITY, f64::min)));
            record.insert("completion_length/max".into(), json!(lengths.iter().cloned().fold(0.0, f64::max)));
            let truncation = mean(&column(k + 5));
            record.insert("truncation_rate".into(), json!(truncation));
            record.insert("loss".into(), json!(stats.loss));
            record.insert("kl".into(), json!(stats.kl));
            record.insert("entropy".into(), json!(stats.entropy));
            record.insert("clip_fraction/low".into(), json!(stats.clip_low));
            record.insert("clip_fraction/high".into(), json!(stats.clip_high));
            record.insert("grad_norm".into(), json!(stats.grad_norm));
            record.insert("sampler_trainer_logprob_gap".into(), json!(stats.sampler_logprob_gap));
            record.insert("lr".into(), json!(lr));
            record.insert("groups".into(), json!(groups as usize));
            record.insert("time/generate_s".into(), json!(t_generate));
            record.insert("time/score_s".into(), json!(t_score));
            record.insert("time/reference_s".into(), json!(t_reference));
            record.insert("time/train_s".into(), json!(t_train));

            let bad = non_finite(&[("loss", stats.loss), ("grad_norm", stats.grad_norm), ("reward", reward_mean)]);
            if !bad.is_empty() {
                bail!(
                    "step {}: non-finite {} — stopping; the last good checkpoint is kept in {}",
                    step + 1,
                    bad.join(", "),
                    self.checkpoints().display()
                );
            }
            model = next;
            state.step += 1;
            state.optimizer_step = optimizer.step;

            // Alarms the user sees.
            if main && truncation > 0.2 {
                eprintln!("grpo: warning: step {}: {:.0}% of completions hit max_new_tokens ({})", step + 1, truncation * 100.0, c.rollout.max_new_tokens);
            }
            if main && zero_var > 0.5 {
                eprintln!("grpo: warning: step {}: {:.0}% of groups have equal rewards (no learning signal)", step + 1, zero_var * 100.0);
            }

            if main && c.run.samples_every > 0 && state.step % c.run.samples_every == 0 {
                self.write_samples(state.step, &kept)?;
            }
            let last = state.step == c.run.steps;
            if main && ((c.run.eval_every > 0 && state.step % c.run.eval_every == 0) || last) {
                if let Some(e) = self.eval(&model, &format!("step-{}", state.step))? {
                    record.insert("heldout_accuracy".into(), json!(e.accuracy));
                    record.insert("heldout_format_rate".into(), json!(e.format_rate));
                    record.insert("heldout_pass_at_k".into(), json!(e.pass_at_k));
                    if state.best.is_none_or(|(_, b)| e.accuracy > b) {
                        state.best = Some((state.step, e.accuracy));
                    }
                    if last {
                        final_eval = Some(e);
                    }
                }
            }
            record.insert("time/step_s".into(), json!(t_step.elapsed().as_secs_f64()));
            state.metrics = Value::Object(record.clone());
            let Some(log) = &mut metrics else { continue }; // the other ranks write nothing
            eprintln!(
                "grpo step {}/{}: reward {:.3} acc {:.3} len {:.1} loss {:.4} |g| {:.3} gen {:.1}s train {:.1}s{}",
                state.step,
                c.run.steps,
                reward_mean,
                record["accuracy"].as_f64().unwrap_or(0.0),
                mean(&lengths),
                stats.loss,
                stats.grad_norm,
                t_generate,
                t_train,
                record.get("heldout_accuracy").and_then(Value::as_f64).map(|a| format!(" heldout {a:.3}")).unwrap_or_default()
            );
            log.write(&record)?;
            if (c.run.save_every > 0 && state.step % c.run.save_every == 0) || last {
                save_checkpoint(&self.checkpoints(), &model, &optimizer, &state, self.tokenizer_dir.as_deref())?;
                prune_checkpoints(&self.checkpoints(), c.run.keep_last, state.best.map(|(s, _)| s))?;
            }
        }
        let final_dir = self.out.join("final");
        if main {
            save_final_model(&model, &final_dir, self.tokenizer_dir.as_deref(), &self.tokenizer)?;
        }
        Ok(GrpoSummary { steps: state.step, final_dir, initial_eval, final_eval, final_mean_reward: last_mean_reward })
    }

    fn sampling_params(&self, step: u64, round: usize) -> SamplingParams {
        let r = &self.config.rollout;
        SamplingParams {
            temperature: r.temperature,
            top_p: r.top_p,
            top_k: r.top_k,
            min_p: r.min_p,
            repetition_penalty: 1.0,
            max_new_tokens: r.max_new_tokens,
            stop_token_ids: self.stop_ids.clone(),
            stop_strings: r.stop_strings.clone(),
            seed: self.config.run.seed ^ (step.wrapping_mul(0x9E37_79B9) + round as u64).wrapping_mul(0xD1B5_4A32_D192_ED03),
        }
    }

    /// The group rollouts of `prompts` (training items `indices`) and their scores. Completions are
    /// scored on another thread as they become final, while the rest are generated, in batches of
    /// whatever has arrived; `score_s` is the scoring left after generation ended.
    fn sample_and_score(
        &self,
        model: &Model,
        prompts: &[Vec<u32>],
        indices: &[usize],
        places: &[usize],
        params: &SamplingParams,
    ) -> Result<(Vec<Completion>, Vec<r1kit_rewards::CompositeOutput>, f64, f64)> {
        let group = self.config.rollout.group;
        let (train, rewards) = (&self.train, &self.rewards);
        std::thread::scope(|scope| {
            let (final_tx, final_rx) = std::sync::mpsc::channel::<(usize, String)>();
            let scorer = scope.spawn(move || -> Result<Vec<Option<r1kit_rewards::CompositeOutput>>> {
                let mut scores: Vec<Option<r1kit_rewards::CompositeOutput>> = (0..prompts.len() * group).map(|_| None).collect();
                while let Ok(first) = final_rx.recv() {
                    let batch: Vec<(usize, String)> = std::iter::once(first).chain(final_rx.try_iter()).collect();
                    let pairs: Vec<(&str, &r1kit_rewards::Record)> = batch.iter().map(|(c, text)| (text.as_str(), &train[indices[c / group]].reward_record)).collect();
                    for ((c, _), score) in batch.iter().zip(rewards.score_batch(&pairs).context("scoring rollouts")?) {
                        scores[*c] = Some(score);
                    }
                }
                Ok(scores)
            });
            let t = Instant::now();
            let sampled = sample_share(model, &self.tokenizer, prompts, places, group, params, &mut |c, completion| {
                let _ = final_tx.send((c, completion.text.clone())); // a scorer that stopped on an error reports it below
            });
            let generate_s = t.elapsed().as_secs_f64();
            drop(final_tx);
            let t = Instant::now();
            let scores = scorer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            let completions = sampled.context("sampling rollouts")?;
            let scores = scores?.into_iter().map(|s| s.expect("every completion handed over once")).collect();
            Ok((completions, scores, generate_s, t.elapsed().as_secs_f64()))
        })
    }

    /// The next `n` training prompts in the seeded epoch order, advancing the data position.
    fn next_prompts(&self, state: &mut TrainerState, n: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let order = epoch_order(self.train.len(), state.data_seed, state.epoch);
            while out.len() < n && state.position < order.len() {
                out.push(order[state.position]);
                state.position += 1;
            }
            if state.position >= order.len() {
                state.epoch += 1;
                state.position = 0;
            }
        }
        out
    }

    fn write_samples(&self, step: u64, kept: &[(usize, Vec<Completion>, Vec<r1kit_rewards::CompositeOutput>)]) -> Result<()> {
        use std::io::Write;
        let path = self.out.join("samples.jsonl");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).with_context(|| format!("{}", path.display()))?;
        for (index, completions, scores) in kept.iter().take(2) {
            let item = &self.train[*index];
            let line = json!({
                "step": step,
                "id": item.id,
                "prompt": item.prompt_text,
                "gold": item.reward_record.gold,
                "completions": completions.iter().zip(scores).map(|(c, s)| json!({
                    "text": c.text, "rewards": s.as_map(), "reward": s.total, "finish_reason": c.finish_reason,
                })).collect::<Vec<_>>(),
            });
            writeln!(f, "{line}").with_context(|| format!("{}", path.display()))?;
        }
        Ok(())
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 }
}

fn std(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}
