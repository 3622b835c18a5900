"""Label quality (issue #9): does the reliability fit find the careless labelers, and does
`aggregate=reliability` beat `majority`?

For each seed: a fresh pairwise project of --tasks tasks with overlap 3, whose two responses
contain different numbers of target words (so the oracle always has a strict answer), is
labeled over HTTP (gunicorn) by `manage.py simulate_labelers` with six labelers: three
careful (5 % noise), two careless (40 %), one that always picks the left response. Then, in
this process: each labeler's true error rate against the oracle beside the estimated
reliability, agreement with consensus and left-side share (annotator/quality/stats.py), and
the accuracy against the oracle of the `majority` and `reliability` exports.

Reward models (skip with --skip-reward): per seed, one reward model trained through the
trainer's reward algorithm on the `majority` export and one on the `reliability` export,
from the same tiny local Llama on the CPU, each scored on the same fresh oracle pairs.

Timings: the Dawid-Skene fit of 100 000 answers (in memory, and read from the database), and
the labeler statistics page of a project with 100 labelers and 100 000 answers (cold: first
view, the fit computed; warm: the fit cached), through Django's test client.

    nice .venv/bin/python bench/label_quality.py --seeds 3 --tasks 400

Writes bench/results/label_quality.json and .md (machine, load, command; --out names them),
and after each seed <out>.partial.json, so a run stopped early keeps its finished seeds. Uses
the PostgreSQL database prefloop_bench_run_<out>, recreated on each run.
"""

import argparse
import json
import os
import random
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.labeling_load import (  # noqa: E402
    PY,
    Server,
    free_port,
    fresh_database,
    machine,
    server_env,
)

RESULTS = REPO / "bench" / "results"
TARGET = ("sun", "garden", "music", "bright", "river")
FILLER = "the a today we it is and very with of some more".split()
LABELERS = [  # (kind, noise, position bias)
    ("careful", 0.05, 0.0),
    ("careful", 0.05, 0.0),
    ("careful", 0.05, 0.0),
    ("careless", 0.40, 0.0),
    ("careless", 0.40, 0.0),
    ("left-picker", 0.0, 1.0),
]


def _text(rng: random.Random, words: int) -> str:
    body = rng.sample(TARGET, words) + [rng.choice(FILLER) for _ in range(8)]
    rng.shuffle(body)
    return " ".join(body).capitalize() + "."


def make_project(name: str, tasks: int, seed: int):
    from django.contrib.auth import get_user_model

    from annotator import services
    from annotator.importing import project_import

    rng = random.Random(seed)
    admin, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True}
    )
    project = services.project_create(created_by=admin, name=name, overlap=3)
    lines = []
    for i in range(tasks):
        a, b = rng.sample(range(len(TARGET) + 1), 2)  # different scores: a strict truth
        lines.append(
            json.dumps(
                {"prompt": f"Write line {i}.", "completions": [_text(rng, a), _text(rng, b)]}
            )
        )
    project_import(project=project, data="\n".join(lines).encode(), fmt="jsonl")
    return project, admin


def label_over_http(project, port: int, seed: int) -> tuple[str, float]:
    noises = ",".join(str(n) for _, n, _ in LABELERS)
    biases = ",".join(str(b) for _, _, b in LABELERS)
    cmd = [
        PY, "manage.py", "simulate_labelers", f"--project={project.id}",
        f"--count={len(LABELERS)}", "--oracle=target-words", f"--target-words={','.join(TARGET)}",
        f"--noises={noises}", f"--position-bias={biases}", f"--seed={seed * 100}",
        "--stop-when-empty", f"--url=http://127.0.0.1:{port}",
    ]  # fmt: skip
    started = time.perf_counter()
    out = subprocess.run(
        cmd, cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, check=True
    )
    return out.stdout, time.perf_counter() - started


