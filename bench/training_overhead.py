"""Training overhead: one reward-model run through a Prefloop job, and the same run directly.

    .venv/bin/python bench/training_overhead.py                      # ~10 min on 2 busy cores
    .venv/bin/python bench/training_overhead.py --pairs 400 --steps 20 --repeats 1 --name smoke

Builds a fresh PostgreSQL database (prefloop_overhead_bench) holding a pairwise project with
`--pairs` real prompts, completions, tasks and annotations (bulk inserts) whose chosen response
always mentions a marker word, and a tiny Llama built locally (hidden 256, 4 layers, no
download). After an untimed 2-step warm-up job (a worker is long-lived), it times `--repeats`
rounds of three runs, the order rotating each round (job ours trl, ours trl job, trl job ours):

* job: `services.job_create` -> status succeeded, through a real Celery worker (solo pool, the
  `gpu` queue, Redis db 13) started beforehand: dispatch, claim, the snapshot through the
  export code, the child process, progress supervision and the model registration;
* ours: `trainer.algorithms.reward.train` in a plain Python process with the same config, on
  the same rows exported by the same code (the sha256 must equal the job's snapshot); process
  start and imports included;
* trl: TRL's RewardTrainer in a plain Python process on the same pairs, same model, batch
  size, steps, learning rate and schedule, max_length, CPU, no eval, one save at the end.

Each trained model is then scored on held-out pairs (accuracy), so all three did the same
work. Prints the table and writes bench/results/<name>.json and .md. Target (issue #4): the
job takes at most 5 % longer than training directly.
"""

import argparse
import hashlib
import json
import os
import platform
import random
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
DB = "prefloop_overhead_bench"
REDIS_DB = 13
MARKER = "cat"
TARGET_OVERHEAD = 0.05
MODES = ["job", "ours", "trl"]


# --- Data ------------------------------------------------------------------------------------


def _sentences() -> tuple[list[str], list[str]]:
    """Sentences of the tiny model's corpus, with and without the marker word."""
    from trainer.algorithms.tiny import tiny_corpus

    found = {
        s.strip() + "."
        for line in tiny_corpus()
        if "<|" not in line
        for s in line.split(".")
        if s.strip()
    }
    return (
        sorted(s for s in found if MARKER in s.split()),
        sorted(s for s in found if MARKER not in s.split()),
    )


def make_pairs(n: int, seed: int) -> list[dict]:
    """A learnable preference: both answers are two sentences; only the chosen one says 'cat'."""
    rng = random.Random(seed)
    with_marker, without = _sentences()
    topics = ["the weather", "the garden", "your day", "the sea", "music", "the market"]
    pairs = []
    for i in range(n):
        chosen = [rng.choice(with_marker), rng.choice(without)]
        rng.shuffle(chosen)
        pairs.append(
            {
                "prompt": f"Question {i}: tell me about {rng.choice(topics)}.\n",
                "chosen": " ".join(chosen),
                "rejected": " ".join(rng.sample(without, 2)),
            }
        )
    return pairs


def export_rows(project, path: Path) -> dict:
    """The rows a job's snapshot holds, through the same export code (same bytes, same hash)."""
    from annotator.export import ExportParams, export_start

    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        for chunk in export_start(project=project, params=ExportParams()).chunks():
            handle.write(chunk)
            digest.update(chunk)
    return {"path": str(path), "sha256": digest.hexdigest()}


def fresh_database(url: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{DB}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=os.environ, check=True
    )


