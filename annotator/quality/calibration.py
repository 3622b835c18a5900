"""How far an AI judge can be trusted: its verdicts against the people's on the same tasks
(docs/ai-judges.md).

`calibrate` is a pure function over plain items (no database), so its figures can be checked
by hand; `judge_calibration` reads a project's verdicts and human answers into such items.
Labels are compared by completion id, as everywhere in quality/: on a pairwise task "x" means
the completion with the lower id won, "y" the other one, then "tie" and "both_bad".

Figures:
- agreement: share of tasks where the judge's label equals the people's majority label (tasks
  whose people tie between two labels are left out), with its 95 % Wilson interval (how much
  the mixing policy's trust threshold can read into it); Cohen's kappa (scikit-learn) on the
  same;
- by human agreement: the same agreement on tasks where the people were unanimous (at least
  two of them), split, or just one person; and the human–human rate (share of agreeing pairs of
  people on a task), the ceiling a judge can reach;
- position bias: from every verdict, each asked in both orders: (answers for the response
  shown first - answers for the one shown second) / all answers. Each pair is seen once in
  each order, so a judge without a bias gives the first and the second position the same
  count, ties and errors included, and a judge that answers "first" with probability b
  regardless (else fairly) scores b. Also the share of verdicts that picked the same
  *position* both times;
- length bias: how often the longer response wins, for the judge and for people (strict
  preferences between responses of different lengths);
- confusion: counts[people's majority][judge's label].

Likert tasks (`calibrate_likert`, a score asked once): agreement is the share of tasks where
the judge's score is within one point of the people's median (the lower median for an even
count), with its 95 % Wilson interval; also the exact share, the mean absolute difference,
Cohen's kappa with quadratic weights, the human–human rate within one point (the ceiling) and
the mean score of each side (leniency).

Ranking tasks (`calibrate_ranking`, asked as served and reversed): agreement is the share of
pairs of responses the judge orders as the people's consensus does (responses by mean
position), over all tasks; also Kendall's tau per task (mean), the share where both put the
same response first, the human–human pair agreement (the ceiling), the share of rankings
asked that put the response shown first on top against the chance 1/K (position bias), and
how often the longer of two responses is ranked higher, for the judge and for people.
"""

import statistics
from collections import Counter
from dataclasses import dataclass, field

from sklearn.metrics import cohen_kappa_score

LABELS = ("x", "y", "tie", "both_bad")


@dataclass
class Item:
    """One task a judge gave a verdict on."""

    task_id: int
    round: int | None
    pair: tuple[int, int]  # the task's two completion ids, lower first
    first: str  # the judge's answer as served ("a" = shown_order[0])
    second: str  # its answer with the two swapped
    shown_order: list[int]
    consistent: bool
    lengths: dict[int, int] = field(default_factory=dict)  # completion id -> length in words
    humans: list[str] = field(default_factory=list)  # people's labels (LABELS)


def label_of(winner: int | str | None, pair: tuple[int, int]) -> str:
    """A stored answer as a label: the winning completion id, "tie" or "both_bad"."""
    if winner in ("tie", "both_bad"):
        return winner
    return "x" if winner == pair[0] else "y"


def judge_label(item: Item) -> str | None:
    """The judge's label (from its first-order answer), None when it contradicted itself."""
    if not item.consistent:
        return None
    answer = item.first
    if answer in ("tie", "both_bad"):
        return answer
    return label_of(item.shown_order[0] if answer == "a" else item.shown_order[1], item.pair)


def majority(labels: list[str]) -> str | None:
    """The most frequent label; None when two labels tie for it (or there are none)."""
    counts = Counter(labels).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def _share(hits: int, n: int) -> float | None:
    return hits / n if n else None


def _interval(hits: int, n: int) -> list[float] | None:
    """The 95 % Wilson interval of a share, [low, high]; None when n is 0."""
    from annotator.quality.stats import wilson  # imported here: stats.py loads the models

    bounds = wilson(hits, n)
    return list(bounds) if bounds else None


