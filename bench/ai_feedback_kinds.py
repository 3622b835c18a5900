"""AI feedback on Likert and ranking tasks (issue #11): what a noisy, position-biased judge
saves there, and whether its calibration sees the bias it was given.

For each kind and seed: a fresh project of --tasks tasks (Likert: one response with 0 to 3 of
the target words, so the rule's score spreads over the scale; ranking: --k responses with
different numbers of target words, so the rule's order is strict). An AI judge (OpenAI-
compatible backend) is served by the simulated judge server (trainer/loop/judge_server.py, a
separate process) answering by the oracle `target-words`, wrong on --judge-error of its answers
(a Likert score: a random other score; a ranking: two neighbours swapped) and, on rankings,
putting the response shown first on top with probability --left. The mixing policy is on, per
task kind (docs/ai-judges.md). Tasks come in batches of --batch-tasks: the judging job (the
real runner and its child process) first, then the simulated people (the oracle with
--people-noise errors, through the real queue) answer what the judge sent them.

Printed per kind and seed: human labels, judge labels, why people were asked, the calibration
figures, the position bias measured against the bias given (rankings: a judge that puts the
first-shown response on top with probability b, else ranks fairly, puts it there b + (1-b)/K
of the time, so the bias over the chance 1/K is b(K-1)/K; the table gives b back as measured
bias x K/(K-1)), and the final labels' quality against the noise-free rule (Likert: within one
point; rankings: pairs ordered right), beside one person per task with the same noise.

    nice .venv/bin/python bench/ai_feedback_kinds.py --seeds 3 --tasks 300

Writes bench/results/ai_feedback_kinds.json / .md. Uses the PostgreSQL database
prefloop_bench_run_ai_feedback_kinds, recreated on each run.
"""

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.ai_feedback import TARGET, _text, django_for, fmt, save_results, uptime  # noqa: E402

POINTS = 7


def oracle(noise: float, seed: int):
    from trainer.loop.oracles import make_oracle

    return make_oracle("target-words", target_words=TARGET, noise=noise, seed=seed)


def add_tasks(project, kind: str, tasks: int, k: int, rng: random.Random, round: int) -> None:
    from annotator.models import Completion, Prompt, Task, TaskCompletion

    for i in range(tasks):
        prompt = Prompt.objects.create(project=project, text=f"Say something nice ({i}).")
        words = [rng.randrange(4)] if kind == "likert" else rng.sample(range(4), k)
        cs = [
            Completion.objects.create(prompt=prompt, text=_text(rng, w, rng.randint(4, 16)))
            for w in words
        ]
        task = Task.objects.create(project=project, prompt=prompt, kind=kind, overlap=1,
                                   round=round)  # fmt: skip
        TaskCompletion.objects.bulk_create(
            TaskCompletion(task=task, completion=c, position=p) for p, c in enumerate(cs)
        )


def people_label(project, people: list, seed: int, noise: float) -> int:
    from annotator.models import Completion
    from annotator.services import annotation_submit, task_claim_next

    made, idle = 0, 0
    oracles = [oracle(noise, seed * 100 + i) for i in range(len(people))]
    while idle < len(people):
        idle = 0
        for person, o in zip(people, oracles, strict=True):
            lease = task_claim_next(project=project, labeler=person)
            if lease is None:
                idle += 1
                continue
            texts = [Completion.objects.get(id=i).text for i in lease.shown_order]
            if project.kind == "likert":
                answer = {"score": o.answer_likert(texts[0], points=POINTS)}
            else:
                answer = {"ranking": [lease.shown_order[j] for j in o.answer_ranking(texts)]}
            annotation_submit(task=lease.task, labeler=person, answer=answer)
            made += 1
    return made


def quality(kind: str, label, truth) -> float:
    """A label's quality against the noise-free rule: Likert within one point (0 or 1);
    a ranking's share of pairs ordered as the rule orders them."""
    from annotator.quality.calibration import pair_agreement

    if kind == "likert":
        return float(abs(label - truth) <= 1)
    hits, total = pair_agreement(label, truth)
    return hits / total


