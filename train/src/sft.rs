//! The SFT loop: examples -> packed micro-batches -> accumulated gradient -> clip -> AdamW, with
//! the schedule, held-out loss and accuracy, metrics, checkpoints and resume.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use r1kit_datasets::{DatasetSpec, Record};
use r1kit_model::device::parse_compute_dtype;
use r1kit_model::tokenizer::Tokenizer;
use r1kit_model::{load_model_dir, save_model_dir, Model, SaveDtype};
use r1kit_rewards::RewardRegistry;
use r1kit_sampler::SamplingParams;
use serde_json::{json, Map, Value};

use crate::accumulate::step_gradients_over;
use crate::checkpoint::{latest_checkpoint, load_checkpoint, prune_checkpoints, save_checkpoint, TrainerState};
use crate::clip::{clip_global_norm, global_norm};
use crate::config::SftConfig;
use crate::data_parallel::all_reduce_gradients;
use crate::data::{eval_items, tokenize_record, EvalItem};
use crate::eval::{evaluate, write_results, EvalOptions, EvalReport};
use crate::loss::mean_nll;
use crate::metrics::{non_finite, progress_line, MetricsLog};
use crate::optim::AdamW;
use crate::packing::{assign_rows, micro_batches, PackedBatch, TokenizedExample};
use crate::params::Freeze;
use crate::rng::{epoch_order, TrainRng};
use crate::schedule::{warmup_from_ratio, Schedule};

/// Rows are padded to a multiple of this (fewer distinct shapes for backends that tune per shape).
const PAD_MULTIPLE: usize = 8;

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct SftOutcome {
    pub steps: u64,
    pub final_loss: f64,
    pub heldout_loss: Option<f64>,
    pub eval: Option<EvalReport>,
    pub final_dir: PathBuf,
}

fn load_records(spec: &str) -> Result<Vec<Record>> {
    let loaded = DatasetSpec::parse(spec)?.load().with_context(|| format!("loading dataset `{spec}`"))?;
    if loaded.records.is_empty() {
        bail!("dataset `{spec}` has no records");
    }
    Ok(loaded.records)
}

fn tokenize_all(tokenizer: &Tokenizer, config: &SftConfig, records: &[Record], spec: &str) -> Result<Vec<TokenizedExample>> {
    let mut out = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let example = tokenize_record(tokenizer, &config.data.template, record).with_context(|| format!("dataset `{spec}`, record {}", i + 1))?;
        let example = example.truncated(config.data.max_seq_len);
        if example.loss_tokens() > 0 {
            out.push(example);
        }
    }
    if out.is_empty() {
        bail!("dataset `{spec}`: no example keeps a completion token within data.max_seq_len = {}", config.data.max_seq_len);
    }
    Ok(out)
}

/// The micro-batches of one optimizer step's examples.
fn step_batches(config: &SftConfig, examples: Vec<TokenizedExample>, pad_id: u32) -> Vec<PackedBatch> {
    let lengths: Vec<usize> = examples.iter().map(TokenizedExample::len).collect();
    let rows = assign_rows(&lengths, config.data.max_seq_len, config.data.packing);
    micro_batches(&examples, rows, config.train.micro_batch_tokens, PAD_MULTIPLE, pad_id)
}

struct Evaluator {
    heldout: Vec<PackedBatch>,
    items: Vec<EvalItem>,
    rewards: r1kit_rewards::WeightedRewards,
    options: EvalOptions,
}

impl Evaluator {
    fn run(&self, model: &Model, tokenizer: &Tokenizer, seed: u64) -> Result<(Option<f64>, Option<(EvalReport, Vec<crate::eval::ExampleResult>)>)> {
        let loss = (!self.heldout.is_empty()).then(|| mean_nll(model, &self.heldout));
        let report = if self.items.is_empty() {
            None
        } else {
            let options = EvalOptions { params: SamplingParams { seed, ..self.options.params.clone() }, ..self.options.clone() };
            Some(evaluate(model, tokenizer, &self.items, &self.rewards, &options)?)
        };
        Ok((loss, report))
    }
}

