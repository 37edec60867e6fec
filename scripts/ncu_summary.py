#!/usr/bin/env python3
"""Sum ncu's per-kernel GPU time (gpu__time_duration.sum, from `ncu --csv --metrics ...`) by kernel
name: where a step's GPU time goes, on a machine without nsys. Usage: ncu_summary.py CSV [TOP]"""
import csv, sys
from collections import defaultdict

path, top = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40
rows = [l for l in open(path, errors="replace") if l.startswith('"')]  # ncu and the app share the stream
total, count, launches = defaultdict(float), defaultdict(int), 0
scale = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3, "s": 1e6, "second": 1e6}
for r in csv.DictReader(rows):
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    name = r["Kernel Name"][:90]
    total[name] += float(r["Metric Value"].replace(",", "")) * scale[r["Metric Unit"]]
    count[name] += 1
    launches += 1
all_us = sum(total.values())
print(f"{launches} kernels, {all_us / 1e3:.1f} ms of GPU time")
print(f"{'ms':>9} {'share':>6} {'launches':>8} {'us each':>8}  kernel")
for name, us in sorted(total.items(), key=lambda kv: -kv[1])[:top]:
    print(f"{us / 1e3:9.2f} {100 * us / all_us:5.1f}% {count[name]:8d} {us / count[name]:8.1f}  {name}")