def fill_project(pairs: list[dict]):
    """The pairs as a labeled pairwise project: bulk inserts, one labeler, one vote a task."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotator.models import (
        Annotation,
        Completion,
        Kind,
        Membership,
        Project,
        Prompt,
        Task,
        TaskCompletion,
    )

    user_model = get_user_model()
    admin = user_model.objects.create(username="bench-admin", is_staff=True)
    labeler = user_model.objects.create(username="bench-labeler")
    project = Project.objects.create(
        name="Training overhead", kind=Kind.PAIRWISE, overlap=1, created_by=admin
    )
    Membership.objects.create(project=project, user=admin, role=Membership.Role.ADMIN)
    Membership.objects.create(project=project, user=labeler, role=Membership.Role.LABELER)
    prompts = Prompt.objects.bulk_create(
        [Prompt(project=project, text=p["prompt"]) for p in pairs], batch_size=2000
    )
    rng = random.Random(1)
    completions, order = [], []
    for prompt, pair in zip(prompts, pairs, strict=True):
        texts = [pair["chosen"], pair["rejected"]]
        first = rng.random() < 0.5  # the chosen one is not always the first completion
        order.append(first)
        for text in texts if first else texts[::-1]:
            completions.append(Completion(prompt=prompt, text=text))
    completions = Completion.objects.bulk_create(completions, batch_size=2000)
    tasks = Task.objects.bulk_create(
        [
            Task(
                project=project,
                prompt=p,
                kind=Kind.PAIRWISE,
                overlap=1,
                annotation_count=1,
                is_complete=True,
            )
            for p in prompts
        ],
        batch_size=2000,
    )
    links, annotations = [], []
    for i, task in enumerate(tasks):
        a, b = completions[2 * i], completions[2 * i + 1]
        links += [
            TaskCompletion(task=task, completion=a, position=0),
            TaskCompletion(task=task, completion=b, position=1),
        ]
        chosen, rejected = (a, b) if order[i] else (b, a)
        annotations.append(
            Annotation(
                task=task,
                labeler=labeler,
                kind=Kind.PAIRWISE,
                verdict=Annotation.Verdict.PREFERRED,
                chosen=chosen,
                rejected=rejected,
                shown_order=[a.id, b.id],
                time_spent_ms=3000,
                labeler_kind="simulated",
            )
        )
    TaskCompletion.objects.bulk_create(links, batch_size=4000)
    Annotation.objects.bulk_create(annotations, batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return project, admin


# --- The three runs --------------------------------------------------------------------------


def reward_config(args, model: str) -> dict:
    """Our RewardConfig: no validation split, no evaluation, no checkpoints, one final save."""
    return {
        "model_name_or_path": model,
        "learning_rate": args.lr,
        "max_steps": args.steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "val_fraction": 0.0,
        "eval_steps": 0,
        "save_steps": 0,
        "device": "cpu",
        "seed": 0,
    }


def start_worker(env: dict, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "gpu",
               "--pool=solo", "--concurrency=1", "--prefetch-multiplier=1", "--without-gossip",
               "--without-mingle", "--without-heartbeat", "-l", "INFO"]  # fmt: skip
    worker = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if b" ready." in log.read_bytes():
            return worker
        if worker.poll() is not None:
            raise SystemExit(f"The Celery worker exited:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    worker.kill()
    raise SystemExit("The Celery worker did not become ready in 120 s.")


class ChildWatch(threading.Thread):
    """When the worker's training process started (its create time) and ended (50 ms polls)."""

    def __init__(self, worker):
        super().__init__(daemon=True)
        self.worker, self.started, self.ended = worker, None, None
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        child = None
        while child is None and not self.stop.is_set():
            found = self.worker.children()
            if found:
                child = found[0]
                self.started = child.create_time()
            else:
                time.sleep(0.02)
        while child is not None:
            try:
                if child.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)
        self.ended = time.time()


