#!/usr/bin/env bash
# The fused CubeCL kernels' tests (gpu/src/kernels/) on CubeCL's CPU runtime, so no GPU is needed:
# the gpu crate with `--features cube-cpu`, where `Device::cpu()` is burn's `Cube` backend on that
# runtime. It builds burn with LLVM (scripts/setup-llvm-offline.sh), so it has a target dir of its
# own (KERNELS_TARGET_DIR, default cube-cpu/ under the usual target dir): sharing one would rebuild
# the workspace's burn with other features every time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup-llvm-offline.sh"
cd "$root"
export CARGO_TARGET_DIR=${KERNELS_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}/cube-cpu}
# the kernels against burn's ops (gpu/src/kernels/), then the model with them against the model
# without (train/tests/cube_cpu.rs); an optional test-name filter, then cargo test's own arguments
filter=${1:-}
[ $# -eq 0 ] || shift
cargo test -p r1kit-gpu --features cube-cpu --lib "${filter:-kernels}" "$@"
cargo test -p r1kit-train --features cube-cpu --test cube_cpu $filter "$@"
