"""GPU benchmark: reward, DPO and PPO steps per second and peak memory, LoRA+bf16 against full
fp32 where that fits, and generation tokens per second with vLLM against transformers'
generate, for random-weight Llama-style models of 0.5B, 1.5B and 8B parameters (built from a
config: the GPU machines have no internet).

    python bench/gpu.py                       # every size; needs a CUDA GPU
    python bench/gpu.py --sizes 0.5b 1.5b     # some sizes
    python bench/gpu.py --cpu-smoke           # a tiny size on CPU: proves the harness runs
    python bench/gpu.py --kinds reward dpo    # some kinds

Without CUDA (and without --cpu-smoke) it says it needs a GPU and exits with status 0. Each case
runs in a child process (a fresh CUDA allocator and peak counter; an out-of-memory kills only
that case); a full-fp32 case the estimator (trainer/algorithms/memory.py) says cannot fit on the
device is skipped and marked so, with the estimate, which the table also shows beside every
measurement. Results: a table on stdout and bench/results/gpu.md (bench/results/gpu-cpu-smoke.md
for the smoke run), with the device, the command and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Llama-style shapes: Qwen2.5-0.5B / 1.5B and Llama-3-8B dimensions, random weights.
SIZES = {
    "tiny": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 2048,
    },
    "0.5b": {
        "hidden_size": 896,
        "num_hidden_layers": 24,
        "intermediate_size": 4864,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
    },
    "1.5b": {
        "hidden_size": 1536,
        "num_hidden_layers": 28,
        "intermediate_size": 8960,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
    },
    "8b": {
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "intermediate_size": 14336,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
    },
}
MODES = {
    "lora+bf16": {"use_lora": True, "dtype": "bf16", "gradient_checkpointing": True},
    "full fp32": {"dtype": "fp32"},
}
KINDS = ("reward", "dpo", "ppo")

BUILD = r"""
import json, sys
from pathlib import Path
import torch
from transformers import AutoModelForSequenceClassification, LlamaConfig, LlamaForCausalLM
from trainer.algorithms.tiny import build_tokenizer, tiny_corpus
out, dims = Path(sys.argv[1]), json.loads(sys.argv[2])
tok = build_tokenizer(tiny_corpus(0))
cfg = LlamaConfig(**dims, max_position_embeddings=4096, pad_token_id=tok.pad_token_id,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  tie_word_embeddings=False)
torch.manual_seed(0)
model = LlamaForCausalLM(cfg).to(torch.bfloat16)
model.save_pretrained(out / "policy"); tok.save_pretrained(out / "policy")
del model
rm = AutoModelForSequenceClassification.from_pretrained(out / "policy", num_labels=1)
rm.config.pad_token_id = tok.pad_token_id
rm.save_pretrained(out / "reward"); tok.save_pretrained(out / "reward")
"""

CASE = r"""
import json, resource, sys, time
import torch
import transformers
transformers.logging.set_verbosity_error()
spec = json.loads(sys.argv[1])
kind, config, cuda = spec["kind"], spec["config"], torch.cuda.is_available()
text = " ".join(["the cat sat on the mat and looked at the garden for a while."] * 60)
pref = [{"prompt": "say something:", "chosen": " yes " + text, "rejected": " no " + text}] * 64
prompts = [{"prompt": [{"role": "user", "content": "tell me about the garden."}]}] * 64
stamps = []
def progress(step, total, metrics):
    if "loss" in metrics or "train_loss" in metrics or "reward" in metrics:
        stamps.append(time.perf_counter())
if kind == "reward":
    from trainer.algorithms.reward import RewardConfig as C, train
    args = (pref,); kwargs = {"val_rows": []}
elif kind == "dpo":
    from trainer.algorithms.dpo import DPOConfig as C, train
    args = (pref,); kwargs = {}
elif kind == "ppo":
    from trainer.algorithms.ppo import PPOConfig as C, train
    args = (prompts,); kwargs = {}
else:
    from trainer.algorithms.generate import GenerateConfig as C, run as train
    args = (prompts,); kwargs = {}
import psutil
base = psutil.Process().memory_info().rss
start = time.perf_counter()
metrics = train(C(**config), *args, spec["out"], progress=progress, **kwargs)
wall = time.perf_counter() - start
rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 else None
if cuda:
    peak = sum(torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count()))
else:
    # VmHWM: this process's own peak (ru_maxrss carries the forked parent's over exec).
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
    peak = (int(hwm[0].split()[1]) * 1024 if hwm else
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) - base
out = {"steps_per_s": rate, "peak_bytes": peak, "wall_s": wall}
if kind == "generate":
    out["tokens_per_s"] = metrics["completions"] * metrics["mean_tokens"] / wall
    out["used_vllm"] = metrics.get("used_vllm", False)
