//! `r1kit distill`: the three modes, wired from train's machinery (SFT, AdamW, schedule,
//! clipping, accumulation, evaluation) and the sampler.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use r1kit_datasets::{load_records, Record};
use r1kit_model::config::ModelConfig;
use r1kit_model::tokenizer::Tokenizer;
use r1kit_model::Model;
use r1kit_rewards::{RewardRegistry, WeightedRewards};
use r1kit_sampler::SamplingParams;
use r1kit_train::accumulate::tracked;
use r1kit_train::clip::{clip_global_norm, global_norm};
use r1kit_train::checkpoint::save_final_model;
use r1kit_train::config::{DataSection as SftDataSection, SftConfig};
use r1kit_train::data::{eval_items, tokenize_record, EvalItem};
use r1kit_train::eval::{evaluate, write_results, EvalOptions, EvalReport};
use r1kit_train::grads::{accumulate, collect_gradients, GradMap};
use r1kit_train::metrics::{non_finite, progress_line, MetricsLog};
use r1kit_train::optim::AdamW;
use r1kit_train::packing::{assign_rows, micro_batches, PackedBatch, TokenizedExample};
use r1kit_train::params::Freeze;
use r1kit_train::rng::epoch_order;
use r1kit_train::schedule::{warmup_from_ratio, Schedule};
use r1kit_train::sft::train_sft;
use serde_json::{json, Map, Value};

use crate::config::{DistillConfig, Estimator, Mode};
use crate::dedup::DedupOptions;
use crate::divergence::{kd_loss, sampled_reverse_kl_loss, Divergence, DivergenceKind};
use crate::memory::{available_memory, MemoryPlan};
use crate::reject::{reject_sample, write_outputs, RejectOptions, RejectReport};
use crate::vocab::check_shared_vocab;

/// Rows are padded to a multiple of this (as train's SFT does).
const PAD_MULTIPLE: usize = 8;

#[derive(Debug, Clone)]
pub struct DistillOutcome {
    pub steps: u64,
    /// Completion tokens the loss covered over the whole run.
    pub trained_tokens: usize,
    pub final_loss: f64,
    pub eval: Option<EvalReport>,
    /// The teacher's rejection sampling, when traces were generated.
    pub generation: Option<RejectReport>,
    pub final_dir: PathBuf,
}

fn model_config_of(dir: &Path) -> Result<ModelConfig> {
    ModelConfig::from_file(&dir.join("config.json")).with_context(|| format!("reading {}/config.json", dir.display()))
}

/// Says what full AdamW training of the student needs against the memory available, and refuses
/// to start when it does not fit.
pub fn check_memory(config: &DistillConfig) -> Result<MemoryPlan> {
    let student = model_config_of(&config.student.path)?;
    let teacher = match config.mode {
        Mode::Traces => None, // the teacher is unloaded before the student trains
        // a GGUF teacher has no config.json: counted as unknown (its weights come on top)
        _ => model_config_of(&config.teacher.path).ok(),
    };
    let plan = MemoryPlan::new(&student, teacher.as_ref(), available_memory());
    eprintln!("memory: {}", plan.describe());
    if !plan.fits() {
        bail!("{}", plan.describe());
    }
    Ok(plan)
}

fn load_nonempty(spec: &str) -> Result<Vec<Record>> {
    let records = load_records(spec).with_context(|| format!("loading dataset `{spec}`"))?;
    if records.is_empty() {
        bail!("dataset `{spec}` has no records");
    }
    Ok(records)
}

