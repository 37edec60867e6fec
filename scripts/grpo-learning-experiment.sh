#!/usr/bin/env bash
# GRPO learning on CPU (issue 9's "what it must show" #3): a tiny model made from scratch is
# cold-start SFT'd on arithmetic traces half of which contain a slip (error_rate 0.5), then trained
# by GRPO with accuracy + format rewards, 3 seeds, against 3 control runs whose rewards are shuffled
# across the step's completions. Held-out accuracy: 200 held-out problems x 4 samples at T = 1.
#   scripts/grpo-learning-experiment.sh [RUN_DIR]      (default runs/grpo-experiment)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/grpo-experiment}
cargo build -q -p r1kit
r1kit=target/debug/r1kit
cfg=grpo/configs/experiment
q() { printf '"%s"' "$1"; }
if [ ! -f "$out/init/config.json" ]; then
  $r1kit init --shape qwen2 --hidden 192 --layers 4 --heads 6 --kv-heads 2 --intermediate 512 --vocab-size 320 \
    --template plain --tokenizer-dataset "arithmetic:n=2000,seed=1,digits=1,terms=3,ops=+-,traces=true" --out "$out/init"
fi
$r1kit sft --config $cfg/sft-noisy-arithmetic.toml --set model.path="$(q "$out/init")" --set train.out_dir="$(q "$out/sft")"
for seed in 1 2 3; do
  for control in false true; do
    tag=seed$seed$([ $control = true ] && echo -control || true)
    $r1kit grpo --config $cfg/grpo-noisy-arithmetic.toml --set model.path="$(q "$out/sft/final")" \
      --set run.out="$(q "$out/grpo-$tag")" --set run.seed=$seed --set algorithm.shuffle_rewards=$control 2>&1 \
      | grep -E "^grpo:" | sed "s/^/$tag: /"
  done
done
