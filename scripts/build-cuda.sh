#!/usr/bin/env bash
# Build the CUDA r1kit binary for the GPU machine (CUDA 13.0), stripped and xz-compressed into the
# git-ignored folder .gpu/ with a runner script, so one `device` call with `carry: [".gpu"]` runs it:
#   scripts/build-cuda.sh            -> .gpu/r1kit.xz + .gpu/run.sh
#   scripts/build-cuda.sh --check    -> cargo check -p r1kit --features cuda (CI; no binary)
#   FEATURES=fusion OUT_DIR=.gpu-fusion scripts/build-cuda.sh   -> burn's fusion on (A/B builds)
#   on the GPU machine: bash .gpu/run.sh generate --device cuda ...
#
# The GPU build, and only it, uses a patched cubecl-cuda 0.11.3 (gpu/patches/: one added public
# method that hands the cuBLASLt GEMM of the gpu crate burn's CUDA stream and device pointers).
# The crates.io source is copied to target/patched/cubecl-cuda-0.11.3 (re-created when the patch
# changes), patched there, and swapped in with `cargo --config patch.crates-io...`; the committed
# Cargo.toml has no [patch], so CPU builds and tests never see it. Cargo records a patched path
# crate in Cargo.lock without its registry source; that one entry is put back afterwards.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=build
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

"$root/scripts/setup-llvm-offline.sh"
export CUDARC_CUDA_VERSION=13000
features=cuda${FEATURES:+,$FEATURES}
out_dir=${OUT_DIR:-.gpu}
cd "$root"

# --- the patched cubecl-cuda
crate=cubecl-cuda-0.11.3
patch_file="$root/gpu/patches/$crate-stream-access.patch"
patched="$root/target/patched/$crate"
registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
find_src() { ls -d "$registry"/*/"$crate" 2>/dev/null | head -n1 || true; }  # nothing yet on a fresh machine
src=$(find_src)
if [ -z "$src" ]; then
  cargo fetch --quiet
  src=$(find_src)
fi
[ -n "$src" ] || { echo "error: $crate not found under $registry after cargo fetch" >&2; exit 1; }
stamp=$(sha256sum "$patch_file" | cut -d' ' -f1)
if [ "$(cat "$patched/.r1kit-patch-sha256" 2>/dev/null)" != "$stamp" ]; then
  echo "== patching $crate ($patch_file)"
  rm -rf "$patched"
  mkdir -p "$(dirname "$patched")"
  cp -r "$src" "$patched"
  chmod -R u+w "$patched"
  (cd "$patched" && patch -p1 --quiet --forward < "$patch_file")
  echo "$stamp" > "$patched/.r1kit-patch-sha256"
fi

# --- Cargo.lock: keep the registry entry of cubecl-cuda as committed (only that entry)
lock_fix() {
  python3 - "$root/Cargo.lock" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
entry = '[[package]]\nname = "cubecl-cuda"\nversion = "0.11.3"\n'
registry = 'source = "registry+https://github.com/rust-lang/crates.io-index"\n'
checksum = 'checksum = "dacd0c047f781b468d094705ef042f28d68944bf862c049f5cf0b7396f730bb5"\n'
at = text.find(entry)
if at >= 0 and not text[at + len(entry):].startswith('source = '):
    at += len(entry)
    text = text[:at] + registry + checksum + text[at:]
    open(path, 'w').write(text)
PY
}
trap lock_fix EXIT
patch_cfg="patch.crates-io.cubecl-cuda.path=\"$patched\""

if [ "$mode" = check ]; then
  cargo --config "$patch_cfg" check -p r1kit --features "$features"
  exit 0
fi

cargo --config "$patch_cfg" build --release -p r1kit --features "$features"
mkdir -p "$out_dir"
strip -o "$out_dir/r1kit" target/release/r1kit
xz -T2 -6 -f "$out_dir/r1kit"
cat > "$out_dir/run.sh" <<'RUN'
#!/usr/bin/env bash
# Unpacks the carried binary once per machine and runs it with the given arguments.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# one unpacked binary per carried folder (.gpu, .gpu-fusion, ...)
bin=/tmp/r1kit-gpu/$(basename "$here")/r1kit
if [ ! -x "$bin" ] || [ "$here/r1kit.xz" -nt "$bin" ]; then
  mkdir -p "$(dirname "$bin")"
  xz -dc "$here/r1kit.xz" > "$bin.tmp"
  chmod +x "$bin.tmp"
  mv "$bin.tmp" "$bin"
fi
# cuBLASLt (the gpu crate's GEMM) is loaded at run time: libcublasLt.so.13 from the CUDA toolkit.
if [ -d /usr/local/cuda/lib64 ]; then
  export LD_LIBRARY_PATH="/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# NCCL (data-parallel gradients, loaded at run time): PyTorch's wheel carries libnccl.so.2, a name
# cudarc does not try (libnccl.so, libnccl.so.13, ...), so it is linked as libnccl.so beside the binary.
for nccl in /opt/torch/.venv/lib/python3*/site-packages/nvidia/nccl/lib /usr/local/lib/python3*/dist-packages/nvidia/nccl/lib; do
  if [ -f "$nccl/libnccl.so.2" ]; then
    ln -sf "$nccl/libnccl.so.2" "$(dirname "$bin")/libnccl.so"
    export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$bin")"
    break
  fi
done
exec "$bin" "$@"
RUN
chmod +x "$out_dir/run.sh"
ls -la "$out_dir"
