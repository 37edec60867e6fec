#!/usr/bin/env bash
# The main job (README): on this machine's CPU, with nothing downloaded, a tiny Qwen2-shaped model
# and its own BPE tokenizer are made from scratch, cold-start SFT'd on generated arithmetic
# reasoning traces (<think> steps </think><answer>...</answer>), then trained by GRPO with
# accuracy + format rewards. Each stage prints its held-out accuracy.
#   scripts/demo.sh [RUN_DIR]        (default runs/demo; a rerun resumes each stage)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/demo}
cargo build -q -p r1kit
r1kit=target/debug/r1kit

if [ ! -f "$out/init/config.json" ]; then
  $r1kit init --shape qwen2 --hidden 192 --layers 4 --heads 6 --kv-heads 2 --intermediate 512 \
    --vocab-size 512 --template plain \
    --tokenizer-dataset "arithmetic:n=2000,seed=1,digits=2,terms=2,traces=true" --out "$out/init"
fi
echo "== cold-start SFT"
$r1kit sft --config train/configs/sft-arithmetic.toml --set model.path="\"$out/init\"" --set train.out_dir="\"$out/sft\""
echo "== GRPO"
$r1kit grpo --config grpo/configs/r1zero-arithmetic.toml --set model.path="\"$out/sft/final\"" --set run.out="\"$out/grpo\""
