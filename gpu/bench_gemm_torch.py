#!/usr/bin/env python3
"""PyTorch's bf16 matmul on the speed shapes of `r1kit bench gemm` (gpu/src/bench.rs, SPEED_SHAPES;
a CPU test checks that the two lists agree), timed the same way: TFLOP/s = 2mkn / time, the median
of 5 batches of back-to-back calls with one synchronisation per batch, at most two results alive.

    python3 gpu/bench_gemm_torch.py [--out FILE.json] [--compare R1KIT_REPORT.json]

With --compare (the --out file of `r1kit bench gemm`), the table gains the cuBLASLt and burn
columns and the ratios.
"""
import argparse
import json
import time

import torch

SHAPES = [
    ("0.5b.qkv", 16384, 896, 1152, False, False),
    ("0.5b.o", 16384, 896, 896, False, False),
    ("0.5b.up", 16384, 896, 4864, False, False),
    ("0.5b.down", 16384, 4864, 896, False, False),
    ("0.5b.lm_head", 16384, 896, 151936, False, False),
    ("0.5b.down.dx", 16384, 896, 4864, False, True),
    ("0.5b.up.dw", 896, 16384, 4864, True, False),
    ("0.5b.lm_head.dx", 16384, 151936, 896, False, True),
    ("1.5b.qkv", 16384, 1536, 2048, False, False),
    ("1.5b.o", 16384, 1536, 1536, False, False),
    ("1.5b.up", 16384, 1536, 8960, False, False),
    ("1.5b.down", 16384, 8960, 1536, False, False),
    ("1.5b.lm_head", 16384, 1536, 151936, False, False),
    ("1.5b.down.dx", 16384, 1536, 8960, False, True),
    ("1.5b.up.dw", 1536, 16384, 8960, True, False),
]


def time_per_call(f, batch_seconds=0.25):
    for _ in range(2):
        c = f()
        torch.cuda.synchronize()
        del c
    t = time.perf_counter()
    c = f()
    torch.cuda.synchronize()
    del c
    estimate = max(time.perf_counter() - t, 1e-6)
    iters = min(max(int(batch_seconds / estimate), 3), 500)
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        keep = []
        for _ in range(iters):
            keep.append(f())
            if len(keep) > 2:
                keep.pop(0)
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - t) / iters)
        del keep
    samples.sort()
    return samples[len(samples) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="write the results as JSON")
    ap.add_argument("--compare", help="the --out report of `r1kit bench gemm`")
    args = ap.parse_args()
    dev = torch.device("cuda")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(dev)}, "
          f"allow_bf16_reduced_precision_reduction={torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction}")
    r1kit = {}
    if args.compare:
        with open(args.compare) as f:
            for row in json.load(f).get("speed", []):
                r1kit[row["name"]] = row
    head = f"{'shape':<16} {'m':>6} {'k':>6} {'n':>6} {'op':>2}  {'torch':>9}"
    if r1kit:
        head += f" {'cuBLASLt':>9} {'burn':>9} {'lt/torch':>8} {'burn/torch':>10}"
    print("bf16, TFLOP/s = 2mkn / time (median of 5 batches, one sync per batch)")
    print(head)
    rows = []
    torch.manual_seed(0)
    for name, m, k, n, ta, tb in SHAPES:
        a = torch.randn((k, m) if ta else (m, k), device=dev, dtype=torch.bfloat16)
        b = torch.randn((n, k) if tb else (k, n), device=dev, dtype=torch.bfloat16)
        a_op = a.t() if ta else a
        b_op = b.t() if tb else b
        sec = time_per_call(lambda: torch.matmul(a_op, b_op))
        tflops = 2.0 * m * k * n / sec / 1e12
        line = f"{name:<16} {m:>6} {k:>6} {n:>6} {'T' if ta else 'N'}{'T' if tb else 'N'}  {tflops:>9.1f}"
        row = {"name": name, "m": m, "k": k, "n": n, "transpose_a": ta, "transpose_b": tb, "torch_ms": sec * 1e3,
               "torch_tflops": tflops}
        other = r1kit.get(name)
        if other and "cublaslt_tflops" in other:
            lt, burn = other["cublaslt_tflops"], other["burn_tflops"]
            line += f" {lt:>9.1f} {burn:>9.1f} {lt / tflops:>8.2f} {burn / tflops:>10.2f}"
            row.update(cublaslt_tflops=lt, burn_tflops=burn)
        print(line, flush=True)
        rows.append(row)
        del a, b, a_op, b_op
        torch.cuda.empty_cache()
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"torch": torch.__version__, "device": torch.cuda.get_device_name(dev), "speed": rows}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
