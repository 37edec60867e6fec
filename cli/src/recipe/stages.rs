//! Stage runners: each calls its crate's entry point with the planned configuration. A stage that
//! was interrupted resumes through the trainers' own checkpoints (sft, grpo, distill) or is
//! redone from the start (init, convert, reject, eval: deterministic and short).

use std::path::Path;

use anyhow::{Context, Result};
use r1kit_datasets::Record;
use r1kit_model::device::parse_device;
use r1kit_rewards::RewardRegistry;
use r1kit_sampler::SamplingParams;
use r1kit_train::command::load_model_and_tokenizer;
use r1kit_train::data::eval_items;
use r1kit_train::eval::{evaluate, write_results, EvalOptions, EvalReport};
use serde_json::{json, Value};

use super::spec::{HeldoutSpec, PlannedStage, Work};

/// What a stage's own entry point reported.
pub struct StageOutcome {
    pub final_mean_reward: Option<f64>,
    pub details: Value,
    /// An eval stage's report (its held-out accuracy).
    pub eval: Option<EvalReport>,
}

pub fn run_stage(stage: &PlannedStage, device: &str, seed: u64) -> Result<StageOutcome> {
    std::fs::create_dir_all(&stage.dir).with_context(|| format!("creating {}", stage.dir.display()))?;
    let plain = |details: Value| StageOutcome { final_mean_reward: None, details, eval: None };
    Ok(match &stage.work {
        Work::Init(args) => {
            // a partial model from a killed run is replaced whole
            if args.out.exists() {
                std::fs::remove_dir_all(&args.out).with_context(|| format!("removing the partial {}", args.out.display()))?;
            }
            r1kit_train::command::run_init(args)?;
            let config: Value = serde_json::from_str(&std::fs::read_to_string(args.out.join("config.json"))?)?;
            plain(json!({ "model_config": config }))
        }
        Work::Sft(config) => {
            let outcome = r1kit_train::sft::train_sft(config, &mut |_| {})?;
            plain(json!({
                "steps": outcome.steps,
                "final_loss": outcome.final_loss,
                "heldout_loss": outcome.heldout_loss,
                "own_eval": outcome.eval,
            }))
        }
        Work::Grpo(config) => {
            let summary = r1kit_grpo::trainer::run_grpo(config)?;
            StageOutcome {
                final_mean_reward: summary.final_mean_reward,
                details: json!({ "steps": summary.steps, "initial_eval": summary.initial_eval, "final_eval": summary.final_eval }),
                eval: None,
            }
        }
        Work::Reject(args) => {
            let report = r1kit_distill::command::reject_with_report(args)?;
            plain(json!({
                "prompts": report.prompts,
                "sampled": report.sampled,
                "accepted": report.accepted,
                "kept": report.kept,
                "acceptance_rate": report.acceptance_rate,
                "criterion": report.criterion,
                "prompts_with_none_accepted": report.none_accepted.len(),
            }))
        }
        Work::Distill(config) => {
            let outcome = r1kit_distill::run::distill(config, &mut |_| {})?;
            plain(json!({
                "mode": config.mode.name(),
                "steps": outcome.steps,
                "trained_tokens": outcome.trained_tokens,
                "final_loss": outcome.final_loss,
                "own_eval": outcome.eval,
                "generation": outcome.generation.map(|g| json!({"prompts": g.prompts, "sampled": g.sampled, "kept": g.kept, "acceptance_rate": g.acceptance_rate})),
            }))
        }
        Work::Convert(stage) => {
            let dtype = if stage.dtype == "bf16" { r1kit_model::SaveDtype::Bf16 } else { r1kit_model::SaveDtype::F32 };
            r1kit_model::gguf::convert_gguf_to_hf(&stage.model, &stage.out, dtype)?;
            plain(json!({ "from": stage.model, "dtype": stage.dtype }))
        }
        Work::Eval { model, spec } => {
            let report = heldout_eval(model, spec, device, seed, Some(&stage.dir.join("eval.jsonl")))?;
            StageOutcome { final_mean_reward: None, details: json!({}), eval: Some(report) }
        }
    })
}

/// Samples and scores the held-out prompts with `model`; writes per-example results to
/// `results` when given.
pub fn heldout_eval(model_path: &Path, spec: &HeldoutSpec, device: &str, default_seed: u64, results: Option<&Path>) -> Result<EvalReport> {
    let device = parse_device(device)?;
    let (model, tokenizer) = load_model_and_tokenizer(model_path, &device).with_context(|| format!("loading {}", model_path.display()))?;
    let mut records: Vec<Record> = r1kit_datasets::load_records(&spec.dataset).with_context(|| format!("held-out dataset `{}`", spec.dataset))?;
    if let Some(limit) = spec.limit {
        records.truncate(limit);
    }
    let items = eval_items(&tokenizer, &spec.template, &records)?;
    let rewards = RewardRegistry::with_builtins().build_weighted(&spec.rewards, &[])?;
    let names = rewards.names();
    let options = EvalOptions {
        samples: spec.samples,
        params: SamplingParams {
            temperature: spec.temperature,
            top_p: spec.top_p,
            max_new_tokens: spec.max_new_tokens,
            seed: spec.seed.unwrap_or(default_seed),
            ..Default::default()
        },
        prompts_per_batch: spec.batch,
        accuracy_reward: 0,
        format_reward: names.iter().position(|n| n.starts_with("format")),
    };
    let (report, per_example) = evaluate(&model, &tokenizer, &items, &rewards, &options)?;
    if let Some(path) = results {
        write_results(path, &per_example)?;
    }
    Ok(report)
}