/// Runs SFT as `config` says; `on_step` sees each step's metrics line (progress, tests).
pub fn train_sft(config: &SftConfig, on_step: &mut dyn FnMut(&Map<String, Value>)) -> Result<SftOutcome> {
    config.validate()?;
    // Several processes (r1kit launch, torchrun): each trains on its share of every step, the
    // gradients are summed, and rank 0 alone evaluates and writes.
    let mut group = r1kit_dist::Group::from_env()?;
    let main = group.as_ref().is_none_or(|g| g.world().is_main());
    let device = config.model.device("model")?;
    let compute = parse_compute_dtype(&config.model.compute).context("model.compute")?;
    let tokenizer = r1kit_model::load_tokenizer(&config.model.path, config.model.tokenizer.as_deref())
        .with_context(|| format!("tokenizer of {}", config.model.tokenizer.as_ref().unwrap_or(&config.model.path).display()))?;
    let tokenizer_dir = config.model.tokenizer_dir();
    let pad_id = tokenizer.pad_token_id().or(tokenizer.eos_token_id()).unwrap_or(0);
    let train = tokenize_all(&tokenizer, config, &load_records(&config.data.train)?, &config.data.train)?;

    let heldout = match &config.data.heldout {
        Some(spec) => {
            let examples = tokenize_all(&tokenizer, config, &load_records(spec)?, spec)?;
            step_batches(config, examples, pad_id)
        }
        None => vec![],
    };
    let registry = RewardRegistry::with_builtins();
    let rewards = registry.build_weighted(&config.eval.rewards, &[])?;
    let items = match &config.eval.dataset {
        Some(spec) => eval_items(&tokenizer, &config.data.template, &load_records(spec)?)?,
        None => vec![],
    };
    let names = rewards.names();
    let evaluator = Evaluator {
        heldout,
        items,
        options: EvalOptions {
            samples: config.eval.samples,
            params: SamplingParams { temperature: config.eval.temperature, top_p: config.eval.top_p, max_new_tokens: config.eval.max_new_tokens, ..Default::default() },
            prompts_per_batch: config.eval.prompts_per_batch,
            accuracy_reward: 0,
            format_reward: names.iter().position(|n| n.starts_with("format")),
        },
        rewards,
    };

    let per_epoch = train.len().div_ceil(config.train.examples_per_step) as u64;
    let total_steps = if config.train.max_steps > 0 { config.train.max_steps } else { config.train.epochs * per_epoch };
    let warmup = config.train.warmup_steps.unwrap_or_else(|| warmup_from_ratio(config.train.warmup_ratio, total_steps));
    let schedule = Schedule { kind: config.train.schedule, warmup_steps: warmup, total_steps };
    let freeze = Freeze::new(&config.train.freeze);

    let out_dir = &config.train.out_dir;
    let checkpoints = out_dir.join("checkpoints");
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    if main {
        std::fs::write(out_dir.join("config.toml"), toml::to_string_pretty(config)?).with_context(|| format!("writing {}/config.toml", out_dir.display()))?;
    }

    let resume_from = if config.train.resume { latest_checkpoint(&checkpoints)? } else { None };
    let (mut model, mut optimizer, mut state) = match &resume_from {
        Some(dir) => {
            let (model, optimizer, state) = load_checkpoint(dir, &device)?;
            tracing::info!("resuming from {} (step {})", dir.display(), state.step);
            (model, optimizer, state)
        }
        None => {
            let model = load_model_dir(&config.model.path, &device)?;
            let state = TrainerState {
                step: 0,
                epoch: 0,
                position: 0,
                data_seed: config.train.seed,
                rng_state: config.train.seed ^ 0x5EED,
                optimizer: config.optimizer,
                optimizer_step: 0,
                best: None,
                metrics: Value::Null,
            };
            (model, AdamW::new(config.optimizer), state)
        }
    };
    model = model.with_compute(compute).with_checkpointing(config.train.gradient_checkpointing);
    tokenizer.check_vocab_fits(model.config.vocab_size)?;
    freeze.check_against(model.parameters().iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().iter().copied()).map_err(anyhow::Error::msg)?;
    // The optimizer's hyper-parameters come from the config (a resumed run may change lr etc.).
    optimizer.config = config.optimizer;
    let mut rng = TrainRng::new(state.rng_state);
    let mut metrics = if main { Some(MetricsLog::open(&out_dir.join("metrics.jsonl"), resume_from.as_ref().map(|_| state.step))?) } else { None };
    let mut order = epoch_order(train.len(), state.data_seed, state.epoch, config.data.shuffle);
    let started = Instant::now();
    let mut tokens_seen = 0usize;
    let mut last_loss = f64::NAN;
    let mut last_eval: (Option<f64>, Option<EvalReport>) = (None, None);
    let final_results_path = out_dir.join(&config.eval.results_file);

    while state.step < total_steps {
        // this step's examples, continuing across epoch boundaries
        let mut chosen = Vec::with_capacity(config.train.examples_per_step);
        while chosen.len() < config.train.examples_per_step {
            if state.position >= order.len() {
                state.epoch += 1;
                state.position = 0;
                order = epoch_order(train.len(), state.data_seed, state.epoch, config.data.shuffle);
                if config.train.max_steps == 0 {
                    break; // an epoch-bounded run: the last step of an epoch may be smaller
                }
            }
            chosen.push(train[order[state.position]].clone());
            state.position += 1;
        }
        if chosen.is_empty() {
            continue;
        }
        let examples = chosen.len();
        let mine = match &group {
            Some(g) => g.world().shard(&chosen),
            None => chosen,
        };
        let batches = step_batches(config, mine, pad_id);
        // [trained tokens, padded tokens] of the whole step
        let mut counts = [batches.iter().map(PackedBatch::loss_tokens).sum::<usize>() as f64, batches.iter().map(PackedBatch::padded_tokens).sum::<usize>() as f64];
        if let Some(g) = &mut group {
            g.all_reduce_sum_f64(&mut counts).context("summing the step's token counts over the ranks")?;
        }
        let padded = counts[1] as usize;
        let mut step = step_gradients_over(&model, &freeze, &batches, counts[0] as usize);
        if let Some(g) = &mut group {
            all_reduce_gradients(g, &mut step.grads, &model, &freeze)?;
            let mut loss = [step.loss];
            g.all_reduce_sum_f64(&mut loss).context("summing the step's loss over the ranks")?;
            step.loss = loss[0];
            step.loss_tokens = counts[0] as usize;
        }
        let grad_norm = if config.train.max_grad_norm > 0.0 { clip_global_norm(&mut step.grads, config.train.max_grad_norm) } else { global_norm(&step.grads) };
        let bad = non_finite(&[("loss", step.loss), ("grad_norm", grad_norm)]);
        if !bad.is_empty() {
            let last = latest_checkpoint(&checkpoints)?.map(|p| p.display().to_string()).unwrap_or_else(|| "none".into());
            bail!("step {}: non-finite {} — stopped before updating the weights; last good checkpoint: {last}", state.step + 1, bad.join(", "));
        }
        let lr = schedule.lr(config.optimizer.lr, state.step);
        model = optimizer.step(model, &step.grads, lr);
        state.step += 1;
        state.optimizer_step = optimizer.step;
        tokens_seen += padded;
        last_loss = step.loss;

        let mut record = Map::new();
        record.insert("step".into(), json!(state.step));
        record.insert("epoch".into(), json!(state.epoch as f64 + state.position as f64 / train.len() as f64));
        record.insert("loss".into(), json!(step.loss));
        record.insert("lr".into(), json!(lr));
        record.insert("grad_norm".into(), json!(grad_norm));
        record.insert("examples".into(), json!(examples));
        record.insert("loss_tokens".into(), json!(step.loss_tokens));
        record.insert("padded_tokens".into(), json!(padded));
        record.insert("micro_batches".into(), json!(batches.len()));
        let elapsed = started.elapsed().as_secs_f64();
        record.insert("elapsed_s".into(), json!(elapsed));
        record.insert("tokens_per_s".into(), json!(tokens_seen as f64 / elapsed.max(1e-9)));

        let last_step = state.step == total_steps;
        if main && (last_step || (config.eval.every > 0 && state.step % config.eval.every == 0)) {
            let (loss, report) = evaluator.run(&model, &tokenizer, rng.next_u64())?;
            if let Some(loss) = loss {
                record.insert("heldout_loss".into(), json!(loss));
            }
            if let Some((report, results)) = &report {
                record.insert("eval".into(), serde_json::to_value(report)?);
                if last_step {
                    write_results(&final_results_path, results)?;
                }
            }
            // keep-best watches accuracy when there is one (higher is better), else held-out loss
            let watched = report.as_ref().map(|(r, _)| -r.accuracy).or(loss);
            if let Some(v) = watched
                && state.best.is_none_or(|(_, best)| v < best)
            {
                state.best = Some((state.step, v));
            }
            last_eval = (loss, report.map(|(r, _)| r));
        }
        state.rng_state = rng.state();
        state.metrics = Value::Object(record.clone());
        if let Some(m) = &mut metrics {
            m.write(&record)?;
        }
        if main && config.train.log_every > 0 && (state.step % config.train.log_every == 0 || last_step) {
            eprintln!("{}", progress_line(state.step, total_steps, step.loss, lr, grad_norm, tokens_seen as f64 / elapsed.max(1e-9), elapsed));
        }
        on_step(&record);
        if main && (last_step || (config.checkpoint.every > 0 && state.step % config.checkpoint.every == 0)) {
            save_checkpoint(&checkpoints, &model, &optimizer, &state, tokenizer_dir.as_deref())?;
            let best = if config.checkpoint.keep_best { state.best.map(|(s, _)| s) } else { None };
            prune_checkpoints(&checkpoints, config.checkpoint.keep_last, best)?;
        }
    }
    let final_dir = out_dir.join("final");
    if main {
        save_model_dir(&model, &final_dir, SaveDtype::F32, tokenizer_dir.as_deref())?;
    }
    Ok(SftOutcome { steps: state.step, final_loss: last_loss, heldout_loss: last_eval.0, eval: last_eval.1, final_dir })
}

/// The model directory a run's final weights are written to.
pub fn final_model_dir(out_dir: &Path) -> PathBuf {
    out_dir.join("final")
}
