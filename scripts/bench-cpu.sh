#!/usr/bin/env bash
# CPU training throughput beside PyTorch in the same run: `r1kit bench train --device cpu` and
# scripts/bench_train_torch.py --device cpu (f32, the same shapes, random weights and tokens),
# then the ratio. PyTorch comes from PyPI into the git-ignored .venv-bench/ on first use (large).
#   scripts/bench-cpu.sh [PYTHON]     (PYTHON: an interpreter that already has torch + transformers)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-}
if [ -z "$python" ]; then
  if [ ! -x .venv-bench/bin/python ]; then
    python3 -m venv .venv-bench
    .venv-bench/bin/pip install -q torch "transformers>=5"
  fi
  python=.venv-bench/bin/python
fi
case $python in
  */*) python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")" ;;
  *) python=$(command -v "$python") ;;
esac
cargo build -q --release -p r1kit
ratio() { python3 -c "import json,sys; a,b=(json.load(open(f)) for f in sys.argv[1:]); print(f'  ratio r1kit / torch: {a[\"tokens_per_s\"]/b[\"tokens_per_s\"]:.3f}')" "$1" "$2"; }
out=$(mktemp -d)
for spec in "tiny 4 128" "smollm2-135m 2 256"; do
  set -- $spec
  target/release/r1kit bench train --device cpu --shape "$1" --batch "$2" --seq "$3" --warmup 1 --steps 3 --out "$out/r1kit.json" | tail -1
  (cd scripts && "$python" bench_train_torch.py --device cpu --shape "$1" --batch "$2" --seq "$3" --warmup 1 --steps 3 --out "$out/torch.json" 2>/dev/null | tail -1)
  ratio "$out/r1kit.json" "$out/torch.json"
done
rm -rf "$out"
