"""Loop gain (issue #5): does the loop make the policy better, and how fast does it turn?

From a fresh project, K rounds of the real loop: gunicorn serves the app, one Celery worker
takes the loop's light tasks (queue default) and one its jobs (queue gpu, solo pool), and
`manage.py simulate_labelers` answers over HTTP from an oracle with label noise. The
project starts with imported prompts, each with two samples of a tiny local base policy
(briefly pretrained on templated sentences, built once and cached). Each round collects
labels / K fresh comparisons, then the loop trains a reward model on every label so far, a
RAFT policy from the previous one, and queues "new versus previous" pairs, which the labelers
answer next. They stop when the label budget is spent.

Then the benchmark judges, per round, without the labelers' noise:
- the policy's win rate against the base (and against the previous round) on held-out
  prompts, with a 95 % Wilson interval: one sample of each on every prompt, the oracle picks;
- the oracle's own terms, target words matched and length, for the base and each policy, so
  the table shows what was learned;
- the reward model's accuracy on fresh comparisons: labels the labelers made after it was
  trained (noisy), and held-out pairs of that round's policy against the previous one that
  the oracle labelled (noise-free), both scored with trainer.algorithms.reward_scoring;
- loop latency from the database's timestamps: the annotation that crossed reward_after ->
  the reward job running; the last generate job's end -> the first lease on the new tasks.

    .venv/bin/python bench/loop_gain.py                    # noise 0.1 then 0.3, 1,000 labels
    .venv/bin/python bench/loop_gain.py --noise 0.1 --labels 500

Label efficiency (issue #10): `--acquisition random,uncertainty,disagreement` and
`--labels 150,300,500` sweep the routing rule and the label budget (`--repeats` seeds each);
with `--candidates N` the loop samples N responses per prompt from the new and the previous
policy, on a pool of `--pool` times as many train prompts as it has labels for, and queues
only the pairs the rule chooses. Round 1's labels are the imported base pairs for every rule
(there is no reward model to route with yet); the rule chooses round 2's. The label-efficiency
table (labels vs round-2 win rate against the base, mean and 95 % t-interval over the seeds)
goes into the report, its curve into bench/results/<out>.svg.

    .venv/bin/python bench/loop_gain.py --noise 0.1 --labels 150,300,500 --repeats 3 \
        --acquisition random,uncertainty,disagreement --candidates 4 --heads 4

AI feedback (issue #11): with `--judge`, the project has an AI judge (the simulated
OpenAI-compatible judge of trainer/loop/judge_server.py, a separate process, answering by the
same oracle, wrong on --judge-error of its answers, flipping on --judge-flip of swapped pairs,
left bias --judge-left) and the loop gives it each round's comparisons first. Each round runs
in phases so that people never take a task before the judge has seen it: the judge judges the
round's tasks (the imported pairs by a job started here, later rounds' by the loop itself),
then the labelers answer what the mixing policy left open and stop when the queue is empty,
then the loop trains on every label, the judge's and the people's. The report counts human and
judge labels per run.

    .venv/bin/python bench/loop_gain.py --noise 0.1 --repeats 3 --judge

Writes bench/results/loop_gain.json and .md (machine, load average, command, configs).
"""

import argparse
import ast
import functools
import http.client
import json
import os
import platform
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
PG_BASE = "postgres://postgres@127.0.0.1:5432"
QUESTIONS = ("tell me about", "write a sentence about", "what about")
# The topics of the tiny policy's pretraining dialogues (trainer/algorithms/tiny.py).
TOPICS = ("the weather", "a cat", "the garden", "your day", "a good book", "the sea", "music",
          "the market", "a friend", "the river")  # fmt: skip
END_STATES = ("failed", "stopped")


def chat_prompt(rng: random.Random) -> list[dict]:
    return [{"role": "user", "content": f"{rng.choice(QUESTIONS)} {rng.choice(TOPICS)}."}]


# --- Configs the loop runs with (tuned for the tiny policy on a CPU) ---------------------------


def policy_config(args) -> dict:
    if args.algorithm == "grpo":
        return {
            "num_generations": args.num_samples,
            "batch_size": 2 * args.num_samples,  # two prompts' groups a step
            "max_steps": args.grpo_steps,
            "learning_rate": args.grpo_lr,
            "max_completion_length": args.max_new_tokens,
            "save_steps": 0,
            "device": "cpu",
        }
    return {
        "iterations": args.raft_iterations,
        "num_samples": args.num_samples,
        "keep_top_k": args.keep_top_k,
        "prompts_per_iteration": args.prompts_per_iteration,
        "max_new_tokens": args.max_new_tokens,
        "learning_rate": args.raft_lr,
        "sft_epochs": args.sft_epochs,
        "sft_batch_size": 16,
        "generation_batch_size": 64,
        "max_length": 128,
        "device": "cpu",
    }


def loop_configs(args) -> dict:
    return {
        "reward_config": {
            "learning_rate": args.rm_lr,
            "num_epochs": args.rm_epochs,
            "batch_size": 16,
            "max_length": 128,
            "save_steps": 0,
            "device": "cpu",
            **({"ensemble_heads": args.heads} if args.heads > 1 else {}),
        },
        "policy_config": policy_config(args),
        "generate_config": {
            "max_new_tokens": args.max_new_tokens,
            "batch_size": 64,
            "device": "cpu",
        },
    }


# --- Processes: database, base policy, web, workers ------------------------------------------


def bench_env(args) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="webapp.settings",
        DJANGO_SECRET_KEY="bench-only-secret-key-" + "x" * 40,
        DJANGO_DEBUG="0",
        DJANGO_HTTPS="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_LOG_LEVEL="WARNING",
        # Simulated labelers answer flat out, far past a person's rate: no API rate limit.
        PREFLOOP_API_RATE="off",
        DATABASE_URL=f"{PG_BASE}/{args.database}",
        CELERY_BROKER_URL=args.broker,
        PREFLOOP_VAR_DIR=str(args.var_dir),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
    )
    return env


def fresh_database(args, env: dict) -> None:
    import psycopg

    with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')
    subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)