def evaluate(project) -> dict:
    from annotator.export import ExportParams, export_start
    from annotator.models import Annotation, Completion
    from annotator.quality import stats
    from trainer.loop.oracles import make_oracle

    oracle = make_oracle("target-words", target_words=TARGET)
    texts = dict(Completion.objects.filter(prompt__project=project).values_list("id", "text"))
    score = {cid: oracle.score(t) for cid, t in texts.items()}
    wrong: dict[int, list[int]] = {}
    for labeler, chosen, rejected in Annotation.objects.filter(task__project=project).values_list(
        "labeler_id", "chosen_id", "rejected_id"
    ):
        wrong.setdefault(labeler, []).append(score[chosen] < score[rejected])
    by_name = {}
    rows = stats.labeler_stats(project)
    for s in rows:
        n = int(s.username.rsplit("-", 1)[1])
        kind, noise, bias = LABELERS[n - 1]
        by_name[s.username] = {
            "kind": kind, "noise": noise, "position_bias": bias, "answers": s.tasks_done,
            "true_error": statistics.fmean(wrong[s.labeler_id]),
            "reliability": s.reliability, "agreement": s.agreement.value,
            "left_share": s.left_share.value, "left_low": s.left_share.low,
            "left_high": s.left_share.high,
        }  # fmt: skip
    accuracy = {}
    tasks = project.tasks.count()
    for aggregate in ("majority", "reliability"):
        data = b"".join(
            export_start(project=project, params=ExportParams(aggregate=aggregate)).chunks()
        )
        got = [json.loads(line) for line in data.splitlines()]
        right = sum(score[r["chosen_id"]] > score[r["rejected_id"]] for r in got)
        accuracy[aggregate] = {"rows": len(got), "right": right, "accuracy": right / tasks}
    ranked = sorted(by_name.values(), key=lambda r: r["reliability"])
    last_three = {r["kind"] for r in ranked[:3]}
    return {
        "labelers": by_name,
        "accuracy": accuracy,
        "careless_and_biased_last": last_three == {"careless", "left-picker"},
    }


# --- Reward models trained on each snapshot ----------------------------------------------------


def tiny_base(pretrain_steps: int) -> Path:
    """The tiny local Llama the reward models start from (trainer/algorithms/tiny.py), built
    once and kept under var/bench/."""
    from trainer.algorithms.tiny import build_tiny_policy

    path = REPO / "var" / "bench" / f"tiny-p{pretrain_steps}-s0"
    if not (path / "config.json").exists():
        build_tiny_policy(path, pretrain_steps=pretrain_steps, seed=0)
    return path


def fresh_pairs(seed: int, n: int) -> list[tuple[str, str, str]]:
    """(prompt, better, worse) by the oracle, made the way the project's were, from another
    random stream: comparisons no labeler saw."""
    rng = random.Random(10_000 + seed)
    pairs = []
    for i in range(n):
        a, b = sorted(rng.sample(range(len(TARGET) + 1), 2), reverse=True)
        pairs.append((f"Write line {i}.", _text(rng, a), _text(rng, b)))
    return pairs


def reward_comparison(project, seed: int, base: Path, args) -> dict:
    """A reward model trained through the trainer's reward algorithm on the `majority` and
    on the `reliability` export (what a reward job's snapshot holds), each scored on the same
    fresh oracle pairs: accuracy = share of pairs where the better one gets the higher reward."""
    import tempfile

    from annotator.export import ExportParams, export_start
    from trainer.algorithms.reward import RewardConfig, train
    from trainer.algorithms.reward_scoring import score_texts

    pairs = fresh_pairs(seed, args.fresh_pairs)
    prompts = [p for p, _, _ in pairs]
    out = {}
    for aggregate in ("majority", "reliability"):
        data = b"".join(
            export_start(project=project, params=ExportParams(aggregate=aggregate)).chunks()
        )
        rows = [json.loads(line) for line in data.splitlines()]
        config = RewardConfig(
            model_name_or_path=str(base), learning_rate=args.rm_lr, num_epochs=args.rm_epochs,
            batch_size=16, max_length=128, save_steps=0, device="cpu", seed=seed,
        )  # fmt: skip
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            metrics = train(config, rows, tmp)
            better = score_texts(tmp, prompts, [b for _, b, _ in pairs], device="cpu")
            worse = score_texts(tmp, prompts, [w for _, _, w in pairs], device="cpu")
        right = sum(b > w for b, w in zip(better, worse, strict=True))
        out[aggregate] = {
            "train_rows": len(rows), "fresh_pairs": len(pairs), "accuracy": right / len(pairs),
            "val_accuracy": metrics.get("val_accuracy"), "train_s": time.perf_counter() - started,
        }  # fmt: skip
    return out


# --- Timings at 100 labelers, 100 000 answers -----------------------------------------------


