#!/usr/bin/env python3
"""Sum ncu's per-kernel GPU time (gpu__time_duration.sum, from `ncu --csv --metrics ...`) by kernel
name: where a step's GPU time goes, on a machine without nsys.

Usage: ncu_summary.py CSV [TOP] [--step MARKER | --last-period]

With --step, only the second optimizer step is summed: the launches after the first run of kernels
whose name contains MARKER (the warm-up step's optimizer, e.g. adamw_update) up to the end of the
second run (the timed step's). So a profile of `bench train --warmup 1 --steps 1` leaves out the
warm-up step and autotune's trial kernels, which run in the first step only.

With --last-period, only the last repetition of the launch sequence is summed: the shortest tail
that the launches before it repeat exactly (by kernel name and grid). A profile of a few decode
steps (captured and replayed, each step the same launches) so gives one step, without the prefill
or the capture's warm-up runs."""
import csv, sys
from collections import defaultdict

last_period = "--last-period" in sys.argv
args = [a for a in sys.argv[1:] if a not in ("--step", "--last-period")]
marker = sys.argv[sys.argv.index("--step") + 1] if "--step" in sys.argv else None
if marker:
    args.remove(marker)
path, top = args[0], int(args[1]) if len(args) > 1 else 40
rows = [l for l in open(path, errors="replace") if l.startswith('"')]  # ncu and the app share the stream
scale = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3, "s": 1e6, "second": 1e6}
records = [r for r in csv.DictReader(rows) if r.get("Metric Name") == "gpu__time_duration.sum"]
launches = [(r["Kernel Name"], float(r["Metric Value"].replace(",", "")) * scale[r["Metric Unit"]]) for r in records]

if last_period:
    keys = [(r["Kernel Name"], r.get("Grid Size", "")) for r in records]
    period = next((p for p in range(1, len(keys) // 2 + 1) if keys[-p:] == keys[-2 * p:-p]), None)
    if period is None:
        sys.exit(f"--last-period: the last launches of {len(keys)} do not repeat")
    repeats = 1
    while len(keys) >= (repeats + 1) * period and keys[len(keys) - (repeats + 1) * period:len(keys) - repeats * period] == keys[-period:]:
        repeats += 1
    print(f"the last period: {period} launches, repeated {repeats} times at the end of {len(keys)}")
    launches = launches[-period:]

if marker:
    # runs of consecutive marker launches (other kernels between them within a run are allowed
    # when fewer than 8: the optimizer's own small ops)
    runs, start, last = [], None, None
    for i, (name, _) in enumerate(launches):
        if marker in name:
            if start is None or i - last > 8:
                if start is not None:
                    runs.append((start, last))
                start = i
            last = i
    if start is not None:
        runs.append((start, last))
    if len(runs) < 2:
        sys.exit(f"--step {marker}: {len(runs)} run(s) of it in {len(launches)} launches; the profile needs two steps (a warm-up and a timed one)")
    step = launches[runs[0][1] + 1: runs[1][1] + 1]
    optimizer = launches[runs[1][0]: runs[1][1] + 1]
    before = launches[runs[0][1] + 1: runs[1][0]]
    print(f"the timed step: {len(before)} kernels, {sum(t for _, t in before) / 1e3:.1f} ms before its optimizer "
          f"(forward, backward, gradient clip); the optimizer {len(optimizer)} kernels, {sum(t for _, t in optimizer) / 1e3:.1f} ms")
    launches = step

total, count = defaultdict(float), defaultdict(int)
for name, us in launches:
    total[name[:90]] += us
    count[name[:90]] += 1
all_us = sum(total.values())
print(f"{len(launches)} kernels, {all_us / 1e3:.1f} ms of GPU time")
print(f"{'ms':>9} {'share':>6} {'launches':>8} {'us each':>8}  kernel")
for name, us in sorted(total.items(), key=lambda kv: -kv[1])[:top]:
    print(f"{us / 1e3:9.2f} {100 * us / all_us:5.1f}% {count[name]:8d} {us / count[name]:8.1f}  {name}")