/// The teacher answers `data.prompts`; its verified completions are written to
/// `<out_dir>/teacher-traces.jsonl` (and the acceptance report beside it).
fn generate_traces(config: &DistillConfig, out_dir: &Path) -> Result<(PathBuf, RejectReport)> {
    let spec = config.data.prompts.as_deref().context("data.prompts is needed to generate traces")?;
    let records = load_nonempty(spec)?;
    let (teacher, tokenizer) = config.teacher.load_on(&config.teacher.device("teacher")?, "teacher")?;
    let g = &config.generate;
    let rewards = RewardRegistry::with_builtins().build_weighted(&g.rewards, &g.weights)?;
    let options = RejectOptions {
        samples: g.samples,
        threshold: g.threshold,
        criterion: g.criterion,
        keep_shortest: (g.keep_shortest > 0).then_some(g.keep_shortest),
        dedup: g.dedup.then(DedupOptions::default),
        params: SamplingParams { temperature: g.temperature, top_p: g.top_p, max_new_tokens: g.max_new_tokens, seed: g.seed, ..Default::default() },
        prompts_per_batch: g.prompts_per_batch,
    };
    let (kept, report) = reject_sample(&teacher, &tokenizer, &config.data.template, &records, &rewards, &options)?;
    eprintln!("teacher traces: {}", report.summary());
    if kept.is_empty() {
        bail!("the teacher's completions were all rejected ({} sampled by {} >= {}): nothing to distill", report.sampled, report.criterion, report.threshold);
    }
    let path = out_dir.join("teacher-traces.jsonl");
    write_outputs(&path, &kept, &report)?;
    Ok((path, report))
}

/// Trace records a generator marked wrong are dropped; the rest are written to
/// `<out_dir>/traces.jsonl`.
fn filter_trace_file(spec: &str, out_dir: &Path) -> Result<(PathBuf, usize)> {
    let records = load_nonempty(spec)?;
    let before = records.len();
    let kept: Vec<Record> = records.into_iter().filter(|r| !matches!(r, Record::Trace(t) if t.correct == Some(false))).collect();
    if kept.is_empty() {
        bail!("dataset `{spec}`: every trace is marked correct = false");
    }
    let path = out_dir.join("traces.jsonl");
    r1kit_datasets::write_jsonl(&path, &kept)?;
    Ok((path, before - kept.len()))
}

/// The training sequences' file for traces and logit-kd: read (filtered) or teacher-generated.
fn trace_source(config: &DistillConfig, out_dir: &Path) -> Result<(PathBuf, Option<RejectReport>)> {
    match &config.data.traces {
        Some(spec) => {
            let (path, dropped) = filter_trace_file(spec, out_dir)?;
            if dropped > 0 {
                eprintln!("dropped {dropped} traces marked correct = false");
            }
            Ok((path, None))
        }
        None => generate_traces(config, out_dir).map(|(p, r)| (p, Some(r))),
    }
}

fn prepare_out_dir(config: &DistillConfig) -> Result<PathBuf> {
    let out_dir = config.train.out_dir.clone();
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    std::fs::write(out_dir.join("distill.toml"), toml::to_string_pretty(config)?).with_context(|| format!("writing {}/distill.toml", out_dir.display()))?;
    Ok(out_dir)
}

/// Runs the recipe; `on_step` sees each step's metrics line.
pub fn distill(config: &DistillConfig, on_step: &mut dyn FnMut(&Map<String, Value>)) -> Result<DistillOutcome> {
    config.validate()?;
    check_memory(config)?;
    let out_dir = prepare_out_dir(config)?;
    match config.mode {
        Mode::Traces => distill_traces(config, &out_dir, on_step),
        Mode::LogitKd | Mode::OnPolicy => distill_logits(config, &out_dir, on_step),
    }
}

/// Traces mode: SFT of the student on the (generated or read) traces, by train's `train_sft`.
fn distill_traces(config: &DistillConfig, out_dir: &Path, on_step: &mut dyn FnMut(&Map<String, Value>)) -> Result<DistillOutcome> {
    let (traces, generation) = trace_source(config, out_dir)?;
    let sft = SftConfig {
        model: config.student.clone(),
        data: SftDataSection {
            train: format!("jsonl:{}", traces.display()),
            heldout: None,
            template: config.data.template.clone(),
            max_seq_len: config.data.max_seq_len,
            packing: config.data.packing,
            shuffle: config.data.shuffle,
        },
        train: config.train.clone(),
        optimizer: config.optimizer,
        checkpoint: config.checkpoint.clone(),
        eval: config.eval.clone(),
    };
    let mut trained_tokens = 0usize;
    let outcome = train_sft(&sft, &mut |record| {
        trained_tokens += record.get("loss_tokens").and_then(Value::as_u64).unwrap_or(0) as usize;
        on_step(record)
    })?;
    Ok(DistillOutcome { steps: outcome.steps, trained_tokens, final_loss: outcome.final_loss, eval: outcome.eval, generation, final_dir: outcome.final_dir })
}

