//! The `r1kit` binary: parses arguments and wires the crates together; holds no algorithm.

mod bench;
mod check;
mod generate;
mod recipe;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "r1kit", version, about = "DeepSeek-R1-style post-training: SFT, GRPO, rejection sampling, distillation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a model (greedy or sampled).
    Generate(generate::GenerateArgs),
    /// Score completions in a JSONL file with rule-based rewards.
    Reward(r1kit_rewards::RewardArgs),
    /// Inspect datasets and generate tasks.
    Data(r1kit_datasets::DataArgs),
    /// A fresh randomly initialized model (and tokenizer) as a Hugging Face directory.
    Init(r1kit_train::command::InitArgs),
    /// Supervised fine-tuning (prompt-masked loss, packing).
    Sft(r1kit_train::command::SftArgs),
    /// Held-out evaluation: pass@1, pass@k, maj@k, accuracy and format rate.
    Eval(r1kit_train::command::EvalArgs),
    /// Rejection sampling: sample N per prompt, keep what the rewards verify, write SFT data.
    Reject(r1kit_distill::RejectArgs),
    /// Distillation into a student: teacher traces, logit KD or on-policy.
    Distill(r1kit_distill::DistillArgs),
    /// GRPO training (R1-Zero style RL with rule rewards).
    Grpo(r1kit_grpo::command::GrpoArgs),
    /// Convert a GGUF file into a Hugging Face directory (config, safetensors, tokenizer files).
    Convert(ConvertArgs),
    /// A multi-stage recipe (init, sft, grpo, reject, distill, eval); a rerun resumes it.
    Run(recipe::RunArgs),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Correctness checks for a device (the GPU machine has no Rust toolchain to run the tests).
    #[command(subcommand)]
    Check(check::CheckCommand),
    /// Data parallel: one process per device (`r1kit launch --nproc 2 -- sft --config F`).
    Launch(r1kit_dist::LaunchArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => generate::run(&args),
        Command::Reward(args) => r1kit_rewards::run_reward(&args),
        Command::Data(args) => r1kit_datasets::run_data(&args),
        Command::Init(args) => r1kit_train::command::run_init(&args),
        Command::Sft(args) => r1kit_train::command::run_sft(&args),
        Command::Eval(args) => r1kit_train::command::run_eval(&args),
        Command::Reject(args) => r1kit_distill::run_reject(&args),
        Command::Distill(args) => r1kit_distill::run_distill(&args),
        Command::Grpo(args) => r1kit_grpo::command::run(&args),
        Command::Run(args) => recipe::run_recipe(&args),
        Command::Bench(cmd) => bench::run(&cmd),
        Command::Check(cmd) => check::run(&cmd),
        Command::Convert(args) => convert(&args),
        Command::Launch(args) => std::env::current_exe().map_err(anyhow::Error::from).and_then(|exe| r1kit_dist::run_launch(&args, &exe)),
    };
    if let Err(e) = result {
        // One line, the whole cause chain, no backtrace: these are user-facing errors.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

#[derive(clap::Args)]
struct ConvertArgs {
    /// The GGUF file.
    gguf: std::path::PathBuf,
    /// The Hugging Face directory to write (replaced atomically when it exists).
    out_dir: std::path::PathBuf,
    /// Storage dtype of the weights: f32 or bf16.
    #[arg(long, default_value = "f32")]
    dtype: String,
}

fn convert(args: &ConvertArgs) -> anyhow::Result<()> {
    let dtype = match args.dtype.as_str() {
        "f32" => r1kit_model::SaveDtype::F32,
        "bf16" => r1kit_model::SaveDtype::Bf16,
        other => anyhow::bail!("--dtype {other}: expected f32 or bf16"),
    };
    r1kit_model::gguf::convert_gguf_to_hf(&args.gguf, &args.out_dir, dtype)?;
    println!("wrote {}", args.out_dir.display());
    Ok(())
}