def run_job(project, admin, config: dict, worker) -> dict:
    """Wall time from job_create to the job's commit as succeeded (its finished_at); how much of
    it the training process lived; the CPU seconds of the worker and of its training process."""
    from trainer import services
    from trainer.models import TrainingJob

    cpu_before = worker.cpu_times()
    watch = ChildWatch(worker)
    watch.start()
    started = time.time()
    job = services.job_create(project=project, kind="reward", config=config, created_by=admin)
    while not TrainingJob.objects.filter(id=job.id, status__in=TrainingJob.FINISHED).exists():
        time.sleep(0.5)  # the end time is the row's finished_at, so a slow poll costs nothing
    cpu_after = worker.cpu_times()
    watch.stop.set()
    watch.join(timeout=5)
    job.refresh_from_db()
    if job.status != TrainingJob.Status.SUCCEEDED:
        raise SystemExit(f"Job {job.id} ended {job.status}: {job.error}\n{job.log_tail[-3000:]}")
    job_dir = Path(job.output_dir)
    frozen = datetime.fromtimestamp((job_dir / "job.json").stat().st_mtime, tz=UTC)
    worker_cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    child_cpu = (cpu_after.children_user + cpu_after.children_system) - (
        cpu_before.children_user + cpu_before.children_system
    )
    wall = job.finished_at.timestamp() - started
    child_s = watch.ended - watch.started
    return {
        "wall_s": wall,
        "training_process_s": child_s,
        "outside_training_process_s": wall - child_s,
        "cpu_s": worker_cpu + child_cpu,
        "worker_cpu_s": worker_cpu,
        "child_cpu_s": child_cpu,
        "job_id": job.id,
        "phases_s": {
            "queued_to_claimed": (job.started_at - job.created_at).total_seconds(),
            "claimed_to_snapshot_written": (frozen - job.started_at).total_seconds(),
            "snapshot_to_finished": (job.finished_at - frozen).total_seconds(),
        },
        "snapshot_rows": job.snapshot_rows,
        "snapshot_sha256": job.snapshot_sha256,
        "metric_rows": len(job.metrics),
        "rows_file": str(job_dir / "rows.jsonl"),
        "output_dir": str(job_dir / "model"),
    }


def run_direct(mode: str, spec: dict, workdir: Path, env: dict) -> dict:
    """One plain Python process (no Django), timed from spawn to exit."""
    spec_file = workdir / f"{mode}-spec.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    shutil.rmtree(spec["output_dir"], ignore_errors=True)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--direct", mode, str(spec_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        # A session of its own, as the job's process has: with the kernel's autogroup
        # scheduling, a session is what gets a fair share of the CPUs on a busy machine.
        start_new_session=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"The direct {mode} run failed:\n{done.stderr[-4000:]}")
    inner = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "cpu_s": cpu, **inner, "output_dir": spec["output_dir"]}


class StepClock:
    """Times of the first and last optimizer step, for the training loop's steps/s."""

    def __init__(self):
        self.first = self.last = None
        self.steps = 0

    def tick(self, step: int) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        if step > self.steps:
            self.last, self.steps = now, step

    def steps_per_s(self) -> float | None:
        if self.first is None or self.steps < 2 or self.last == self.first:
            return None
        return (self.steps - 1) / (self.last - self.first)


def direct_ours(spec: dict) -> dict:
    """What the job's child does, without the job: read the rows, train, save."""
    t0 = time.perf_counter()
    from trainer.algorithms.common import config_from_dict, read_jsonl
    from trainer.algorithms.reward import RewardConfig, train

    imported = time.perf_counter()
    config = config_from_dict(RewardConfig, spec["config"])
    rows = read_jsonl(spec["rows_file"])
    clock = StepClock()
    train(config, rows, spec["output_dir"], progress=lambda step, total, m: clock.tick(step))
    return {
        "import_s": imported - t0,
        "train_call_s": time.perf_counter() - imported,
        "loop_steps_per_s": clock.steps_per_s(),
    }


