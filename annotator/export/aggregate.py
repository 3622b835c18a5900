"""How several labels on one thing become training rows. Pure functions, no database.

The rules (docs/export.md has the worked examples):
- every row carries `votes` (how many labelers answered) and `agreement` (the share of them
  who gave this row's answer); a row is kept only when votes >= min_votes and
  agreement >= min_agreement;
- majority: the answer with strictly the most votes wins; a shared lead is a tie between
  labelers and drops the pair; a winning "tie" or "both_bad" never becomes a pair;
- all: one row per answer, each with the same votes / agreement bookkeeping;
- reliability (pairwise tasks): the side the Dawid-Skene posterior favours wins, whatever
  the head count; a winning "tie" or "both_bad" plurality still drops the task, and so
  does a posterior of exactly one half. `agreement` stays the share of labelers who gave
  the written answer; `margin` is the strength, or 2p - 1 with `posterior_margin`;
- a completion flagged harmful is never the chosen one (unless the export allows it).

Each function reports what it dropped to a `Stats`, one count per dropped row or group.
"""

from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import combinations
from typing import NamedTuple

TIE = "tie"
BOTH_BAD = "both_bad"


@dataclass
class Stats:
    """What an export wrote and dropped; reported by the summary endpoint and the command."""

    rows: int = 0
    dropped: Counter = field(default_factory=Counter)

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    def as_dict(self) -> dict:
        return {"rows": self.rows, "dropped": dict(sorted(self.dropped.items()))}


@dataclass(frozen=True)
class Rules:
    majority: bool = True
    min_votes: int = 1
    min_agreement: float = 0.0
    harmful: frozenset = frozenset()  # completion ids flagged harmful
    allow_harmful_chosen: bool = False
    model: object = None  # a reliability.Fit: aggregate=reliability for pairwise tasks
    posterior_margin: bool = False

    def keep(self, *, votes: int, agreement: float, stats: Stats) -> bool:
        if votes < self.min_votes:
            stats.drop("too_few_votes")
            return False
        if agreement < self.min_agreement:
            stats.drop("low_agreement")
            return False
        return True

    def harmful_chosen(self, chosen_id: int, stats: Stats) -> bool:
        if chosen_id in self.harmful and not self.allow_harmful_chosen:
            stats.drop("harmful_chosen")
            return True
        return False


class Vote(NamedTuple):
    """One pairwise or ranking annotation, as read from the database."""

    id: int
    labeler_id: int
    verdict: str
    chosen_id: int | None
    rejected_id: int | None
    strength: int | None
    ranking: list[int] | None


class Pair(NamedTuple):
    chosen_id: int
    rejected_id: int
    margin: float
    votes: int
    agreement: float
    labelers: list[int]
    group: str


def _answer(vote: Vote):
    return vote.chosen_id if vote.verdict == "preferred" else vote.verdict


def pairwise_pairs(task_id: int, votes: list[Vote], rules: Rules, stats: Stats) -> list[Pair]:
    """The pairs one pairwise task gives: at most one under majority, one per answer under all."""
    if rules.model is not None:
        return _reliability_pairs(task_id, votes, rules, stats)
    n = len(votes)
    if n == 1:  # overlap 1, the common case: nothing to count
        v = votes[0]
        group = f"t{task_id}" if rules.majority else f"a{v.id}"
        pair = _pair(v, 1, 1.0, float(v.strength or 0), [v.labeler_id], group, rules, stats)
        return [pair] if pair else []
    counts = Counter(_answer(v) for v in votes)
    if rules.majority:
        (winner, top), *rest = counts.most_common()
        if rest and rest[0][1] == top:
            stats.drop("labelers_tied")
            return []
        backers = [v for v in votes if _answer(v) == winner]
        strengths = [v.strength for v in backers if v.strength is not None]
        margin = sum(strengths) / len(strengths) if strengths else 0.0
        labelers = sorted(v.labeler_id for v in votes)
        pair = _pair(backers[0], n, top / n, margin, labelers, f"t{task_id}", rules, stats)
        return [pair] if pair else []
    rows = []
    for v in votes:
        agreement = counts[_answer(v)] / n
        margin = float(v.strength or 0)
        pair = _pair(v, n, agreement, margin, [v.labeler_id], f"a{v.id}", rules, stats)
        if pair:
            rows.append(pair)
    return rows


def kept_pairs(task_id: int, vote: Vote, kept: dict, rules: Rules, stats: Stats) -> list[Pair]:
    """An imported preference (annotator/preference_import.py) with the margin, votes and
    agreement its file gave it: a preference export imported into another project exports
    the same numbers, and the filters apply to them. Absent ones are the one answer's."""
    margin = kept.get("margin", float(vote.strength or 0))
    if not isinstance(margin, int | float) or isinstance(margin, bool):
        margin = float(vote.strength or 0)
    votes = kept.get("votes", 1)
    agreement = kept.get("agreement", 1.0)
    group = f"t{task_id}" if rules.majority else f"a{vote.id}"
    pair = _pair(vote, votes, agreement, margin, [vote.labeler_id], group, rules, stats)
    return [pair] if pair else []


