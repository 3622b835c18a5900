"""The loop page's label-efficiency view (issue #10): labels spent per round against what they
bought, the humans' win rate and the reward model's accuracy on fresh labels, with the
routing rule that chose the round's pairs. Reads only: the round rows the page already built
(trainer/loop/selectors.py), no query of its own."""

from dataclasses import dataclass

from trainer.loop.selectors import RoundRow


@dataclass(frozen=True)
class EfficiencyRow:
    number: int
    rule: str  # how the pairs this round's labels answered were chosen
    labels: int  # usable comparisons the round collected
    labels_total: int  # ... and every round before it
    win_previous: object  # trainer.loop.evaluation.WinRate or None
    win_base: object
    fresh: object  # the round's reward model on labels after it (FreshAccuracy) or None
    pairs: int | None  # pairs the rule chose (None: no routing)
    candidates: int | None  # candidates it chose them from


def rule_of(row: RoundRow) -> str:
    """The rule that chose the round's train-prompt pairs, as stored when they were queued."""
    info = row.round.acquisition or {}
    if info.get("rule"):
        return str(info["rule"])
    if row.round.status == "done":
        return "none (new vs previous on every train prompt)"
    return "-"


FIRST_ROUND = "the project's own tasks (no reward model to route with yet)"


def efficiency_rows(rows: list[RoundRow]) -> list[EfficiencyRow]:
    """One row per round: the labels it collected were answers to the pairs the round before
    it queued, so they were chosen by that round's rule."""
    out, total, before = [], 0, None
    for row in rows:
        total += row.labels
        info = (before.round.acquisition or {}) if before is not None else {}
        previous, base = row.judged.get("previous"), row.judged.get("base")
        out.append(
            EfficiencyRow(
                number=row.number,
                rule=rule_of(before) if before is not None else FIRST_ROUND,
                labels=row.labels,
                labels_total=total,
                win_previous=previous.result if previous else None,
                win_base=base.result if base else None,
                fresh=row.fresh
                if row.fresh is not None and row.fresh.accuracy is not None
                else None,
                pairs=info.get("pairs"),
                candidates=info.get("candidates"),
            )  # fmt: skip
        )
        before = row
    return out


def efficiency_points(rows: list[EfficiencyRow]) -> dict[str, list[tuple]]:
    """(labels so far, value, low, high) per round: the win rate against the previous version
    and the reward model's fresh accuracy, for the chart."""
    win, fresh = [], []
    for r in rows:
        if r.win_previous is not None and r.win_previous.n:
            w = r.win_previous
            win.append((r.labels_total, w.rate, w.low, w.high))
        if r.fresh is not None:
            fresh.append((r.labels_total, r.fresh.accuracy, r.fresh.low, r.fresh.high))
    return {"win": win, "fresh": fresh}
