"""Run one training job on this worker: claim it, freeze its data, supervise its process.

The algorithm runs in a child process (trainer/job_child.py) in a process group of its own:
torch never loads in the Celery worker (docs/architecture.md: fork hangs), a crash or an
out-of-memory kill fails the job instead of the worker, and a job that ignores a cancel is
killed with its whole group.

The kinds that train through transformers' Trainer (DPO, SFT, RLOO, GRPO: `distributed` in
trainer/kinds.py) start as ``accelerate launch --config_file F -m trainer.job_child JOB_DIR``
instead when there is an accelerate config F: the job's own (its config's ``accelerate_config``)
or else the worker's (PREFLOOP_ACCELERATE_CONFIG). One process per GPU (or machine slot) as F
says, rank 0 reporting.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from contextlib import suppress
from pathlib import Path

from django.conf import settings
from django.db import transaction

from trainer import outbox, services
from trainer.job_child import SUPERVISOR_ENV, parent_of
from trainer.judging import keys
from trainer.kinds import ACCELERATE_CONFIG, DISTRIBUTED_KINDS
from trainer.models import Judge, TrainingJob
from trainer.snapshots import snapshot_freeze

Status = TrainingJob.Status
POLL_SECONDS = 1.0


def job_run(*, job_id: int, worker: str) -> str | None:
    """Run a queued job to its end. Returns its final status, None if it was not ours."""
    if not services.job_claim(job_id=job_id, worker=worker):
        return None
    job = TrainingJob.objects.select_related("project").get(id=job_id)
    job_dir = Path(job.output_dir)
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
        rows_file = snapshot_freeze(job=job, directory=job_dir)
        config = dict(job.config)
        # A launch option, not the algorithm's: it says how the child is started.
        accelerate_config = config.pop(ACCELERATE_CONFIG, None)
        spec = {
            "kind": job.kind,
            "config": config,
            "rows_file": str(rows_file),
            "output_dir": str(job_dir / "model"),
        }
        (job_dir / "job.json").write_text(json.dumps(spec), encoding="utf-8")
    except Exception as exc:  # bad data or disk: the job fails with the reason
        services.job_finish(job_id=job_id, worker=worker, status=Status.FAILED, error=str(exc))
        return Status.FAILED
    return _supervise(
        job_id=job_id,
        worker=worker,
        job_dir=job_dir,
        kind=job.kind,
        accelerate_config=accelerate_config,
    )


def job_run_and_advance(*, job_id: int, worker: str) -> str | None:
    """`job_run`, then mark the project's loop due: the job's end may move it on."""
    status = job_run(job_id=job_id, worker=worker)
    project_id = TrainingJob.objects.filter(id=job_id).values_list("project_id", flat=True).first()
    if status is not None and project_id is not None:
        with transaction.atomic():
            outbox.loop_advance_request(project_id=project_id)
    return status


def child_command(*, kind: str, job_dir: Path, accelerate_config: str | None = None) -> list[str]:
    """The job's process: plain Python, or `accelerate launch` where the job or the worker gives
    an accelerate config (the job's wins)."""
    module = ["-m", "trainer.job_child", str(job_dir)]
    accelerate_config = accelerate_config or settings.PREFLOOP_ACCELERATE_CONFIG
    if accelerate_config and kind in DISTRIBUTED_KINDS:
        launch = [sys.executable, "-m", "accelerate.commands.launch"]
        return [*launch, "--config_file", str(accelerate_config), *module]
    return [sys.executable, *module]


# glibc's malloc raises its mmap threshold to the size of each large block freed, then keeps
# such blocks in its heap: a training process's RSS grew to twice its live tensors (bench/
# memory.py: 4.1 vs 3.2 GB peak for a 110M reward model on CPU, at the same speed). A fixed
# threshold returns large blocks as they are freed, so the memory check's estimate holds on CPU.
CHILD_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def child_env() -> dict[str, str]:
    """The job process's environment: the worker's, without Django's settings module (nor a
    judge's stored-key variable), with unbuffered output, the supervisor's pid and the malloc
    setting above (unless set)."""
    env = {**CHILD_MALLOC, **os.environ, "PYTHONUNBUFFERED": "1", SUPERVISOR_ENV: str(os.getpid())}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop(keys.STORED_KEY_ENV, None)
    return env


def secret_env(*, job_id: int, kind: str) -> dict[str, str]:
    """What only this job's process may see: a judging job's judge's stored API key, decrypted
    (trainer/judging/keys.py). KeyUnreadable when it cannot be."""
    if kind != "judge":
        return {}
    dataset = TrainingJob.objects.filter(id=job_id).values_list("dataset", flat=True).first()
    judge_id = (dataset or {}).get("judge")
    token = Judge.objects.filter(id=judge_id).values_list("api_key_encrypted", flat=True).first()
    return {keys.STORED_KEY_ENV: keys.decrypt(token)} if token else {}


def _start(
    job_dir: Path, kind: str, accelerate_config: str | None = None, secrets: dict | None = None
) -> subprocess.Popen:
    env = {**child_env(), **(secrets or {})}
    return subprocess.Popen(
        child_command(kind=kind, job_dir=job_dir, accelerate_config=accelerate_config),
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, killed as one
    )


def _reader(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _supervise(
    *, job_id: int, worker: str, job_dir: Path, kind: str, accelerate_config: str | None = None
) -> str:
    try:
        secrets = secret_env(job_id=job_id, kind=kind)
    except keys.KeyUnreadable as exc:
        services.job_finish(job_id=job_id, worker=worker, status=Status.FAILED, error=str(exc))
        return Status.FAILED
    child = _start(job_dir, kind, accelerate_config, secrets)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(child.stdout, lines), daemon=True).start()
    log: deque[str] = deque(maxlen=200)
    started, over_budget = time.monotonic(), False
    state = {"step": None, "total": None, "final": None, "error": None, "started": started,
             "batches": []}  # fmt: skip
    stop_sent_at = None
    limit = settings.PREFLOOP_JOB_TIME_LIMITS.get(kind, float("inf"))
    eof = False
    sent_tail = ""
    while not eof:
        new_metrics, eof = _drain(lines, log, state)
        refused = _store_batches(job_id=job_id, state=state)
        if refused:
            _kill(child)
            child.wait()
            services.job_finish(job_id=job_id, worker=worker, status=Status.FAILED, error=refused)
            return Status.FAILED
        tail = "".join(log)
        alive = services.job_heartbeat(
            job_id=job_id,
            worker=worker,
            step=state["step"],
            total=state["total"],
            new_metrics=new_metrics,
            log_tail=tail if tail != sent_tail else None,  # unchanged: not rewritten
        )
        sent_tail = tail
        if not alive:  # reaped or finished elsewhere: this copy must not go on
            _kill(child)
            return Status.FAILED
        if stop_sent_at is None:
            over_budget = time.monotonic() - started > limit
            if over_budget or services.job_cancel_requested(job_id=job_id):
                (job_dir / "STOP").touch()
                stop_sent_at = time.monotonic()
        if stop_sent_at and time.monotonic() - stop_sent_at > settings.PREFLOOP_JOB_CANCEL_GRACE:
            _kill(child)
            child.wait()
            status = Status.FAILED if over_budget else Status.CANCELLED
            error = (
                _over_budget(limit, job_dir) if over_budget else "Killed: it did not stop in time."
            )
            services.job_finish(job_id=job_id, worker=worker, status=status, error=error)
            return status
    code = child.wait()
    if over_budget:
        services.job_finish(
            job_id=job_id, worker=worker, status=Status.FAILED, error=_over_budget(limit, job_dir)
        )
        return Status.FAILED
    return _conclude(
        job_id=job_id,
        worker=worker,
        code=code,
        state=state,
        cancelled=stop_sent_at is not None,
        log=log,
    )


def _over_budget(limit: float, job_dir: Path) -> str:
    return (
        f"The job ran past its time limit of {int(limit)} s (PREFLOOP_JOB_TIME_LIMITS) and was "
        f"stopped; it saved a checkpoint where it could, under {job_dir / 'model'}. To go on, "
        'launch it again with "resume_from_checkpoint" set to that checkpoint directory.'
    )


def _drain(lines: queue.Queue, log: deque, state: dict) -> tuple[list[dict], bool]:
    """Read what the child printed since the last poll (waits up to POLL_SECONDS)."""
    metrics, deadline = [], time.monotonic() + POLL_SECONDS
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return metrics, False
        if line is None:
            return metrics, True
        try:
            msg = _storable(json.loads(line))
        except json.JSONDecodeError:
            msg = None
        if not isinstance(msg, dict):
            log.append(line)
            continue
        if "step" in msg:
            state["step"], state["total"] = msg["step"], msg.get("total")
            # elapsed_s: seconds since the training process started, for the ETA.
            elapsed = round(time.monotonic() - state["started"], 2)
            metrics.append({"step": msg["step"], "elapsed_s": elapsed, **msg.get("metrics", {})})
        elif "batch" in msg:
            state["batches"].append(msg["batch"])
        elif "final" in msg:
            state["final"] = msg["final"]
        elif "error" in msg:
            state["error"] = msg["error"]
            log.append(line)


def _store_batches(*, job_id: int, state: dict) -> str:
    """A judging job's finished batches, each stored in one transaction as it arrives.
    Returns why a batch was refused ("" when all were stored): the job then stops, with
    the batches before it kept whole and nothing of that one written."""
    if not state["batches"]:
        return ""
    from trainer.judging.services import judge_batch_store

    while state["batches"]:
        batch = state["batches"].pop(0)
        try:
            judge_batch_store(job_id=job_id, results=batch)
        except Exception as exc:  # noqa: BLE001 -- the reason goes to the job row
            state["batches"].clear()
            return f"Storing a batch of verdicts failed: {exc}"
    return ""


def _storable(value):
    """The child's message with NUL characters (which a sampled text can hold, and PostgreSQL's
    jsonb cannot store) shown as U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    return value


def _conclude(*, job_id, worker, code, state, cancelled, log) -> str:
    final = state["final"]
    if code == 0 and final is not None:
        status = Status.CANCELLED if final.get("stopped") or cancelled else Status.SUCCEEDED
        services.job_finish(job_id=job_id, worker=worker, status=status, final_metrics=final)
        return status
    error = state["error"] or f"The training process exited with code {code}."
    if not state["error"]:
        error += "\n" + "".join(list(log)[-20:])
    services.job_finish(job_id=job_id, worker=worker, status=Status.FAILED, error=error)
    return Status.FAILED


def _kill(child: subprocess.Popen) -> None:
    """SIGKILL the child's process group and everything started below it.

    The group alone is not enough under `accelerate launch`: torch's elastic launcher starts
    each rank in a session of its own. The tree is read before the kill, while it is whole.
    """
    below = _descendants(child.pid)
    with suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    for pid in below:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _descendants(pid: int) -> list[int]:
    """Pids below `pid` (Linux /proc; empty elsewhere, where the group kill has to do)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        parent = parent_of(int(entry.name))
        if parent is not None:
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found