def _category(vote: Vote) -> str:
    if vote.verdict in (TIE, BOTH_BAD):
        return vote.verdict
    return "first" if vote.chosen_id < vote.rejected_id else "second"


def _reliability_pairs(task_id: int, votes: list[Vote], rules: Rules, stats: Stats) -> list[Pair]:
    n = len(votes)
    counts = Counter(_answer(v) for v in votes)
    (top, top_n), *rest = counts.most_common()
    strict = [v for v in votes if v.verdict not in (TIE, BOTH_BAD)]
    if top in (TIE, BOTH_BAD) and (not rest or rest[0][1] < top_n) or not strict:
        stats.drop(top if top in (TIE, BOTH_BAD) else TIE)
        return []
    first, second = sorted((strict[0].chosen_id, strict[0].rejected_id))
    p_first = rules.model.posterior_of((v.labeler_id, _category(v)) for v in votes)
    if p_first == 0.5:
        stats.drop("labelers_tied")
        return []
    chosen, rejected, p = (
        (first, second, p_first) if p_first > 0.5 else (second, first, 1 - p_first)
    )
    backers = [v for v in strict if v.chosen_id == chosen]
    if rules.posterior_margin:
        margin = 2 * p - 1
    else:
        strengths = [v.strength for v in backers if v.strength is not None]
        margin = sum(strengths) / len(strengths) if strengths else 0.0
    agreement = len(backers) / n
    if not rules.keep(votes=n, agreement=agreement, stats=stats):
        return []
    if rules.harmful_chosen(chosen, stats):
        return []
    labelers = sorted(v.labeler_id for v in votes)
    return [Pair(chosen, rejected, float(margin), n, agreement, labelers, f"t{task_id}")]


def _pair(vote, n, agreement, margin, labelers, group, rules, stats) -> Pair | None:
    if vote.verdict in (TIE, BOTH_BAD):
        stats.drop(vote.verdict)
        return None
    if not rules.keep(votes=n, agreement=agreement, stats=stats):
        return None
    if rules.harmful_chosen(vote.chosen_id, stats):
        return None
    return Pair(vote.chosen_id, vote.rejected_id, float(margin), n, agreement, labelers, group)


def ranking_pairs(task_id: int, votes: list[Vote], rules: Rules, stats: Stats) -> list[Pair]:
    """All K(K-1)/2 pairs of a ranked task, with the task (or annotation) as their group."""
    n = len(votes)
    positions = [{cid: i for i, cid in enumerate(v.ranking)} for v in votes]
    labelers = sorted(v.labeler_id for v in votes)

    def wins(better: int, worse: int) -> int:
        return sum(1 for pos in positions if pos[better] < pos[worse])

    rows = []
    if rules.majority:
        for x, y in combinations(sorted(votes[0].ranking), 2):
            x_wins, y_wins = wins(x, y), wins(y, x)
            if x_wins == y_wins:
                stats.drop("labelers_tied")
                continue
            chosen, rejected = (x, y) if x_wins > y_wins else (y, x)
            agreement = max(x_wins, y_wins) / n
            rows += _ranked_pair(
                chosen, rejected, n, agreement, labelers, f"t{task_id}", rules, stats
            )
        return rows
    for v in votes:
        for chosen, rejected in combinations(v.ranking, 2):
            agreement = wins(chosen, rejected) / n
            group = f"a{v.id}"
            rows += _ranked_pair(
                chosen, rejected, n, agreement, [v.labeler_id], group, rules, stats
            )
    return rows


def _ranked_pair(chosen, rejected, n, agreement, labelers, group, rules, stats) -> list[Pair]:
    if not rules.keep(votes=n, agreement=agreement, stats=stats):
        return []
    if rules.harmful_chosen(chosen, stats):
        return []
    return [Pair(chosen, rejected, 0.0, n, agreement, labelers, group)]


class Order(NamedTuple):
    """A full ranking row: completion ids best first."""

    ranking: list[int]
    votes: int
    agreement: float
    labelers: list[int]


def ranking_orders(votes: list[Vote], rules: Rules, stats: Stats) -> list[Order]:
    """Full orders of a ranked task: the mean-position (Borda) consensus, or every answer.

    `agreement` is the share of (labeler, pair) judgements that order the pair as this row
    does. Under majority, two completions with the same mean position are a tie between
    labelers and drop the task.
    """
    n = len(votes)
    positions = [{cid: i for i, cid in enumerate(v.ranking)} for v in votes]
    ids = sorted(votes[0].ranking)

    def agreement_of(order: list[int]) -> float:
        pairs = list(combinations(order, 2))
        if not pairs:
            return 1.0
        agree = sum(1 for x, y in pairs for pos in positions if pos[x] < pos[y])
        return agree / (len(pairs) * n)

    if rules.majority:
        mean = {cid: sum(pos[cid] for pos in positions) / n for cid in ids}
        if len(set(mean.values())) < len(ids):
            stats.drop("labelers_tied")
            return []
        candidates = [(sorted(ids, key=mean.__getitem__), sorted(v.labeler_id for v in votes))]
    else:
        candidates = [(list(v.ranking), [v.labeler_id]) for v in votes]
    rows = []
    for order, labelers in candidates:
        agreement = agreement_of(order)
        if not rules.keep(votes=n, agreement=agreement, stats=stats):
            continue
        if _harmful_above_harmless(order, rules) and not rules.allow_harmful_chosen:
            stats.drop("harmful_chosen")
            continue
        rows.append(Order(order, n, agreement, labelers))
    return rows


