//! The `r1kit` binary: parses arguments and wires the crates together; holds no algorithm.

mod bench;
mod generate;

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
    /// GRPO training (R1-Zero style RL with rule rewards).
    Grpo(r1kit_grpo::command::GrpoArgs),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
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
        Command::Grpo(args) => r1kit_grpo::command::run(&args),
        Command::Bench(cmd) => bench::run(&cmd),
    };
    if let Err(e) = result {
        // One line, the whole cause chain, no backtrace: these are user-facing errors.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
