"""The process a training job runs in: ``python -m trainer.job_child JOB_DIR``.

No Django here. The worker (trainer/runner.py) writes ``JOB_DIR/job.json``
(``{"kind", "config", "rows_file", "output_dir"}``), starts this module in a process group of
its own and reads its stdout: one JSON object a line, ``{"step", "total", "metrics"}`` while
training, then ``{"final": {...}}`` or ``{"error": "..."}``. Creating ``JOB_DIR/STOP`` asks the
algorithm to save and stop at its next step. If the worker dies, this process notices that its
parent changed and exits, so a reaped job never keeps a second copy running.
"""

import importlib
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

# kind -> (module, config class). A kind missing here cannot be launched yet.
ALGORITHMS = {
    "reward": ("trainer.algorithms.reward", "RewardConfig"),
    "dpo": ("trainer.algorithms.dpo", "DPOConfig"),
    "sft": ("trainer.algorithms.sft", "SFTConfig"),
    "generate": ("trainer.algorithms.generate", "GenerateConfig"),
    "raft": ("trainer.algorithms.raft", "RAFTConfig"),
    "ppo": ("trainer.algorithms.ppo", "PPOConfig"),
}


def sft_rows(rows: list[dict]) -> list[dict]:
    """SFT on labels: the preferred response of each preference row is the demonstration."""
    return [{"prompt": row["prompt"], "completion": row["chosen"]} for row in rows]


# How a kind reads the snapshot rows, where they are not already in its own format.
ROW_ADAPTERS = {"sft": sft_rows}

PARENT_CHECK_SECONDS = 2.0


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _exit_when_orphaned(parent: int) -> None:
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent:
            os._exit(3)


def run(job_dir: Path) -> int:
    spec = json.loads((job_dir / "job.json").read_text(encoding="utf-8"))
    module_name, config_name = ALGORITHMS[spec["kind"]]
    module = importlib.import_module(module_name)
    from trainer.algorithms.common import config_from_dict, read_jsonl

    config = config_from_dict(getattr(module, config_name), spec["config"])
    rows = read_jsonl(spec["rows_file"])
    rows = ROW_ADAPTERS.get(spec["kind"], list)(rows)
    stop_file = job_dir / "STOP"

    def progress(step: int, total: int, metrics: dict) -> None:
        emit({"step": step, "total": total, "metrics": metrics})

    metrics = module.train(
        config, rows, spec["output_dir"], progress=progress, should_stop=stop_file.exists
    )
    emit({"final": metrics})
    return 0


def main() -> int:
    job_dir = Path(sys.argv[1])
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    try:
        return run(job_dir)
    except Exception as exc:  # reported to the job row, not swallowed
        traceback.print_exc(file=sys.stderr)
        emit({"error": f"{type(exc).__name__}: {exc}"})
        return 1


if __name__ == "__main__":
    sys.exit(main())
