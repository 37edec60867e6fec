#!/usr/bin/env bash
# Everything one GPU `device` call runs; $OUT (default /tmp/gpu-out) gets summary.log and logs.tgz
# (a device call returns at most 8 files). Needs the carried
# .gpu/ folder from scripts/build-cuda.sh. PyTorch references run in the same call, so figures
# are ratios. Each part has its own time limit and a failure does not stop the rest.
# EAGER=0 skips the rollout parts' eager-decode run; TRAIN_MB / TRAIN_MB_1_5B set the train parts' micro-batch (default 8 and 4: the fastest measured, Step 12).
#   scripts/gpu-session.sh [parts...]     parts: info parity gemm train train-1.5b train-micro train-ckpt train-8k rollout rollout-1.5b grpo-step
#                                          grpo-step-trl-nogc ab nccl dp dp-kill scale-train scale-grpo concurrent profile-train profile-rollout stash smol-grpo
#                                          kernels kernels-check grpo-step-r1kit softmax-units
#                                          (default: info parity gemm train)
# `stash` keeps the carried binary and .carry/ pieces (scripts/split-for-carry.sh) in /tmp/r1kit-keep,
# so that a later call on the still-warm machine finds them without carrying them again.
set -uo pipefail
cd "$(dirname "$0")/.."
final=${OUT:-/tmp/gpu-out}
out=/tmp/gpu-logs
mkdir -p "$out" "$final"
keep=/tmp/r1kit-keep
r1kit="bash .gpu/run.sh"  # the carried CUDA binary, else the one an earlier call of this machine stashed
[ -f .gpu/run.sh ] || r1kit="bash $keep/.gpu/run.sh"
r1kit=${R1KIT:-$r1kit}  # a dry run of the script's plumbing here: R1KIT=target/debug/r1kit DP_DEVICE=cpu scripts/gpu-session.sh dp
part() { # name, limit in seconds, command...
  local name=$1 limit=$2; shift 2
  echo "== $name" | tee -a "$out/summary.log"
  local t=$SECONDS
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  grep -vE "^\s*$" "$out/$name.log" | tail -n 40 | tee -a "$out/summary.log" > /dev/null
  echo "-- $name: exit $rc after $((SECONDS - t)) s" | tee -a "$out/summary.log"
  cp "$out/summary.log" "$final/summary.log"  # what finished comes back even if the call runs out of time
}
# peak GPU memory of a part, how busy the GPU was, and its SM clock and power while busy (do two
# GPUs side by side slow down?): nvidia-smi sampled every 100 ms beside it (every GPU's line)
with_memory() { # name, limit, command...
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used,utilization.gpu,clocks.sm,power.draw --format=csv,noheader,nounits -lms 100 > "$out/$name.mem" 2>/dev/null &
  local smi=$!
  part "$name" "$@"
  kill $smi 2>/dev/null
  echo "-- $name: peak GPU memory $(cut -d, -f1 "$out/$name.mem" | sort -n | tail -1) MiB (nvidia-smi, whole device);" \
    "GPU busy $(awk -F, '$2 > 0 { n++; s += $2 } END { printf "%.0f", n ? s / n : 0 }' "$out/$name.mem")% of the samples where it ran a kernel at all;" \
    "while busy: SM clock mean $(awk -F, '$2 > 0 { n++; s += $3; if (!m || $3 < m) m = $3 } END { printf "%.0f MHz (min %.0f)", n ? s / n : 0, m }' "$out/$name.mem")," \
    "power mean $(awk -F, '$2 > 0 { n++; s += $4; if ($4 > m) m = $4 } END { printf "%.0f W (max %.0f)", n ? s / n : 0, m }' "$out/$name.mem")" \
    | tee -a "$out/summary.log"
}
# dp and dp-kill's tiny model (r1kit init) and SFT / GRPO configs, in /tmp/r1kit-dp
dp_setup() {
  d=/tmp/r1kit-dp
  [ -f $d/grpo.toml ] && return
  rm -rf $d; mkdir -p $d
  part dp-init 60 $r1kit init --shape qwen2 --hidden 256 --layers 2 --heads 4 --kv-heads 2 --intermediate 512 --vocab-size 400 --template plain \
    --tokenizer-dataset "arithmetic:n=400,seed=1,digits=1,terms=3,traces=true" --out $d/init
  printf '[model]\npath = "%s"\ndevice = "%s"\n[data]\ntrain = "arithmetic:n=64,seed=2,digits=1,terms=3,traces=true"\ntemplate = { kind = "plain", format = "Q: {prompt}\\nA:" }\n[train]\nexamples_per_step = 16\nmax_steps = 2\nschedule = "constant"\nmicro_batch_tokens = 1024\nlog_every = 1\n[optimizer]\nlr = 1e-4\n[checkpoint]\nevery = 0\nkeep_last = 0\n' $d/init ${DP_DEVICE:-cuda} > $d/sft.toml
  printf '[model]\npath = "%s"\ndevice = "%s"\n[data]\ntrain = "arithmetic:n=64,seed=3,digits=1,terms=2?split=train"\nheldout = "arithmetic:n=4,seed=3,digits=1,terms=2?split=heldout"\ntemplate = { kind = "plain", format = "Q: {prompt}\\nA:" }\n[rollout]\nprompts_per_step = 8\ngroup = 4\nmax_new_tokens = 16\n[rewards]\nrewards = ["math", "language:en"]\n[algorithm]\nbeta = 0.05\nmu = 2\n[optimizer]\nlr = 1e-4\n[run]\nsteps = 2\neval_every = 0\n' $d/init ${DP_DEVICE:-cuda} > $d/grpo.toml
}
parts=${*:-info parity gemm train}
# assets are not in the working tree; the tokenizer the benches need may come packed, 2 MB instead of 11:
#   tar cJf .carry/qwen3-tokenizer.tar.xz -C assets/tokenizers qwen3   (then carry that file)
[ -d assets/tokenizers/qwen3 ] || [ ! -f .carry/qwen3-tokenizer.tar.xz ] || { mkdir -p assets/tokenizers && tar xJf .carry/qwen3-tokenizer.tar.xz -C assets/tokenizers; }
for p in $parts; do
  case $p in
    info) part info 30 bash -c 'nvidia-smi; python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__)"' ;;
    parity)
      part parity-f32 120 $r1kit check parity --device cuda
      part parity-bf16 90 $r1kit check parity --device cuda --compute bf16 --min-gap 0.5 --tolerance 0.6
      part sft-step 90 $r1kit check sft-step --device cuda
      [ "${DECODE_GRAPH:-1}" = 1 ] && part decode-graph 120 $r1kit check decode-graph --device cuda ;;
    gemm)
      part gemm 220 $r1kit bench gemm --device cuda --out "$out/gemm.json"
      part gemm-torch 90 python3 gpu/bench_gemm_torch.py ;;
    train)
      with_memory train-torch-0.5b 300 python3 scripts/bench_train_torch.py --shape qwen2.5-0.5b --batch 8 --seq 2048 --out "$out/train-torch-0.5b.json"
      [ -f .gpu/run.sh ] || [ -f $keep/.gpu/run.sh ] || continue  # PyTorch's figure alone, for an A/B call without .gpu
      with_memory train-0.5b-bf16-mb${TRAIN_MB:-8} 500 $r1kit bench train --device cuda --shape qwen2.5-0.5b --batch 8 --seq 2048 --micro-batch ${TRAIN_MB:-8} --compute bf16 --out "$out/train-0.5b-bf16-mb${TRAIN_MB:-8}.json" ;;
    train-1.5b)
      with_memory train-torch-1.5b 300 python3 scripts/bench_train_torch.py --shape qwen2.5-1.5b --batch 8 --seq 2048 --out "$out/train-torch-1.5b.json"
      with_memory train-1.5b-bf16-mb${TRAIN_MB_1_5B:-4} 500 $r1kit bench train --device cuda --shape qwen2.5-1.5b --batch 8 --seq 2048 --micro-batch ${TRAIN_MB_1_5B:-4} --compute bf16 --out "$out/train-1.5b-bf16-mb${TRAIN_MB_1_5B:-4}.json" ;;
    train-micro) # larger micro-batches: what a micro-step costs whatever its size (MICRO_BATCHES, default 2 4)
      for mb in ${MICRO_BATCHES:-2 4}; do
        with_memory train-0.5b-bf16-mb$mb 300 $r1kit bench train --device cuda --shape qwen2.5-0.5b --batch 8 --seq 2048 --micro-batch $mb --compute bf16 --out "$out/train-0.5b-bf16-mb$mb.json"
      done
      with_memory train-1.5b-bf16-mb2 300 $r1kit bench train --device cuda --shape qwen2.5-1.5b --batch 8 --seq 2048 --micro-batch 2 --compute bf16 --out "$out/train-1.5b-bf16-mb2.json" ;;
    train-ckpt) # gradient checkpointing (ops: burn's balanced strategy; blocks: each block recomputed): memory and speed against the plain run
      for mode in ops blocks; do
        for mb in 1 4; do
          with_memory train-0.5b-bf16-$mode-mb$mb 300 $r1kit bench train --device cuda --shape qwen2.5-0.5b --batch 8 --seq 2048 --micro-batch $mb --compute bf16 --checkpointing $mode --out "$out/train-0.5b-bf16-$mode-mb$mb.json"
        done
      done
      with_memory train-1.5b-8k-blocks 300 $r1kit bench train --device cuda --shape qwen2.5-1.5b --batch 1 --seq 8192 --compute bf16 --checkpointing blocks --out "$out/train-1.5b-8k-blocks.json" ;;
    train-8k) # goal 3: one 1.5B-shape sequence of 8,192 tokens (the attention keeps no S x S scores)
      with_memory train-torch-1.5b-8k 300 python3 scripts/bench_train_torch.py --shape qwen2.5-1.5b --batch 1 --seq 8192 --out "$out/train-torch-1.5b-8k.json"
      with_memory train-1.5b-8k-bf16 300 $r1kit bench train --device cuda --shape qwen2.5-1.5b --batch 1 --seq 8192 --compute bf16 --out "$out/train-1.5b-8k-bf16.json" ;;
    grpo-step) # issue 13 goal 2: 16 prompts x G 8, 512 tokens, 0.5B shape; TRL needs .whl carried (scripts/fetch-trl-wheels.sh)
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > "$out/pip.log" 2>&1
      # r1kit's step first: it takes a minute, TRL's (TRL_STEPS steps, the first a warm-up, 50-75 s each) the rest of the call
      with_memory grpo-step-r1kit 200 $r1kit bench grpo-step --device cuda --compute bf16 --warmup 1 --shape qwen2.5-0.5b --tokenizer assets/tokenizers/qwen3 --prompts 16 --group 8 --max-new-tokens 512
      with_memory grpo-step-trl ${TRL_LIMIT:-330} env PYTHONPATH=/tmp/site python3 scripts/bench_grpo_trl.py --shape qwen2.5-0.5b --tokenizer assets/tokenizers/qwen3 --steps ${TRL_STEPS:-3} --out "$out/grpo-step-trl.json"
      [ "${GRPO_BLOCKS:-1}" = 1 ] && with_memory grpo-step-r1kit-blocks 200 $r1kit bench grpo-step --device cuda --compute bf16 --warmup 1 --checkpointing blocks --shape qwen2.5-0.5b --tokenizer assets/tokenizers/qwen3 --prompts 16 --group 8 --max-new-tokens 512 ;;
    rollout|rollout-1.5b) # issue 13's setting: 64 prompts x G 8, 256 prompt + 512 new tokens, T 1
      shape=qwen2.5-0.5b; [ "$p" = rollout-1.5b ] && shape=qwen2.5-1.5b
      args="--prompts 64 --group 8 --prompt-tokens 256 --max-new-tokens 512"
      with_memory $p-torch 300 python3 scripts/bench_rollout_torch.py --shape $shape $args --out "$out/$p-torch.json"
      [ -f .gpu/run.sh ] || [ -f $keep/.gpu/run.sh ] || continue  # the reference alone, for an A/B call without .gpu
      with_memory $p-bf16 300 $r1kit bench rollout --device cuda --shape $shape $args --temperature 1 --compute bf16 --warmup 1 --out "$out/$p-bf16.json"
      [ "${EAGER:-1}" = 1 ] && with_memory $p-bf16-eager 300 $r1kit bench rollout --device cuda --shape $shape $args --temperature 1 --compute bf16 --mode eager --out "$out/$p-bf16-eager.json" ;;
    grpo-step-trl-nogc) # TRL without its default gradient checkpointing, where memory allows
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > "$out/pip.log" 2>&1
      with_memory grpo-step-trl-nogc 150 env PYTHONPATH=/tmp/site python3 scripts/bench_grpo_trl.py --shape qwen2.5-0.5b --tokenizer assets/tokenizers/qwen3 --no-gradient-checkpointing --out "$out/grpo-step-trl-nogc.json" ;;
    ab) # A/B of other builds against .gpu's: AB=".gpu-autotune .gpu-fusion-autotune" (FEATURES=... OUT_DIR=.gpu-X scripts/build-cuda.sh; carry them),
        # AB_PARTS a subset of "sft-step train grpo-step rollout decode-graph" (the default: all, in that order);
        # the rollout's shape AB_SHAPE (qwen2.5-0.5b) and prompts AB_PROMPTS (64, x G 8)
      for dir in ${AB:-.gpu-fusion}; do
        v=${dir#.gpu-}; bin="bash $dir/run.sh"
        for q in ${AB_PARTS:-sft-step train grpo-step rollout decode-graph}; do
          case $q in
            sft-step) part $v-sft-step 120 $bin check sft-step --device cuda ;;
            train) with_memory $v-train-0.5b-bf16 400 $bin bench train --device cuda --shape qwen2.5-0.5b --batch 8 --seq 2048 --micro-batch 1 --compute bf16 --out "$out/$v-train-0.5b-bf16.json" ;;
            grpo-step) with_memory $v-grpo-step 300 $bin bench grpo-step --device cuda --compute bf16 --warmup 1 --shape qwen2.5-0.5b --tokenizer assets/tokenizers/qwen3 --prompts 16 --group 8 --max-new-tokens 512 ;;
            rollout) with_memory $v-rollout-bf16-${AB_SHAPE:-qwen2.5-0.5b}-${AB_PROMPTS:-64} 300 $bin bench rollout --device cuda --shape ${AB_SHAPE:-qwen2.5-0.5b} --prompts ${AB_PROMPTS:-64} --group 8 --prompt-tokens 256 --max-new-tokens 512 --temperature 1 --compute bf16 --warmup 1 --out "$out/$v-rollout-bf16-${AB_SHAPE:-qwen2.5-0.5b}-${AB_PROMPTS:-64}.json" ;;
            decode-graph) part $v-decode-graph 150 $bin check decode-graph --device cuda ;;
          esac
        done
      done ;;
    kernels-check) # the fused kernels against burn's ops on the GPU, values then time, alone (the 0.5B shape)
      part kernels-check-0.5b 180 $r1kit check kernels --device cuda --shape qwen2.5-0.5b
      part kernels-bench-0.5b 180 $r1kit bench kernels --device cuda --shape qwen2.5-0.5b ;;
    softmax-units) # the attention softmax forward kernel with 32 to 256 units per row (R1KIT_SOFTMAX_UNITS): kernel time, then 0.5B training
      for u in ${SOFTMAX_UNITS:-32 64 128 256}; do  # SOFTMAX_BENCH=0 / SOFTMAX_TRAIN=0 leave out the kernel bench / training
        [ "${SOFTMAX_BENCH:-1}" = 1 ] && part kernels-bench-units-$u 120 env R1KIT_SOFTMAX_UNITS=$u $r1kit bench kernels --device cuda --shape qwen2.5-0.5b
        [ "${SOFTMAX_TRAIN:-1}" = 1 ] && with_memory train-0.5b-units-$u 120 env R1KIT_SOFTMAX_UNITS=$u $r1kit bench train --device cuda --shape qwen2.5-0.5b --batch 8 --seq 2048 --micro-batch 4 --compute bf16
      done ;;
    grpo-step-r1kit) # r1kit's GRPO step alone (grpo-step's setting, no TRL): r1kit against itself across calls
      with_memory grpo-step-r1kit 200 $r1kit bench grpo-step --device cuda --compute bf16 --warmup 1 --shape qwen2.5-0.5b --tokenizer assets/tokenizers/qwen3 --prompts 16 --group 8 --max-new-tokens 512 ;;
    kernels) # issue 12: the fused kernels (RMSNorm, RoPE, SwiGLU, attention softmax, AdamW) against burn's ops (values, gradients, time), then the
             # model with them against the model without (R1KIT_FUSED_KERNELS=0) and against PyTorch, and the checks with them on
      part kernels-check-0.5b 180 $r1kit check kernels --device cuda --shape qwen2.5-0.5b
      part kernels-bench-0.5b 180 $r1kit bench kernels --device cuda --shape qwen2.5-0.5b
      part kernels-bench-1.5b 180 $r1kit bench kernels --device cuda --shape qwen2.5-1.5b
      part kernels-parity-f32 120 $r1kit check parity --device cuda
      part kernels-parity-bf16 90 $r1kit check parity --device cuda --compute bf16 --min-gap 0.5 --tolerance 0.6
      part kernels-sft-step 90 $r1kit check sft-step --device cuda
      part kernels-decode-graph 120 $r1kit check decode-graph --device cuda
      with_memory train-torch-0.5b 300 python3 scripts/bench_train_torch.py --shape qwen2.5-0.5b --batch 8 --seq 2048 --out "$out/train-torch-0.5b.json"
      with_memory train-0.5b-bf16-fused 400 $r1kit bench train --device cuda --shape qwen2.5-0.5b --batch 8 --seq 2048 --micro-batch 1 --compute bf16 --out "$out/train-0.5b-bf16-fused.json"
      with_memory train-0.5b-bf16-unfused 400 env R1KIT_FUSED_KERNELS=0 $r1kit bench train --device cuda --shape qwen2.5-0.5b --batch 8 --seq 2048 --micro-batch 1 --compute bf16 --out "$out/train-0.5b-bf16-unfused.json" ;;
    nccl) # issue 14: NCCL's all-reduce on one GPU (one rank), and over two ranks where the machine has two GPUs
      part nccl-1 120 $r1kit check nccl --device cuda
      if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
        part nccl-2 180 env NCCL_DEBUG=INFO $r1kit launch --nproc 2 -- check nccl --device cuda
      fi ;;
    dp) # issue 14 goal 1: one step of SFT and of GRPO on 1 GPU and on 2 ranks (same global batch), weights compared
      dp_setup
      for c in f32 bf16; do
        part dp-sft-$c-1 150 $r1kit sft --config $d/sft.toml --set model.compute="\"$c\"" --set train.out_dir="\"$d/sft-$c-1\""
        part dp-sft-$c-2 150 $r1kit launch --nproc 2 -- sft --config $d/sft.toml --set model.compute="\"$c\"" --set train.out_dir="\"$d/sft-$c-2\""
        part dp-sft-$c-same 60 $r1kit check same-weights $d/sft-$c-1/final $d/sft-$c-2/final --from $d/init
        # the yardstick: one process again, its batch laid out otherwise (unpacked rows; other micro-batches): only the summation order changes
        part dp-sft-$c-1mb 150 $r1kit sft --config $d/sft.toml --set model.compute="\"$c\"" --set data.packing=false --set train.out_dir="\"$d/sft-$c-1mb\""
        part dp-sft-$c-same-1mb 60 $r1kit check same-weights $d/sft-$c-1/final $d/sft-$c-1mb/final
        part dp-grpo-$c-1 150 $r1kit grpo --config $d/grpo.toml --set model.compute="\"$c\"" --set run.out="\"$d/grpo-$c-1\""
        part dp-grpo-$c-2 150 $r1kit launch --nproc 2 -- grpo --config $d/grpo.toml --set model.compute="\"$c\"" --set run.out="\"$d/grpo-$c-2\""
        part dp-grpo-$c-same 60 $r1kit check same-weights $d/grpo-$c-1/final $d/grpo-$c-2/final --from $d/init
        part dp-grpo-$c-1mb 150 $r1kit grpo --config $d/grpo.toml --set model.compute="\"$c\"" --set optimizer.micro_batch_tokens=128 --set run.out="\"$d/grpo-$c-1mb\""
        part dp-grpo-$c-same-1mb 60 $r1kit check same-weights $d/grpo-$c-1/final $d/grpo-$c-1mb/final
        part dp-grpo-$c-metrics 10 bash -c "tail -n 2 $d/grpo-$c-1/metrics.jsonl $d/grpo-$c-2/metrics.jsonl | cut -c1-600"
      done ;;
    dp-kill) # issue 14 goal 4: rank 1 killed mid-run (SIGKILL); the launcher and rank 0 must end, naming it
      dp_setup
      part dp-kill 150 bash -c "rm -rf $d/kill; $r1kit launch --nproc 2 --grace 60 -- sft --config $d/sft.toml --set train.max_steps=100000 --set train.out_dir='\"$d/kill\"' > $out/dp-kill-run.log 2>&1 & l=\$!
        for i in \$(seq 600); do [ -s $d/kill/metrics.jsonl ] && break; sleep 0.2; done
        pid=\$(sed -n 's/^r1kit launch: rank 1 of 2 is pid //p' $out/dp-kill-run.log); echo \"steps done: \$(wc -l < $d/kill/metrics.jsonl); killing rank 1 (pid \$pid)\"
        t=\$EPOCHREALTIME; kill -9 \$pid; wait \$l; rc=\$?; echo \"launcher exit \$rc after \$(awk \"BEGIN { print \$EPOCHREALTIME - \$t }\") s\"
        grep -E 'rank 1|lost|killing|Error|error' $out/dp-kill-run.log | tail -n 12" ;;
    scale-train) # issue 14 goal 2: training tokens/s, 1 GPU vs 2 ranks (each rank SCALE_BATCH (8) x 2048 tokens in micro-batches of
                 # SCALE_MB (1; SCALE_MB_1_5B for 1.5B) sequences), SCALE_SHAPES (qwen2.5-0.5b qwen2.5-1.5b)
      for shape in ${SCALE_SHAPES:-qwen2.5-0.5b qwen2.5-1.5b}; do
        mb=${SCALE_MB:-1}; [ "$shape" = qwen2.5-1.5b ] && mb=${SCALE_MB_1_5B:-$mb}
        b=${SCALE_BATCH:-8}; v=$shape-b$b-mb$mb
        args="bench train --device cuda --shape $shape --batch $b --seq 2048 --micro-batch $mb --compute bf16 --steps ${SCALE_STEPS:-5}"
        [ "${SCALE_ONE:-1}" = 1 ] && with_memory scale-train-$v-1 300 $r1kit $args --out "$out/scale-train-$v-1.json"  # SCALE_ONE=0: the 1-GPU run was another part's
        with_memory scale-train-$v-2 300 $r1kit launch --nproc 2 -- $args --out "$out/scale-train-$v-2.json"
      done ;;
    scale-grpo) # issue 14 goal 2: a GRPO step (G 8, 512 tokens; SCALE_GRPO_SHAPES, default qwen2.5-0.5b), 1 GPU with 16 prompts vs 2 ranks with 32 (8 x 2 per rank: the same work per GPU) and with 16
      for shape in ${SCALE_GRPO_SHAPES:-qwen2.5-0.5b}; do
        args="bench grpo-step --device cuda --compute bf16 --warmup 1 --shape $shape --tokenizer assets/tokenizers/qwen3 --group 8 --max-new-tokens 512"
        with_memory scale-grpo-$shape-1 300 $r1kit $args --prompts 16
        with_memory scale-grpo-$shape-2 300 $r1kit launch --nproc 2 -- $args --prompts 32
        [ "${SCALE_STRONG:-1}" = 1 ] && with_memory scale-grpo-$shape-2-strong 300 $r1kit launch --nproc 2 -- $args --prompts 16
      done ;;
    scale-pinned) # issue 14: is the 2-rank slowdown the host's? SCALE_SHAPE (qwen2.5-1.5b) in micro-batches of SCALE_MB (2): one GPU alone,
                  # two ranks by `launch`, then two ranks started as an external launcher would, each pinned (taskset) to its GPU's
                  # NUMA node's CPUs, or to one half of the CPUs where both GPUs share a node
      shape=${SCALE_SHAPE:-qwen2.5-1.5b}
      args="bench train --device cuda --shape $shape --batch 8 --seq 2048 --micro-batch ${SCALE_MB:-2} --compute bf16 --steps ${SCALE_STEPS:-5}"
      cpus=()
      for g in 0 1; do
        bus=$(nvidia-smi -i $g --query-gpu=pci.bus_id --format=csv,noheader | tr 'A-F' 'a-f' | sed 's/^0000//')
        node=$(cat /sys/bus/pci/devices/$bus/numa_node 2>/dev/null || echo -1)
        cpus[$g]=$( [ "$node" -ge 0 ] 2>/dev/null && cat /sys/devices/system/node/node$node/cpulist || echo -)
      done
      n=$(nproc)
      if [ "${cpus[0]}" = - ] || [ "${cpus[0]}" = "${cpus[1]}" ]; then cpus=(0-$((n / 2 - 1)) $((n / 2))-$((n - 1))); fi
      echo "== scale-pinned: GPU 0 -> CPUs ${cpus[0]}, GPU 1 -> CPUs ${cpus[1]} ($n online)" | tee -a "$out/summary.log"
      $r1kit --version > /dev/null 2>&1  # unpacked once, before two processes start it
      with_memory scale-pinned-1 300 $r1kit $args
      with_memory scale-pinned-launch 300 $r1kit launch --nproc 2 -- $args
      port=$((20000 + RANDOM % 20000))
      rank() { echo "RANK=$1 WORLD_SIZE=2 LOCAL_RANK=$1 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port NCCL_NVLS_ENABLE=0 taskset -c ${cpus[$1]} $r1kit $args > $out/scale-pinned-2-rank$1.log 2>&1"; }
      with_memory scale-pinned-2 300 bash -c "$(rank 0) & $(rank 1) & wait; cat $out/scale-pinned-2-rank0.log $out/scale-pinned-2-rank1.log" ;;
    concurrent) # two independent 1-GPU training runs at once, no NCCL: how much one process slows the other (the host they
                # share, the GPUs' power); CONCURRENT_SHAPE (qwen2.5-0.5b) in micro-batches of CONCURRENT_MB (1) sequences
      shape=${CONCURRENT_SHAPE:-qwen2.5-0.5b}
      args="bench train --device cuda --shape $shape --batch 8 --seq 2048 --micro-batch ${CONCURRENT_MB:-1} --compute bf16 --steps ${SCALE_STEPS:-5}"
      $r1kit --version > /dev/null 2>&1  # unpacked once, before two processes start it
      with_memory concurrent-train-$shape 300 bash -c "CUDA_VISIBLE_DEVICES=1 $r1kit $args > $out/concurrent-gpu1.log 2>&1 & CUDA_VISIBLE_DEVICES=0 $r1kit $args; wait; cat $out/concurrent-gpu1.log" ;;
    profile-train) # where a 0.5B training step's GPU time goes, per kernel (ncu: the machine has no nsys): a warm-up
                   # step and a timed one (PROFILE_BATCH sequences, default 1, in one micro-batch), the summary of the timed
                   # one alone (after the warm-up's AdamW kernels; autotune's trial kernels run in the warm-up only).
                   # NCU_CACHE=none keeps the caches between kernels (ncu flushes them by default: every kernel then reads
                   # from HBM, slower than in a plain run)
      pb=${PROFILE_BATCH:-1}
      part profile-train-ncu 400 bash -c "$(command -v ncu || echo /usr/local/cuda/bin/ncu) --csv --cache-control ${NCU_CACHE:-all} --metrics gpu__time_duration.sum --launch-skip ${SKIP:-0} --launch-count ${COUNT:-40000} $r1kit bench train --device cuda --shape qwen2.5-0.5b --batch $pb --seq 2048 --micro-batch $pb --warmup 1 --steps 1 --compute bf16 > $out/ncu-train.csv 2>&1"
      part profile-train 60 python3 scripts/ncu_summary.py "$out/ncu-train.csv" 60 --step adamw_update ;;
    profile-rollout) # where a captured decode step's GPU time goes (issue 13's batch: 64 prompts x G 8, 256 prompt tokens; PROFILE_SHAPE,
                     # default qwen2.5-1.5b; PROFILE_PROMPTS, PROFILE_PROMPT_TOKENS): a few steps under ncu, the last step summed
                     # (scripts/ncu_summary.py --last-period)
      shape=${PROFILE_SHAPE:-qwen2.5-1.5b}
      part profile-rollout-ncu 400 bash -c "$(command -v ncu || echo /usr/local/cuda/bin/ncu) --csv --metrics gpu__time_duration.sum $r1kit bench rollout --device cuda --shape $shape --prompts ${PROFILE_PROMPTS:-64} --group 8 --prompt-tokens ${PROFILE_PROMPT_TOKENS:-256} --max-new-tokens ${PROFILE_STEPS:-5} --temperature 1 --compute bf16 > $out/ncu-rollout.csv 2>&1"
      part profile-rollout 60 python3 scripts/ncu_summary.py "$out/ncu-rollout.csv" 60 --last-period ;;
    stash)
      part stash 60 bash -c "mkdir -p $keep && { [ ! -d .gpu ] || cp -r .gpu $keep/; } && { [ ! -d .carry ] || find .carry -type f -exec cp {} $keep/ \\; ; } && ls -la $keep" ;;
    smol-grpo) # issue 13 goal 4: SmolLM2-135M (GGUF, carried in pieces) learns arithmetic by GRPO; a rerun resumes
      gguf=$keep/SmolLM2-135M-Instruct.Q4_1.gguf
      part smol-join 60 bash -c "[ -f $gguf ] || { cat $gguf.[0-9] > $gguf.tmp && mv $gguf.tmp $gguf; }; echo \"\$(cat $gguf.sha256)  $gguf\" | sha256sum -c"
      with_memory smol-grpo "${SMOL_SECONDS:-480}" $r1kit grpo --config grpo/configs/smollm2-arithmetic-cuda.toml \
        --set model.path="\"$gguf\"" --set run.out="\"$keep/smol-run\""
      [ -d $keep/smol-run ] && tar czf "$final/smol-run.tgz" -C $keep --exclude checkpoints --exclude final smol-run ;;
    *) echo "unknown part $p" ;;
  esac
done
cp "$out/summary.log" "$final/summary.log"
tar czf "$final/logs.tgz" -C "$out" .