def direct_trl(spec: dict) -> dict:
    """TRL's RewardTrainer with the settings of our config (batch, steps, lr, linear decay)."""
    t0 = time.perf_counter()
    import datasets
    from transformers import AutoTokenizer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import RewardConfig, RewardTrainer

    from trainer.algorithms.common import read_jsonl

    imported = time.perf_counter()
    datasets.disable_progress_bars()
    config = spec["config"]
    keys = ("prompt", "chosen", "rejected", "margin")
    rows = [{k: row[k] for k in keys if k in row} for row in read_jsonl(spec["rows_file"])]
    clock = StepClock()

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            clock.tick(state.global_step)

    args = RewardConfig(
        output_dir=spec["output_dir"],
        max_steps=config["max_steps"],
        per_device_train_batch_size=config["batch_size"],
        learning_rate=config["learning_rate"],
        lr_scheduler_type="linear",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        max_length=config["max_length"],
        use_cpu=True,
        bf16=False,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=1,  # our loop reports every step too
        # TRL turns activation checkpointing on by default: every layer would run forward twice
        # a step. Our loop keeps its activations, so the baseline does too.
        activation_checkpointing=False,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=config["seed"],
    )
    tokenizer = AutoTokenizer.from_pretrained(config["model_name_or_path"])
    trainer = RewardTrainer(
        model=config["model_name_or_path"],
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[Clock()],
    )
    trainer.remove_callback(PrinterCallback)  # one printed dict a step; the job has none either
    built = time.perf_counter()
    trainer.train()
    trainer.save_model(spec["output_dir"])
    return {
        "import_s": imported - t0,
        "train_call_s": time.perf_counter() - imported,
        "trainer_build_s": built - imported,
        "loop_steps_per_s": clock.steps_per_s(),
        "optimizer": str(args.optim),
    }