def calibrate(items: list[Item]) -> dict:
    judged, people = [], []
    levels: dict[str, list[int]] = {"unanimous": [0, 0], "split": [0, 0], "single": [0, 0]}
    hh_hits = hh_pairs = 0
    for item in items:
        h = item.humans
        n = len(h)
        for i in range(n):
            for j in range(i + 1, n):
                hh_pairs += 1
                hh_hits += h[i] == h[j]
        mine, theirs = judge_label(item), majority(h)
        if mine is None or theirs is None:
            continue
        judged.append(mine)
        people.append(theirs)
        level = "single" if n == 1 else ("unanimous" if len(set(h)) == 1 else "split")
        levels[level][0] += mine == theirs
        levels[level][1] += 1
    hits = sum(a == b for a, b in zip(judged, people, strict=True))
    kappa = None
    if judged and len(set(judged) | set(people)) > 1:
        kappa = float(cohen_kappa_score(people, judged, labels=list(LABELS)))
    confusion = {r: {c: 0 for c in LABELS} for r in LABELS}
    for theirs, mine in zip(people, judged, strict=True):
        confusion[theirs][mine] += 1
    return {
        "tasks": len(judged),
        "agreement": _share(hits, len(judged)),
        "agreement_interval": _interval(hits, len(judged)),
        "kappa": kappa,
        "by_human_agreement": {
            k: {"agreement": _share(v[0], v[1]), "n": v[1]} for k, v in levels.items()
        },
        "human_human": _share(hh_hits, hh_pairs),
        "human_pairs": hh_pairs,
        **position_bias(items),
        **length_bias(items),
        "confusion": confusion,
    }


def position_bias(items: list[Item]) -> dict:
    answers = [a for item in items for a in (item.first, item.second)]
    firsts, seconds = answers.count("a"), answers.count("b")
    same_side = sum(item.first == item.second and item.first in ("a", "b") for item in items)
    return {
        "verdicts": len(items),
        "inconsistent": _share(sum(not i.consistent for i in items), len(items)),
        "first_shown_share": _share(firsts, firsts + seconds),
        "position_bias": _share(firsts - seconds, len(answers)),
        "same_position_share": _share(same_side, len(items)),
    }


def length_bias(items: list[Item]) -> dict:
    """Share of strict preferences that went to the longer response, judge and people, on
    the tasks where both answered and the two responses differ in length."""
    judge_hits = judge_n = people_hits = people_n = 0
    for item in items:
        x, y = item.pair
        lx, ly = item.lengths.get(x), item.lengths.get(y)
        mine = judge_label(item)
        if lx is None or ly is None or lx == ly or mine is None or not item.humans:
            continue
        longer = "x" if lx > ly else "y"
        if mine in ("x", "y"):
            judge_n += 1
            judge_hits += mine == longer
        for label in item.humans:
            if label in ("x", "y"):
                people_n += 1
                people_hits += label == longer
    return {
        "longer_wins_judge": _share(judge_hits, judge_n),
        "longer_wins_people": _share(people_hits, people_n),
        "length_pairs": judge_n,
    }


def by_round(items: list, figures=None) -> dict:
    """{round: figures of its items}, rounds in order (None, tasks of no round, last);
    `figures` is the calibration function (pairwise by default)."""
    rounds: dict = {}
    for item in items:
        rounds.setdefault(item.round, []).append(item)
    order = sorted(rounds, key=lambda r: (r is None, r or 0))
    return {r: (figures or calibrate)(rounds[r]) for r in order}


# --- Reads ------------------------------------------------------------------------------------

# Who counts as "people": persons, and the simulated labelers that stand in for them in demos
# and benchmarks. Never other judges.
PEOPLE = ("human", "simulated")


def verdict_rows(*, project, labeler_id: int, kind: str, round: int | None) -> list[tuple]:
    """(task id, round, first, second, shown order, consistent) of the judge's verdicts on
    the project's tasks of one kind (one round, if given)."""
    from annotator.models import JudgeVerdict

    verdicts = JudgeVerdict.objects.filter(
        task__project=project, labeler_id=labeler_id, task__kind=kind
    )
    if round is not None:
        verdicts = verdicts.filter(task__round=round)
    return list(
        verdicts.values_list(
            "task_id", "task__round", "first", "second", "shown_order", "consistent"
        )
    )


def judge_items(*, project, labeler_id: int, round: int | None = None) -> list[Item]:
    """The judge's verdicts on the project's pairwise tasks, each with the people's labels."""
    from annotator.models import Annotation, TaskCompletion

    rows = verdict_rows(project=project, labeler_id=labeler_id, kind="pairwise", round=round)
    task_ids = [r[0] for r in rows]
    pairs: dict[int, list[int]] = {}
    lengths: dict[int, int] = {}
    links = TaskCompletion.objects.filter(task_id__in=task_ids)
    for task_id, cid, text in links.values_list("task_id", "completion_id", "completion__text"):
        pairs.setdefault(task_id, []).append(cid)
        lengths[cid] = len(text.split())
    humans: dict[int, list[str]] = {}
    answers = Annotation.objects.filter(task_id__in=task_ids, labeler_kind__in=PEOPLE)
    for task_id, verdict, chosen in answers.values_list("task_id", "verdict", "chosen_id"):
        pair = tuple(sorted(pairs.get(task_id, ())))
        if len(pair) == 2:
            winner = chosen if verdict == "preferred" else verdict
            humans.setdefault(task_id, []).append(label_of(winner, pair))
    items = []
    for task_id, rnd, first, second, order, consistent in rows:
        pair = tuple(sorted(pairs.get(task_id, ())))
        if len(pair) != 2:
            continue
        items.append(
            Item(
                task_id=task_id, round=rnd, pair=pair, first=first, second=second,
                shown_order=order, consistent=consistent,
                lengths={c: lengths[c] for c in pair}, humans=humans.get(task_id, []),
            )
        )  # fmt: skip
    return items


