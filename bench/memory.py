"""Memory estimator (trainer/algorithms/memory.py) against measured peaks, on CPU.

Each case builds a model (the tiny Llama, or a randomly initialised ~100M-parameter Llama) in
one child process, then trains it a few steps in another, whose peak RSS (VmHWM) less its
RSS just before the model was loaded is the measured peak; the estimate for the same config on
"cpu" is printed beside it. The training process runs with the malloc setting job processes get
(trainer/runner.py), so its RSS follows its live tensors.

    python bench/memory.py            # all cases, table + bench/results/memory.md
    python bench/memory.py --quick    # tiny cases only
    python bench/memory.py --system-malloc   # glibc's default malloc (RSS up to ~2x the tensors)

tests/trainer/algorithms/test_memory.py runs the same cases (the 100M one marked slow).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LLAMA_100M = {"hidden_size": 768, "layers": 12, "intermediate": 2048, "heads": 12, "vocab": 16384}

CASES = {
    # name: (model, kind, config overrides)
    "tiny reward full fp32": ("tiny", "reward", {}),
    "tiny reward LoRA": ("tiny", "reward", {"use_lora": True}),
    "tiny dpo full fp32": ("tiny", "dpo", {}),
    "100M reward full fp32": ("100m", "reward", {}),
    "100M reward LoRA": ("100m", "reward", {"use_lora": True}),
    "100M reward LoRA+ckpt": ("100m", "reward", {"use_lora": True, "gradient_checkpointing": True}),
}

BUILD = r"""
import sys, json
from pathlib import Path
import torch
from trainer.algorithms.tiny import build_tiny_policy, build_tokenizer, tiny_corpus
out, which = Path(sys.argv[1]), sys.argv[2]
if which == "tiny":
    build_tiny_policy(out, pretrain_steps=0)
else:
    from transformers import LlamaConfig, LlamaForCausalLM
    s = json.loads(sys.argv[3])
    tok = build_tokenizer(tiny_corpus(0))
    cfg = LlamaConfig(vocab_size=s["vocab"], hidden_size=s["hidden_size"],
        num_hidden_layers=s["layers"], intermediate_size=s["intermediate"],
        num_attention_heads=s["heads"], num_key_value_heads=s["heads"],
        max_position_embeddings=1024, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
"""

MEASURE = r"""
import json, resource, sys, os
import psutil, torch
torch.set_num_threads(1)
import transformers
transformers.logging.set_verbosity_error()
spec = json.loads(sys.argv[1])
kind, config = spec["kind"], spec["config"]
long = " ".join(["the cat sat on the mat and looked at the garden for a while."] * 40)
rows = [{"prompt": "say something:", "chosen": " yes " + long, "rejected": " no " + long}
        for _ in range(16)]
if kind == "reward":
    from trainer.algorithms.reward import RewardConfig as C, train
elif kind == "dpo":
    from trainer.algorithms.dpo import DPOConfig as C, train
import datasets, trl, peft  # imported before the baseline: libraries are not the job's memory
base = psutil.Process().memory_info().rss
train(C(**config), rows, spec["out"], **({"val_rows": []} if kind == "reward" else {}))
def high_water():
    # VmHWM belongs to this process's memory map, new at exec. ru_maxrss is not: Linux carries
    # it over exec from the forked parent, so a child of a 800 MB pytest process "peaked" at
    # 800 MB whatever it did.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
peak = high_water()
print(json.dumps({"peak_delta": peak - base}))
"""


def config_for(kind: str, model_dir: str, overrides: dict) -> dict:
    common = {
        "model_name_or_path": model_dir,
        "max_steps": 2,
        "batch_size": 4,
        "max_length": 256,
        "save_steps": 0,
        "device": "cpu",
        "seed": 0,
        "dtype": "fp32",
    }
    if kind == "reward":
        common["eval_batch_size"] = 8
    return {**common, **overrides}


def run_case(name: str, workdir: Path, models: dict) -> dict:
    from trainer.algorithms.memory import estimate_job, model_shape

    which, kind, overrides = CASES[name]
    if which not in models:
        models[which] = str(workdir / which)
        subprocess.run(
            [sys.executable, "-c", BUILD, models[which], which, json.dumps(LLAMA_100M)],
            check=True,
            cwd=ROOT,
            env=_env(),
            capture_output=True,
        )
    config = config_for(kind, models[which], overrides)
    out = workdir / name.replace(" ", "_").replace("+", "_")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURE,
            json.dumps({"kind": kind, "config": config, "out": str(out)}),
        ],
        check=True,
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])["peak_delta"]
    shape = model_shape(models[which])
    estimate = estimate_job(kind, config, shape, device="cpu")
    return {
        "case": name,
        "params": shape.params,
        "measured": measured,
        "estimate": estimate.total_bytes,
        "ratio": estimate.total_bytes / measured,
        "parts": estimate.parts,
    }


# glibc keeps freed blocks of the size it last saw (its mmap threshold moves up), so a CPU
# process's peak RSS can be twice the tensors it ever held at once. A fixed threshold returns
# large blocks to the system as they are freed: the RSS then follows the live tensors, which is
# what the estimate counts (and what a GPU's caching allocator holds). `--system-malloc` measures
# with glibc's defaults instead.
MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072"}  # as trainer/runner.py's CHILD_MALLOC


def _env() -> dict:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **MALLOC,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny cases only")
    parser.add_argument(
        "--system-malloc", action="store_true", help="glibc's default malloc settings"
    )
    args = parser.parse_args()
    if args.system_malloc:
        MALLOC.clear()
    names = [n for n in CASES if not (args.quick and CASES[n][0] != "tiny")]
    results, models = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            results.append(run_case(name, Path(tmp), models))
            r = results[-1]
            print(
                f"{r['case']:28} {r['params'] / 1e6:8.1f}M"
                f"  measured {r['measured'] / 2**20:8.0f} MiB"
                f"  estimate {r['estimate'] / 2**20:8.0f} MiB  ratio {r['ratio']:.2f}  "
                + ", ".join(f"{k} {v / 2**20:.0f}" for k, v in r["parts"].items()),
                flush=True,
            )
    lines = [
        "# Memory estimate vs measured peak (CPU)",
        "",
        f"Machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}; "
        f"load average {os.getloadavg()[0]:.2f}.",
        "",
        f"Command: `python bench/memory.py{' --system-malloc' if not MALLOC else ''}`. Measured: "
        "peak RSS of the training process less its RSS just before the model was loaded "
        "(libraries imported), malloc "
        + (f"with {MALLOC} as job processes run" if MALLOC else "with glibc's defaults")
        + ". 2 steps, batch 4 comparisons, max_length 256 (texts long enough to fill it), "
        "dtype fp32, device cpu.",
        "",
        "| case | parameters | measured MiB | estimate MiB | estimate / measured |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['case']} | {r['params'] / 1e6:.1f}M | {r['measured'] / 2**20:.0f} | "
            f"{r['estimate'] / 2**20:.0f} | {r['ratio']:.2f} |"
        )
    out = ROOT / "bench" / "results" / ("memory.md" if MALLOC else "memory-system-malloc.md")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
