//! `r1kit grpo --config FILE.toml [--set key=value ...]`

use std::path::PathBuf;

use anyhow::Result;

use crate::config::GrpoConfig;
use crate::trainer::run_grpo;

#[derive(clap::Args, Debug, Clone)]
pub struct GrpoArgs {
    /// The run's TOML config (every option and its default are documented in grpo/src/config.rs).
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config value: `--set run.steps=50 --set rollout.group=4`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

pub fn run(args: &GrpoArgs) -> Result<()> {
    let config = GrpoConfig::load(&args.config, &args.overrides)?;
    let summary = run_grpo(&config)?;
    let before = summary.initial_eval.as_ref().map(|e| e.accuracy);
    let after = summary.final_eval.as_ref().map(|e| e.accuracy);
    println!(
        "grpo: {} steps, final model {}; held-out accuracy {} -> {}",
        summary.steps,
        summary.final_dir.display(),
        before.map(|a| format!("{a:.3}")).unwrap_or("-".into()),
        after.map(|a| format!("{a:.3}")).unwrap_or("-".into())
    );
    Ok(())
}
