#!/usr/bin/env bash
# The project's test command (README.md): fetches the assets the tests read, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-assets.sh
cargo test --workspace "$@"