def judge_calibration(*, project, labeler_id: int, round: int | None = None) -> dict:
    """Calibration of one judge: over all its pairwise verdicts, and per loop round; its
    Likert and ranking verdicts apart (None where it has given none), each with its own
    per-round figures under "rounds"."""
    items = judge_items(project=project, labeler_id=labeler_id, round=round)
    likert = likert_items(project=project, labeler_id=labeler_id, round=round)
    ranking = ranking_items(project=project, labeler_id=labeler_id, round=round)

    def likert_figures(some):
        return calibrate_likert(some, points=project.likert_points)

    def with_rounds(some, figures):
        if not some:
            return None
        per_round = [{"round": r, **f} for r, f in by_round(some, figures).items()]
        return {**figures(some), "rounds": per_round}

    return {
        "all": calibrate(items),
        "rounds": by_round(items),
        "likert": with_rounds(likert, likert_figures),
        "ranking": with_rounds(ranking, calibrate_ranking),
    }


# --- Likert -----------------------------------------------------------------------------------


@dataclass
class LikertItem:
    task_id: int
    round: int | None
    judge: int  # the judge's score
    humans: list[int] = field(default_factory=list)  # people's scores


def calibrate_likert(items: list[LikertItem], points: int = 7) -> dict:
    pairs = [(item.judge, statistics.median_low(item.humans)) for item in items if item.humans]
    judged, people = [a for a, _ in pairs], [b for _, b in pairs]
    n = len(pairs)
    kappa = None
    if n and len(set(judged) | set(people)) > 1:
        kappa = float(cohen_kappa_score(people, judged, labels=list(range(1, points + 1)),
                                        weights="quadratic"))  # fmt: skip
    hh_hits = hh_pairs = 0
    for item in items:
        h = item.humans
        for i in range(len(h)):
            for j in range(i + 1, len(h)):
                hh_pairs += 1
                hh_hits += abs(h[i] - h[j]) <= 1
    within = sum(abs(a - b) <= 1 for a, b in pairs)
    return {
        "verdicts": len(items),
        "tasks": n,
        "agreement": _share(within, n),
        "agreement_interval": _interval(within, n),
        "exact": _share(sum(a == b for a, b in pairs), n),
        "mean_abs_difference": statistics.fmean(abs(a - b) for a, b in pairs) if n else None,
        "kappa_quadratic": kappa,
        "human_human": _share(hh_hits, hh_pairs),
        "human_pairs": hh_pairs,
        "mean_score_judge": statistics.fmean(judged) if n else None,
        "mean_score_people": statistics.fmean(people) if n else None,
    }


def likert_items(*, project, labeler_id: int, round: int | None = None) -> list[LikertItem]:
    """The judge's Likert scores on the project's tasks, each with the people's scores."""
    from annotator.models import Annotation

    rows = [r[:3] for r in verdict_rows(project=project, labeler_id=labeler_id, kind="likert",
                                        round=round)]  # fmt: skip
    humans: dict[int, list[int]] = {}
    answers = Annotation.objects.filter(
        task_id__in=[r[0] for r in rows], labeler_kind__in=PEOPLE, score__isnull=False
    )
    for task_id, score in answers.values_list("task_id", "score"):
        humans.setdefault(task_id, []).append(score)
    return [
        LikertItem(task_id=t, round=rnd, judge=int(first), humans=humans.get(t, []))
        for t, rnd, first in rows
        if first.isdigit()
    ]


# --- Ranking ----------------------------------------------------------------------------------


@dataclass
class RankingItem:
    task_id: int
    round: int | None
    shown_order: list[int]  # completion ids as first shown to the judge
    first: list[int]  # the judge's ranking as served (completion ids, best first)
    second: list[int]  # its ranking with the responses reversed
    consistent: bool
    lengths: dict[int, int] = field(default_factory=dict)  # completion id -> words
    humans: list[list[int]] = field(default_factory=list)  # people's rankings


def consensus(rankings: list[list[int]]) -> list[int]:
    """The people's ranking: responses by their mean position (ties by id)."""
    positions: dict[int, list[int]] = {}
    for ranking in rankings:
        for k, cid in enumerate(ranking):
            positions.setdefault(cid, []).append(k)
    return sorted(positions, key=lambda c: (statistics.fmean(positions[c]), c))