def _harmful_above_harmless(order: list[int], rules: Rules) -> bool:
    seen_harmful = False
    for cid in order:
        if cid in rules.harmful:
            seen_harmful = True
        elif seen_harmful:
            return True
    return False


# --- Likert ---------------------------------------------------------------------------------


class Rating(NamedTuple):
    """One Likert answer; `value` is the score, one aspect's score, or the aspects' mean."""

    id: int
    labeler_id: int
    completion_id: int
    value: Fraction


def _by_completion(ratings: list[Rating]) -> dict[int, list[Rating]]:
    grouped: dict[int, list[Rating]] = {}
    for r in ratings:
        grouped.setdefault(r.completion_id, []).append(r)
    return dict(sorted(grouped.items()))


def likert_pairs(prompt_id: int, ratings: list[Rating], rules: Rules, stats: Stats) -> list[Pair]:
    """Pairs between completions of one prompt whose mean scores differ; the gap is the margin.

    Under all, one pair per labeler who rated both completions differently.
    """
    grouped = _by_completion(ratings)
    rows = []
    for x, y in combinations(grouped, 2):
        rx, ry = grouped[x], grouped[y]
        if rules.majority:
            mx = sum(r.value for r in rx) / len(rx)
            my = sum(r.value for r in ry) / len(ry)
            if mx == my:
                stats.drop("equal_scores")
                continue
            (c, rc, mc), (r, rr, mr) = sorted([(x, rx, mx), (y, ry, my)], key=lambda t: -t[2])
            wins = sum(1 for a in rc for b in rr if a.value > b.value)
            labelers = sorted({a.labeler_id for a in rc + rr})
            candidates = [
                (
                    c,
                    r,
                    mc - mr,
                    min(len(rc), len(rr)),
                    wins / (len(rc) * len(rr)),
                    labelers,
                    f"p{prompt_id}",
                )
            ]
        else:
            candidates = _labeler_pairs(prompt_id, x, rx, y, ry, stats)
        for chosen, rejected, margin, votes, agreement, labelers, group in candidates:
            if not rules.keep(votes=votes, agreement=agreement, stats=stats):
                continue
            if rules.harmful_chosen(chosen, stats):
                continue
            rows.append(Pair(chosen, rejected, float(margin), votes, agreement, labelers, group))
    return rows


def _labeler_pairs(prompt_id, x, rx, y, ry, stats) -> list[tuple]:
    sx = {r.labeler_id: r.value for r in rx}
    sy = {r.labeler_id: r.value for r in ry}
    common = sorted(sx.keys() & sy.keys())
    x_better = sum(1 for lab in common if sx[lab] > sy[lab])
    y_better = sum(1 for lab in common if sy[lab] > sx[lab])
    out = []
    for lab in common:
        if sx[lab] == sy[lab]:
            stats.drop("equal_scores")
            continue
        c, r, wins = (x, y, x_better) if sx[lab] > sy[lab] else (y, x, y_better)
        margin = abs(sx[lab] - sy[lab])
        out.append((c, r, margin, len(common), wins / len(common), [lab], f"p{prompt_id}u{lab}"))
    return out


class Label(NamedTuple):
    """An unpaired (KTO-style) label for one completion."""

    completion_id: int
    label: bool
    votes: int
    agreement: float
    labelers: list[int]


def likert_labels(
    ratings: list[Rating], threshold: Fraction, rules: Rules, stats: Stats
) -> list[Label]:
    """Good (above the threshold) or bad (below) per completion; a harmful one is always bad.

    A score exactly at the threshold says neither, and is dropped as "neutral".
    """
    rows = []
    for cid, rs in _by_completion(ratings).items():
        harmful = cid in rules.harmful and not rules.allow_harmful_chosen
        sides = [r.value > threshold for r in rs if r.value != threshold]
        if rules.majority:
            mean = sum(r.value for r in rs) / len(rs)
            answers = [(mean, sorted(r.labeler_id for r in rs))]
        else:
            answers = [(r.value, [r.labeler_id]) for r in rs]
        for value, labelers in answers:
            if value == threshold and not harmful:
                stats.drop("neutral")
                continue
            label = value > threshold and not harmful
            agreement = sum(1 for side in sides if side == label) / len(rs)
            if harmful:
                agreement = 1.0  # the flag decides, not the scores
            if rules.keep(votes=len(rs), agreement=agreement, stats=stats):
                rows.append(Label(cid, label, len(rs), agreement, labelers))
    return rows