def base_policy(args, env: dict) -> tuple[Path, float | None]:
    """The tiny base policy, built once per (pretrain steps, seed); returns (path, build s)."""
    seed = args.seed if args.base_seed is None else args.base_seed
    path = args.base_dir / f"tiny-p{args.pretrain_steps}-s{seed}"
    if (path / "config.json").is_file():
        return path, None
    started = time.monotonic()
    subprocess.run(
        [
            PY,
            "-m",
            "trainer.algorithms.tiny",
            "--out",
            str(path),
            "--pretrain-steps",
            str(args.pretrain_steps),
            "--seed",
            str(seed),
        ],
        cwd=REPO,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return path, time.monotonic() - started


class Stack:
    """gunicorn, a worker on the default queue and one on the gpu queue; logs in var_dir."""

    def __init__(self, args, env: dict):
        self.args, self.env, self.procs = args, env, []
        self.logs = args.var_dir / "logs"
        self.url = f"http://127.0.0.1:{args.port}"

    def start(self, name: str, *cmd: str) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((name, proc, log))

    def __enter__(self) -> "Stack":
        self.logs.mkdir(parents=True, exist_ok=True)
        celery = [PY, "-m", "celery", "-A", "webapp"]
        subprocess.run(
            [*celery, "purge", "-f", "-Q", "default,gpu"],
            cwd=REPO,
            env=self.env,
            check=True,
            capture_output=True,
        )
        self.start(
            "web",
            str(Path(PY).parent / "gunicorn"),
            "webapp.wsgi",
            "-w",
            "2",
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "-b",
            f"127.0.0.1:{self.args.port}",
            "--log-level",
            "warning",
        )
        for queue in ("default", "gpu"):
            self.start(
                f"worker-{queue}",
                *celery,
                "worker",
                "-Q",
                queue,
                "--pool=solo",
                "--concurrency=1",
                "--prefetch-multiplier=1",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "INFO",
                "--hostname",
                f"loopgain-{queue}@%h",
            )
        deadline = time.monotonic() + 120
        while not self.ready():
            if time.monotonic() > deadline or any(p.poll() is not None for _, p, _ in self.procs):
                self.__exit__()
                sys.exit(f"the web server or a worker did not start; see {self.logs}")
            time.sleep(0.3)
        return self

    def ready(self) -> bool:
        for name, _, _ in self.procs:
            if name.startswith("worker") and b" ready." not in self.log(name):
                return False
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.args.port, timeout=2)
            conn.request("GET", "/api/v1/projects/")
            return conn.getresponse().status == 401
        except OSError:
            return False

    def log(self, name: str) -> bytes:
        return (self.logs / f"{name}.log").read_bytes()

    def __exit__(self, *exc) -> None:
        for _, proc, _ in self.procs:
            proc.terminate()
        for _, proc, log in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


# --- One run: a fresh project, K rounds -------------------------------------------------------


def sample(path, prompts: list, *, n: int, seed: int, max_new_tokens: int) -> list[list[str]]:
    """n samples per prompt, as the loop's generate jobs draw them."""
    import torch

    from trainer.algorithms.common import set_seed
    from trainer.algorithms.generate import GenerateConfig, generate_completions, load_policy

    # One thread: on a machine shared with the workers, two spin-wait on each other.
    torch.set_num_threads(1)
    config = GenerateConfig(
        model_name_or_path=str(path),
        num_samples=n,
        seed=seed,
        max_new_tokens=max_new_tokens,
        batch_size=64,
    )
    set_seed(seed)
    model, tokenizer = load_policy(path)
    rows = generate_completions(model, tokenizer, [{"prompt": p} for p in prompts], config)
    return [[r["completion"] for r in rows[i * n : (i + 1) * n]] for i in range(len(prompts))]


def make_project(args, noise: float, base_path: Path):
    """A fresh project: labels/K prompts, each with two base samples (one task each)."""
    from django.contrib.auth import get_user_model

    from annotator import services
    from annotator.importing import project_import
    from annotator.models import Membership, Prompt
    from trainer.loop import services as loop
    from trainer.models import ModelVersion

    per_round = args.labels // args.rounds
    rng = random.Random(args.seed)
    prompts = [chat_prompt(rng) for _ in range(per_round)]
    samples = sample(base_path, prompts, n=4, seed=args.seed, max_new_tokens=args.max_new_tokens)
    lines = []
    for i, (prompt, drawn) in enumerate(zip(prompts, samples, strict=True)):
        # Byte 0 cannot be stored in PostgreSQL text; an empty sample cannot be imported.
        drawn = [s.replace("\x00", "") for s in drawn]
        pair = ([s for s in drawn if s.strip()] + ["(no answer)", "(no answer)"])[:2]
        split = "eval" if i < args.project_eval_prompts else "train"
        lines.append(json.dumps({"prompt": prompt, "completions": pair, "split": split}))
    routing = routing_settings(args, per_round)
    admin, _ = get_user_model().objects.get_or_create(username="bench-admin")
    project = services.project_create(
        created_by=admin,
        name=f"Loop gain {time.strftime('%H:%M:%S')} noise {noise}",
        kind="pairwise",
        overlap=1,
        allow_tie=False,  # every answer is a usable comparison: the label budget is exact
        allow_both_bad=False,
    )
    services.membership_set(project=project, user=admin, role=Membership.Role.ADMIN)
    project_import(project=project, data="\n".join(lines).encode(), fmt="jsonl")
    # With routing, later rounds sample their train prompts from a larger pool: prompts
    # without responses, so no task of their own (the import needs responses).
    extra = routing["train_prompts"] - (per_round - args.project_eval_prompts)
    Prompt.objects.bulk_create(
        [
            Prompt(project=project, text="", messages=chat_prompt(rng), split="train")
            for _ in range(extra)
        ]
    )
    base = ModelVersion.objects.create(
        project=project, name="tiny-base", role="policy", path=str(base_path)
    )
    judge = make_judge(args, project) if args.judge else None
    loop.loop_configure(
        project=project,
        base_policy=base,
        judge=judge,
        enabled=True,
        algorithm=args.algorithm,
        # Labels on eval-split prompts are held out of training and do not count towards
        # reward_after: a round waits for its train-prompt labels.
        reward_after=per_round - args.project_eval_prompts,
        compare_with_base=False,
        **routing,
        **loop_configs(args),
    )
    return project


