"""The process a training job runs in: ``python -m trainer.job_child JOB_DIR``.

No Django here. The worker (trainer/runner.py) writes ``JOB_DIR/job.json``
(``{"kind", "config", "rows_file", "output_dir"}``), starts this module in a process group of
its own and reads its stdout: one JSON object a line, ``{"step", "total", "metrics"}`` while
training, then ``{"final": {...}}`` or ``{"error": "..."}``. Creating ``JOB_DIR/STOP`` asks the
algorithm to save and stop at its next step. If the worker dies, this process notices that its
supervisor is gone and exits, so a reaped job never keeps a second copy running.

Under ``accelerate launch`` (the job's ``accelerate_config`` or PREFLOOP_ACCELERATE_CONFIG,
distributed kinds in trainer/kinds.py) this module runs once per rank. Only rank 0 prints
progress and the final result, so the job row gets one stream; a stop request is agreed on by
all ranks at the same step (one all-reduce of a flag), so no rank is left waiting for the
others in a collective.
"""

import importlib
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from trainer.kinds import JOB_KINDS, JUDGMENTS, KINDS

# kind -> (module, config class), from the table of job kinds (trainer/kinds.py).
ALGORITHMS = {k.name: (k.module, k.config_class) for k in JOB_KINDS}


def sft_rows(rows: list[dict]) -> list[dict]:
    """SFT on labels: each prompt's best response, once, is the demonstration; a snapshot of
    written demonstrations ({"prompt", "completion"} rows) is one already."""
    from trainer.algorithms.sft import best_responses

    if rows and all("completion" in row for row in rows):
        return rows
    return best_responses(rows)


# How a kind reads the snapshot rows, where they are not already in its own format.
ROW_ADAPTERS = {"sft": sft_rows}

PARENT_CHECK_SECONDS = 2.0
# The pid of the worker that supervises this job (set by trainer/runner.py).
SUPERVISOR_ENV = "PREFLOOP_SUPERVISOR_PID"
# Set by torchrun / accelerate launch, or by MPI launchers.
RANK_ENV = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK")


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def rank() -> int:
    for name in RANK_ENV:
        if os.environ.get(name):
            return int(os.environ[name])
    return 0


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE") or 1)


def parent_of(pid: int) -> int | None:
    """The parent pid of `pid` from /proc (Linux), None if it is gone or there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (in parentheses) may hold spaces; the parent pid is the 2nd field after it.
    return int(stat.rsplit(")", 1)[1].split()[1])


def under(supervisor: int) -> bool:
    """Whether `supervisor` is an ancestor of this process (ranks sit under the launcher)."""
    pid: int | None = os.getppid()
    while pid and pid > 1:
        if pid == supervisor:
            return True
        pid = parent_of(pid)
    return False


def _exit_when_orphaned() -> None:
    parent = os.getppid()
    supervisor = int(os.environ.get(SUPERVISOR_ENV) or parent)
    has_proc = parent_of(parent) is not None
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        orphaned = not under(supervisor) if has_proc else os.getppid() != parent
        if orphaned:
            os._exit(3)


def stop_check(stop_file: Path):
    """`should_stop` for the algorithm; in a distributed run, true on every rank or on none."""
    if world_size() == 1:
        return stop_file.exists

    def should_stop() -> bool:
        import torch
        import torch.distributed as dist

        requested = stop_file.exists()
        if not (dist.is_available() and dist.is_initialized()):
            return requested
        device = "cpu"
        if dist.get_backend() == "nccl":
            device = f"cuda:{torch.cuda.current_device()}"
        flag = torch.tensor([float(requested)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    return should_stop


def run(job_dir: Path) -> int:
    spec = json.loads((job_dir / "job.json").read_text(encoding="utf-8"))
    module_name, config_name = ALGORITHMS[spec["kind"]]
    module = importlib.import_module(module_name)
    from trainer.algorithms.common import config_from_dict, read_jsonl

    config = config_from_dict(getattr(module, config_name), spec["config"])
    rows = read_jsonl(spec["rows_file"])
    rows = ROW_ADAPTERS.get(spec["kind"], list)(rows)
    main_process = rank() == 0

    def progress(step: int, total: int, metrics: dict) -> None:
        if main_process:
            emit({"step": step, "total": total, "metrics": metrics})

    extra = {}
    kind = KINDS.get(spec["kind"])
    if kind is not None and kind.makes == JUDGMENTS:
        # Each batch of verdicts goes out whole, in one line; the worker stores it at once.
        extra["emit_batch"] = lambda results: emit({"batch": results})
    metrics = module.train(
        config,
        rows,
        spec["output_dir"],
        progress=progress,
        should_stop=stop_check(job_dir / "STOP"),
        **extra,
    )
    if main_process:
        emit({"final": metrics})
    _leave_process_group()
    return 0


def _leave_process_group() -> None:
    """Under `accelerate launch`, leave the process group before exiting: a rank that exits
    with gloo's threads still running can abort ("terminate called without an active
    exception"), which failed a finished job now and then."""
    if world_size() <= 1:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main() -> int:
    job_dir = Path(sys.argv[1])
    threading.Thread(target=_exit_when_orphaned, daemon=True).start()
    try:
        return run(job_dir)
    except Exception as exc:  # reported to the job row, not swallowed
        traceback.print_exc(file=sys.stderr)
        where = f" (rank {rank()})" if world_size() > 1 else ""
        emit({"error": f"{type(exc).__name__}{where}: {exc}"})
        return 1


def _exit(code: int) -> None:
    """Exit with ``code``. Under `accelerate launch` without running C++ static destructors:
    even after leaving the process group, a rank's exit now and then aborted in one of them
    ("terminate called without an active exception", SIGABRT) after the job had finished and
    saved, which failed the job. Everything this process says has been written by then."""
    if world_size() <= 1:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
