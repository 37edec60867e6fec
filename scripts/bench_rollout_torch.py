#!/usr/bin/env python3
"""PyTorch reference for `r1kit bench rollout`: HF transformers `generate` (SDPA, bf16 weights) on the
same shape with random weights, the same batch (prompts x G rows), prompt and new-token lengths,
sampling at temperature 1 with no top-k/top-p, every row running its full length. Also measures the
GPU's device-to-device copy bandwidth and prints the decode roofline: per step, every weight byte
(bf16) and every cached key/value byte (bf16, at the mean cache length) read once.
  python3 scripts/bench_rollout_torch.py --shape qwen2.5-0.5b --prompts 64 --group 8 --prompt-tokens 256 --max-new-tokens 512"""
import argparse, json, time

import torch
from transformers import AutoModelForCausalLM

from torch_shapes import SHAPES

p = argparse.ArgumentParser()
p.add_argument("--shape", default="qwen2.5-0.5b")
p.add_argument("--prompts", type=int, default=64)
p.add_argument("--group", type=int, default=8)
p.add_argument("--prompt-tokens", type=int, default=256)
p.add_argument("--max-new-tokens", type=int, default=512)
p.add_argument("--out")
a = p.parse_args()

cls, kw = SHAPES[a.shape]
config = cls(**kw, max_position_embeddings=32768, attn_implementation="sdpa")
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.bfloat16).cuda().eval()
params = sum(p.numel() for p in model.parameters())
rows = a.prompts * a.group
prompts = torch.randint(0, kw["vocab_size"], (a.prompts, a.prompt_tokens), device="cuda")


def generate(new_tokens):
    with torch.no_grad():
        return model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), do_sample=True, temperature=1.0,
                              top_k=0, top_p=1.0, num_return_sequences=a.group, max_new_tokens=new_tokens,
                              min_new_tokens=new_tokens, pad_token_id=0)


generate(8)  # warm-up: kernels, allocator
torch.cuda.synchronize()
torch.cuda.reset_peak_memory_stats()
t = time.perf_counter()
out = generate(a.max_new_tokens)
torch.cuda.synchronize()
elapsed = time.perf_counter() - t
generated = out.shape[0] * (out.shape[1] - a.prompt_tokens)
tps = generated / elapsed
peak = torch.cuda.max_memory_allocated() / 2**30

# Copy bandwidth: a 2 GiB device-to-device copy reads and writes every byte.
src = torch.empty(2**30, dtype=torch.bfloat16, device="cuda")
dst = torch.empty_like(src)
for _ in range(3):
    dst.copy_(src)
torch.cuda.synchronize()
t = time.perf_counter()
n = 10
for _ in range(n):
    dst.copy_(src)
torch.cuda.synchronize()
bandwidth = 2 * src.numel() * 2 * n / (time.perf_counter() - t)
del src, dst

head_dim = kw["hidden_size"] // kw["num_attention_heads"]
kv_bytes_per_slot = 2 * kw["num_hidden_layers"] * kw["num_key_value_heads"] * head_dim * 2
mean_cache = a.prompt_tokens + a.max_new_tokens / 2
step_bytes = params * 2 + rows * mean_cache * kv_bytes_per_slot
roofline = rows / (step_bytes / bandwidth)
print(f"torch rollout {a.shape}: {a.prompts} prompts x G={a.group} ({rows} rows), {a.prompt_tokens} prompt + "
      f"{a.max_new_tokens} new tokens, T=1: {tps:.1f} generated tokens/s, {elapsed / a.max_new_tokens * 1e3:.1f} ms per decode step "
      f"(prefill included), {elapsed:.2f} s total; peak memory {peak:.1f} GiB (torch {torch.__version__})")
print(f"roofline {a.shape}: copy bandwidth {bandwidth / 1e12:.2f} TB/s; per step {params * 2 / 1e9:.2f} GB bf16 weights + "
      f"{rows * mean_cache * kv_bytes_per_slot / 1e9:.2f} GB bf16 KV at mean length {mean_cache:.0f} -> {roofline:.0f} tokens/s")
if a.out:
    json.dump(dict(parameters=params, rows=rows, tokens_per_s=tps, seconds=elapsed, peak_gib=peak,
                   copy_bandwidth=bandwidth, roofline_tokens_per_s=roofline), open(a.out, "w"), indent=1)
