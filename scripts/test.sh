#!/usr/bin/env bash
# The project's test command (README.md): fetches the assets the tests read, then runs every test:
# the workspace's, then the fused GPU kernels' on CubeCL's CPU runtime (scripts/test-kernels.sh,
# a build of its own). Arguments go to the workspace's `cargo test` (a filter, `-p crate`); with
# any, the kernels' tests are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-assets.sh
cargo test --workspace "$@"
if [ $# -eq 0 ]; then
  scripts/test-kernels.sh
fi
