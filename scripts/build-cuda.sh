#!/usr/bin/env bash
# Build the CUDA r1kit binary for the GPU machine (CUDA 13.0), stripped and xz-compressed into the
# git-ignored folder .gpu/ with a runner script, so one `device` call with `carry: [".gpu"]` runs it:
#   scripts/build-cuda.sh            -> .gpu/r1kit.xz + .gpu/run.sh
#   on the GPU machine: bash .gpu/run.sh generate --device cuda ...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup-llvm-offline.sh"
export CUDARC_CUDA_VERSION=13000
cd "$root"
cargo build --release -p r1kit --features cuda
mkdir -p .gpu
strip -o .gpu/r1kit target/release/r1kit
xz -T2 -6 -f .gpu/r1kit
cat > .gpu/run.sh <<'RUN'
#!/usr/bin/env bash
# Unpacks the carried binary once per machine and runs it with the given arguments.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=/tmp/r1kit-gpu/r1kit
if [ ! -x "$bin" ] || [ "$here/r1kit.xz" -nt "$bin" ]; then
  mkdir -p /tmp/r1kit-gpu
  xz -dc "$here/r1kit.xz" > "$bin"
  chmod +x "$bin"
fi
exec "$bin" "$@"
RUN
chmod +x .gpu/run.sh
ls -la .gpu
