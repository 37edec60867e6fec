#!/usr/bin/env python3
"""PyTorch reference for `r1kit bench train`: the same shape with random weights, random tokens,
forward + backward + fused AdamW, transformers with SDPA and autocast bf16 (f32 master weights);
with --device cpu, f32 throughout and PyTorch's default AdamW, as `r1kit bench train --device cpu`.
Prints one line in the same form, so one run gives ratios.
  python3 scripts/bench_train_torch.py --shape qwen2.5-0.5b --batch 8 --seq 2048 [--device cpu --threads N]"""
import argparse, json, time

import torch
from transformers import AutoModelForCausalLM

from torch_shapes import SHAPES

PEAK_FLOPS = 790e12

p = argparse.ArgumentParser()
p.add_argument("--shape", default="qwen2.5-0.5b")
p.add_argument("--batch", type=int, default=8)
p.add_argument("--seq", type=int, default=2048)
p.add_argument("--micro-batch", type=int)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--checkpointing", action="store_true")
p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
p.add_argument("--threads", type=int, help="CPU threads (default: PyTorch's choice)")
p.add_argument("--out")
a = p.parse_args()
cuda = a.device == "cuda"
sync = torch.cuda.synchronize if cuda else (lambda: None)
if a.threads:
    torch.set_num_threads(a.threads)

cls, kw = SHAPES[a.shape]
config = cls(**kw, max_position_embeddings=max(32768, a.seq), attn_implementation="sdpa")
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32).to(a.device)
if a.checkpointing:
    model.gradient_checkpointing_enable()
model.train()
params = sum(p.numel() for p in model.parameters())
opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01, fused=cuda)
mb = a.micro_batch or a.batch
tokens = torch.randint(0, kw["vocab_size"], (a.batch, a.seq), device=a.device)
times, loss_value = [], float("nan")
cuda and torch.cuda.reset_peak_memory_stats()
for step in range(a.warmup + a.steps):
    sync()
    t = time.perf_counter()
    total = 0.0
    for i in range(0, a.batch, mb):
        chunk = tokens[i:i + mb]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            out = model(input_ids=chunk, labels=chunk)
        loss = out.loss * chunk.shape[0] / a.batch
        loss.backward()
        total += loss.detach()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    sync()
    if step >= a.warmup:
        times.append(time.perf_counter() - t)
    loss_value = float(total)
mean = sum(times) / len(times)
tps = a.batch * a.seq / mean
flops = 6 * params + 12 * kw["num_hidden_layers"] * kw["hidden_size"] * a.seq
mfu = flops * tps / PEAK_FLOPS
peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
print(f"torch train {a.shape}: {params} parameters, {a.batch} x {a.seq} tokens in {a.batch // mb} micro-batches; "
      f"step {mean:.3f} s (steps {[round(x, 3) for x in times]}); {tps:.0f} tokens/s; MFU {100 * mfu:.1f}% of 790 TFLOP/s; "
      f"loss {loss_value:.3f}; peak memory {peak:.1f} GiB (torch {torch.__version__})")
if a.out:
    json.dump(dict(parameters=params, batch=a.batch, seq=a.seq, step_seconds=times, tokens_per_s=tps, mfu=mfu,
                   loss=loss_value, peak_gib=peak), open(a.out, "w"), indent=1)
