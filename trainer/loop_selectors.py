"""Reads for the loop page (issue #5): the rounds as they stand, and what the labels say of them.

- Human-judged win rate of each round's new policy against the previous version and against
  the base, from the annotations on that round's comparison tasks (`Task.meta["loop"]`) over
  eval-split prompts only: those no training snapshot takes (trainer/snapshots.py). A
  preference for the new policy's completion is a win, for the other's a loss; a tie and
  "both bad" count as half a win (trainer/evaluation.py: half a point, one trial). 95 % Wilson
  interval.
- A Bradley-Terry leaderboard of every policy version from all loop comparisons, on an Elo
  scale anchored at the base policy (1000), with 95 % bootstrap intervals.
- Per round's reward model: its training-time validation accuracy (`val_accuracy`, reported by
  trainer/algorithms/reward.py) next to its accuracy on comparisons labelled after it was
  trained (`metrics["fresh_accuracy"]`, measured on a worker by trainer/loop_services.py).
- The over-optimisation warning: a round whose new policy's samples score higher than the
  previous policy's under the round's own (newest) reward model, both scored by that one model
  (`LoopRound.scores`, trainer/loop_services.py), while the humans do not prefer it to the
  previous version.

Every function here runs a fixed number of queries, however many rounds, jobs or labels.
"""

import dataclasses
import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.core.cache import cache
from django.db.models import Count, Q
from django.db.models.fields.json import KeyTextTransform, KeyTransform

from annotator.export.rows import prompt_native
from annotator.models import Annotation, Kind, Project, Prompt
from trainer import evaluation
from trainer.models import LoopPolicy, LoopRound, ModelVersion, TrainingJob

Verdict = Annotation.Verdict

# Labels that can train a reward model (as trainer/loop.py counts them): preferences and
# rankings on train-split prompts (eval-split ones are held out of every snapshot).
USABLE = (Q(verdict=Verdict.PREFERRED) | Q(kind=Kind.RANKING)) & Q(
    task__prompt__split=Prompt.Split.TRAIN
)
# Judgments that measure the loop: on prompts no model trained on.
HELD_OUT = Q(task__prompt__split=Prompt.Split.EVAL)
# The over-optimisation warning needs at least this many judgments of a round: with fewer, the
# interval is so wide that it always contains 0.5 and the warning would be noise.
WARNING_MIN_JUDGED = 10
LEADERBOARD_BOOTSTRAPS = 200
LEADERBOARD_SEED = 0
LEADERBOARD_CACHE_SECONDS = 24 * 3600
# A job's heavy columns; the loop page shows none of them.
JOB_HEAVY = ("metrics", "log_tail", "config", "dataset")


# --- Judgments on the loop's comparison tasks -----------------------------------------------


@dataclass(frozen=True)
class Judgment:
    """One annotation on a loop comparison task, seen from the round's new policy's side."""

    round: int
    against: str  # "previous" or "base"
    new: int  # model version ids
    other: int
    score: float  # 1 the new policy won, 0.5 tie or both bad, 0 it lost
    verdict: str
    simulated: bool


def judgment_score(*, verdict: str, chosen_model: int | None, new: int, other: int):
    """1, 0.5 or 0 for the new policy; None for an answer that names neither model."""
    if verdict in (Verdict.TIE, Verdict.BOTH_BAD):
        return 0.5
    if verdict == Verdict.PREFERRED and chosen_model is not None:
        if chosen_model == new:
            return 1.0
        if chosen_model == other:
            return 0.0
    return None


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def loop_judgments(*, project_id: int) -> list[Judgment]:
    """Every pairwise annotation on the project's loop tasks over eval-split prompts, oldest
    first. One query."""
    rows = (
        Annotation.objects.filter(
            HELD_OUT, task__project_id=project_id, task__round__isnull=False, kind=Kind.PAIRWISE
        )
        .annotate(
            against=KeyTextTransform("against", KeyTransform("loop", "task__meta")),
            new=KeyTextTransform("new", KeyTransform("loop", "task__meta")),
            other=KeyTextTransform("other", KeyTransform("loop", "task__meta")),
        )
        .order_by("id")
        .values_list(
            "task__round",
            "against",
            "new",
            "other",
            "verdict",
            "chosen__model_version_id",
            "is_simulated",
        )
    )
    judgments = []
    for round_number, against, new, other, verdict, chosen_model, simulated in rows:
        new, other = _int(new), _int(other)
        if not against or new is None or other is None or new == other:
            continue  # a round-tagged task that is not a loop comparison
        score = judgment_score(verdict=verdict, chosen_model=chosen_model, new=new, other=other)
        if score is None:
            continue
        judgments.append(
            Judgment(round_number, against, new, other, score, verdict, bool(simulated))
        )
    return judgments


