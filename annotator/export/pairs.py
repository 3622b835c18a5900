"""Preference pairs with their texts, for the preference and unpaired schemas.

Stable order: pairwise tasks by id, then ranking tasks by id (pairs in a fixed order within
each), then Likert-derived pairs by prompt id.

Pairwise tasks are the bulk of most exports, so their stream carries its texts (prompt and
both completions joined in the query) and needs no lookups; rankings and Likert ratings
are read in batches whose texts are looked up by id.
"""

from collections.abc import Iterator
from contextlib import closing
from fractions import Fraction
from itertools import groupby
from operator import itemgetter
from typing import NamedTuple

from annotator.export import source
from annotator.export.aggregate import (
    Pair,
    Rating,
    Rules,
    Stats,
    Vote,
    kept_pairs,
    likert_pairs,
    pairwise_pairs,
    ranking_pairs,
)
from annotator.export.params import ExportParams
from annotator.models import Kind, Project


class PairRow(NamedTuple):
    pair: Pair
    task_id: int | None  # None for Likert pairs: their completions sit in two tasks
    prompt_id: int
    round: int | None
    source: str  # the kind of task it came from
    prompt_text: str
    messages: list | None
    split: str
    chosen: str
    rejected: str


def rules_for(project: Project, params: ExportParams) -> Rules:
    model = None
    if params.aggregate == "reliability":
        model = params.model
        if model is None:  # rows() called without export_start
            from annotator.export.quality import fit_for

            model = fit_for(project, params)
    return Rules(
        # Rankings and Likert ratings under `reliability` are aggregated as under majority.
        majority=params.aggregate in ("majority", "reliability"),
        model=model,
        posterior_margin=params.posterior_margin,
        min_votes=params.min_votes,
        min_agreement=params.min_agreement,
        harmful=source.harmful_completions(project=project, params=params),
        allow_harmful_chosen=params.allow_harmful_chosen,
    )


def pair_rows(
    *, project: Project, params: ExportParams, stats: Stats, likert: bool = True
) -> Iterator[PairRow]:
    rules = rules_for(project, params)
    yield from _pairwise(project, params, rules, stats)
    yield from _with_texts(project, _ranked(project, params, rules, stats))
    if likert:
        yield from _with_texts(project, _likert(project, params, rules, stats))
    if params.revisions:
        yield from _with_texts(project, _revisions(project, params))


_PAIRWISE_FIELDS = (
    "task_id", "task__prompt_id", "task__round", "id", "labeler_id", "verdict", "chosen_id",
    "rejected_id", "strength", "task__prompt__text", "task__prompt__messages",
    "task__prompt__split", "chosen__text", "rejected__text", "chosen__prompt_id",
    "rejected__prompt_id", "task__adjudication__verdict", "task__adjudication__chosen_id",
    "task__adjudication__rejected_id", "task__adjudication__chosen__text",
    "task__adjudication__rejected__text", "task__meta__file",
)  # fmt: skip


def _pairwise(project, params, rules, stats) -> Iterator[PairRow]:
    qs = source.annotations(project=project, params=params).filter(kind=Kind.PAIRWISE)
    rows = source.streamed(qs.order_by("task_id", "labeler_id"), *_PAIRWISE_FIELDS)
    with closing(rows):  # frees the connection at once if the download stops early
        yield from _pairwise_rows(rows, rules, stats)


def _pairwise_rows(rows, rules, stats) -> Iterator[PairRow]:
    for task_id, group in groupby(rows, key=itemgetter(0)):
        first = next(group)
        group = [first, *group]
        prompt_id = first[1]
        # Answers name completions of their own task's prompt; anything else is ignored.
        votes = [
            Vote(*row[3:9], None)
            for row in group
            if row[6] is None or row[14] == row[15] == prompt_id
        ]
        if first[16]:
            # A reviewer's adjudicated answer wins: it stands for every labeler's answer.
            adjudicated = {"verdict": first[16], "chosen_id": first[17], "rejected_id": first[18]}
            votes = [v._replace(strength=None, **adjudicated) for v in votes]
        kept = source.json_value(first[21])
        if kept and len(votes) == 1 and rules.model is None:
            # An imported preference writes back what its file's row said (docs/import.md).
            pairs = kept_pairs(task_id, votes[0], kept, rules, stats)
        else:
            kept = None
            pairs = pairwise_pairs(task_id, votes, rules, stats) if votes else []
        if not pairs:
            continue
        texts = {}
        for row in group:
            texts[row[6]], texts[row[7]] = row[12], row[13]
        if first[16]:
            texts[first[17]], texts[first[18]] = first[19], first[20]
        messages = source.json_value(first[10])
        origin = kept.get("source", Kind.PAIRWISE) if kept else Kind.PAIRWISE
        for pair in pairs:
            yield PairRow(
                pair, task_id, prompt_id, first[2], origin, first[9], messages, first[11],
                texts[pair.chosen_id], texts[pair.rejected_id],
            )  # fmt: skip


RANKED_FIELDS = (
    "task_id", "task__prompt_id", "task__round", "id", "labeler_id", "ranking",
    "task__adjudication__answer",
)  # fmt: skip