/// The held-out evaluation of `eval.dataset` (accuracy by the first reward).
struct Evaluator {
    items: Vec<EvalItem>,
    rewards: WeightedRewards,
    options: EvalOptions,
}

impl Evaluator {
    fn new(config: &DistillConfig, tokenizer: &Tokenizer) -> Result<Self> {
        let e = &config.eval;
        let rewards = RewardRegistry::with_builtins().build_weighted(&e.rewards, &[])?;
        let items = match &e.dataset {
            Some(spec) => eval_items(tokenizer, &config.data.template, &load_nonempty(spec)?)?,
            None => vec![],
        };
        let format_reward = rewards.names().iter().position(|n| n.starts_with("format"));
        let options = EvalOptions {
            samples: e.samples,
            params: SamplingParams { temperature: e.temperature, top_p: e.top_p, max_new_tokens: e.max_new_tokens, ..Default::default() },
            prompts_per_batch: e.prompts_per_batch,
            accuracy_reward: 0,
            format_reward,
        };
        Ok(Evaluator { items, rewards, options })
    }

    fn run(&self, model: &Model, tokenizer: &Tokenizer, seed: u64) -> Result<Option<(EvalReport, Vec<r1kit_train::eval::ExampleResult>)>> {
        if self.items.is_empty() {
            return Ok(None);
        }
        let options = EvalOptions { params: SamplingParams { seed, ..self.options.params.clone() }, ..self.options.clone() };
        evaluate(model, tokenizer, &self.items, &self.rewards, &options).map(Some)
    }
}

/// What one optimizer step trains on.
enum StepData {
    /// Fixed sequences (logit KD): prompt + completion, completion trained.
    Sequences(Vec<TokenizedExample>),
    /// Prompts the student completes at each step (on-policy).
    Prompts(Vec<Vec<u32>>),
}

impl StepData {
    fn len(&self) -> usize {
        match self {
            StepData::Sequences(s) => s.len(),
            StepData::Prompts(p) => p.len(),
        }
    }
}

fn tokenize_sequences(tokenizer: &Tokenizer, config: &DistillConfig, spec: &str) -> Result<Vec<TokenizedExample>> {
    let mut out = Vec::new();
    for (i, record) in load_nonempty(spec)?.iter().enumerate() {
        let example = tokenize_record(tokenizer, &config.data.template, record).with_context(|| format!("dataset `{spec}`, record {}", i + 1))?;
        let example = example.truncated(config.data.max_seq_len);
        if example.loss_tokens() > 0 {
            out.push(example);
        }
    }
    if out.is_empty() {
        bail!("dataset `{spec}`: no sequence keeps a completion token within data.max_seq_len = {}", config.data.max_seq_len);
    }
    Ok(out)
}