@dataclass(frozen=True)
class Judged:
    """How one round's new policy fared against one other version."""

    against: str
    other: int
    result: evaluation.WinRate
    both_bad: int  # of the ties
    simulated: int  # judgments by simulated labelers

    @property
    def judged_better(self) -> bool:
        return self.result.n > 0 and self.result.low > 0.5

    @property
    def judged_worse(self) -> bool:
        return self.result.n > 0 and self.result.high < 0.5


def round_win_rates(judgments: list[Judgment]) -> dict[tuple[int, str], Judged]:
    """(round number, "previous" | "base") -> its win rate with the 95 % Wilson interval."""
    groups: dict[tuple[int, str], list[Judgment]] = defaultdict(list)
    for j in judgments:
        groups[(j.round, j.against)].append(j)
    return {
        key: Judged(
            against=key[1],
            other=group[-1].other,
            result=evaluation.win_rate(j.score for j in group),
            both_bad=sum(j.verdict == Verdict.BOTH_BAD for j in group),
            simulated=sum(j.simulated for j in group),
        )
        for key, group in groups.items()
    }


@dataclass(frozen=True)
class LeaderRow:
    model: ModelVersion | None
    model_id: int
    rating: float
    low: float
    high: float
    games: float
    points: float

    @property
    def name(self) -> str:
        return self.model.name if self.model else f"model {self.model_id}"


def loop_leaderboard(
    *,
    judgments: list[Judgment],
    models: dict[int, ModelVersion],
    base_id: int | None,
    n_boot: int = LEADERBOARD_BOOTSTRAPS,
) -> list[LeaderRow]:
    """Bradley-Terry ratings of every policy version in the loop comparisons, best first.

    Anchored at the base policy (1000) when it took part, so each interval says where a version
    stands against the base; seeded, so the page shows the same numbers on every load. The fit
    is a pure function of the comparisons, so it is cached under their digest: the bootstrap
    takes seconds once there are thousands of judgments, and the page is reloaded often.
    """
    comparisons = [(j.new, j.other, j.score) for j in judgments]
    if not comparisons:
        return []
    rated = {model for pair in comparisons for model in pair[:2]}
    anchor = base_id if base_id in rated else None
    digest = hashlib.sha256(repr((comparisons, anchor, n_boot)).encode()).hexdigest()
    key = f"loop-leaderboard:{LEADERBOARD_SEED}:{digest}"
    board = cache.get(key)
    if board is None:
        board = [
            dataclasses.astuple(row)
            for row in evaluation.leaderboard(
                comparisons, n_boot=n_boot, seed=LEADERBOARD_SEED, anchor=anchor
            )
        ]
        cache.set(key, board, LEADERBOARD_CACHE_SECONDS)
    return [
        LeaderRow(models.get(model), model, rating, low, high, games, points)
        for model, rating, low, high, games, points in board
    ]


# --- Rounds ---------------------------------------------------------------------------------


@dataclass
class FreshAccuracy:
    """A reward model's accuracy on comparisons labelled after it was trained."""

    status: str  # "queued", "done" or "failed"
    n: int = 0
    correct: int = 0
    accuracy: float | None = None
    low: float | None = None
    high: float | None = None
    cutoff: str = ""
    measured_at: str = ""
    simulated: int = 0
    error: str = ""


