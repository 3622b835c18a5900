"""Preference rows -> ranking groups (one group is one batch element of reward training).

A row is a comparison ``{"prompt", "chosen", "rejected", "margin"?, "group"?, "weight"?}`` or a
ranking ``{"prompt", "ranking": [best, ...], "margin"?, "weight"?}``; ``weight`` (default 1, the
export's per-source weight) multiplies the row's loss. Comparisons that carry the same ``group``
(the export writes ``t<task id>`` on every pair of one ranked task) and the same prompt become
one group again: each distinct completion is read once and all their pairs are averaged
together, as InstructGPT trains the K(K-1)/2 pairs of one ranking as one batch element.
Comparisons without a ``group`` are a group each. A row that is already a group (a ranking,
or ``{"prompt", "completions", "pairs"}`` as a reward job's snapshot writes a ranking some of
whose pairs were dropped) stays one as it is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Group:
    """One batch element: a prompt, its completions, and (better, worse, margin) index pairs."""

    prompt: str | list[dict]
    completions: list[str]
    pairs: list[tuple[int, int, float]]
    best: int = 0
    weight: float = 1.0  # multiplies the group's loss (the export's per-source `weight`)


def _check_text(value, what: str, index: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"Row {index}: '{what}' must be a string, got {type(value).__name__}.")
    return value


def _weight(row: dict, index: int) -> float:
    weight = row.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
        raise ValueError(f"Row {index}: 'weight' must be a number above 0, got {weight!r}.")
    return float(weight)


def row_to_group(row: dict, index: int = 0) -> Group:
    """``{"prompt", "chosen", "rejected", "margin"?}``, ``{"prompt", "ranking": [best, ...]}``,
    or ``{"prompt", "completions", "pairs": [[better, worse, margin], ...]}``; each may carry a
    ``weight``."""
    group = _row_to_group(row, index)
    group.weight = _weight(row, index)
    return group


def _row_to_group(row: dict, index: int) -> Group:
    if "prompt" not in row:
        raise ValueError(f"Row {index} has no 'prompt'.")
    if "ranking" in row:
        ranking = [_check_text(text, "ranking", index) for text in row["ranking"]]
        if len(ranking) < 2:
            raise ValueError(f"Row {index}: a ranking needs at least two completions.")
        margin = float(row.get("margin") or 0.0)
        pairs = [(i, j, margin) for i in range(len(ranking)) for j in range(i + 1, len(ranking))]
        return Group(row["prompt"], ranking, pairs)
    if "chosen" in row and "rejected" in row:
        chosen = _check_text(row["chosen"], "chosen", index)
        rejected = _check_text(row["rejected"], "rejected", index)
        return Group(row["prompt"], [chosen, rejected], [(0, 1, float(row.get("margin") or 0.0))])
    if "completions" in row and "pairs" in row:  # a ranking some of whose pairs were dropped
        completions = [_check_text(text, "completions", index) for text in row["completions"]]
        pairs = [(int(i), int(j), float(m)) for i, j, m in row["pairs"]]
        if not pairs or any(not 0 <= k < len(completions) for i, j, _ in pairs for k in (i, j)):
            raise ValueError(f"Row {index}: 'pairs' must index its 'completions'.")
        wins = [sum(i == k for i, _, _ in pairs) for k in range(len(completions))]
        return Group(row["prompt"], completions, pairs, best=wins.index(max(wins)))
    raise ValueError(
        f"Row {index} needs 'chosen' and 'rejected', 'ranking', or 'completions' and 'pairs'."
    )


def _merge(groups: list[Group]) -> Group:
    """Comparisons of one ranking -> one group with each completion once."""
    texts: dict[str, int] = {}
    pairs = []
    for group in groups:
        (better, worse, margin), completions = group.pairs[0], group.completions
        i = texts.setdefault(completions[better], len(texts))
        j = texts.setdefault(completions[worse], len(texts))
        pairs.append((i, j, margin))
    wins = [0] * len(texts)
    for i, j, _ in pairs:
        wins[i] += 1
        wins[j] -= 1
    best = max(range(len(texts)), key=lambda k: (wins[k], -k))
    weight = sum(group.weight for group in groups) / len(groups)
    return Group(groups[0].prompt, list(texts), pairs, best, weight)


def rows_to_groups(rows: list[dict]) -> list[Group]:
    from trainer.algorithms.common import prompt_key

    out: list = []
    grouped: dict[tuple[str, str], list[Group]] = {}
    for index, row in enumerate(rows):
        group = row_to_group(row, index)
        name = row.get("group")
        if name is None or "ranking" in row or "pairs" in row:  # already one group
            out.append(group)
            continue
        key = (str(name), prompt_key(row))
        if key not in grouped:
            grouped[key] = []
            out.append(grouped[key])
        grouped[key].append(group)
    return [_merge(item) if isinstance(item, list) else item for item in out]
