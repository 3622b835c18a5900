"""The humans' verdicts on the loop's comparison tasks: each round's win rates and the
Bradley-Terry leaderboard of every policy version (docs/loop.md).

A loop comparison task puts a round's new policy against the previous version or the base
(`Task.meta["loop"]`). Only annotations over eval-split prompts count: no training snapshot
takes those (trainer/snapshots.py), so the numbers say how the policy does on prompts it never
trained on. A preference for the new policy's completion is a win, for the other's a loss; a
tie and "both bad" count as half a win (trainer/loop/evaluation.py: half a point, one trial).
"""

import dataclasses
import hashlib
from collections import defaultdict
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform, KeyTransform

from annotator.models import Annotation, Kind, LabelerKind, Prompt
from trainer.loop import evaluation
from trainer.models import ModelVersion

Verdict = Annotation.Verdict

# Judgments that measure the loop: on prompts no model trained on.
HELD_OUT = Q(task__prompt__split=Prompt.Split.EVAL)
LEADERBOARD_BOOTSTRAPS = 200
LEADERBOARD_SEED = 0
LEADERBOARD_CACHE_SECONDS = 24 * 3600


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


def int_or_none(value) -> int | None:
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
            "labeler_kind",
        )
    )
    judgments = []
    for round_number, against, new, other, verdict, chosen_model, simulated in rows:
        new, other = int_or_none(new), int_or_none(other)
        if not against or new is None or other is None or new == other:
            continue  # a round-tagged task that is not a loop comparison
        score = judgment_score(verdict=verdict, chosen_model=chosen_model, new=new, other=other)
        if score is None:
            continue
        judgments.append(
            Judgment(
                round_number,
                against,
                new,
                other,
                score,
                verdict,
                simulated == LabelerKind.SIMULATED,
            )
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
