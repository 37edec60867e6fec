//! The subcommands the distillation experiments need, until the `r1kit` binary wires `reject`
//! and `distill`: `cargo run --release -p r1kit-distill --example distill_cli -- <command> ...`.

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Init(r1kit_train::InitArgs),
    Sft(r1kit_train::SftArgs),
    Eval(r1kit_train::EvalArgs),
    Reject(r1kit_distill::RejectArgs),
    Distill(r1kit_distill::DistillArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Init(a) => r1kit_train::run_init(&a),
        Command::Sft(a) => r1kit_train::run_sft(&a),
        Command::Eval(a) => r1kit_train::run_eval(&a),
        Command::Reject(a) => r1kit_distill::run_reject(&a),
        Command::Distill(a) => r1kit_distill::run_distill(&a),
    }
}
