#!/usr/bin/env python3
"""TRL reference for `r1kit bench grpo-step` (issue 13, goal 2): one GRPO step of TRL's GRPOTrainer
without vLLM on the same shape with random weights (16 prompts x G 8, 512 completion tokens,
beta 0.04, bf16), timed step by step and split into phases by wrapping the trainer's generate,
reward and generate-and-score methods. TRL and its missing dependencies travel as wheels: scripts/fetch-trl-wheels.sh.
Without CUDA (a dry run of the script on the CPU, with a tiny shape) it runs in f32.
  python3 scripts/bench_grpo_trl.py --shape qwen2.5-0.5b --tokenizer assets/tokenizers/qwen3"""
import argparse, json, tempfile, time

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
import trl
from trl import GRPOConfig, GRPOTrainer

from torch_shapes import SHAPES

p = argparse.ArgumentParser()
p.add_argument("--shape", default="qwen2.5-0.5b")
p.add_argument("--tokenizer", required=True)
p.add_argument("--prompts", type=int, default=16)
p.add_argument("--group", type=int, default=8)
p.add_argument("--max-new-tokens", type=int, default=512)
p.add_argument("--steps", type=int, default=3, help="the first is a warm-up")
p.add_argument("--no-gradient-checkpointing", action="store_true", help="TRL's default is on")
p.add_argument("--out")
a = p.parse_args()

cuda = torch.cuda.is_available()  # False only in a CPU dry run of the script with a tiny shape
sync = torch.cuda.synchronize if cuda else (lambda: None)
cls, kw = SHAPES[a.shape]
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(cls(**kw, max_position_embeddings=32768, attn_implementation="sdpa"), dtype=torch.float32)
tokenizer = AutoTokenizer.from_pretrained(a.tokenizer)
if tokenizer.pad_token is None:
    tokenizer.pad_token = tokenizer.eos_token
workdir = tempfile.mkdtemp()
model.save_pretrained(workdir)
tokenizer.save_pretrained(workdir)

# the same kind of prompts as `r1kit bench grpo-step` (arithmetic), one row per prompt and step
prompts = [f"Q: What is {3 + i} + {7 * i % 11}? Think, then answer.\nA:" for i in range(a.prompts * a.steps)]
dataset = Dataset.from_dict({"prompt": prompts})


def reward_has_answer(completions, **_):
    # a rule reward as cheap as r1kit's (scoring is ~0% of the step on both sides)
    return [1.0 if "<answer>" in c else 0.0 for c in completions]


config = GRPOConfig(
    output_dir=workdir, per_device_train_batch_size=a.prompts * a.group, gradient_accumulation_steps=1,
    num_generations=a.group, max_completion_length=a.max_new_tokens, temperature=1.0, beta=0.04,
    learning_rate=1e-6, bf16=cuda, use_cpu=not cuda, max_steps=a.steps, logging_steps=1, report_to="none", save_strategy="no",
    use_vllm=False, shuffle_dataset=False, seed=0, gradient_checkpointing=not a.no_gradient_checkpointing,
)


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times, self.t = [], None

    def on_step_begin(self, args, state, control, **kw):
        sync()
        self.t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        sync()
        self.times.append(time.perf_counter() - self.t)


timer = StepTimer()
trainer = GRPOTrainer(model=workdir, reward_funcs=reward_has_answer, args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[timer])

# phases, as r1kit's bench splits them: each wrapped method's seconds per step (synchronized)
phases = {"generate": [], "score": [], "generate_and_score": []}


def timed(name, method):
    def run(*args, **kwargs):
        sync()
        t = time.perf_counter()
        result = method(*args, **kwargs)
        sync()
        phases[name].append(time.perf_counter() - t)
        return result
    return run


trainer._generate = timed("generate", trainer._generate)
trainer._calculate_rewards = timed("score", trainer._calculate_rewards)
trainer._generate_and_score_completions = timed("generate_and_score", trainer._generate_and_score_completions)
cuda and torch.cuda.reset_peak_memory_stats()
trainer.train()
peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0


def mean_after_warmup(xs):
    return sum(xs[1:]) / max(1, len(xs) - 1)


step = mean_after_warmup(timer.times)
generate, score = mean_after_warmup(phases["generate"]), mean_after_warmup(phases["score"])
logprobs = mean_after_warmup(phases["generate_and_score"]) - generate - score  # reference (and old-policy) logprobs
update = step - generate - score - logprobs
print(f"trl grpo-step {a.shape}: {a.prompts} prompts x G={a.group}, {a.max_new_tokens} completion tokens, beta 0.04, "
      f"gradient checkpointing {config.gradient_checkpointing}: step {step:.2f} s = generate {generate:.2f} + score {score:.3f} "
      f"+ logprobs {logprobs:.2f} + update {update:.2f} s (steps {[round(x, 2) for x in timer.times]}; the first a warm-up); "
      f"peak memory {peak:.1f} GiB allocated (torch {torch.__version__}, trl {trl.__version__})")
if a.out:
    json.dump(dict(step_seconds=timer.times, phases=phases, peak_gib=peak, gradient_checkpointing=config.gradient_checkpointing),
              open(a.out, "w"), indent=1)