def make_judge(args, project):
    """The project's AI judge: the simulated endpoint, the labelers' oracle with the judge's
    errors (mostly per pair, as an LLM judge's) and left bias; the mixing policy's defaults."""
    from trainer.judging import services as judging
    from trainer.loop.oracles import judge_noise_for

    pair_noise, noise = judge_noise_for(
        error=args.judge_error, flip=args.judge_flip, left=args.judge_left
    )
    model = (
        f"rule={args.oracle};target={','.join(args.target_words)};length={args.target_length};"
        f"weight={args.length_weight};pair_noise={pair_noise};noise={noise};"
        f"left={args.judge_left};seed={args.seed}"
    )
    return judging.judge_create(
        project=project, name="sim-judge", base_url=args.judge_url, model=model, concurrency=4,
        timeout_s=30, retries=2,
    )  # fmt: skip


def routing_settings(args, per_round: int) -> dict:
    """The loop's routing: each round queues exactly labels/K tasks, so each round is labelled
    in full; with routing, the train-prompt pairs are chosen among N candidates on a pool of
    `--pool` times as many prompts."""
    pairs = per_round - args.project_eval_prompts
    if args.acquisition == "random" and args.candidates <= 1:
        return {"train_prompts": pairs}  # today's behaviour: new vs previous on every prompt
    return {
        "acquisition": args.acquisition,
        "candidates": args.candidates,
        "pairs_per_round": pairs,
        "train_prompts": max(pairs, round(pairs * args.pool)),
    }


def labelers_command(args, noise: float, project, url: str) -> list[str]:
    # With --pair-noise the labelers err on a fixed share of pairs (hashed from the texts)
    # rather than on a share of answers: a pair gets the same label whoever answers it.
    errors = ["--noise", "0", "--pair-noise", str(noise)] if args.pair_noise else []
    return [
        PY,
        "manage.py",
        "simulate_labelers",
        "--project",
        str(project.id),
        "--count",
        str(args.labelers),
        "--oracle",
        args.oracle,
        *(errors or ["--noise", str(noise)]),
        "--target-words",
        ",".join(args.target_words),
        "--target-length",
        str(args.target_length),
        "--length-weight",
        str(args.length_weight),
        "--max-annotations",
        str(args.labels),
        "--poll",
        "0.2",
        "--seed",
        str(args.seed),
        "--url",
        url,
    ]


def drive(args, noise: float, project, stack: Stack, started: float) -> str:
    """Run the labelers and wait for round K to be done and served; returns their summary."""
    from annotator import services
    from trainer.models import LoopRound

    log_path = stack.logs / f"labelers-{project.id}.log"
    probe = services.labeler_simulated_ensure(project=project, username=f"probe-{project.id}")
    with log_path.open("wb") as log:
        cmd = labelers_command(args, noise, project, stack.url)
        labelers = subprocess.Popen(cmd, cwd=REPO, env=stack.env, stdout=log, stderr=log)
        seen, served = {}, False
        deadline = time.monotonic() + args.timeout
        try:
            while not served:
                rounds = {r.number: r for r in LoopRound.objects.filter(project=project)}
                for number, r in sorted(rounds.items()):
                    if seen.get(number) != r.status:
                        seen[number] = r.status
                        elapsed = time.monotonic() - started
                        print(f"  {elapsed:6.1f} s  round {number}: {r.status}")
                    if r.status in END_STATES:
                        raise RuntimeError(f"round {number} {r.status}: {r.error}")
                if labelers.poll() is not None and labels_made(project) < args.labels:
                    raise RuntimeError(f"the labelers stopped early: {log_path.read_text()}")
                if labelers.poll() is not None and args.rounds in rounds:
                    # The labelers spent the budget: ask for the last round's tasks as a probe
                    # labeler, so the latency to "served" is measured for that round too.
                    served = next_task_round(stack.url, project, probe.key) == args.rounds
                if time.monotonic() > deadline:
                    raise RuntimeError(f"round {args.rounds} not served in {args.timeout} s")
                time.sleep(0.1 if labelers.poll() is not None else 0.5)
        finally:
            if labelers.poll() is None:
                labelers.terminate()
            labelers.wait(timeout=60)
    return log_path.read_text(errors="replace")