def fresh_accuracy_of(model: ModelVersion | None) -> FreshAccuracy | None:
    """What `metrics["fresh_accuracy"]` holds, with the 95 % Wilson interval of the accuracy."""
    stored = (model.metrics or {}).get("fresh_accuracy") if model else None
    if not isinstance(stored, dict):
        return None
    n, correct = _int(stored.get("n")) or 0, _int(stored.get("correct")) or 0
    fresh = FreshAccuracy(
        status=str(stored.get("status", "")),
        n=n,
        correct=correct,
        cutoff=str(stored.get("cutoff", "")),
        measured_at=str(stored.get("measured_at", "")),
        simulated=_int(stored.get("simulated")) or 0,
        error=str(stored.get("error", "")),
    )
    if n > 0 and 0 <= correct <= n:
        fresh.accuracy = correct / n
        fresh.low, fresh.high = evaluation.wilson_interval(correct, n)
    return fresh


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@dataclass
class RoundRow:
    round: LoopRound
    jobs: list[tuple[str, TrainingJob]]  # (role, job), in the order they ran
    reward_model: ModelVersion | None
    new_policy: ModelVersion | None
    labels: int  # usable comparisons collected while the round was collecting
    labels_simulated: int
    judged: dict[str, Judged] = field(default_factory=dict)  # "previous" / "base"
    val_accuracy: float | None = None
    fresh: FreshAccuracy | None = None
    mean_reward: float | None = None  # the new policy's samples, by the round's reward model
    reward_baseline: float | None = None  # the previous policy's samples, by the same model
    scored: int = 0  # samples of each policy scored
    scores_status: str = ""  # "", "queued", "done" or "failed" (LoopRound.scores)
    scores_error: str = ""
    warning: str = ""

    @property
    def number(self) -> int:
        return self.round.number

    @property
    def reward_rose(self) -> bool | None:
        if self.mean_reward is None or self.reward_baseline is None:
            return None
        return self.mean_reward > self.reward_baseline

    @property
    def simulated_judged(self) -> int:
        return sum(j.simulated for j in self.judged.values())


def _rounds(project_id: int) -> list[LoopRound]:
    heavy = [f"{job}__{name}" for job in ("reward_job", "policy_job") for name in JOB_HEAVY]
    return list(
        LoopRound.objects.filter(project_id=project_id)
        .select_related(
            "previous_policy",
            "reference_policy",
            "reward_job__output_model",
            "policy_job__output_model",
        )
        .defer(*heavy, "previous_policy__config", "reference_policy__config")
        .order_by("number")
    )


def _label_windows(rounds: list[LoopRound]) -> dict[int, tuple[datetime | None, datetime | None]]:
    """When each round collected labels: round 1 from the start, later rounds from when they
    began; until the reward job was created (or the round ended, or now)."""
    windows = {}
    for r in rounds:
        start = r.started_at if r.number > 1 else None
        end = r.reward_job.created_at if r.reward_job else r.finished_at
        windows[r.number] = (start, end)
    return windows


def _label_counts(project_id: int, rounds: list[LoopRound]) -> dict[int, tuple[int, int]]:
    """Usable comparisons (and how many were simulated) per round. One query."""
    aggregates = {}
    for number, (start, end) in _label_windows(rounds).items():
        window = Q()
        if start is not None:
            window &= Q(created_at__gte=start)
        if end is not None:
            window &= Q(created_at__lt=end)
        aggregates[f"all_{number}"] = Count("id", filter=window)
        aggregates[f"sim_{number}"] = Count("id", filter=window & Q(is_simulated=True))
    if not aggregates:
        return {}
    counts = Annotation.objects.filter(USABLE, task__project_id=project_id).aggregate(**aggregates)
    return {r.number: (counts[f"all_{r.number}"], counts[f"sim_{r.number}"]) for r in rounds}


