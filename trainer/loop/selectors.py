"""Reads for the loop page: the rounds as they stand, with their jobs, models, labels, win
rates and warning, and the one rule for which labels can train a reward model.

- Usable comparisons (`USABLE`, `usable_comparisons`): preferences and rankings on train-split
  prompts. The loop counts them to decide when to train (trainer/loop/services.py) and the page
  shows them per round; both read this one rule.
- Demonstrations (`usable_demonstrations`) and the loop's SFT model (`loop_sft_model`,
  `loop_start_policy`): a loop set to start with SFT (`LoopPolicy.sft_first`) trains on the
  former, then starts its reward models and first policy step from the latter.
- Win rates and the leaderboard come from trainer/loop/judgments.py; a reward model's accuracy
  on fresh labels from trainer/loop/accuracy.py.
- Per round's reward model: its training-time validation accuracy (`val_accuracy`, reported by
  trainer/algorithms/reward.py) next to its accuracy on comparisons labelled after it was
  trained (`metrics["fresh_accuracy"]`, measured on a worker by trainer/loop/measure.py).
- The over-optimisation warning: a round whose new policy's samples score higher than the
  previous policy's under the round's own (newest) reward model, both scored by that one model
  (`LoopRound.scores`, trainer/loop/measure.py), while the humans do not prefer it to the
  previous version.

Every function here runs a fixed number of queries, however many rounds, jobs or labels.
"""

import math
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Q

from annotator.models import Annotation, Kind, LabelerKind, Project, Prompt
from trainer.loop.accuracy import JOB_HEAVY, FreshAccuracy, fresh_accuracy_of
from trainer.loop.judgments import (
    Judged,
    Judgment,
    int_or_none,
    loop_judgments,
    round_win_rates,
)
from trainer.models import LoopPolicy, LoopRound, ModelVersion, TrainingJob

Verdict = Annotation.Verdict

# Labels that can train a reward model: preferences and rankings on train-split prompts
# (eval-split ones are held out of every snapshot). Ties and "both bad" teach no preference.
USABLE = (Q(verdict=Verdict.PREFERRED) | Q(kind=Kind.RANKING)) & Q(
    task__prompt__split=Prompt.Split.TRAIN
)
# The over-optimisation warning needs at least this many judgments of a round: with fewer, the
# interval is so wide that it always contains 0.5 and the warning would be noise.
WARNING_MIN_JUDGED = 10


def usable_comparisons(*, project_id: int, since=None) -> int:
    """Labels of the project that can train a reward model (`USABLE`), since when."""
    labels = Annotation.objects.filter(USABLE, task__project_id=project_id)
    if since is not None:
        labels = labels.filter(created_at__gte=since)
    return labels.count()


# Written responses an SFT job on demonstrations trains on (the `sft` export): demonstrations and
# edit tasks' revisions, on train-split prompts.
DEMONSTRATIONS = Q(kind__in=[Kind.DEMONSTRATION, Kind.EDIT]) & Q(
    task__prompt__split=Prompt.Split.TRAIN
)


def usable_demonstrations(*, project_id: int) -> int:
    """The project's written responses an SFT round can train on (`DEMONSTRATIONS`)."""
    return Annotation.objects.filter(DEMONSTRATIONS, task__project_id=project_id).count()


def loop_sft_model(*, project_id: int) -> ModelVersion | None:
    """The model the loop's SFT round made (LoopPolicy.sft_first), once its job succeeded."""
    round_ = (
        LoopRound.objects.filter(
            project_id=project_id,
            sft_job__status=TrainingJob.Status.SUCCEEDED,
            sft_job__output_model__isnull=False,
        )
        .select_related("sft_job__output_model")
        .order_by("number")
        .first()
    )
    return round_.sft_job.output_model if round_ is not None else None


def loop_start_policy(*, policy: LoopPolicy) -> ModelVersion:
    """What the loop's reward models and its KL reference start from: the SFT model when the
    loop began with SFT on demonstrations (InstructGPT's order), else the base policy."""
    return loop_sft_model(project_id=policy.project_id) or policy.base_policy


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
    # A reward ensemble's mean disagreement on the new and the previous policy's samples.
    spread_new: float | None = None
    spread_previous: float | None = None
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
    jobs = ("sft_job", "reward_job", "policy_job")
    heavy = [f"{job}__{name}" for job in jobs for name in JOB_HEAVY]
    return list(
        LoopRound.objects.filter(project_id=project_id)
        .select_related(
            "previous_policy",
            "reference_policy",
            "sft_job__output_model",
            "reward_job__output_model",
            "policy_job__output_model",
        )
        .defer(
            *heavy,
            "previous_policy__config",
            "reference_policy__config",
            "sft_job__output_model__config",
        )
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
        aggregates[f"sim_{number}"] = Count(
            "id", filter=window & Q(labeler_kind=LabelerKind.SIMULATED)
        )
    if not aggregates:
        return {}
    counts = Annotation.objects.filter(USABLE, task__project_id=project_id).aggregate(**aggregates)
    return {r.number: (counts[f"all_{r.number}"], counts[f"sim_{r.number}"]) for r in rounds}


def _round_jobs(r: LoopRound, generate: dict[int, TrainingJob]) -> list[tuple[str, TrainingJob]]:
    jobs = [("sft", r.sft_job), ("reward", r.reward_job), ("policy", r.policy_job)]
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
        row.scored = int_or_none(scores.get("n")) or 0
        row.spread_new = _number(scores.get("spread_new"))
        row.spread_previous = _number(scores.get("spread_previous"))


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
        f"prompts)." + _spread_note(row)
    )


def _spread_note(row: RoundRow) -> str:
    if row.spread_new is None or row.spread_previous is None:
        return ""
    if row.spread_new <= row.spread_previous:
        return ""
    return (
        f" The reward model's heads also disagree more on the new policy's samples "
        f"({row.spread_new:.3g} against {row.spread_previous:.3g}): it has moved where the "
        f"labels are thin."
    )


@dataclass
class LoopState:
    policy: LoopPolicy | None
    rounds: list[RoundRow]
    judgments: list[Judgment]
    models: dict[int, ModelVersion]  # every policy version the rounds or judgments name
    eval_prompts: int = 0  # the project's eval-split prompts, which the judgments are on
    # A loop that starts with SFT (LoopPolicy.sft_first): the model its SFT round made, and
    # while there is none yet, the demonstrations written so far (None otherwise).
    sft_model: ModelVersion | None = None
    demonstrations: int | None = None

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
    warning. Six queries (seven when a judgment names a model no round does, one more to count
    the demonstrations while a loop that starts with SFT has not trained it), however many
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
    sft_model = next(
        (
            r.sft_job.output_model
            for r in rounds
            if r.sft_job is not None
            and r.sft_job.status == TrainingJob.Status.SUCCEEDED
            and r.sft_job.output_model is not None
        ),
        None,
    )
    if sft_model is not None:
        models[sft_model.id] = sft_model
    demonstrations = None
    if policy is not None and policy.sft_first and sft_model is None:
        demonstrations = usable_demonstrations(project_id=project.id)
    return LoopState(
        policy=policy,
        rounds=rows,
        judgments=judgments,
        models=models,
        eval_prompts=eval_prompts,
        sft_model=sft_model,
        demonstrations=demonstrations,
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