def accuracy(model_dir: str, pairs: list[dict]) -> float:
    from trainer.algorithms.reward import score_texts

    prompts = [p["prompt"] for p in pairs] * 2
    completions = [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
    scores = score_texts(model_dir, prompts, completions, device="cpu", batch_size=64)
    n = len(pairs)
    return sum(scores[i] > scores[n + i] for i in range(n)) / n


# --- Report ------------------------------------------------------------------------------------


def machine() -> dict:
    import psutil

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def summarise(runs: list[dict], steps: int) -> dict:
    summary = {}
    for mode in MODES:
        walls = [r[mode]["wall_s"] for r in runs]
        loops = [r[mode].get("loop_steps_per_s") for r in runs if r[mode].get("loop_steps_per_s")]
        summary[mode] = {
            "wall_s_median": statistics.median(walls),
            "cpu_s_median": statistics.median(r[mode]["cpu_s"] for r in runs),
            "wall_s_min": min(walls),
            "walls_s": walls,
            "end_to_end_steps_per_s": steps / statistics.median(walls),
            "loop_steps_per_s_median": statistics.median(loops) if loops else None,
        }
    job, ours, trl = (summary[m]["wall_s_median"] for m in MODES)
    per_round = [r["job"]["wall_s"] / r["ours"]["wall_s"] for r in runs]
    summary["ratio_job_over_ours"] = job / ours
    summary["ratio_job_over_ours_per_round"] = per_round
    summary["ratio_job_over_trl"] = job / trl
    summary["ratio_ours_over_trl"] = ours / trl
    cpu = {mode: summary[mode]["cpu_s_median"] for mode in MODES}
    summary["cpu_ratio_job_over_ours"] = cpu["job"] / cpu["ours"]
    summary["cpu_ratio_job_over_trl"] = cpu["job"] / cpu["trl"]
    outside = statistics.median(r["job"]["outside_training_process_s"] for r in runs)
    summary["job_outside_training_process_s_median"] = outside
    summary["job_outside_training_process_over_ours"] = outside / ours
    summary["overhead_target_met"] = job / ours - 1 <= TARGET_OVERHEAD
    return summary


def table(summary: dict, accuracies: dict) -> str:
    names = {"job": "Prefloop job (Celery, end to end)", "ours": "reward.train, plain process",
             "trl": "TRL RewardTrainer, plain process"}  # fmt: skip
    lines = [
        "| run | wall s (median) | wall s (each) | CPU s (median) | steps/s end to end | "
        "steps/s loop | held-out accuracy |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for mode, name in names.items():
        s = summary[mode]
        loop = s["loop_steps_per_s_median"]
        each = ", ".join(f"{w:.1f}" for w in s["walls_s"])
        lines.append(
            f"| {name} | {s['wall_s_median']:.1f} | {each} | {s['cpu_s_median']:.1f} | "
            f"{s['end_to_end_steps_per_s']:.2f} | "
            f"{f'{loop:.2f}' if loop else 'n/a'} | {accuracies[mode]:.3f} |"
        )
    per_round = ", ".join(f"{r:.3f}" for r in summary["ratio_job_over_ours_per_round"])
    lines += [
        "",
        f"- job / ours: **{summary['ratio_job_over_ours']:.3f}** (per round: {per_round}); "
        f"target <= {1 + TARGET_OVERHEAD:.2f}: "
        f"{'met' if summary['overhead_target_met'] else 'NOT met'}",
        f"- job / TRL: **{summary['ratio_job_over_trl']:.3f}**",
        f"- ours / TRL: {summary['ratio_ours_over_trl']:.3f}",
        f"- The job's time outside its training process (dispatch, claim, snapshot, process "
        f"start, finish, registration): {summary['job_outside_training_process_s_median']:.2f} s "
        f"median, {100 * summary['job_outside_training_process_over_ours']:.1f} % of the direct "
        "run",
        f"- CPU seconds, job / ours: {summary['cpu_ratio_job_over_ours']:.3f}; job / TRL: "
        f"{summary['cpu_ratio_job_over_trl']:.3f} (the job's count is the worker plus its "
        "training process; PostgreSQL's share is not counted)",
    ]
    return "\n".join(lines)


NOTES = [
    "The TRL baseline turns activation checkpointing off. TRL's RewardConfig turns it on by "
    "default, so every decoder layer runs its forward twice a step (a cProfile of 40 steps: 57 "
    "linear calls a step against 29 for our loop), about 1.4x slower per step on this model; "
    "our loop keeps its activations. Otherwise TRL keeps its defaults (fused AdamW; ours is "
    "torch.optim.AdamW).",
    "Each training process runs in a session of its own, as the job's does (trainer/runner.py "
    "starts it with start_new_session). With the kernel's autogroup scheduling a session is what "
    "gets a share of the CPUs: when the direct runs still shared the benchmark's session, they "
    "got up to 20 % less of a busy machine than the job and the ratio job / ours came out at "
    "0.80-0.91. Other work on this shared machine still moves wall times by a few %: see the "
    "per-round ratios. The time the job spends outside its training process, and the CPU "
    "seconds, are what the job path itself adds, whatever the load.",
]


def write_results(name: str, report: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    m, a = report["machine"], report["settings"]
    loads = ", ".join(f"{x:.2f}" for x in report["load_average_before"])
    md = [
        "# Training overhead (issue #4)",
        "",
        f"Run {report['finished_at']} with `{report['command']}`.",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}; "
        f"load average before: {loads} (shared with other work); "
        f"{a['threads']} torch thread(s) per training process.",
        "",
        f"Data: {a['pairs']} labeled pairs in PostgreSQL; tiny Llama (hidden {a['hidden']}, "
        f"{a['layers']} layers, {report['model_parameters']:,} parameters); {a['steps']} steps of "
        f"{a['batch_size']} pairs, lr {a['lr']}, max_length {a['max_length']}, CPU, no eval, one "
        f"save at the end; {a['repeats']} round(s), the order rotating (job ours trl, ours trl "
        "job, ...), after an untimed 2-step warm-up job.",
        "",
        table(report["summary"], report["accuracy"]),
        "",
        "Job phases (last round, s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in report["runs"][-1]["job"]["phases_s"].items()),
        "",
        *(f"- {note}" for note in NOTES),
        "",
    ]
    (RESULTS / f"{name}.md").write_text("\n".join(md), encoding="utf-8")


# --- Main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3000, help="labeled pairs in the project")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS for training")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", default="/tmp/prefloop-training-overhead")
    parser.add_argument("--name", default="training_overhead", help="results file name")
    parser.add_argument("--direct", nargs=2, metavar=("MODE", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.direct:
        mode, spec = args.direct[0], json.loads(Path(args.direct[1]).read_text())
        print(json.dumps((direct_ours if mode == "ours" else direct_trl)(spec)), flush=True)
        return
    bench(args)


def bench(args) -> None:
    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    url = f"postgres://postgres@127.0.0.1:5432/{DB}"
    training_env = {
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": str(args.threads),
    }
    os.environ.update(
        training_env,
        DJANGO_SETTINGS_MODULE="webapp.settings",
        DATABASE_URL=url,
        CELERY_BROKER_URL=f"redis://127.0.0.1:6379/{REDIS_DB}",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_DEBUG="0",
        DJANGO_HTTPS="0",
        DJANGO_LOG_LEVEL="WARNING",
        PREFLOOP_MODELS_DIR=str(workdir / "jobs"),
    )
    import django
    import redis

    print(f"database {DB}: migrate and fill {args.pairs} pairs", flush=True)
    fresh_database(url)
    django.setup()
    redis.Redis(db=REDIS_DB).flushdb()  # no stale messages from an earlier run
    pairs = make_pairs(args.pairs, seed=0)
    project, admin = fill_project(pairs)

    import psutil
    import torch
    from transformers import AutoModelForCausalLM

    from trainer.algorithms.tiny import build_tiny_policy

    torch.set_num_threads(args.threads)
    model = build_tiny_policy(
        workdir / "model", pretrain_steps=0, hidden_size=args.hidden, layers=args.layers
    )
    parameters = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model).parameters())
    config = reward_config(args, str(model))
    rows_file = export_rows(project, workdir / "rows.jsonl")
    worker = start_worker(dict(os.environ), workdir / "worker.log")
    runs, load_before = [], os.getloadavg()
    try:
        print("warm-up job (2 steps, not timed)", flush=True)
        run_job(project, admin, {**config, "max_steps": 2}, psutil.Process(worker.pid))
        for round_ in range(args.repeats):
            run = {"order": MODES[round_ % 3 :] + MODES[: round_ % 3], "load_average": {}}
            for mode in run["order"]:
                run["load_average"][f"before_{mode}"] = os.getloadavg()
                print(f"round {round_ + 1}: {mode}", flush=True)
                if mode == "job":
                    run[mode] = run_job(project, admin, config, psutil.Process(worker.pid))
                    if run[mode]["snapshot_sha256"] != rows_file["sha256"]:
                        raise SystemExit("The job's snapshot differs from the direct runs' rows.")
                else:
                    spec = {"rows_file": rows_file["path"], "config": config}
                    spec["output_dir"] = str(workdir / f"{mode}-{round_}")
                    run[mode] = run_direct(mode, spec, workdir, dict(os.environ))
            runs.append(run)
            print(json.dumps({m: round(run[m]["wall_s"], 2) for m in MODES}), flush=True)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    held_out = make_pairs(400, seed=1)
    accuracies = {m: accuracy(runs[-1][m]["output_dir"], held_out) for m in MODES}
    summary = summarise(runs, args.steps)
    report = {
        "command": " ".join([".venv/bin/python", "bench/training_overhead.py", *sys.argv[1:]]),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "settings": {
            "pairs": args.pairs,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "max_length": args.max_length,
            "hidden": args.hidden,
            "layers": args.layers,
            "threads": args.threads,
            "repeats": args.repeats,
        },
        "model_parameters": parameters,
        "reward_config": config,
        "accuracy": accuracies,
        "summary": summary,
        "runs": runs,
    }
    print(table(summary, accuracies))
    write_results(args.name, report)
    print(f"wrote {RESULTS / args.name}.json and .md")


if __name__ == "__main__":
    main()
