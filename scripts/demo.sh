#!/usr/bin/env bash
# The main job (README), kept as a wrapper of the recipe: on this machine's CPU, with nothing
# downloaded, recipes/r1-tiny.toml makes a tiny Qwen2 and its own tokenizer, cold-start SFT ->
# GRPO -> rejection sampling + SFT -> GRPO -> distillation, with held-out accuracy after each
# stage; summary.json and report.html in the run directory.
#   scripts/demo.sh [RUN_DIR]        (default runs/r1-tiny; a rerun resumes)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run -q -p r1kit -- run recipes/r1-tiny.toml --out "${1:-runs/r1-tiny}"
