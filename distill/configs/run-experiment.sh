#!/usr/bin/env bash
# The CPU distillation experiment: a student (qwen2, hidden 64, 2 layers, the teacher's
# tokenizer) trained 300 steps x 32 examples by SFT on the generator's traces (baseline), trace
# distillation, logit KD and on-policy distillation, for seeds 1 and 2; the teacher comes from
# teacher-sft.toml. Held-out accuracy: 200 unseen problems, greedy.
#   bash distill/configs/run-experiment.sh [ARM ...]    (arms: sft traces kd op sftop; default all)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-/tmp/r1kit-runs/distill}
CLI=(cargo run -q -p r1kit-distill --example distill_cli --)
ARMS=${*:-sft traces kd op sftop}
for seed in 1 2; do
  init=$RUNS/student-init-$seed
  [ -d "$init" ] || "${CLI[@]}" init --shape qwen2 --hidden 64 --layers 2 --heads 4 --kv-heads 2 \
      --intermediate 192 --vocab-size 263 --tokenizer "$RUNS/teacher/final" --seed "$seed" --out "$init"
  common=(--set "train.seed=$seed")
  for arm in $ARMS; do
    out=$RUNS/$arm-$seed
    [ -f "$out/final/model.safetensors" ] && continue
    case $arm in
      sft) "${CLI[@]}" sft --config distill/configs/student-sft.toml --set "model.path=\"$init\"" "${common[@]}" --set "train.out_dir=\"$out\"" ;;
      traces) "${CLI[@]}" distill --config distill/configs/traces.toml --set "student.path=\"$init\"" "${common[@]}" --set "train.out_dir=\"$out\"" ;;
      kd) "${CLI[@]}" distill --config distill/configs/logit-kd.toml --set "student.path=\"$init\"" "${common[@]}" --set "train.out_dir=\"$out\"" ;;
      op) "${CLI[@]}" distill --config distill/configs/on-policy.toml --set "student.path=\"$init\"" "${common[@]}" --set "train.out_dir=\"$out\"" ;;
      # warm start: 150 SFT steps on the generator's traces, then 150 on-policy steps
      sftop) "${CLI[@]}" sft --config distill/configs/student-sft.toml --set "model.path=\"$init\"" "${common[@]}" --set train.max_steps=150 --set "train.out_dir=\"$RUNS/sft150-$seed\""
             "${CLI[@]}" distill --config distill/configs/on-policy.toml --set "student.path=\"$RUNS/sft150-$seed/final\"" "${common[@]}" --set train.max_steps=150 --set "train.out_dir=\"$out\"" ;;
    esac 2>&1 | grep -v '^step ' | tee "$RUNS/$arm-$seed.log" >&2
  done
done
# summary: final held-out accuracy and trained tokens per arm and seed (sftop: its on-policy half;
# add sft150-SEED's tokens)
for arm in $ARMS; do
  for seed in 1 2; do
    python3 - "$RUNS/$arm-$seed/metrics.jsonl" "$arm" "$seed" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
tokens = sum(l.get("loss_tokens", 0) for l in lines)
ev = lines[-1].get("eval", {})
print(f"{sys.argv[2]:7s} seed {sys.argv[3]}: steps {lines[-1]['step']}, trained tokens {tokens}, held-out accuracy {ev.get('accuracy', float('nan')):.3f}, format {ev.get('format_rate') or 0:.2f}")
PY
  done
done