def _ranked(project, params, rules, stats) -> Iterator[list[tuple]]:
    """Batches of (pair, task id, prompt id, round, source) from ranking tasks."""
    qs = source.annotations(project=project, params=params).filter(kind=Kind.RANKING)
    rows = source.tuples(qs.order_by("task_id", "labeler_id"), *RANKED_FIELDS)
    for batch in source.batches(rows):
        out = []
        for task_id, group in batch:
            _, prompt_id, round_ = group[0][:3]
            for pair in ranking_pairs(task_id, ranked_votes(group), rules, stats):
                out.append((pair, task_id, prompt_id, round_, Kind.RANKING))
        yield out


def adjudicated(value, key: str):
    """The `key` of a task's adjudicated answer (annotator/review.py: Likert {"score": n},
    ranking {"ranking": ids}), or None when the task has none."""
    answer = source.json_value(value)
    return answer.get(key) if isinstance(answer, dict) else None


def ranked_votes(group: list[tuple]) -> list[Vote]:
    """Votes from rows of (..., annotation id, labeler id, ranking as JSON, the task's
    adjudicated answer) at 3 to 6. A reviewer's adjudicated ranking wins: it stands for
    every labeler's ranking of the task, as an adjudicated pairwise answer does."""
    ranking = adjudicated(group[0][6], "ranking")
    return [
        Vote(r[3], r[4], "", None, None, None, ranking or source.json_value(r[5])) for r in group
    ]


_LIKERT_FIELDS = (
    "task__prompt_id", "task_id", "task__round", "task__task_completions__completion_id", "id",
    "labeler_id", "score", "scores", "task__adjudication__answer",
)  # fmt: skip


def likert_groups(project, params) -> Iterator[list[tuple[int, list[Rating], dict]]]:
    """Batches of (prompt id, ratings, completion id -> (task id, round)) from Likert tasks."""
    qs = source.annotations(project=project, params=params).filter(kind=Kind.LIKERT)
    qs = qs.order_by("task__prompt_id", "task_id", "labeler_id")
    for batch in source.batches(source.tuples(qs, *_LIKERT_FIELDS)):
        out = []
        for prompt_id, group in batch:
            ratings, tasks = [], {}
            for _, task_id, round_, cid, aid, labeler, score, scores, adj in group:
                # A reviewer's adjudicated score wins over each rating of the task (for
                # every aspect: it is one score).
                if (won := adjudicated(adj, "score")) is not None:
                    score, scores = won, None
                value = _rating_value(score, source.json_value(scores), params.aspect)
                if value is not None:
                    ratings.append(Rating(aid, labeler, cid, value))
                    tasks[cid] = (task_id, round_)
            out.append((prompt_id, ratings, tasks))
        yield out


def _rating_value(score, scores, aspect) -> Fraction | None:
    if scores:
        if aspect is not None:
            return Fraction(scores[aspect]) if aspect in scores else None
        return Fraction(sum(scores.values()), len(scores))
    return Fraction(score) if score is not None else None


def _likert(project, params, rules, stats) -> Iterator[list[tuple]]:
    for batch in likert_groups(project, params):
        out = []
        for prompt_id, ratings, tasks in batch:
            for pair in likert_pairs(prompt_id, ratings, rules, stats):
                round_c, round_r = tasks[pair.chosen_id][1], tasks[pair.rejected_id][1]
                round_ = round_c if round_c == round_r else None
                out.append((pair, None, prompt_id, round_, Kind.LIKERT))
        yield out


_REVISION_FIELDS = ("task_id", "task__prompt_id", "task__round", "id", "labeler_id",
                    "chosen_id", "rejected_id")  # fmt: skip


def _revisions(project, params) -> Iterator[list[tuple]]:
    """Edit tasks' revisions, each preferred over its original (docs/demonstrations.md): one
    pair per answer, never aggregated (every labeler wrote their own revision)."""
    qs = source.annotations(project=project, params=params).filter(
        kind=Kind.EDIT, chosen_id__isnull=False
    )
    rows = source.tuples(qs.order_by("task_id", "labeler_id"), *_REVISION_FIELDS)
    for batch in source.batches(rows):
        yield [
            (Pair(chosen, rejected, 0.0, 1, 1.0, [labeler], f"a{aid}"), task_id, prompt_id,
             round_, Kind.EDIT)
            for _, group in batch
            for task_id, prompt_id, round_, aid, labeler, chosen, rejected in group
        ]  # fmt: skip


def _with_texts(project, batches) -> Iterator[PairRow]:
    for batch in batches:
        prompts = source.prompts(project=project, ids={p[2] for p in batch})
        cids = {c for p in batch for c in (p[0].chosen_id, p[0].rejected_id)}
        texts = source.completions(project=project, ids=cids)
        for pair, task_id, prompt_id, round_, kind in batch:
            text, messages, split = prompts[prompt_id]
            yield PairRow(
                pair, task_id, prompt_id, round_, kind, text, messages, split,
                texts[pair.chosen_id], texts[pair.rejected_id],
            )  # fmt: skip