def run_seed(args, kind: str, seed: int, url: str) -> dict:
    from django.contrib.auth import get_user_model

    from annotator.models import Annotation, JudgeVerdict, LabelerKind, Project, TaskCompletion
    from annotator.quality.calibration import judge_calibration
    from annotator.services import labeler_simulated_ensure
    from trainer import runner
    from trainer.judging import services as judging

    project = Project.objects.create(name=f"AI feedback {kind} seed {seed}", kind=kind,
                                     overlap=1, likert_points=POINTS, repeat_share=0.0)  # fmt: skip
    rng = random.Random(seed)
    people = []
    for i in range(args.people):
        labeler_simulated_ensure(project=project, username=f"sim-{project.id}-{i}")
        people.append(get_user_model().objects.get(username=f"sim-{project.id}-{i}"))
    left = args.left if kind == "ranking" else 0.0
    model = (f"rule=target-words;target={','.join(TARGET)};noise={args.judge_error};"
             f"left={left};seed={seed}")  # fmt: skip
    judge = judging.judge_create(
        project=project, name="sim-judge", base_url=url, model=model, concurrency=4,
        audit_share=args.audit_share, min_agreement=args.min_agreement,
        min_calibration_tasks=args.calibration_tasks, timeout_s=30, retries=2,
    )  # fmt: skip
    started, human = time.monotonic(), 0
    for batch in range(args.tasks // args.batch_tasks):
        add_tasks(project, kind, args.batch_tasks, args.k, rng, round=batch + 1)
        job = judging.judge_run(judge=judge, config={"batch_size": 16})
        status = runner.job_run(job_id=job.id, worker="bench")
        job.refresh_from_db()
        if status != "succeeded":
            raise SystemExit(f"judging job {job.id} {status}: {job.error}")
        human += people_label(project, people, seed * 1000 + job.id, args.people_noise)
    seconds = time.monotonic() - started
    # The noise-free rule's answer per task, the final label (a person's where there is one).
    rule = oracle(0.0, 0)
    texts: dict[int, list] = {}
    links = TaskCompletion.objects.filter(task__project=project).order_by("task_id", "position")
    for task_id, cid, text in links.values_list("task_id", "completion_id", "completion__text"):
        texts.setdefault(task_id, []).append((cid, text))
    truth = {
        t: rule.rate(pairs[0][1], points=POINTS)
        if kind == "likert"
        else [pairs[j][0] for j in rule.order([x for _, x in pairs])]
        for t, pairs in texts.items()
    }
    labels: dict[int, dict] = {}
    answers = Annotation.objects.filter(task__project=project)
    for task_id, who, score, ranking in answers.values_list(
        "task_id", "labeler_kind", "score", "ranking"
    ):
        labels.setdefault(task_id, {})[who] = score if kind == "likert" else list(ranking)
    final = [
        quality(kind, got.get("simulated", got.get("ai")), truth[t]) for t, got in labels.items()
    ]
    # One person per task, same noise: the all-human baseline.
    person = oracle(args.people_noise, seed + 7)
    baseline = []
    for t, pairs in texts.items():
        if kind == "likert":
            baseline.append(
                quality(kind, person.answer_likert(pairs[0][1], points=POINTS), truth[t])
            )
        else:
            order = person.answer_ranking([x for _, x in pairs])
            baseline.append(quality(kind, [pairs[j][0] for j in order], truth[t]))
    reasons: dict = {}
    for r in JudgeVerdict.objects.filter(task__project=project, to_people=True).values_list(
        "reason", flat=True
    ):
        reasons[r] = reasons.get(r, 0) + 1
    cal = judge_calibration(project=project, labeler_id=judge.user_id)[kind]
    return {
        "kind": kind,
        "seed": seed,
        "tasks": args.tasks,
        "human_labels": human,
        "judge_labels": answers.filter(labeler_kind=LabelerKind.AI).count(),
        "to_people": reasons,
        "seconds": round(seconds, 1),
        "labelled": len(final),
        "quality_mixed": statistics.fmean(final),
        "quality_all_human": statistics.fmean(baseline),
        "calibration": cal,
    }


def mean_sd(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return fmt(values[0])
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def report(args, runs: list[dict], meta: dict) -> str:
    k = args.k
    lines = [
        "# AI feedback on Likert and ranking tasks",
        "",
        f"`{meta['command']}`",
        "",
        f"{meta['when']} UTC · {meta['machine']['nproc']} CPUs ({meta['machine']['cpu']}), "
        f"{meta['machine']['memory_gib']} GiB · load {meta['load_before']} before, "
        f"{meta['load_after']} after · {args.tasks} tasks per kind and seed, in batches of "
        f"{args.batch_tasks} · {args.people} simulated people, {args.people_noise} errors · "
        f"judge: {args.judge_error} errors per answer, on rankings of {k} a first-position "
        f"bias of {args.left} · mixing policy: audit {args.audit_share}, calibration "
        f"{args.calibration_tasks} tasks, agreement threshold {args.min_agreement}",
        "",
        "| kind | seed | human labels | judge labels | people asked because | agreement | "
        "kappa (quadratic) / Kendall tau | human-human | inconsistent | position bias "
        "(as b) | quality: mixed / all-human | s |",
        "|" + "---|" * 12,
    ]
    for r in runs:
        c = r["calibration"] or {}
        second = c.get("kappa_quadratic") if r["kind"] == "likert" else c.get("kendall_tau")
        bias = "-"
        if r["kind"] == "ranking" and c.get("position_bias") is not None:
            bias = f"{c['position_bias']:.3f} ({c['position_bias'] * k / (k - 1):.3f})"
        why = ", ".join(f"{w} {n}" for w, n in sorted(r["to_people"].items(), key=lambda x: -x[1]))
        lines.append(
            f"| {r['kind']} | {r['seed']} | {r['human_labels']} | {r['judge_labels']} | {why} | "
            f"{fmt(c.get('agreement'))} | {fmt(second)} | {fmt(c.get('human_human'))} | "
            f"{fmt(c.get('inconsistent'))} | {bias} | {fmt(r['quality_mixed'])} / "
            f"{fmt(r['quality_all_human'])} | {r['seconds']} |"
        )
    lines += ["", "Mean ± sd over the seeds:", ""]
    lines += ["| kind | human labels | agreement | position bias as b | quality mixed | "
              "quality all-human |", "|---|---|---|---|---|---|"]  # fmt: skip
    for kind in ("likert", "ranking"):
        mine = [r for r in runs if r["kind"] == kind]
        if not mine:
            continue
        bias = [
            r["calibration"]["position_bias"] * k / (k - 1)
            for r in mine
            if kind == "ranking" and r["calibration"].get("position_bias") is not None
        ]
        lines.append(
            f"| {kind} | {mean_sd([r['human_labels'] for r in mine])} | "
            f"{mean_sd([r['calibration'].get('agreement') for r in mine])} | "
            f"{mean_sd(bias) if bias else '-'} | {mean_sd([r['quality_mixed'] for r in mine])}"
            f" | {mean_sd([r['quality_all_human'] for r in mine])} |"
        )
    lines += [
        "",
        "Agreement: Likert, the judge's score within one point of the people's; rankings, the "
        "share of pairs ordered as the people order them (docs/ai-judges.md). Quality: the "
        "final label of each task (a person's where people were asked, else the judge's) "
        "against the rule without noise; Likert within one point, rankings the share of pairs "
        "in the right order. All-human: one person per task with the same noise.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--tasks", type=int, default=300)
    p.add_argument("--kinds", default="likert,ranking")
    p.add_argument("--k", type=int, default=3, help="responses per ranking task")
    p.add_argument("--people", type=int, default=3)
    p.add_argument("--people-noise", type=float, default=0.1)
    p.add_argument("--judge-error", type=float, default=0.2)
    p.add_argument("--left", type=float, default=0.2, help="the judge's first-position bias")
    p.add_argument("--audit-share", type=float, default=0.1)
    p.add_argument("--calibration-tasks", type=int, default=30)
    p.add_argument("--min-agreement", type=float, default=0.7)
    p.add_argument("--batch-tasks", type=int, default=100)
    p.add_argument("--out", default="ai_feedback_kinds")
    args = p.parse_args()

    django_for("ai_feedback_kinds")
    from tests.judge_server import judge_server

    load_before, uptime_before = os.getloadavg(), uptime()
    runs = []
    with judge_server() as url:
        for kind in args.kinds.split(","):
            for seed in range(1, args.seeds + 1):
                r = run_seed(args, kind, seed, url)
                runs.append(r)
                c = r["calibration"] or {}
                print(f"{kind} seed {seed}: human {r['human_labels']}, judge "
                      f"{r['judge_labels']}, agreement {fmt(c.get('agreement'))}, position bias "
                      f"{fmt(c.get('position_bias'))}, quality mixed {fmt(r['quality_mixed'])} "
                      f"vs all-human {fmt(r['quality_all_human'])}", flush=True)  # fmt: skip
    save_results(args, runs, script="bench/ai_feedback_kinds.py", load_before=load_before,
                 uptime_before=uptime_before, report=report)  # fmt: skip


if __name__ == "__main__":
    main()
