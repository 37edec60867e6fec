#!/usr/bin/env bash
# LLVM for CUDA builds without GitHub: cubecl-cuda 0.11 always links cubecl-llvm, whose build
# script (tracel-llvm-bundler 23.1.0-4) downloads an LLVM bundle from GitHub unless it finds one
# installed. We install Debian's LLVM 22 and lay out a fake bundle that points at it:
#   ~/.local/share/tracel/tracel-llvm-23.1.0-4/.tracel-llvm-installed   (the bundler skips its download)
#   ~/.local/share/tracel/tracel-llvm-23.1.0-4/bin/llvm-config          (a wrapper around llvm-config-22
#       that rewrites the absolute libz3.so path it prints into -lz3, which the linker understands)
# Idempotent. Needs root for apt-get (CI and the dev machines run as root).
set -euo pipefail
LLVM_PREFIX=/usr/lib/llvm-22
if [ ! -x "$LLVM_PREFIX/bin/llvm-config" ] || ! dpkg -s libpolly-22-dev libzstd-dev >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq llvm-22-dev libpolly-22-dev libzstd-dev >/dev/null
fi
bundle="${XDG_DATA_HOME:-$HOME/.local/share}/tracel/tracel-llvm-23.1.0-4"
mkdir -p "$bundle/bin"
# Files are only written when missing or different: the bundler's build script reruns when the
# marker's mtime changes, and with it cubecl-llvm, cubecl-cuda and everything above them.
cat > "$bundle/bin/llvm-config.new" <<WRAP
#!/usr/bin/env bash
"$LLVM_PREFIX/bin/llvm-config" "\$@" | sed -E 's#(^| )/[^ ]*/libz3\.so(\.[0-9.]+)?#\1-lz3#g'
WRAP
if cmp -s "$bundle/bin/llvm-config.new" "$bundle/bin/llvm-config"; then
  rm "$bundle/bin/llvm-config.new"
else
  chmod +x "$bundle/bin/llvm-config.new"
  mv "$bundle/bin/llvm-config.new" "$bundle/bin/llvm-config"
fi
[ -e "$bundle/.tracel-llvm-installed" ] || touch "$bundle/.tracel-llvm-installed"
echo "LLVM for CUDA builds: $bundle -> $LLVM_PREFIX ($("$bundle/bin/llvm-config" --version))"