def _round_jobs(r: LoopRound, generate: dict[int, TrainingJob]) -> list[tuple[str, TrainingJob]]:
    jobs = [("reward", r.reward_job), ("policy", r.policy_job)]
    jobs += [
        (f"generate: {role}", generate.get(job_id)) for role, job_id in r.generate_jobs.items()
    ]
    return [(role, job) for role, job in jobs if job is not None]


def _read_scores(row: RoundRow, scores) -> None:
    """The round's samples under its reward model, from `LoopRound.scores`."""
    if not isinstance(scores, dict):
        return
    row.scores_status = str(scores.get("status", ""))
    row.scores_error = str(scores.get("error", ""))
    if row.reward_model is None or scores.get("reward_model") != row.reward_model.id:
        return  # scored by another model than the round's: not comparable
    new, previous = _number(scores.get("new")), _number(scores.get("previous"))
    if new is not None and previous is not None:
        row.mean_reward, row.reward_baseline = new, previous
        row.scored = _int(scores.get("n")) or 0


def _warn(row: RoundRow) -> str:
    judged = row.judged.get("previous")
    if not row.reward_rose or judged is None or judged.result.n < WARNING_MIN_JUDGED:
        return ""
    if judged.result.low > 0.5:
        return ""
    w = judged.result
    return (
        f"Possible over-optimisation: under this round's reward model "
        f"{row.reward_model.name}, the new policy's samples score {row.mean_reward:.4g} on "
        f"average against {row.reward_baseline:.4g} for the previous policy's ({row.scored} "
        f"samples each), but the humans do not prefer it to the previous version: win rate "
        f"{w.rate:.2f} (95 % interval {w.low:.2f}–{w.high:.2f}, {w.n} judgments on eval "
        f"prompts)."
    )


@dataclass
class LoopState:
    policy: LoopPolicy | None
    rounds: list[RoundRow]
    judgments: list[Judgment]
    models: dict[int, ModelVersion]  # every policy version the rounds or judgments name
    eval_prompts: int = 0  # the project's eval-split prompts, which the judgments are on

    @property
    def warnings(self) -> list[RoundRow]:
        return [r for r in self.rounds if r.warning]

    @property
    def current(self) -> RoundRow | None:
        return self.rounds[-1] if self.rounds else None

    @property
    def measuring(self) -> bool:
        """A measurement is queued: its result will change the page."""
        return any(
            r.scores_status == "queued" or (r.fresh is not None and r.fresh.status == "queued")
            for r in self.rounds
        )

    @property
    def can_change(self) -> bool:
        """Whether the loop page's numbers may still change by themselves: the loop is on, or
        a measurement or one of the rounds' jobs is still to finish."""
        enabled = self.policy is not None and self.policy.enabled
        running = any(not job.is_finished for r in self.rounds for _, job in r.jobs)
        return enabled or running or self.measuring


def loop_state(*, project: Project) -> LoopState:
    """The loop's settings and every round with its jobs, models, labels, win rates and
    warning. Six queries (seven when a judgment names a model no round does), however many
    rounds and labels."""
    policy = LoopPolicy.objects.select_related("base_policy").filter(project=project).first()
    rounds = _rounds(project.id)
    generate_ids = {i for r in rounds for i in r.generate_jobs.values()}
    generate = (
        {j.id: j for j in TrainingJob.objects.filter(id__in=generate_ids).defer(*JOB_HEAVY)}
        if generate_ids
        else {}
    )
    judgments = loop_judgments(project_id=project.id)
    rates = round_win_rates(judgments)
    counts = _label_counts(project.id, rounds)

    rows = []
    for r in rounds:
        reward_model = r.reward_job.output_model if r.reward_job else None
        new_policy = r.policy_job.output_model if r.policy_job else None
        labels, simulated = counts.get(r.number, (0, 0))
        row = RoundRow(
            round=r,
            jobs=_round_jobs(r, generate),
            reward_model=reward_model,
            new_policy=new_policy,
            labels=labels,
            labels_simulated=simulated,
            judged={
                against: rates[(r.number, against)]
                for against in ("previous", "base")
                if (r.number, against) in rates
            },
            val_accuracy=_number((reward_model.metrics or {}).get("val_accuracy"))
            if reward_model
            else None,
            fresh=fresh_accuracy_of(reward_model),
        )
        _read_scores(row, r.scores)
        row.warning = _warn(row)
        rows.append(row)

    models = {r.previous_policy_id: r.previous_policy for r in rounds}
    models |= {row.new_policy.id: row.new_policy for row in rows if row.new_policy}
    if policy is not None:
        models[policy.base_policy_id] = policy.base_policy
    missing = {i for j in judgments for i in (j.new, j.other)} - set(models)
    if missing:
        models |= {m.id: m for m in ModelVersion.objects.filter(id__in=missing).defer("config")}
    eval_prompts = Prompt.objects.filter(project=project, split=Prompt.Split.EVAL).count()
    return LoopState(
        policy=policy, rounds=rows, judgments=judgments, models=models, eval_prompts=eval_prompts
    )


