#!/usr/bin/env bash
# A file over one `device` call's carry limit (64 MiB) travels in pieces, one call each, to a machine
# kept warm between the calls: .carry/<name>/1, .carry/<name>/2, ... (git-ignored), each folder
# under PIECE_MB (default 60) MB. On the GPU machine, scripts/gpu-session.sh's `stash` part keeps
# every carried piece in /tmp/r1kit-keep and `smol-grpo` joins them and checks the sha256.
#   scripts/split-for-carry.sh assets/models/SmolLM2-135M-Instruct.Q4_1.gguf [FIRST_PIECE_MB]
# FIRST_PIECE_MB makes the first piece smaller, to leave room beside it for other carried folders.
set -euo pipefail
cd "$(dirname "$0")/.."
file=$1
name=$(basename "$file")
first_mb=${2:-${PIECE_MB:-60}}
piece_mb=${PIECE_MB:-60}
rm -rf ".carry/$name"
mkdir -p ".carry/$name"
size=$(stat -c %s "$file")
offset=0 n=1
while [ "$offset" -lt "$size" ]; do
  mb=$piece_mb; [ $n = 1 ] && mb=$first_mb
  mkdir -p ".carry/$name/$n"
  dd if="$file" of=".carry/$name/$n/$name.$n" iflag=skip_bytes,count_bytes skip=$offset count=$((mb * 1000000)) status=none
  offset=$((offset + $(stat -c %s ".carry/$name/$n/$name.$n")))
  n=$((n + 1))
done
sha256sum "$file" | cut -d' ' -f1 > ".carry/$name/sha256"
cp ".carry/$name/sha256" ".carry/$name/$((n - 1))/$name.sha256"
ls -la .carry/"$name"/*
