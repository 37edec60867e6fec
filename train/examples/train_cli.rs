//! The train crate's subcommands as a standalone binary, until the `r1kit` CLI wires them:
//! `cargo run -p r1kit-train --example train_cli -- sft --config train/configs/sft-arithmetic.toml`.

use clap::Parser;

#[derive(Parser)]
enum Cli {
    Init(r1kit_train::InitArgs),
    Sft(r1kit_train::SftArgs),
    Eval(r1kit_train::EvalArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse() {
        Cli::Init(a) => r1kit_train::run_init(&a),
        Cli::Sft(a) => r1kit_train::run_sft(&a),
        Cli::Eval(a) => r1kit_train::run_eval(&a),
    }
}
