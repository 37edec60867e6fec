#!/usr/bin/env python3
"""Loads r1kit-saved checkpoint directories in HF transformers and compares logits.

`python3 scripts/check_saved_checkpoints.py DIR` where DIR holds <name>/ model directories written
by `cargo run -p r1kit-model --example export_roundtrip`, each with r1kit_logits.json
({"input_ids": [[...]], "logits": flat, "shape": [b, s, v], "tolerance": t}).
Prints one line per model and exits non-zero if any differs by more than its tolerance.
"""
import json, os, sys
import torch
from transformers import AutoModelForCausalLM

root = sys.argv[1]
bad = 0
for name in sorted(os.listdir(root)):
    d = os.path.join(root, name)
    ref_path = os.path.join(d, "r1kit_logits.json")
    if not os.path.exists(ref_path):
        continue
    ref = json.load(open(ref_path))
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    ids = torch.tensor(ref["input_ids"])
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    ours = torch.tensor(ref["logits"]).reshape(ref["shape"])
    diff = (logits - ours).abs().max().item()
    ok = diff <= ref["tolerance"]
    bad += not ok
    print(f"{name}: max |logit diff| = {diff:.3e} (tolerance {ref['tolerance']}) {'OK' if ok else 'FAIL'}")
sys.exit(1 if bad else 0)