print(json.dumps(out))
"""


def case_config(kind: str, mode: dict, models: Path, device: str, smoke: bool) -> dict:
    steps = 3 if smoke else 6
    length = 128 if smoke else 512
    common = {"model_name_or_path": str(models / "policy"), "device": device, "seed": 0, **mode}
    if kind == "reward":
        return {
            **common,
            "max_steps": steps,
            "batch_size": 4,
            "max_length": length,
            "save_steps": 0,
        }
    if kind == "dpo":
        return {
            **common,
            "max_steps": steps,
            "batch_size": 2,
            "max_length": length,
            "save_steps": 0,
        }
    if kind == "ppo":
        return {
            **common,
            "reward_model_path": str(models / "reward"),
            "steps": steps,
            "batch_size": 8,
            "mini_batch_size": 4,
            "ppo_epochs": 1,
            "max_new_tokens": 32 if smoke else 128,
            "max_prompt_length": 64,
            "save_steps": 0,
        }
    raise ValueError(kind)


def estimate(kind: str, config: dict, models: Path, device_kind: str):
    from trainer.algorithms.memory import estimate_job, model_shape

    shape = model_shape(str(models / "policy"))
    return estimate_job(kind, config, shape, model_shape(str(models / "reward")), device_kind)


def run_case(spec: dict, timeout: int) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-c", CASE, json.dumps(spec)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
        oom = "out of memory" in done.stderr.lower()
        return {"error": "out of memory" if oom else tail[0][:160]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def device_description() -> tuple[str, int | None]:
    import torch

    if not torch.cuda.is_available():
        return f"CPU ({os.cpu_count()} cores)", None
    props = torch.cuda.get_device_properties(0)
    count = torch.cuda.device_count()
    return f"{count} x {props.name} ({props.total_memory / 2**30:.0f} GiB)", props.total_memory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["0.5b", "1.5b", "8b"], choices=SIZES)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny size on CPU")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per case")
    args = parser.parse_args()
    import torch

    if args.cpu_smoke:
        sizes, device = ["tiny"], "cpu"
    elif not torch.cuda.is_available():
        print(
            "bench/gpu.py needs a CUDA GPU and this machine has none; nothing was run. "
            "Use --cpu-smoke to check the harness on CPU."
        )
        return 0
    else:
        sizes, device = args.sizes, "cuda:0"
    description, capacity = device_description()
    if args.cpu_smoke:
        description += " [cpu smoke]"
    print(f"device: {description}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            models = Path(tmp) / size
            subprocess.run(
                [sys.executable, "-c", BUILD, str(models), json.dumps(SIZES[size])],
                check=True,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
            )
            for kind in args.kinds:
                for mode_name, mode in MODES.items():
                    config = case_config(kind, mode, models, device, args.cpu_smoke)
                    guess = estimate(kind, config, models, "cpu" if device == "cpu" else "cuda")
                    if capacity is not None and guess.total_bytes > capacity:
                        result = {"error": "skipped: the estimate exceeds the device"}
                    else:
                        spec = {"kind": kind, "config": config, "out": str(models / "out")}
                        result = run_case(spec, args.timeout)
                    rows.append((size, kind, mode_name, guess.total_bytes, result))
                    print(_line(rows[-1]), flush=True)
            for engine in ("generate", "vllm"):
                config = {
                    "model_name_or_path": str(models / "policy"),
                    "device": device,
                    "engine": engine,
                    "num_samples": 4,
                    "max_new_tokens": 128,
                    "batch_size": 32,
                    "dtype": "auto" if device != "cpu" else "fp32",
                }
                if args.cpu_smoke:
                    config.update(max_new_tokens=16, batch_size=8)
                spec = {"kind": "generate", "config": config, "out": str(models / "gen")}
                result = run_case(spec, args.timeout)
                if (
                    engine == "vllm"
                    and not result.get("used_vllm", False)
                    and "error" not in result
                ):
                    result = {"error": "vLLM not installed or no GPU: fell back to generate"}
                rows.append((size, f"generate ({engine})", "", None, result))
                print(_line(rows[-1]), flush=True)
    _write(rows, description, args)
    return 0


def _result(r: dict) -> str:
    if "error" in r:
        return r["error"]
    if "tokens_per_s" in r:
        return f"{r['tokens_per_s']:.1f} tok/s, peak {r['peak_bytes'] / 2**30:.2f} GiB"
    rate = f"{r['steps_per_s']:.3f} steps/s" if r.get("steps_per_s") else "- steps/s"
    return f"{rate}, peak {r['peak_bytes'] / 2**30:.2f} GiB"


def _line(row) -> str:
    size, kind, mode, guess, r = row
    got = _result(r)
    est = f" (estimate {guess / 2**30:.2f} GiB)" if guess else ""
    return f"{size:5} {kind:20} {mode:10} {got}{est}"


def _write(rows, description: str, args) -> None:
    name = "gpu-cpu-smoke.md" if args.cpu_smoke else "gpu.md"
    command = "python bench/gpu.py " + " ".join(sys.argv[1:])
    lines = [
        "# GPU benchmark"
        + (" (CPU smoke run: the harness, not a measurement)" if args.cpu_smoke else ""),
        "",
        f"Device: {description}. Machine: {platform.node()}, {platform.platform()}.",
        f"Command: `{command.strip()}`. Load average at the end: {os.getloadavg()[0]:.2f}. "
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "Peak: torch.cuda.max_memory_allocated on a GPU (summed over devices); on CPU the peak "
        "RSS less the RSS before the model was loaded. Steps/s over all steps but the first.",
        "",
        "| size | kind | mode | result | estimate GiB |",
        "| --- | --- | --- | --- | ---: |",
    ]
    for size, kind, mode, guess, r in rows:
        result = _result(r)
        est = f"{guess / 2**30:.2f}" if guess else ""
        lines.append(f"| {size} | {kind} | {mode} | {result} | {est} |")
    out = ROOT / "bench" / "results" / name
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
