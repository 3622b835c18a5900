"""How far an AI judge can be trusted: its verdicts against the people's on the same tasks
(docs/ai-judges.md).

`calibrate` is a pure function over plain items (no database), so its figures can be checked
by hand; `judge_calibration` reads a project's verdicts and human answers into such items.
Labels are compared by completion id, as everywhere in quality/: on a pairwise task "x" means
the completion with the lower id won, "y" the other one, then "tie" and "both_bad".

Figures:
- agreement: share of tasks where the judge's label equals the people's majority label (tasks
  whose people tie between two labels are left out); Cohen's kappa (scikit-learn) on the same;
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
"""

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


def by_round(items: list[Item]) -> dict:
    rounds: dict = {}
    for item in items:
        rounds.setdefault(item.round, []).append(item)
    order = sorted(rounds, key=lambda r: (r is None, r or 0))
    return {r: calibrate(rounds[r]) for r in order}


# --- Reads ------------------------------------------------------------------------------------

# Who counts as "people": persons, and the simulated labelers that stand in for them in demos
# and benchmarks. Never other judges.
PEOPLE = ("human", "simulated")


def judge_items(*, project, labeler_id: int, round: int | None = None) -> list[Item]:
    """The judge's verdicts on the project's tasks, each with the people's labels."""
    from annotator.models import Annotation, JudgeVerdict, TaskCompletion

    verdicts = JudgeVerdict.objects.filter(task__project=project, labeler_id=labeler_id)
    if round is not None:
        verdicts = verdicts.filter(task__round=round)
    rows = list(
        verdicts.values_list(
            "task_id", "task__round", "first", "second", "shown_order", "consistent"
        )
    )
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
    """Calibration of one judge: over all its verdicts, and per loop round."""
    items = judge_items(project=project, labeler_id=labeler_id, round=round)
    return {"all": calibrate(items), "rounds": by_round(items)}


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