def drive_judged(args, noise: float, project, stack: Stack, started: float) -> str:
    """With an AI judge, round by round: the judge's job over the round's tasks ends; the
    labelers answer what is left open and stop when the queue is empty; the loop trains and
    queues the next round's tasks (and its judge's job). Returns the labelers' summaries."""
    from trainer.judging import services as judging
    from trainer.models import LoopRound, TrainingJob

    judge = project.loop_policy.judge
    deadline = time.monotonic() + args.timeout
    summaries = []

    def wait(what: str, done) -> object:
        while not (value := done()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not done in {args.timeout} s")
            time.sleep(0.3)
        return value

    def round_done(number: int) -> bool:
        r = LoopRound.objects.filter(project=project, number=number).first()
        if r is not None and r.status in END_STATES:
            raise RuntimeError(f"round {number} {r.status}: {r.error}")
        return r is not None and r.status == "done"

    def judge_job(number: int):
        if number == 1:
            return judging.judge_run(judge=judge)  # the imported pairs
        # The loop queued the previous round's new tasks to its judge.
        jobs = TrainingJob.objects.filter(project=project, kind="judge", dataset__round=number - 1)
        return wait("judge job", jobs.first)

    for number in range(1, args.rounds + 1):
        ended = TrainingJob.objects.filter(
            id=judge_job(number).id, status__in=["succeeded", "failed", "cancelled"]
        )
        job = wait("judge job", ended.first)
        if job.status != "succeeded":
            raise RuntimeError(f"judge job {job.id} {job.status}: {job.error}")
        print(f"  {time.monotonic() - started:6.1f} s  round {number}: judged")
        cmd = labelers_command(args, noise, project, stack.url)
        cmd[cmd.index("--max-annotations") + 1] = "0"  # people label what they are sent
        log_path = stack.logs / f"labelers-{project.id}-{number}.log"
        with log_path.open("wb") as log:
            left = max(1.0, deadline - time.monotonic())
            subprocess.run([*cmd, "--stop-when-empty"], cwd=REPO, env=stack.env, stdout=log,
                           stderr=log, timeout=left, check=True)  # fmt: skip
        summaries.append(log_path.read_text(errors="replace"))
        print(f"  {time.monotonic() - started:6.1f} s  round {number}: people done")
        wait(f"round {number}", functools.partial(round_done, number))
        print(f"  {time.monotonic() - started:6.1f} s  round {number}: done")
    return "\n".join(summaries)


def label_sources(project) -> dict:
    """Labels by who made them, and why people were asked (their tasks' judge verdicts)."""
    from annotator.models import Annotation, JudgeVerdict, LabelerKind

    labels = Annotation.objects.filter(task__project=project)
    reason_of = dict(
        JudgeVerdict.objects.filter(task__project=project).values_list("task_id", "reason")
    )
    why: dict[str, int] = {}
    people = labels.exclude(labeler_kind=LabelerKind.AI)
    for task_id in people.values_list("task_id", flat=True):
        key = reason_of.get(task_id, "not judged") or "judge settled"
        why[key] = why.get(key, 0) + 1
    return {
        "human_labels": people.count(),
        "judge_labels": labels.filter(labeler_kind=LabelerKind.AI).count(),
        "human_by_reason": why,
    }


def labels_made(project) -> int:
    from annotator.models import Annotation

    return Annotation.objects.filter(task__project=project).count()


def next_task_round(url: str, project, token: str) -> int | None:
    """POST tasks/next/ with the token; the loop round of the task served, if one was."""
    from annotator.models import Task

    conn = http.client.HTTPConnection(url.split("//")[1], timeout=30)
    headers = {"Authorization": f"Token {token}"}
    conn.request("POST", f"/api/v1/projects/{project.id}/tasks/next/", headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    if response.status != 200:
        return None
    return Task.objects.get(id=json.loads(body)["id"]).round


# --- Measurements -----------------------------------------------------------------------------


def latencies(project, per_round: int) -> dict[int, dict]:
    """Seconds from the crossing annotation to the reward job running, and from the last
    generate job's end to the new tasks' first lease, per round (database timestamps)."""
    from django.db.models import Min

    from annotator.models import Annotation, Assignment, Task
    from trainer.models import LoopRound, TrainingJob

    out = {}
    for r in LoopRound.objects.filter(project=project, status="done").order_by("number"):
        labels = Annotation.objects.filter(
            task__project=project, verdict=Annotation.Verdict.PREFERRED
        )
        if r.number > 1:  # round 1 counts every label, later rounds those since they began
            labels = labels.filter(created_at__gte=r.started_at)
        crossing = labels.order_by("created_at", "id")[per_round - 1]
        reward = r.reward_job
        generate = TrainingJob.objects.filter(id__in=r.generate_jobs.values())
        generated = max(j.finished_at for j in generate)
        tasks = Task.objects.filter(project=project, round=r.number)
        created = tasks.aggregate(t=Min("created_at"))["t"]
        served = Assignment.objects.filter(task__in=tasks).aggregate(t=Min("created_at"))["t"]
        out[r.number] = {
            "threshold_to_reward_job_created_s": (
                reward.created_at - crossing.created_at
            ).total_seconds(),
            "threshold_to_reward_job_running_s": (
                reward.started_at - crossing.created_at
            ).total_seconds(),
            "generate_end_to_tasks_created_s": (created - generated).total_seconds(),
            "generate_end_to_tasks_served_s": (served - generated).total_seconds()
            if served
            else None,
            "jobs_s": job_seconds(r),
        }
    return out


def job_seconds(r) -> dict[str, float]:
    from trainer.models import TrainingJob

    jobs = {"reward": r.reward_job, r.policy_job.kind: r.policy_job}
    for role, job_id in r.generate_jobs.items():
        jobs[f"generate-{role}"] = TrainingJob.objects.get(id=job_id)
    return {k: round((j.finished_at - j.started_at).total_seconds(), 1) for k, j in jobs.items()}


def reward_accuracy(model, prompts: list, chosen: list[str], rejected: list[str]) -> dict:
    from trainer.algorithms.reward_scoring import score_texts

    if not chosen:
        return {"n": 0, "accuracy": None}
    n = len(chosen)
    scores = score_texts(
        model.path,
        prompts + prompts,
        chosen + rejected,
        device="cpu",
        max_length=128,
        batch_size=64,
    )
    correct = sum(a > b for a, b in zip(scores[:n], scores[n:], strict=True))
    return {"n": n, "accuracy": correct / n}


def oracle_options(args) -> dict:
    return {
        "target_words": tuple(args.target_words),
        "target_length": args.target_length,
        "length_weight": args.length_weight,
    }


def evaluate(args, project) -> dict:
    """Oracle-judged (noise-free) win rates, the oracle's terms and fresh reward accuracy."""
    from trainer.loop import accuracy
    from trainer.loop.evaluation import win_rate
    from trainer.loop.oracles import make_oracle
    from trainer.models import LoopRound

    judge = make_oracle(args.oracle, **oracle_options(args))
    rounds = list(LoopRound.objects.filter(project=project, status="done").order_by("number"))
    policies = [("base", project.loop_policy.base_policy.path)]
    policies += [(f"round {r.number}", r.policy_job.output_model.path) for r in rounds]
    rng = random.Random(args.seed + 7919)  # held-out prompts: not in the project
    held = [chat_prompt(rng) for _ in range(args.eval_prompts)]
    samples = {
        name: [
            s[0]
            for s in sample(
                path, held, n=1, seed=args.seed + 1000 + i, max_new_tokens=args.max_new_tokens
            )
        ]
        for i, (name, path) in enumerate(policies)
    }

    def versus(a: str, b: str):
        verdicts = [judge.prefer(x, y) for x, y in zip(samples[a], samples[b], strict=True)]
        rate = win_rate([{"a": "win", "b": "loss", "tie": "tie"}[v] for v in verdicts])
        return {
            "rate": rate.rate,
            "low": rate.low,
            "high": rate.high,
            "wins": rate.wins,
            "ties": rate.ties,
            "losses": rate.losses,
            "n": rate.n,
        }

    def terms(name: str) -> dict:
        rows = [judge.terms(s) for s in samples[name]]  # empty dicts for a callable oracle
        return {k: statistics.mean(t[k] for t in rows) for k in (rows[0] if rows else {})}

    out = {"base": {"terms": terms("base"), "example": samples["base"][:2]}}
    for r in rounds:
        name, previous = f"round {r.number}", "base" if r.number == 1 else f"round {r.number - 1}"
        reward_model = r.reward_job.output_model
        cutoff = accuracy.fresh_accuracy_cutoff(model_version=reward_model)
        fresh = accuracy.fresh_comparisons(model_version=reward_model, cutoff=cutoff, limit=2000)
        pairs = [
            (p, x, y)
            for p, x, y in zip(held, samples[name], samples[previous], strict=True)
            if judge.prefer(x, y) != "tie"
        ]
        better = [x if judge.prefer(x, y) == "a" else y for _, x, y in pairs]
        worse = [y if judge.prefer(x, y) == "a" else x for _, x, y in pairs]
        out[name] = {
            "labels_new": args.labels // args.rounds,
            "reward_trained_on": r.reward_job.snapshot_rows,
            "reward_val_accuracy": reward_model.metrics.get("val_accuracy"),
            "reward_fresh_labels": reward_accuracy(
                reward_model,
                [f.prompt for f in fresh],
                [f.chosen for f in fresh],
                [f.rejected for f in fresh],
            ),
            "reward_fresh_oracle_pairs": reward_accuracy(
                reward_model, [p for p, _, _ in pairs], better, worse
            ),
            "vs_base": versus(name, "base"),
            "vs_previous": versus(name, previous) if r.number > 1 else None,
            "terms": terms(name),
            "example": samples[name][:2],
        }
    return out


def labeled_ties(judge, project) -> dict[str, dict]:
    """By task round ("base": the imported pairs): the pairs labeled, and the share of them
    the oracle without noise calls a tie. Ties are off in the bench's project, so a tie's
    label is a coin flip: a rule that asks about ties spends labels that teach nothing."""
    from annotator.models import TaskCompletion

    texts: dict[tuple, list[str]] = {}
    links = TaskCompletion.objects.filter(
        task__project=project, task__annotations__isnull=False
    ).distinct()
    for task_id, number, text in links.order_by("task_id", "position").values_list(
        "task_id", "task__round", "completion__text"
    ):
        texts.setdefault((task_id, number), []).append(text)
    counts: dict[str, list[int]] = {}
    for (_, number), pair in texts.items():
        if len(pair) == 2:
            key = "base" if number is None else f"round {number}"
            n_ties = counts.setdefault(key, [0, 0])
            n_ties[0] += 1
            n_ties[1] += judge.prefer(*pair) == "tie"
    return {k: {"n": n, "tie_share": round(t / n, 3)} for k, (n, t) in sorted(counts.items())}


def run_one(args, noise: float, seed: int, base_path: Path, stack: Stack) -> dict:
    """A fresh project; `seed` picks its prompts, the base samples and the labelers' noise."""
    from annotator.models import Annotation
    from trainer.loop.oracles import make_oracle

    args = argparse.Namespace(**{**vars(args), "seed": seed})
    load_before = os.getloadavg()
    started = time.monotonic()
    print(
        f"\n== noise {noise}, seed {seed}, acquisition {args.acquisition}: {args.labels} labels "
        f"over {args.rounds} rounds"
    )
    project = make_project(args, noise, base_path)
    setup_s = time.monotonic() - started
    summary = (drive_judged if args.judge else drive)(args, noise, project, stack, started)
    loop_s = time.monotonic() - started
    lat = latencies(project, args.labels // args.rounds)
    evaluated = evaluate(args, project)
    ties = labeled_ties(make_oracle(args.oracle, **oracle_options(args)), project)
    total_s = time.monotonic() - started
    for number, values in lat.items():
        evaluated[f"round {number}"]["latency"] = values
    return {
        "noise": noise,
        "seed": seed,
        "acquisition": args.acquisition,
        "candidates": args.candidates,
        "labels": args.labels,
        "pair_noise": args.pair_noise,
        "project": project.id,
        "labels_total": Annotation.objects.filter(task__project=project).count(),
        **label_sources(project),
        "setup_s": round(setup_s, 1),
        "loop_s": round(loop_s, 1),
        "total_s": round(total_s, 1),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "labelers": summary.strip().splitlines()[-1] if summary.strip() else "",
        "labeled_ties": ties,
        "results": evaluated,
    }


# --- Report -----------------------------------------------------------------------------------


def term(terms: dict, name: str, digits: int = 2) -> str:
    """One of the oracle's terms; "-" for a `module:function` oracle, which has none."""
    return "-" if name not in terms else f"{terms[name]:.{digits}f}"


def pct(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def rate(w: dict | None) -> str:
    return "-" if not w else f"{w['rate']:.3f} [{w['low']:.3f}, {w['high']:.3f}] (n={w['n']})"


def table(run: dict) -> str:
    head = (
        "| policy | labels new / RM trained on | RM val acc | RM acc, fresh labels (n) | "
        "RM acc, fresh oracle pairs (n) | win vs base [95% CI] | win vs previous round | "
        "target words | length | crossing -> RM job running | generate end -> served |"
    )
    lines = [head, "|" + "---|" * 11]
    base = run["results"]["base"]["terms"]
    lines.append(
        f"| base | - | - | - | - | - | - | {term(base, 'target_words')} | "
        f"{term(base, 'length', 1)} | - | - |"
    )
    for name, r in run["results"].items():
        if name == "base":
            continue
        lat = r.get("latency", {})
        served = lat.get("generate_end_to_tasks_served_s")
        fl, fo = r["reward_fresh_labels"], r["reward_fresh_oracle_pairs"]
        lines.append(
            f"| {name} | {r['labels_new']} / {r['reward_trained_on']} | "
            f"{pct(r['reward_val_accuracy'])} | {pct(fl['accuracy'])} ({fl['n']}) | "
            f"{pct(fo['accuracy'])} ({fo['n']}) | {rate(r['vs_base'])} | "
            f"{rate(r['vs_previous'])} | {term(r['terms'], 'target_words')} | "
            f"{term(r['terms'], 'length', 1)} | "
            f"{lat.get('threshold_to_reward_job_running_s', float('nan')):.2f} s | "
            + ("-" if served is None else f"{served:.2f} s")
            + " |"
        )
    return "\n".join(lines)


def labels_text(run: dict) -> str:
    if not run.get("judge_labels"):
        return str(run["labels_total"])
    return f"{run['labels_total']} (people {run['human_labels']}, judge {run['judge_labels']})"


def summary(runs: list[dict]) -> str:
    """One line per run: the last round against the base and the previous round."""
    lines = [
        "| noise | acquisition | seed | labels | loop s | last round: win vs base [95% CI] | vs "
        "previous round | target words base -> last | length base -> last | max latency: "
        "crossing -> RM running, generate end -> served | load before |",
        "|" + "---|" * 11,
    ]
    for run in runs:
        results = run["results"]
        last = results[max((k for k in results if k != "base"), key=lambda k: int(k.split()[1]))]
        lat = [r.get("latency", {}) for k, r in results.items() if k != "base"]
        crossing = max(x.get("threshold_to_reward_job_running_s") or 0 for x in lat)
        served = max(x.get("generate_end_to_tasks_served_s") or 0 for x in lat)
        base = results["base"]["terms"]
        lines.append(
            f"| {run['noise']} | {run.get('acquisition', 'random')} | {run['seed']} | "
            f"{labels_text(run)} | {run['loop_s']} | "
            f"{rate(last['vs_base'])} | {rate(last['vs_previous'])} | "
            f"{term(base, 'target_words')} -> {term(last['terms'], 'target_words')} | "
            f"{term(base, 'length', 1)} -> {term(last['terms'], 'length', 1)} | {crossing:.2f} s, "
            f"{served:.2f} s | {run['loadavg_before'][0]} |"
        )
    return "\n".join(lines)


def machine() -> dict:
    import psutil
    import torch

    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line),
        platform.processor(),
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "torch": torch.__version__,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_report(args, report: dict) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    m = report["machine"]
    md = [
        "# Loop gain",
        "",
        f"`{report['command']}`",
        "",
        f"{report['when']} · {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, torch "
        f"{m['torch']} · web, database, workers, labelers and judge on one machine · oracle "
        f"`{args.oracle}` (target words {', '.join(args.target_words)}; length "
        f"{args.target_length}, weight {args.length_weight}) · {args.labelers} simulated "
        f"labelers · base: tiny Llama pretrained {args.pretrain_steps} steps "
        f"({report['base_build']}) · policy step: {args.algorithm.upper()}",
        "",
    ]
    md += ["## Summary", "", summary(report["runs"]), ""]
    if len(args.rules) > 1 or len(args.label_budgets) > 1:
        md += [
            "## Label efficiency",
            "",
            efficiency_table(report["runs"]),
            "",
            "Round-2 (last round) policy's win rate against the base on the held-out prompts, "
            "judged by the oracle without noise: mean over the seeds with a 95 % t-interval "
            "(of the seeds' means; none for one seed), and each seed's value. Round 1's labels "
            "are the imported base pairs for every rule; the rule chooses the later rounds'.",
            "",
        ]
        for noise, path in efficiency_charts(args, report["runs"]).items():
            md += [f"![label efficiency, noise {noise}]({path.name})", ""]
    if paired(report["runs"]):
        md += [
            "## Paired by seed",
            "",
            paired_table(report["runs"]),
            "",
            "Each rule's round-2 win rate against the base minus random's, seed by seed, with a "
            "95 % t-interval of the mean difference. Round 1 (the imported pairs) is the same "
            "work for both rules; its difference shows how far the two runs' starts differed. "
            + (
                "The labelers erred on a fixed share of pairs (--pair-noise), so round 1 had "
                "the same labels under both rules."
                if any(r.get("pair_noise") for r in report["runs"])
                else "The labelers erred on a share of answers, so round 1's labels differed "
                "between the two runs of a seed."
            ),
            "",
        ]
    for run in report["runs"]:
        md += [
            f"## Noise {run['noise']}, seed {run['seed']}",
            "",
            f"{run['labels_total']} labels in total · loop {run['loop_s']} s (setup "
            f"{run['setup_s']} s: base samples and import) · with evaluation {run['total_s']}"
            f" s · load average before {run['loadavg_before']}, after "
            f"{run['loadavg_after']} · labelers: {run['labelers']}",
            "",
            table(run),
            "",
        ]
        if run.get("labeled_ties"):
            md += [
                "Labeled pairs the oracle without noise calls a tie (their labels are coin "
                "flips), by the round that made the pair: "
                + ", ".join(
                    f"{k} {v['tie_share']:.2f} of {v['n']}" for k, v in run["labeled_ties"].items()
                ),
                "",
            ]
    md += [
        "Win rates: one sample per held-out prompt from each policy, judged by the oracle "
        "without noise, a tie counting half. RM acc, fresh labels: the labelers' (noisy) "
        "labels made after the reward model was trained (none after the last round: the "
        "budget was spent). RM acc, fresh oracle pairs: that round's policy against the "
        "previous one on held-out prompts, labelled by the oracle without noise, ties left "
        "out. Latencies from database timestamps.",
        "",
        "Configs: `" + json.dumps(report["configs"]) + "`",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(md))


# Two-sided 95 % quantiles of Student's t by degrees of freedom (seeds - 1).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306}


def last_round(run: dict) -> dict:
    results = run["results"]
    return results[max((k for k in results if k != "base"), key=lambda k: int(k.split()[1]))]


def efficiency(runs: list[dict]) -> dict[tuple, dict]:
    """{(noise, rule, labels): {"mean", "low", "high", "values", "rm"}} over the seeds."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        labels = run.get("labels", run["labels_total"])
        key = (run["noise"], run.get("acquisition", "random"), labels)
        groups.setdefault(key, []).append(last_round(run))
    out = {}
    for key, lasts in sorted(groups.items()):
        values = [r["vs_base"]["rate"] for r in lasts]
        mean = statistics.mean(values)
        half = None
        if len(values) > 1:
            half = T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / len(values) ** 0.5
        rm = [r["reward_fresh_oracle_pairs"]["accuracy"] for r in lasts]
        rm = [x for x in rm if x is not None]
        out[key] = {
            "mean": mean,
            "low": None if half is None else max(0.0, mean - half),
            "high": None if half is None else min(1.0, mean + half),
            "values": values,
            "rm": statistics.mean(rm) if rm else None,
        }
    return out


def efficiency_table(runs: list[dict]) -> str:
    lines = [
        "| noise | acquisition | labels in total | seeds | round-2 win vs base: mean [95% CI] "
        "| per seed | round-2 RM acc, fresh oracle pairs |",
        "|" + "---|" * 7,
    ]
    for (noise, rule, labels), e in efficiency(runs).items():
        interval = "" if e["low"] is None else f" [{e['low']:.3f}, {e['high']:.3f}]"
        lines.append(
            f"| {noise} | {rule} | {labels} | {len(e['values'])} | {e['mean']:.3f}{interval} | "
            f"{', '.join(f'{v:.3f}' for v in e['values'])} | {pct(e['rm'])} |"
        )
    return "\n".join(lines)


def paired(runs: list[dict]) -> dict[tuple, dict]:
    """{(noise, labels, rule): {"mean", "low", "high", "seeds", "round_2", "round_1"}}: each
    rule's round-2 win rate against the base minus random's on the same seed and budget, and
    the same for round 1 (zero when the two runs shared round 1, as with --pair-noise)."""
    by_seed: dict[tuple, dict[str, dict]] = {}
    for run in runs:
        key = (run["noise"], run.get("labels", run["labels_total"]), run["seed"])
        by_seed.setdefault(key, {})[run.get("acquisition", "random")] = run["results"]
    groups: dict[tuple, dict[str, list]] = {}
    for (noise, labels, seed), rules in sorted(by_seed.items()):
        if "random" not in rules:
            continue
        for rule, results in rules.items():
            if rule == "random":
                continue
            empty = {"seeds": [], "round_2": [], "round_1": []}
            g = groups.setdefault((noise, labels, rule), empty)
            g["seeds"].append(seed)
            for n in (1, 2):
                rate = results[f"round {n}"]["vs_base"]["rate"]
                g[f"round_{n}"].append(rate - rules["random"][f"round {n}"]["vs_base"]["rate"])
    for g in groups.values():
        diffs = g["round_2"]
        g["mean"], half = statistics.mean(diffs), None
        if len(diffs) > 1:
            half = T95.get(len(diffs) - 1, 1.96) * statistics.stdev(diffs) / len(diffs) ** 0.5
        g["low"] = None if half is None else g["mean"] - half
        g["high"] = None if half is None else g["mean"] + half
    return groups


def paired_table(runs: list[dict]) -> str:
    lines = [
        "| noise | labels in total | rule - random | seeds | round-2 difference: mean "
        "[95% CI] | per seed | round-1 difference per seed |",
        "|" + "---|" * 7,
    ]
    for (noise, labels, rule), g in paired(runs).items():
        interval = "" if g["low"] is None else f" [{g['low']:+.3f}, {g['high']:+.3f}]"
        lines.append(
            f"| {noise} | {labels} | {rule} | {len(g['seeds'])} | {g['mean']:+.3f}{interval} | "
            f"{', '.join(f'{d:+.3f}' for d in g['round_2'])} | "
            f"{', '.join(f'{d:+.3f}' for d in g['round_1'])} |"
        )
    return "\n".join(lines)


COLOURS = {"random": "#6b7280", "uncertainty": "#2457c5", "disagreement": "#c2410c",
           "top-two": "#15803d"}  # fmt: skip


def efficiency_charts(args, runs: list[dict]) -> dict[float, Path]:
    """One SVG per noise level: win rate against the base by label budget, a line per rule
    with its interval (trainer/plots.py draws it; no plotting library needed)."""
    from trainer.plots import IntervalSeries, interval_chart

    table = efficiency(runs)
    out = {}
    for noise in sorted({k[0] for k in table}):
        series = [
            IntervalSeries(
                rule,
                [
                    (labels, e["mean"], e["low"], e["high"])
                    for (n, r, labels), e in table.items()
                    if n == noise and r == rule
                ],
                COLOURS.get(rule, "#111827"),
            )  # fmt: skip
            for rule in dict.fromkeys(k[1] for k in table if k[0] == noise)
        ]
        svg = interval_chart(
            series,
            title=f"Round-2 win rate vs base by labels, noise {noise}",
            y_range=(0.5, 1.0),
            reference=0.9,
            x_label="labels",
        )
        path = Path(f"{args.out}-efficiency-noise{noise}.svg")
        path.write_text(svg + "\n", encoding="utf-8")
        out[noise] = path
    return out


def merge_reports(args) -> None:
    """One report from several: the runs of each, in order; the first one's machine and
    configs, every command."""
    reports = [json.loads(Path(p).read_text()) for p in args.merge.split(",") if p]
    merged = dict(reports[0])
    # The header names the runs' oracle and labelers, not this command's defaults.
    settings = merged.get("settings", {})
    for name in ("oracle", "target_length", "length_weight", "labelers", "pretrain_steps",
                 "algorithm"):  # fmt: skip
        if name in settings:
            setattr(args, name, type(getattr(args, name))(settings[name]))
    if "target_words" in settings:
        args.target_words = ast.literal_eval(settings["target_words"])
    merged["runs"] = [run for r in reports for run in r["runs"]]
    merged["command"] = " ; ".join(r["command"] for r in reports)
    args.rules = list(dict.fromkeys(run.get("acquisition", "random") for run in merged["runs"]))
    args.label_budgets = list(dict.fromkeys(run.get("labels", 0) for run in merged["runs"]))
    write_report(args, merged)
    print(summary(merged["runs"]) + "\n\n" + efficiency_table(merged["runs"]))
    if paired(merged["runs"]):
        print("\n" + paired_table(merged["runs"]))
    print(f"\nwrote {args.out}.json and .md")


def parse_args():
    from trainer.loop.oracles import DEFAULT_TARGET_WORDS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2, help="K")
    p.add_argument(
        "--labels", default="1000", help="label budget, labels/K per round; comma-separated sweep"
    )
    p.add_argument(
        "--acquisition",
        default="random",
        help="routing rule(s), comma-separated: random, uncertainty, disagreement, top-two",
    )
    p.add_argument(
        "--candidates", type=int, default=1, help="responses per prompt and policy to route from"
    )
    p.add_argument("--pool", type=float, default=3.0, help="train prompts per routed pair")
    p.add_argument("--heads", type=int, default=1, help="reward ensemble heads")
    p.add_argument(
        "--merge",
        default="",
        help="comma-separated .json reports of earlier invocations (say, rules run side by "
        "side): write one report of all their runs to --out, and run nothing",
    )
    p.add_argument("--noise", default="0.1,0.3", help="comma-separated: one run per value")
    p.add_argument(
        "--pair-noise",
        action="store_true",
        help="the labelers err on a fixed `noise` share of pairs, not of answers: a seed's "
        "round 1 then has the same labels under every rule (a paired comparison)",
    )
    p.add_argument("--judge", action="store_true", help="an AI judge labels first (issue #11)")
    p.add_argument("--judge-error", type=float, default=0.25, help="its error rate")
    p.add_argument("--judge-flip", type=float, default=0.125, help="its swap-flip rate")
    p.add_argument("--judge-left", type=float, default=0.1, help="its left bias")
    p.add_argument("--oracle", default="words-and-length")
    p.add_argument("--target-words", default=",".join(DEFAULT_TARGET_WORDS))
    p.add_argument("--target-length", type=int, default=12)
    p.add_argument("--length-weight", type=float, default=0.25)
    p.add_argument("--labelers", type=int, default=4)
    p.add_argument("--eval-prompts", type=int, default=400, help="held-out prompts judged")
    p.add_argument("--project-eval-prompts", type=int, default=20, help="the project's eval split")
    p.add_argument("--pretrain-steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0, help="of the base policy and the first run")
    p.add_argument(
        "--base-seed",
        type=int,
        default=None,
        help="of the base policy, when not --seed (to add seeds 1, 2 to a seed-0 run's report)",
    )
    p.add_argument("--repeats", type=int, default=1, help="runs per noise level (seed, seed+1..)")
    p.add_argument("--rm-lr", type=float, default=5e-4)
    p.add_argument("--rm-epochs", type=float, default=6.0)
    p.add_argument("--algorithm", choices=["raft", "grpo"], default="raft", help="policy step")
    p.add_argument("--grpo-steps", type=int, default=100, help="GRPO optimizer steps a round")
    p.add_argument("--grpo-lr", type=float, default=5e-4)
    p.add_argument("--raft-iterations", type=int, default=3)
    p.add_argument("--num-samples", type=int, default=8)
    p.add_argument("--keep-top-k", type=int, default=1)
    p.add_argument("--prompts-per-iteration", type=int, default=128)
    p.add_argument("--raft-lr", type=float, default=5e-4)
    p.add_argument("--sft-epochs", type=float, default=2.0)
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--database", default="prefloop_e2e_loop_gain")
    p.add_argument("--broker", default="redis://127.0.0.1:6379/11")
    p.add_argument("--port", type=int, default=8450)
    p.add_argument("--var-dir", type=Path, default=REPO / "var" / "bench-loop-gain")
    p.add_argument("--base-dir", type=Path, default=REPO / "var" / "bench-base")
    p.add_argument("--timeout", type=float, default=1200, help="per run, seconds")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "loop_gain"))
    args = p.parse_args()
    args.target_words = [w for w in args.target_words.split(",") if w]
    args.noises = [float(x) for x in args.noise.split(",")]
    args.label_budgets = [int(x) for x in args.labels.split(",")]
    args.labels = args.label_budgets[0]
    args.rules = [x for x in args.acquisition.split(",") if x]
    args.acquisition = args.rules[0]
    return args


def main() -> None:
    sys.path.insert(0, str(REPO))
    sys.stdout.reconfigure(line_buffering=True)
    # SIGTERM unwinds like Ctrl-C, so the web server and the workers are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args()
    if args.merge:
        merge_reports(args)
        return
    env = bench_env(args)
    os.environ.update(env)
    command = shlex.join([".venv/bin/python", "bench/loop_gain.py", *sys.argv[1:]])
    print(f"load average {os.getloadavg()}")
    base_path, built_s = base_policy(args, env)
    fresh_database(args, env)
    shutil.rmtree(args.var_dir / "models", ignore_errors=True)  # the old database's jobs
    import django

    django.setup()
    report = {
        "command": command,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "base_build": "cached" if built_s is None else f"built in {built_s:.0f} s",
        "configs": loop_configs(args),
        "runs": [],
    }
    from tests.judge_server import judge_server

    with Stack(args, env) as stack, judge_server() if args.judge else nullcontext() as url:
        args.judge_url = url
        # Seeds outermost: a sweep cut short still compares every rule and budget on the
        # seeds it finished.
        for noise in args.noises:
            for seed in range(args.seed, args.seed + args.repeats):
                for labels in args.label_budgets:
                    for rule in args.rules:
                        one = argparse.Namespace(**{**vars(args), "labels": labels,
                                                    "acquisition": rule})  # fmt: skip
                        run = run_one(one, noise, seed, base_path, stack)
                        report["runs"].append(run)
                        print(table(run))
                        print(f"loop {run['loop_s']} s, with evaluation {run['total_s']} s")
                        write_report(args, report)
    print("\n" + summary(report["runs"]))
    if len(args.rules) > 1 or len(args.label_budgets) > 1:
        print("\n" + efficiency_table(report["runs"]))
    if paired(report["runs"]):
        print("\n" + paired_table(report["runs"]))
    print(f"\nwrote {args.out}.json and .md")


if __name__ == "__main__":
    main()