# --- Plot data ------------------------------------------------------------------------------


def win_rate_points(rows: list[RoundRow], against: str) -> list[tuple[int, float, float, float]]:
    """(round, win rate, low, high) for every round with judgments against `against`."""
    points = []
    for row in rows:
        judged = row.judged.get(against)
        if judged is not None and judged.result.n:
            points.append((row.number, judged.result.rate, judged.result.low, judged.result.high))
    return points


def accuracy_points(rows: list[RoundRow]) -> dict[str, list[tuple]]:
    """Validation accuracy (x, y) and fresh-label accuracy (x, y, low, high) per round."""
    return {
        "val": [(r.number, r.val_accuracy) for r in rows if r.val_accuracy is not None],
        "fresh": [
            (r.number, r.fresh.accuracy, r.fresh.low, r.fresh.high)
            for r in rows
            if r.fresh is not None and r.fresh.accuracy is not None
        ],
    }


# --- Fresh comparisons for a reward model ---------------------------------------------------


def fresh_accuracy_cutoff(*, model_version: ModelVersion) -> datetime:
    """Labels after this moment were not in the model's training data: the end of the job that
    trained it (its registration time for a model registered by hand)."""
    job = model_version.job
    if job is not None and job.finished_at is not None:
        return job.finished_at
    return model_version.created_at


@dataclass(frozen=True)
class FreshComparison:
    prompt: str | list[dict]  # a chat prompt stays its messages, as in training snapshots
    chosen: str
    rejected: str
    simulated: bool


def fresh_comparisons(
    *, model_version: ModelVersion, cutoff: datetime, limit: int
) -> list[FreshComparison]:
    """Pairwise preferences of the model's project labelled after `cutoff`, newest first (at
    most `limit`). The prompt comes as in the training snapshot (text, or a chat's messages),
    which is how the reward model saw its training rows. One query."""
    rows = (
        Annotation.objects.filter(
            task__project_id=model_version.project_id,
            kind=Kind.PAIRWISE,
            verdict=Verdict.PREFERRED,
            chosen__isnull=False,
            rejected__isnull=False,
            created_at__gt=cutoff,
        )
        .order_by("-created_at", "-id")
        .values_list(
            "task__prompt__text",
            "task__prompt__messages",
            "chosen__text",
            "rejected__text",
            "is_simulated",
        )[:limit]
    )
    return [
        FreshComparison(prompt_native(text, messages), chosen, rejected, bool(simulated))
        for text, messages, chosen, rejected, simulated in rows
    ]


def reward_model_get(*, project_id: int, model_id: int) -> ModelVersion | None:
    """One of the project's reward models, with the job that trained it, or None."""
    return (
        ModelVersion.objects.select_related("job")
        .defer(*(f"job__{name}" for name in JOB_HEAVY))
        .filter(project_id=project_id, role=ModelVersion.Role.REWARD, id=model_id)
        .first()
    )