/// Logit KD and on-policy distillation: the student's own loop (the loss is not SFT's), with
/// train's accumulation, clipping, AdamW, schedule, metrics and evaluation.
fn distill_logits(config: &DistillConfig, out_dir: &Path, on_step: &mut dyn FnMut(&Map<String, Value>)) -> Result<DistillOutcome> {
    let device = config.student.device("student")?;
    let (master, student_tok) = config.student.load_on(&device, "student")?;
    let mut master = master.with_checkpointing(config.train.gradient_checkpointing);
    // The teacher's logits meet the student's: both live on the student's device.
    let (teacher, teacher_tok) = config.teacher.load_on(&device, "teacher")?;
    student_tok.check_vocab_fits(master.config.vocab_size)?;
    check_shared_vocab(
        (&config.teacher.path.display().to_string(), &teacher_tok, teacher.config.vocab_size),
        (&config.student.path.display().to_string(), &student_tok, master.config.vocab_size),
        config.mode.name(),
    )?;
    let pad_id = student_tok.pad_token_id().or(student_tok.eos_token_id()).unwrap_or(0);

    let (data, generation) = match config.mode {
        Mode::LogitKd => {
            let (path, generation) = trace_source(config, out_dir)?;
            (StepData::Sequences(tokenize_sequences(&student_tok, config, &format!("jsonl:{}", path.display()))?), generation)
        }
        _ => {
            let spec = config.data.prompts.as_deref().expect("validated");
            let items = eval_items(&student_tok, &config.data.template, &load_nonempty(spec)?)?;
            (StepData::Prompts(items.into_iter().map(|i| i.prompt_tokens).collect()), None)
        }
    };
    let evaluator = Evaluator::new(config, &student_tok)?;
    let t = &config.train;
    let per_epoch = data.len().div_ceil(t.examples_per_step) as u64;
    let total_steps = if t.max_steps > 0 { t.max_steps } else { t.epochs * per_epoch };
    let warmup = t.warmup_steps.unwrap_or_else(|| warmup_from_ratio(t.warmup_ratio, total_steps));
    let schedule = Schedule { kind: t.schedule, warmup_steps: warmup, total_steps };
    let freeze = Freeze::new(&t.freeze);
    freeze.check_against(master.parameters().iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().iter().copied()).map_err(anyhow::Error::msg)?;
    let mut optimizer = AdamW::new(config.optimizer);
    let mut metrics = MetricsLog::open(&out_dir.join("metrics.jsonl"), None)?;
    let divergence = match config.mode {
        Mode::LogitKd => Divergence { kind: config.kd.divergence, jsd_beta: config.kd.jsd_beta },
        _ => Divergence { kind: DivergenceKind::ReverseKl, jsd_beta: config.kd.jsd_beta },
    };
    let stop_ids = r1kit_model::pretrained::stop_token_ids(&master, &student_tok);

    let (mut epoch, mut position) = (0u64, 0usize);
    let mut order = epoch_order(data.len(), t.seed, epoch, config.data.shuffle);
    let started = Instant::now();
    let (mut trained_tokens, mut last_loss, mut last_eval) = (0usize, f64::NAN, None);
    for step in 0..total_steps {
        let mut chosen = Vec::with_capacity(t.examples_per_step);
        while chosen.len() < t.examples_per_step {
            if position >= order.len() {
                epoch += 1;
                position = 0;
                order = epoch_order(data.len(), t.seed, epoch, config.data.shuffle);
            }
            chosen.push(order[position]);
            position += 1;
        }
        let mut record = Map::new();
        let examples: Vec<TokenizedExample> = match &data {
            StepData::Sequences(seqs) => chosen.iter().map(|&i| seqs[i].clone()).collect(),
            StepData::Prompts(prompts) => {
                let prompts: Vec<Vec<u32>> = chosen.iter().map(|&i| prompts[i].clone()).collect();
                let op = &config.on_policy;
                let params = SamplingParams {
                    temperature: op.temperature,
                    max_new_tokens: op.max_new_tokens,
                    stop_token_ids: stop_ids.clone(),
                    seed: t.seed.wrapping_mul(1_000_003).wrapping_add(step),
                    ..Default::default()
                };
                let completions = r1kit_sampler::sample(&master, &student_tok, &prompts, op.samples, &params).context("student sampling")?;
                let mean_len = completions.iter().map(|c| c.tokens.len()).sum::<usize>() as f64 / completions.len().max(1) as f64;
                record.insert("completion_tokens_mean".into(), json!(mean_len));
                completions
                    .iter()
                    .map(|c| TokenizedExample::prompt_completion(&prompts[c.prompt_index], &c.tokens).truncated(config.data.max_seq_len))
                    .filter(|e| e.loss_tokens() > 0)
                    .collect()
            }
        };
        let lengths: Vec<usize> = examples.iter().map(TokenizedExample::len).collect();
        let rows = assign_rows(&lengths, config.data.max_seq_len, config.data.packing);
        let batches = micro_batches(&examples, rows, t.micro_batch_tokens, PAD_MULTIPLE, pad_id);
        let loss_tokens: usize = batches.iter().map(PackedBatch::loss_tokens).sum();
        let scale = 1.0 / loss_tokens.max(1) as f64;
        let model = tracked(&master, &freeze);
        let mut grads = GradMap::new();
        let (mut loss, mut sampled_kl) = (0.0, 0.0);
        for batch in &batches {
            let l = match (config.mode, config.on_policy.estimator) {
                (Mode::OnPolicy, Estimator::Sampled) => {
                    let (l, estimate) = sampled_reverse_kl_loss(&model, &teacher, batch, scale);
                    sampled_kl += estimate * scale;
                    l
                }
                (Mode::OnPolicy, Estimator::Full) => kd_loss(&model, &teacher, batch, divergence, 1.0, scale, config.kd.chunk_rows),
                _ => kd_loss(&model, &teacher, batch, divergence, config.kd.temperature, scale, config.kd.chunk_rows),
            };
            loss += l.clone().inner().into_scalar::<f32>() as f64;
            accumulate(&mut grads, collect_gradients(&model, &l));
        }
        let grad_norm = if t.max_grad_norm > 0.0 { clip_global_norm(&mut grads, t.max_grad_norm) } else { global_norm(&grads) };
        let bad = non_finite(&[("loss", loss), ("grad_norm", grad_norm)]);
        if !bad.is_empty() {
            bail!("step {}: non-finite {} — stopped before updating the weights", step + 1, bad.join(", "));
        }
        let lr = schedule.lr(config.optimizer.lr, step);
        master = optimizer.step(master, &grads, lr);
        trained_tokens += loss_tokens;
        // the sampled estimator's loss is not the KL itself: report the KL estimate as the loss
        last_loss = if config.on_policy.estimator == Estimator::Sampled && config.mode == Mode::OnPolicy { sampled_kl } else { loss };

        let step_no = step + 1;
        record.insert("step".into(), json!(step_no));
        record.insert("loss".into(), json!(last_loss));
        record.insert("lr".into(), json!(lr));
        record.insert("grad_norm".into(), json!(grad_norm));
        record.insert("loss_tokens".into(), json!(loss_tokens));
        record.insert("trained_tokens".into(), json!(trained_tokens));
        record.insert("micro_batches".into(), json!(batches.len()));
        let elapsed = started.elapsed().as_secs_f64();
        record.insert("elapsed_s".into(), json!(elapsed));
        let last_step = step_no == total_steps;
        if last_step || (config.eval.every > 0 && step_no % config.eval.every == 0) {
            if let Some((report, results)) = evaluator.run(&master, &student_tok, t.seed ^ step_no)? {
                record.insert("eval".into(), serde_json::to_value(&report)?);
                if last_step {
                    write_results(&out_dir.join(&config.eval.results_file), &results)?;
                }
                last_eval = Some(report);
            }
        }
        metrics.write(&record)?;
        if t.log_every > 0 && (step_no % t.log_every == 0 || last_step) {
            eprintln!("{}", progress_line(step_no, total_steps, last_loss, lr, grad_norm, trained_tokens as f64 / elapsed.max(1e-9), elapsed));
        }
        on_step(&record);
    }
    let final_dir = out_dir.join("final");
    save_final_model(&master, &final_dir, config.student.tokenizer_dir().as_deref(), &student_tok)?;
    Ok(DistillOutcome { steps: total_steps, trained_tokens, final_loss: last_loss, eval: last_eval, generation, final_dir })
}
