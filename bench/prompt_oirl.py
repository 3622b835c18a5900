"""Prompt-OIRL benchmark (issue #15): does a per-query strategy selector, trained on an offline
log, beat the best single strategy, and how fast does it choose?

For each seed: a synthetic log (trainer/algorithms/oirl_synthetic.py: N queries of six types x
six strategies, each strategy best on some types, outcomes one noisy Bernoulli draw) -> train
the selector on 80 % of the queries -> on the held-out 20 %, the mean outcome of the
selector's choice, of the best single strategy, of a random strategy and of the hindsight
oracle, and the share of the best-single-to-oracle gap the selector closes. Then the time to
choose for 10,000 fresh queries (encoding included). Targets: gap closed >= 0.5 and selection of
10,000 queries < 1 s on CPU.

    python bench/prompt_oirl.py [--queries 2000] [--seeds 0 1 2] [--classifier mlp]

Prints a table and writes bench/results/prompt_oirl.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from trainer.algorithms.oirl_synthetic import synthetic_log  # noqa: E402
from trainer.algorithms.prompt_oirl import PromptRewardConfig, PromptSelector, train  # noqa: E402

SELECT_QUERIES = 10_000
COLUMNS = [
    ("accuracy_selector", "selector"),
    ("accuracy_best_single", "best single"),
    ("accuracy_random", "random"),
    ("accuracy_oracle", "oracle"),
    ("gap_closed", "gap closed"),
    ("train_seconds", "train s"),
    ("select_10k_seconds", "select 10k s"),
]


def run(seed: int, queries: int, classifier: str) -> dict:
    rows = synthetic_log(queries, seed=seed)
    config = PromptRewardConfig(classifier=classifier, seed=seed)
    with tempfile.TemporaryDirectory() as out:
        metrics = train(config, rows, out)
        selector = PromptSelector.load(out)
        fresh = [
            r["query"]
            for r in synthetic_log(SELECT_QUERIES, seed=10_000 + seed, strategies=["plain"])
        ]
        selector.choose_many(fresh[:10])  # warm-up: the vectoriser's first call
        started = time.perf_counter()
        chosen = selector.choose_many(fresh)
        metrics["select_10k_seconds"] = time.perf_counter() - started
    assert len(chosen) == SELECT_QUERIES
    return {"seed": seed, **metrics}


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3f} ± {sd:.3f}"


def table(runs: list[dict]) -> str:
    head = "| seed | " + " | ".join(label for _, label in COLUMNS) + " |"
    lines = [head, "| --- |" + " ---: |" * len(COLUMNS)]
    for r in runs:
        lines.append(f"| {r['seed']} | " + " | ".join(f"{r[k]:.3f}" for k, _ in COLUMNS) + " |")
    lines.append(
        "| **mean ± sd** | " + " | ".join(spread([r[k] for r in runs]) for k, _ in COLUMNS) + " |"
    )
    return "\n".join(lines)


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--classifier", default="mlp", choices=["mlp", "gbdt"])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    load_before = os.getloadavg()
    runs = [run(seed, args.queries, args.classifier) for seed in args.seeds]
    load_after = os.getloadavg()
    text = table(runs)
    gap = statistics.fmean(r["gap_closed"] for r in runs)
    select = max(r["select_10k_seconds"] for r in runs)
    verdict = (
        f"- gap closed (mean over seeds): **{gap:.3f}**; target >= 0.5: "
        f"{'met' if gap >= 0.5 else 'NOT met'}\n"
        f"- selection of {SELECT_QUERIES:,} queries (slowest seed): **{select:.3f} s**; "
        f"target < 1 s: {'met' if select < 1 else 'NOT met'}"
    )
    print(text)
    print(verdict)
    if args.no_write:
        return
    command = "python bench/prompt_oirl.py " + " ".join(sys.argv[1:])
    md = (
        "# Prompt-OIRL: per-query strategy selection from an offline log (issue #15)\n\n"
        f"Run {datetime.now(UTC).isoformat(timespec='seconds')} with `{command.strip()}`.\n\n"
        f"Machine: {machine()}; load average before {', '.join(f'{x:.2f}' for x in load_before)}"
        f", after {', '.join(f'{x:.2f}' for x in load_after)} (shared with other work); "
        "1 torch thread.\n\n"
        f"Data: per seed, a synthetic log of {args.queries} queries (six types) x 6 strategies, "
        "every cell logged, outcome one Bernoulli draw of the strategy's success probability "
        "on the query (trainer/algorithms/oirl_synthetic.py); 20 % of the queries held out. "
        f"Classifier: {args.classifier}, hashing encoder (crc32 of words into 256 dims + 2 length "
        "features), "
        "defaults of PromptRewardConfig. Columns 'selector' to 'oracle' are the mean logged "
        "outcome on the held-out queries of: the selector's choice, the best single strategy "
        "(by the training queries), a random strategy, the best logged strategy per query "
        "(hindsight). 'select 10k s': choose_many on 10,000 fresh queries, encoding included.\n\n"
        f"{text}\n\n{verdict}\n"
    )
    out = ROOT / "bench" / "results"
    (out / "prompt_oirl.md").write_text(md, encoding="utf-8")
    payload = {"command": command, "machine": machine(), "load": [load_before, load_after]}
    (out / "prompt_oirl.json").write_text(json.dumps(payload | {"runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
