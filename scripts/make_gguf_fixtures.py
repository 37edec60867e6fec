#!/usr/bin/env python3
"""Writes model/tests/fixtures/gguf/: for each ggml type r1kit dequantizes, a few raw blocks
(`<type>.blocks`) and gguf-py's dequantization of them (`<type>.f32`, little-endian f32), plus
manifest.json saying where the blocks came from; and whole_tensors.json: for one whole real tensor
of each quantized type in the asset files, gguf-py's values at 512 spread-out positions and the
sum of all values (checks indexing over whole tensors, not just single blocks).

Blocks are taken from the real GGUF files of ASSETS.md where the type occurs in them (SmolLM2:
F32, Q8_0, Q4_1; Qwen2.5-Coder: Q5_0, Q4_K, Q6_K) and are random bytes with finite scales for
the other types. Needs `pip install gguf numpy` and the assets (scripts/fetch-assets.sh).

    python3 scripts/make_gguf_fixtures.py
"""

import json
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T, GGUFReader
from gguf.quants import dequantize

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "model/tests/fixtures/gguf"
SMOLLM2 = ROOT / "assets/models/SmolLM2-135M-Instruct.Q4_1.gguf"
QWEN = ROOT / "assets/models/Qwen2.5-Coder-0.5B-Instruct.gguf"

# (type, file to take real blocks from, or None for random blocks)
CASES = [
    (T.F32, SMOLLM2),
    (T.F16, None),
    (T.BF16, None),
    (T.Q8_0, SMOLLM2),
    (T.Q4_0, None),
    (T.Q4_1, SMOLLM2),
    (T.Q5_0, QWEN),
    (T.Q3_K, None),
    (T.Q4_K, QWEN),
    (T.Q5_K, None),
    (T.Q6_K, QWEN),
]
BLOCKS = 6
# Unquantized types have one value per "block": take more of them.
PLAIN_VALUES = 192

# Byte offsets of the f16 scale fields inside one block (d, m / dmin) for random blocks.
F16_FIELDS = {T.Q4_0: [0], T.Q3_K: [108], T.Q5_K: [0, 2]}


def block_count(qtype):
    return PLAIN_VALUES if GGML_QUANT_SIZES[qtype][0] == 1 else BLOCKS


def real_blocks(path, qtype):
    """Consecutive blocks from the middle of a row of the first tensor of this type (for
    quantized types, one that is not a norm vector)."""
    reader = GGUFReader(path)
    block_values, block_bytes = GGML_QUANT_SIZES[qtype]
    n = block_count(qtype)
    for t in reader.tensors:
        if t.tensor_type != qtype or (block_values > 1 and "norm" in t.name):
            continue
        raw = np.asarray(t.data).view(np.uint8).reshape(-1)
        row = 3 % max(1, int(t.shape[1]) if len(t.shape) > 1 else 1)
        row_bytes = int(t.shape[0]) // block_values * block_bytes
        start = row * row_bytes + (row_bytes // block_bytes // 2) * block_bytes
        start = max(0, min(start, raw.size - n * block_bytes))
        start -= start % block_bytes
        return raw[start:start + n * block_bytes].copy(), f"{path.name}: tensor {t.name}, byte {start}"
    raise SystemExit(f"{path.name} has no {qtype.name} tensor")


def random_blocks(qtype, rng):
    block_values, block_bytes = GGML_QUANT_SIZES[qtype]
    if qtype == T.F16:
        values = (rng.standard_normal(PLAIN_VALUES) * 10).astype(np.float16)
        values[:4] = [0.0, -0.0, 6.1e-5, -65504.0]  # zeros, a subnormal neighbour, the largest
        values[4] = np.float16(5.96e-8)  # the smallest subnormal
        return values.view(np.uint8).copy(), "random finite f16"
    if qtype == T.BF16:
        bits = rng.integers(0, 1 << 16, size=PLAIN_VALUES, dtype=np.uint16)
        exponent = (bits >> 7) & 0xFF
        bits = np.where(exponent == 0xFF, bits & 0xBFFF, bits).astype(np.uint16)  # no inf / nan
        return bits.view(np.uint8).copy(), "random finite bf16 bit patterns"
    raw = rng.integers(0, 256, size=(BLOCKS, block_bytes), dtype=np.uint8)
    for offset in F16_FIELDS[qtype]:
        scale = (rng.uniform(-2.0, 2.0, size=BLOCKS) * 1e-2).astype(np.float16)
        raw[:, offset:offset + 2] = scale.view(np.uint8).reshape(BLOCKS, 2)
    return raw.reshape(-1), "random bytes, random finite f16 scales"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20260128)
    manifest = []
    for qtype, source in CASES:
        raw, origin = real_blocks(source, qtype) if source else random_blocks(qtype, rng)
        block_values, block_bytes = GGML_QUANT_SIZES[qtype]
        n_blocks = raw.size // block_bytes
        values = dequantize(raw.reshape(n_blocks, block_bytes), qtype).astype(np.float32).reshape(-1)
        assert values.size == n_blocks * block_values and np.isfinite(values).all(), qtype.name
        name = qtype.name.lower()
        (OUT / f"{name}.blocks").write_bytes(raw.tobytes())
        (OUT / f"{name}.f32").write_bytes(values.astype("<f4").tobytes())
        manifest.append({"type": qtype.name, "blocks": f"{name}.blocks", "values": f"{name}.f32",
                         "num_values": int(values.size), "source": origin})
        print(f"{qtype.name:5} {values.size:5} values from {origin}")
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    whole_tensors()


# (file, tensor): one per quantized type present, small enough to dequantize quickly.
WHOLE = [
    (SMOLLM2, "blk.0.attn_q.weight"),   # Q4_1 (llama: stored permuted, compared as stored)
    (SMOLLM2, "token_embd.weight"),     # Q8_0
    (QWEN, "blk.0.attn_k.weight"),      # Q5_0
    (QWEN, "blk.11.ffn_down.weight"),   # Q4_K
    (QWEN, "blk.0.ffn_down.weight"),    # Q6_K
    (QWEN, "blk.0.attn_k.bias"),        # F32
]


def whole_tensors():
    readers = {}
    cases = []
    for path, name in WHOLE:
        reader = readers.setdefault(path, GGUFReader(path))
        t = next(t for t in reader.tensors if t.name == name)
        values = dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32).reshape(-1)
        positions = np.unique(np.linspace(0, values.size - 1, 512).astype(np.int64))
        cases.append({
            "file": path.name, "tensor": name, "type": t.tensor_type.name, "num_values": int(values.size),
            "positions": positions.tolist(),
            "values_f32_bits": values[positions].view(np.uint32).tolist(),
            "sum": float(values.astype(np.float64).sum()),
        })
        print(f"whole {name:24} {t.tensor_type.name:5} {values.size} values")
    (OUT / "whole_tensors.json").write_text(json.dumps(cases) + "\n")


if __name__ == "__main__":
    main()
