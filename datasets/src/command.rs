//! `r1kit data show` and `r1kit data gen`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::generators::{self, Generator, SplitFilter, TraceOptions, TraceStyle};
use crate::records::{Gold, Record};
use crate::spec::DatasetSpec;
use crate::split::Split;
use crate::template::PromptTemplate;
use crate::writer::write_jsonl;

#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum DataCommand {
    /// Print records as the model will see them (after the prompt template).
    Show(ShowArgs),
    /// Generate a task set (countdown, arithmetic, word) to JSONL.
    Gen(GenArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct ShowArgs {
    /// Dataset spec: gsm8k, aime2025, countdown:n=10, jsonl:FILE?prompt_field=q, ...
    #[arg(long)]
    pub dataset: String,
    /// How many records.
    #[arg(long, default_value_t = 3)]
    pub n: usize,
    /// Prompt template: r1-zero, r1-zero-prefill, plain, chat.
    #[arg(long, default_value = "r1-zero")]
    pub template: String,
    /// System prompt (chat template only).
    #[arg(long)]
    pub system: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct GenArgs {
    /// Generator: countdown, arithmetic or word.
    pub task: String,
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write worked solutions (prompt, reasoning, answer) instead of RL prompts.
    #[arg(long)]
    pub traces: bool,
    /// Fraction of traces with a mistake that leads to a wrong answer.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Trace style: compact (one `a+b=c` line per step) or verbose.
    #[arg(long, default_value = "compact")]
    pub style: String,
    /// Generator option KEY=VALUE, repeatable (countdown: count, numbers=1..99, target=1..100;
    /// arithmetic: digits, terms, ops; word: max_number).
    #[arg(long = "set", short = 'o')]
    pub options: Vec<String>,
    /// Keep only problems of this side of the hash split: train or heldout.
    #[arg(long)]
    pub split: Option<String>,
    /// Held-out fraction of the hash split.
    #[arg(long, default_value_t = 0.1)]
    pub heldout: f64,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run_data(args: &DataArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    run_data_to(args, &mut stdout.lock())
}

/// `run_data` writing its report to `out` (tests read it).
pub fn run_data_to(args: &DataArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    match &args.command {
        DataCommand::Show(show) => run_show(show, out),
        DataCommand::Gen(gen_args) => run_gen(gen_args, out),
    }
}

fn run_show(args: &ShowArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut template: PromptTemplate = args.template.parse().map_err(anyhow::Error::msg)?;
    if let Some(system) = &args.system {
        match &mut template {
            PromptTemplate::Chat { system: s } => *s = Some(system.clone()),
            _ => bail!("--system needs --template chat"),
        }
    }
    let spec = DatasetSpec::parse(&args.dataset)?;
    let spec = DatasetSpec { limit: Some(spec.limit.map_or(args.n, |l| l.min(args.n))), ..spec };
    let loaded = spec.load()?;
    for (i, record) in loaded.records.iter().enumerate() {
        let rendered = template.render_record(record);
        writeln!(out, "=== {} {}/{} ({}) ===", args.dataset, i + 1, loaded.records.len(), describe(record))?;
        writeln!(out, "--- prompt ---\n{}", rendered.prompt)?;
        if let Some(completion) = &rendered.completion {
            writeln!(out, "--- completion ---\n{completion}")?;
        }
        if let Record::Rl(rl) = record {
            writeln!(out, "--- gold ---\n{}", gold_text(&rl.gold))?;
        }
    }
    if loaded.skipped > 0 {
        writeln!(out, "(skipped {} bad records, e.g. {})", loaded.skipped, loaded.skip_examples.join("; "))?;
    }
    Ok(())
}

fn describe(record: &Record) -> String {
    match record {
        Record::Rl(r) => format!("rl-prompt {}", r.id),
        Record::Trace(t) => format!("reasoning-trace {}", t.id),
        Record::Sft(_) => "sft-example".into(),
    }
}

fn gold_text(gold: &Gold) -> String {
    match gold {
        Gold::Answer { answer } => answer.clone(),
        Gold::Countdown { numbers, target } => format!("target {target} from {numbers:?}"),
        Gold::Code { language, tests, entry_point } => {
            format!("{language:?} tests of `{entry_point}` ({} lines)", tests.lines().count())
        }
    }
}

fn run_gen(args: &GenArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut generator = Generator::by_name(&args.task)
        .with_context(|| format!("unknown generator `{}` ({})", args.task, Generator::NAMES.join(", ")))?;
    for option in &args.options {
        let (k, v) = option.split_once('=').with_context(|| format!("--set `{option}` is not KEY=VALUE"))?;
        generator.set(k.trim(), v.trim()).map_err(anyhow::Error::msg)?;
    }
    if !(0.0..=1.0).contains(&args.error_rate) {
        bail!("--error-rate must be in [0, 1], got {}", args.error_rate);
    }
    let style: TraceStyle = args.style.parse().map_err(anyhow::Error::msg)?;
    let filter = match &args.split {
        Some(s) => Some(SplitFilter {
            split: s.parse::<Split>().map_err(anyhow::Error::msg)?,
            heldout_fraction: args.heldout,
            salt: 0,
        }),
        None => None,
    };
    let problems = generators::generate(&generator, args.n, args.seed, filter)?;
    let count = if args.traces {
        let options = TraceOptions { error_rate: args.error_rate, style };
        let traces = generators::traces(&problems, &options, args.seed);
        write_jsonl(&args.out, &traces)?
    } else {
        let prompts: Vec<_> = problems.iter().map(|p| p.to_rl_prompt()).collect();
        write_jsonl(&args.out, &prompts)?
    };
    let what = if args.traces { "traces" } else { "prompts" };
    writeln!(out, "wrote {count} {} {what} to {}", generator.name(), args.out.display())?;
    Ok(())
}