def pair_agreement(x: list[int], y: list[int]) -> tuple[int, int]:
    """(pairs of responses both rankings order alike, pairs ranked by both)."""
    common = [c for c in x if c in set(y)]
    where = {c: k for k, c in enumerate(y)}
    hits = total = 0
    for i in range(len(common)):
        for j in range(i + 1, len(common)):
            total += 1
            hits += where[common[i]] < where[common[j]]
    return hits, total


def calibrate_ranking(items: list[RankingItem]) -> dict:
    hits = total = top = tasks = 0
    taus = []
    hh_hits = hh_total = 0
    judge_long = judge_long_n = people_long = people_long_n = 0
    for item in items:
        h = item.humans
        for i in range(len(h)):
            for j in range(i + 1, len(h)):
                a, t = pair_agreement(h[i], h[j])
                hh_hits, hh_total = hh_hits + a, hh_total + t
        for ranking in h:
            k, n = _longer_higher(ranking, item.lengths)
            people_long, people_long_n = people_long + k, people_long_n + n
        if not item.consistent or not h:
            continue
        theirs = consensus(h)
        a, t = pair_agreement(item.first, theirs)
        if not t:
            continue
        tasks += 1
        hits, total = hits + a, total + t
        taus.append(2 * a / t - 1)
        top += item.first[0] == theirs[0]
        k, n = _longer_higher(item.first, item.lengths)
        judge_long, judge_long_n = judge_long + k, judge_long_n + n
    asked = len(items) * 2
    on_top = sum((i.first[0] == i.shown_order[0]) + (i.second[0] == i.shown_order[-1])
                 for i in items)  # fmt: skip
    chance = statistics.fmean(1 / len(i.shown_order) for i in items) if items else None
    first_top = _share(on_top, asked)
    return {
        "verdicts": len(items),
        "tasks": tasks,
        "agreement": _share(hits, total),
        "kendall_tau": statistics.fmean(taus) if taus else None,
        "top_agreement": _share(top, tasks),
        "human_human": _share(hh_hits, hh_total),
        "human_pairs": hh_total,
        "inconsistent": _share(sum(not i.consistent for i in items), len(items)),
        "first_shown_top_share": first_top,
        "first_shown_top_chance": chance,
        "position_bias": None if first_top is None else first_top - chance,
        "longer_higher_judge": _share(judge_long, judge_long_n),
        "longer_higher_people": _share(people_long, people_long_n),
    }


def _longer_higher(ranking: list[int], lengths: dict[int, int]) -> tuple[int, int]:
    """(pairs of differently long responses where the longer is ranked higher, such pairs)."""
    hits = n = 0
    for i in range(len(ranking)):
        for j in range(i + 1, len(ranking)):
            li, lj = lengths.get(ranking[i]), lengths.get(ranking[j])
            if li is None or lj is None or li == lj:
                continue
            n += 1
            hits += li > lj
    return hits, n


def ranking_items(*, project, labeler_id: int, round: int | None = None) -> list[RankingItem]:
    """The judge's rankings on the project's tasks, each with the people's rankings."""
    from annotator.judging import LETTERS, ranking_ids
    from annotator.models import Annotation, TaskCompletion

    rows = verdict_rows(project=project, labeler_id=labeler_id, kind="ranking", round=round)
    task_ids = [r[0] for r in rows]
    lengths: dict[int, int] = {}
    links = TaskCompletion.objects.filter(task_id__in=task_ids)
    for cid, text in links.values_list("completion_id", "completion__text"):
        lengths[cid] = len(text.split())
    humans: dict[int, list[list[int]]] = {}
    answers = Annotation.objects.filter(task_id__in=task_ids, labeler_kind__in=PEOPLE)
    for task_id, ranking in answers.values_list("task_id", "ranking"):
        if ranking:
            humans.setdefault(task_id, []).append(list(ranking))
    items = []
    for task_id, rnd, first, second, order, consistent in rows:
        if not set(first) | set(second) <= set(LETTERS[: len(order)]):
            continue
        items.append(
            RankingItem(
                task_id=task_id, round=rnd, shown_order=list(order),
                first=ranking_ids(first, order), second=ranking_ids(second, order[::-1]),
                consistent=consistent, lengths={c: lengths[c] for c in order if c in lengths},
                humans=humans.get(task_id, []),
            )
        )  # fmt: skip
    return items


def judge_accounts(project) -> list[tuple[int, str]]:
    """(user id, user name) of the project's AI judges, by who gave verdicts or is in the group."""
    from django.contrib.auth import get_user_model

    from annotator.judging import AI_GROUP

    users = (
        get_user_model()
        .objects.filter(groups__name=AI_GROUP, memberships__project=project)
        .order_by("id")
    )
    return list(users.values_list("id", "username"))
