#!/usr/bin/env python3
"""Tiny random Qwen2 / Qwen3 / Llama checkpoints and HF transformers reference outputs.

Run where PyTorch + transformers exist (the GPU machine): `python3 scripts/make_parity_fixtures.py OUT`.
Writes OUT/<name>/ (config.json, model.safetensors, generation_config.json) and
OUT/<name>/reference.json with:
  - a left-padded batch of two prompts of different lengths, explicit position ids, the attention
    mask and the logits of every position (float32, eager attention);
  - greedy `generate` continuations of each prompt alone, with the top-1 / top-2 logit gap per step.
Every tensor is randomized (biases and norm weights too: HF initializes them to 0 and 1, which would
hide a loader that drops them). Llama uses a small original_max_position_embeddings and positions in
the thousands so that its llama3 rope scaling matters.
"""
import json, os, sys
import torch
import transformers
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen3Config, LlamaConfig

torch.manual_seed(1234)
OUT = sys.argv[1] if len(sys.argv) > 1 else "fixtures"

COMMON = dict(vocab_size=384, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
              num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
              max_position_embeddings=8192, bos_token_id=1, eos_token_id=2, pad_token_id=0)

def make_config(cls, rope, **kw):
    """transformers 5 takes rope settings as `rope_parameters`; 4.x as rope_theta / rope_scaling."""
    try:
        return cls(**COMMON, **kw, rope_parameters=dict(rope))
    except TypeError:
        legacy = dict(rope)
        theta = legacy.pop("rope_theta")
        scaling = legacy if legacy.get("rope_type", "default") != "default" else None
        return cls(**COMMON, **kw, rope_theta=theta, rope_scaling=scaling)

LLAMA3 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
CASES = {
    "qwen2-tiny": (make_config(Qwen2Config, {"rope_type": "default", "rope_theta": 10000.0}, tie_word_embeddings=False), 0),
    "qwen3-tiny": (make_config(Qwen3Config, {"rope_type": "default", "rope_theta": 1000000.0}, head_dim=32,
                               tie_word_embeddings=True, attention_bias=False), 0),
    "llama-tiny": (make_config(LlamaConfig, LLAMA3, tie_word_embeddings=True), 3000),
}

def randomize(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
            elif "embed" in name or "lm_head" in name:
                p.normal_(0.0, 0.5)
            else:
                p.normal_(0.0, 0.15)

def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(7)
    for name, (cfg, pos_offset) in CASES.items():
        cfg._attn_implementation = "eager"
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        model.config._attn_implementation = "eager"
        randomize(model)
        model.eval()
        rot = model.model.rotary_emb
        print(name, "rope:", getattr(rot, "rope_type", "?"), "inv_freq[:3], [-3:]:",
              rot.inv_freq[:3].tolist(), rot.inv_freq[-3:].tolist())
        d = os.path.join(OUT, name)
        model.save_pretrained(d, safe_serialization=True)
        lens = [7, 12]
        S = max(lens)
        prompts = [torch.randint(3, cfg.vocab_size, (n,), generator=g).tolist() for n in lens]
        ids = torch.zeros((2, S), dtype=torch.long)
        mask = torch.zeros((2, S), dtype=torch.long)
        pos = torch.ones((2, S), dtype=torch.long)
        for b, p in enumerate(prompts):
            ids[b, S - len(p):] = torch.tensor(p)
            mask[b, S - len(p):] = 1
            pos[b, S - len(p):] = torch.arange(len(p)) + pos_offset
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()
        gens = []
        model.generation_config.eos_token_id = None  # greedy runs its full length
        for p in prompts:
            x = torch.tensor([p])
            with torch.no_grad():
                out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=20, do_sample=False,
                                     output_scores=True, return_dict_in_generate=True, pad_token_id=0)
            seq = out.sequences[0, len(p):].tolist()
            gaps = []
            for s in out.scores:
                top = torch.topk(s[0].float(), 2).values
                gaps.append(float(top[0] - top[1]))
            gens.append({"prompt": p, "tokens": seq, "top1_top2_gap": gaps})
        ref = {
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
            "input_ids": ids.tolist(), "attention_mask": mask.tolist(), "position_ids": pos.tolist(),
            "logits_shape": list(logits.shape), "logits": logits.flatten().tolist(),
            "greedy": gens,
        }
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(ref, f)
        print(name, "written", list(logits.shape), "params", sum(p.numel() for p in model.parameters()))

if __name__ == "__main__":
    main()
