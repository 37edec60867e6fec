//! `r1kit run RECIPE.toml`: a multi-stage pipeline (init, convert, sft, grpo, reject, distill, eval), each
//! stage's inputs taken from earlier stages' outputs by name, each stage in its own folder of the
//! run directory. A rerun skips finished stages (their `done.json`) and resumes the interrupted
//! one; held-out accuracy is measured after every stage; `summary.json` and `report.html` are
//! written at the end. The recipe format is documented in spec.rs.

mod report;
mod rundir;
mod spec;
mod stages;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use rundir::{finished, relative_to, stage_summary, write_atomic, write_done, Done, Summary};
use spec::{load_recipe, plan, StageKind, Want};

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// The recipe (see recipes/r1-tiny.toml).
    pub recipe: PathBuf,
    /// Run directory (default: the recipe's `out`, else runs/<recipe name>). A rerun with the same
    /// directory skips finished stages and resumes the interrupted one.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Check the recipe (every stage's inputs and config) and print the plan; run nothing.
    #[arg(long)]
    pub check: bool,
}

pub fn run_recipe(args: &RunArgs) -> Result<()> {
    let recipe = load_recipe(&args.recipe)?;
    let run_dir = args.out.clone().or_else(|| recipe.out.clone()).unwrap_or_else(|| PathBuf::from("runs").join(&recipe.name));
    let stages = plan(&recipe, &run_dir).with_context(|| format!("recipe {}", args.recipe.display()))?;
    if args.check {
        println!("recipe {} ({} stages, seed {}, run directory {}):", recipe.name, stages.len(), recipe.seed, run_dir.display());
        for (i, s) in stages.iter().enumerate() {
            let output = s.output.as_ref().map(|o| format!(" -> {}", o.display())).unwrap_or_default();
            println!("  {}. {} ({}){output}", i + 1, s.name, s.kind.name());
        }
        if let Some(d) = &recipe.description {
            println!("{d}");
        }
        return Ok(());
    }
    if recipe.heldout.is_none() {
        eprintln!("run: the recipe has no [heldout] section: no held-out accuracy is measured");
    }
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let recipe_text = std::fs::read(&args.recipe)?;
    write_atomic(&run_dir.join("recipe.toml"), &recipe_text)?;

    let total = Instant::now();
    let mut dones: Vec<Done> = Vec::with_capacity(stages.len());
    for (i, stage) in stages.iter().enumerate() {
        let label = format!("[{}/{}] {} ({})", i + 1, stages.len(), stage.name, stage.kind.name());
        if let Some(done) = finished(stage)? {
            eprintln!("== {label}: finished earlier, skipped; {}", accuracy_line(&done));
            dones.push(done);
            continue;
        }
        eprintln!("== {label}");
        let started = Instant::now();
        let outcome = stages::run_stage(stage, &recipe.device, recipe.seed).with_context(|| format!("stage `{}` ({})", stage.name, stage.kind.name()))?;
        let heldout = match (&outcome.eval, &recipe.heldout, &stage.output) {
            (Some(report), _, _) => Some(report.clone()),
            (None, Some(spec), Some(model)) if stage.heldout && stage.kind.makes() == Some(Want::Model) => {
                let results = stage.dir.join("heldout.jsonl");
                Some(stages::heldout_eval(model, spec, &recipe.device, recipe.seed, Some(&results)).with_context(|| format!("stage `{}`: held-out evaluation", stage.name))?)
            }
            _ => None,
        };
        let done = Done {
            name: stage.name.clone(),
            kind: stage.kind.name().into(),
            config: stage.resolved.clone(),
            output: stage.output.as_ref().map(|o| relative_to(o, &run_dir)),
            heldout: heldout.map(|h| serde_json::to_value(h)).transpose()?,
            final_mean_reward: outcome.final_mean_reward,
            details: outcome.details,
            seconds: started.elapsed().as_secs_f64(),
        };
        write_done(stage, &done)?;
        eprintln!("== {label} done in {:.0} s; {}", done.seconds, accuracy_line(&done));
        dones.push(done);
    }

    let summary = Summary { recipe: recipe.name.clone(), seed: recipe.seed, stages: dones.iter().map(stage_summary).collect() };
    write_atomic(&run_dir.join("summary.json"), (serde_json::to_string_pretty(&summary)? + "\n").as_bytes())?;
    let html = report::render(&recipe.name, recipe.seed, &dones, &|d| report::read_metrics(&run_dir.join(&d.name)));
    write_atomic(&run_dir.join("report.html"), html.as_bytes())?;
    println!("{}", table(&dones));
    eprintln!("run {} finished in {:.0} s (this invocation); {} and {}", recipe.name, total.elapsed().as_secs_f64(), run_dir.join("summary.json").display(), run_dir.join("report.html").display());
    Ok(())
}

fn accuracy_line(done: &Done) -> String {
    match done.heldout_number("accuracy") {
        Some(a) => {
            let format = done.heldout_number("format_rate").map(|f| format!(", format {:.1}%", 100.0 * f)).unwrap_or_default();
            let reward = done.final_mean_reward.filter(|_| done.kind == StageKind::Grpo.name()).map(|r| format!(", final mean reward {r:.3}")).unwrap_or_default();
            format!("held-out accuracy {:.1}%{format}{reward}", 100.0 * a)
        }
        None => "no held-out evaluation".into(),
    }
}

/// The per-stage table printed at the end (markdown, so it pastes into notes).
fn table(dones: &[Done]) -> String {
    let mut out = String::from("| stage | kind | held-out accuracy | format rate | final mean reward | seconds |\n|---|---|---|---|---|---|\n");
    for d in dones {
        let pct = |v: Option<f64>| v.map(|v| format!("{:.1}%", 100.0 * v)).unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.0} |\n",
            d.name,
            d.kind,
            pct(d.heldout_number("accuracy")),
            pct(d.heldout_number("format_rate")),
            d.final_mean_reward.map(|r| format!("{r:.3}")).unwrap_or_else(|| "-".into()),
            d.seconds
        ));
    }
    out
}