def make_big(labelers: int, answers: int, overlap: int = 3):
    """A project filled straight in the database (the queue is not what is measured)."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from annotator.models import (
        Annotation,
        Assignment,
        Completion,
        Kind,
        Membership,
        Project,
        Prompt,
        Task,
        TaskCompletion,
    )  # fmt: skip

    rng = random.Random(7)
    users = get_user_model().objects
    admin, _ = users.get_or_create(username="bench-admin", defaults={"is_staff": True})
    project = Project.objects.create(name="Quality bench: 100 labelers", overlap=overlap)
    Membership.objects.create(project=project, user=admin, role=Membership.Role.ADMIN)
    people = users.bulk_create(
        [users.model(username=f"bench-q-{project.id}-{i}") for i in range(labelers)]
    )
    Membership.objects.bulk_create(Membership(project=project, user=u) for u in people)
    n_tasks = answers // overlap
    prompts = Prompt.objects.bulk_create(
        Prompt(project=project, text=f"Prompt {i}") for i in range(n_tasks)
    )
    completions = Completion.objects.bulk_create(
        Completion(prompt=p, text=f"Answer {k} to {p.text}") for p in prompts for k in (0, 1)
    )
    tasks = Task.objects.bulk_create(
        Task(project=project, prompt=p, kind=Kind.PAIRWISE, overlap=overlap,
             annotation_count=overlap, is_complete=True, round=1 + i * 5 // n_tasks)
        for i, p in enumerate(prompts)
    )  # fmt: skip
    TaskCompletion.objects.bulk_create(
        TaskCompletion(task=t, completion=completions[2 * i + k], position=k)
        for i, t in enumerate(tasks)
        for k in (0, 1)
    )
    skill = [0.95 if i % 3 else 0.6 for i in range(labelers)]
    now = timezone.now()
    assignments, rows = [], []
    for i, task in enumerate(tasks):
        first, second = completions[2 * i].id, completions[2 * i + 1].id
        for u in rng.sample(range(labelers), overlap):
            left = rng.choice([first, second])
            right_side = first if rng.random() < skill[u] else second
            assignments.append(
                Assignment(task=task, labeler=people[u], status=Assignment.Status.SUBMITTED,
                           shown_order=[left, first + second - left], expires_at=now,
                           finished_at=now)
            )  # fmt: skip
            rows.append((task, people[u], right_side, first + second - right_side, left))
    Assignment.objects.bulk_create(assignments, batch_size=5000)
    Annotation.objects.bulk_create(
        (
            Annotation(task=t, labeler=u, assignment=a, kind=Kind.PAIRWISE, verdict="preferred",
                       chosen_id=c, rejected_id=r, shown_order=a.shown_order,
                       time_spent_ms=rng.randint(2000, 20000))
            for (t, u, c, r, _), a in zip(rows, assignments, strict=True)
        ),
        batch_size=5000,
    )  # fmt: skip
    return project, admin


def timings(labelers: int, answers: int) -> dict:
    from django.core.cache import cache
    from django.test import Client
    from django.urls import reverse

    from annotator.quality import arrays, reliability, selectors

    started = time.perf_counter()
    project, admin = make_big(labelers, answers)
    setup_s = time.perf_counter() - started
    rows = arrays.load(project.id).answers()
    fit_s = []
    for _ in range(3):
        t = time.perf_counter()
        fit = reliability.fit(rows)
        fit_s.append(time.perf_counter() - t)
    cache.clear()
    t = time.perf_counter()
    selectors.project_fit(project)
    read_and_fit_s = time.perf_counter() - t
    client = Client()
    client.force_login(admin)
    url = reverse("quality_labelers", args=[project.id])
    # A first view warms the process (templates compiled, connection open); then nothing is
    # cached, and the next view computes every number.
    assert client.get(url).status_code == 200
    cache.clear()
    t = time.perf_counter()
    resp = client.get(url)
    cold_s = time.perf_counter() - t
    assert resp.status_code == 200, resp.status_code
    warm = []
    for _ in range(3):
        t = time.perf_counter()
        assert client.get(url).status_code == 200
        warm.append(time.perf_counter() - t)
    api = f"/api/v1/projects/{project.id}/quality/labelers/"
    t = time.perf_counter()
    assert client.get(api).status_code == 200
    api_s = time.perf_counter() - t
    return {
        "labelers": labelers, "answers": len(rows), "setup_s": setup_s,
        "fit_in_memory_s": min(fit_s), "fit_iterations": fit.iterations,
        "read_and_fit_s": read_and_fit_s, "page_cold_s": cold_s, "page_warm_s": min(warm),
        "api_warm_s": api_s, "page_bytes": len(resp.content),
    }  # fmt: skip


# --- Report ---------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3f} ± {sd:.3f} (min {min(values):.3f}, max {max(values):.3f})"


def report(runs: list[dict], timing: dict | None, meta: dict) -> str:
    out = ["# Label quality benchmark (bench/label_quality.py)", ""]
    out += [f"- command: `{meta['command']}`", f"- when: {meta['when']} UTC",
            f"- machine: {meta['machine']['nproc']} cores, {meta['machine']['cpu']}, "
            f"{meta['machine']['memory_gib']} GiB; PostgreSQL {meta['machine']['postgresql']}; "
            f"Python {meta['machine']['python']}",
            f"- load average before: {meta['load_before']}, after: {meta['load_after']} "
            "(the machine is shared with other sessions)", ""]  # fmt: skip
    out += ["## Per labeler (mean over seeds)", "",
            "| labeler | kind | noise | left bias | answers | true error | est. reliability "
            "| 1 − reliability | agrees w/ consensus | left share |",
            "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    names = sorted(runs[0]["labelers"], key=lambda n: int(n.rsplit("-", 1)[1]))
    for i in range(len(names)):
        per = [r["labelers"][n] for r in runs for n in r["labelers"]
               if int(n.rsplit("-", 1)[1]) == i + 1]  # fmt: skip
        keys = ("answers", "true_error", "reliability", "agreement", "left_share")
        m = {k: statistics.fmean(p[k] for p in per if p[k] is not None) for k in keys}
        p0 = per[0]
        out.append(
            f"| sim-{i + 1} | {p0['kind']} | {p0['noise']} | {p0['position_bias']} | "
            f"{m['answers']:.0f} | {m['true_error']:.3f} | {m['reliability']:.3f} | "
            f"{1 - m['reliability']:.3f} | {m['agreement']:.3f} | {m['left_share']:.3f} |"
        )
    out += ["", "## Aggregation against the oracle", "",
            "| seed | tasks | majority accuracy | reliability accuracy "
            "| careless and biased ranked last |",
            "|---|---|---|---|---|"]  # fmt: skip
    for r in runs:
        a = r["accuracy"]
        out.append(
            f"| {r['seed']} | {r['tasks']} | {a['majority']['accuracy']:.3f} | "
            f"{a['reliability']['accuracy']:.3f} | {r['careless_and_biased_last']} |"
        )
    maj = [r["accuracy"]["majority"]["accuracy"] for r in runs]
    rel = [r["accuracy"]["reliability"]["accuracy"] for r in runs]
    out += ["", f"- majority: {spread(maj)}", f"- reliability: {spread(rel)}",
            "- reliability − majority per seed: "
            + ", ".join(f"{b - a:+.3f}" for a, b in zip(maj, rel, strict=True)),
            "- HTTP labeling time per seed: "
            + ", ".join(f"{r['label_s']:.1f} s" for r in runs), ""]  # fmt: skip
    if timing:
        t = timing
        out += ["## Timings", "",
                f"Project of {t['labelers']} labelers and {t['answers']} pairwise answers "
                f"(filled in {t['setup_s']:.0f} s).", "",
                "| what | seconds | target |", "|---|---|---|",
                f"| Dawid–Skene fit, in memory ({t['fit_iterations']} EM iterations; best of 3) "
                f"| {t['fit_in_memory_s']:.2f} | < 10 |",
                f"| read the answers + fit | {t['read_and_fit_s']:.2f} | |",
                "| statistics page, cold (no number cached; process warm) "
                f"| {t['page_cold_s']:.2f} | < 1 |",
                "| statistics page, warm (its numbers cached; best of 3) "
                f"| {t['page_warm_s']:.2f} | < 1 |",
                f"| API labelers endpoint, after the page | {t['api_warm_s']:.2f} | |",
                ""]  # fmt: skip
        met = {True: "met", False: "NOT met"}
        out += [f"Targets: fit under 10 s {met[t['fit_in_memory_s'] < 10]}; page under 1 s "
                f"{met[t['page_warm_s'] < 1]} warm, {met[t['page_cold_s'] < 1]} cold. A cold "
                "page reads every answer (one query into numpy arrays) and fits the model; its "
                "numbers are then cached until the next answer or skip, so only the first view "
                "after a change pays for it. Read the cold time with the load average above: "
                "the machine's 2 cores were shared with other sessions' tests.", ""]  # fmt: skip
    if not timing:
        out += ["Timings of the fit and the Labelers page at 100 labelers / 100 000 answers: "
                "not run here (--skip-timings); bench/quality_page.py measures the page, "
                "results in bench/results/quality_page.md.", ""]  # fmt: skip
    rm = [r["reward"] for r in runs if r.get("reward")]
    if rm:
        a = meta["reward"]
        out += ["## Reward models trained on each snapshot", "",
                "Per seed, two reward models from the same tiny local Llama "
                f"(trainer/algorithms/tiny.py, {a['pretrain_steps']} pretraining steps) through "
                "the trainer's reward algorithm (trainer/algorithms/reward.py, lr "
                f"{a['rm_lr']}, {a['rm_epochs']} epochs, batch 16, CPU, the seed as training "
                "seed): one on the `majority` export, one on the `reliability` export (what a "
                "reward job's snapshot holds). Accuracy: the share of "
                f"{a['fresh_pairs']} fresh oracle pairs (made like the project's, never "
                "labeled) on which the better response gets the higher reward.", "",
                "| seed | rows majority / reliability | majority RM accuracy "
                "| reliability RM accuracy | difference |", "|---|---|---|---|---|"]  # fmt: skip
        for r in runs:
            m, q = r["reward"]["majority"], r["reward"]["reliability"]
            out.append(f"| {r['seed']} | {m['train_rows']} / {q['train_rows']} | "
                       f"{m['accuracy']:.3f} | {q['accuracy']:.3f} | "
                       f"{q['accuracy'] - m['accuracy']:+.3f} |")  # fmt: skip
        maj = [x["majority"]["accuracy"] for x in rm]
        rel = [x["reliability"]["accuracy"] for x in rm]
        diff = [b - a for a, b in zip(maj, rel, strict=True)]
        met = statistics.fmean(rel) >= statistics.fmean(maj)
        out += ["", f"- majority RM: {spread(maj)}", f"- reliability RM: {spread(rel)}",
                f"- reliability − majority: {spread(diff)}",
                f"- target (reliability at least as accurate as majority, on the mean): "
                f"{'met' if met else 'NOT met'}", ""]  # fmt: skip
    else:
        out += ["The reward-model comparison was not run (--skip-reward).", ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--big-labelers", type=int, default=100)
    parser.add_argument("--big-answers", type=int, default=100_000)
    parser.add_argument("--skip-timings", action="store_true")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--skip-reward", action="store_true", help="no reward-model comparison")
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--rm-lr", type=float, default=5e-4)
    parser.add_argument("--rm-epochs", type=float, default=6.0)
    parser.add_argument("--fresh-pairs", type=int, default=400)
    parser.add_argument(
        "--out",
        default="label_quality",
        help="results file stem under bench/results/ (also names the bench database)",
    )
    args = parser.parse_args()

    url = fresh_database("postgres", args.out)
    env = server_env(url)
    env["DJANGO_ALLOWED_HOSTS"] = "127.0.0.1,testserver"
    os.environ.update(env)
    import django

    django.setup()
    load_before = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    port = free_port(8150)
    base = None if args.skip_reward else tiny_base(args.pretrain_steps)
    runs = []
    with Server(database_url=url, port=port, workers=args.workers, worker_class="gthread",
                threads=4):  # fmt: skip
        for seed in range(1, args.seeds + 1):
            project, _ = make_project(f"Quality bench seed {seed}", args.tasks, seed)
            output, label_s = label_over_http(project, port, seed)
            result = evaluate(project)
            result.update(seed=seed, tasks=args.tasks, label_s=label_s, output=output)
            if not args.skip_reward:
                result["reward"] = reward_comparison(project, seed, base, args)
                print(
                    "  reward models: "
                    + ", ".join(f"{k} {v['accuracy']:.3f}" for k, v in result["reward"].items()),
                    flush=True,
                )
            runs.append(result)
            # What is done so far survives a run stopped before its last seed.
            (RESULTS / f"{args.out}.partial.json").write_text(
                json.dumps({"args": vars(args), "runs": runs}, indent=1, default=str)
            )
            a = result["accuracy"]
            print(
                f"seed {seed}: majority {a['majority']['accuracy']:.3f}, reliability "
                f"{a['reliability']['accuracy']:.3f}, labeled in {label_s:.1f} s",
                flush=True,
            )
            for name, r in sorted(result["labelers"].items()):
                print(
                    f"  {name} {r['kind']:<11} true error {r['true_error']:.3f}  "
                    f"reliability {r['reliability']:.3f}  left share {r['left_share']:.3f}",
                    flush=True,
                )
    timing = None if args.skip_timings else timings(args.big_labelers, args.big_answers)
    if timing:
        print(json.dumps(timing, indent=1), flush=True)
    meta = {
        "command": "nice .venv/bin/python bench/label_quality.py " + shlex.join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": machine(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "reward": {"pretrain_steps": args.pretrain_steps, "rm_lr": args.rm_lr,
                   "rm_epochs": args.rm_epochs, "fresh_pairs": args.fresh_pairs},
    }  # fmt: skip
    (RESULTS / f"{args.out}.json").write_text(
        json.dumps({"meta": meta, "runs": runs, "timings": timing}, indent=1, default=str)
    )
    (RESULTS / f"{args.out}.partial.json").unlink(missing_ok=True)
    text = report(runs, timing, meta)
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
