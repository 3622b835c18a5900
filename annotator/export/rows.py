"""Row generators, one per schema: annotations in, plain dicts out, batch by batch.

Order is stable: pairwise and ranking tasks by task id (pairs within a task in a fixed
order), then Likert-derived rows by prompt id; `ranking` by task id; `likert` by task then
labeler; `raw` by annotation id.
"""

from collections.abc import Iterator
from fractions import Fraction

from annotator.export import source
from annotator.export.aggregate import (
    Rating,
    Rules,
    Stats,
    Vote,
    likert_labels,
    likert_pairs,
    pairwise_pairs,
    ranking_orders,
    ranking_pairs,
)
from annotator.export.params import ExportParams
from annotator.models import Kind, Project

COLUMNS = {
    "preference": [
        ("prompt", "str"), ("chosen", "str"), ("rejected", "str"), ("margin", "float"),
        ("votes", "int"), ("agreement", "float"), ("task_id", "int"), ("prompt_id", "int"),
        ("chosen_id", "int"), ("rejected_id", "int"), ("labelers", "int[]"), ("round", "int"),
        ("split", "str"), ("group", "str"), ("source", "str"),
    ],
    "ranking": [
        ("prompt", "str"), ("ranking", "str[]"), ("ranking_ids", "int[]"), ("votes", "int"),
        ("agreement", "float"), ("task_id", "int"), ("prompt_id", "int"),
        ("labelers", "int[]"), ("round", "int"), ("split", "str"),
    ],
    "likert": [
        ("prompt", "str"), ("completion", "str"), ("score", "int"), ("aspect", "str"),
        ("flags", "str[]"), ("notes", "str"), ("completion_id", "int"), ("task_id", "int"),
        ("prompt_id", "int"), ("labeler", "int"), ("annotation_id", "int"), ("round", "int"),
        ("split", "str"), ("created_at", "str"),
    ],
    "unpaired": [
        ("prompt", "str"), ("completion", "str"), ("label", "bool"), ("completion_id", "int"),
        ("prompt_id", "int"), ("task_id", "int"), ("votes", "int"), ("agreement", "float"),
        ("labelers", "int[]"), ("round", "int"), ("split", "str"), ("source", "str"),
    ],
    "raw": [
        ("id", "int"), ("task_id", "int"), ("prompt_id", "int"), ("labeler", "int"),
        ("kind", "str"), ("verdict", "str"), ("chosen_id", "int"), ("rejected_id", "int"),
        ("strength", "int"), ("score", "int"), ("scores", "json"), ("flags", "str[]"),
        ("ranking", "int[]"), ("notes", "str"), ("shown_order", "int[]"),
        ("time_spent_ms", "int"), ("is_simulated", "bool"), ("created_at", "str"),
        ("round", "int"), ("split", "str"),
    ],
}  # fmt: skip
COLUMNS["preference-conversational"] = [
    (name, "messages" if name in ("prompt", "chosen", "rejected") else kind)
    for name, kind in COLUMNS["preference"]
]


def rows(*, project: Project, params: ExportParams, stats: Stats) -> Iterator[dict]:
    """Every row of the export, in order; `stats` counts them and what was dropped."""
    builder = {
        "preference": _preference,
        "preference-conversational": _preference,
        "ranking": _ranking,
        "likert": _likert,
        "unpaired": _unpaired,
        "raw": _raw,
    }[params.schema]
    for row in builder(project, params, stats):
        stats.rows += 1
        yield row


def _rules(project: Project, params: ExportParams) -> Rules:
    return Rules(
        majority=params.aggregate == "majority",
        min_votes=params.min_votes,
        min_agreement=params.min_agreement,
        harmful=source.harmful_completions(project=project, params=params),
        allow_harmful_chosen=params.allow_harmful_chosen,
    )


# --- Prompts --------------------------------------------------------------------------------


def prompt_text(text: str, messages: list | None) -> str:
    """A chat prompt as plain text for the standard (string) formats."""
    if messages is None:
        return text
    turns = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)
    return f"{turns}\n\nassistant: "


def prompt_messages(text: str, messages: list | None) -> list[dict]:
    """A plain prompt as one user turn for the conversational format."""
    if messages is None:
        return [{"role": "user", "content": text}]
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


# --- Pairs: preference, preference-conversational, unpaired ---------------------------------

_TASK_FIELDS = ("task_id", "task__prompt_id", "task__round", "kind")
_VOTE_FIELDS = ("id", "labeler_id", "verdict", "chosen_id", "rejected_id", "strength", "ranking")
_LIKERT_FIELDS = (
    "task__prompt_id", "task_id", "task__round", "task__task_completions__completion_id", "id",
    "labeler_id", "score", "scores",
)  # fmt: skip


def _task_pairs(project, params, rules, stats) -> Iterator[list[tuple]]:
    """Batches of (pair, task id, prompt id, round, source) from pairwise and ranking tasks."""
    qs = source.annotations(project=project, params=params).filter(
        kind__in=[Kind.PAIRWISE, Kind.RANKING]
    )
    qs = qs.order_by("task_id", "labeler_id")
    for batch in source.batches(source.tuples(qs, *_TASK_FIELDS, *_VOTE_FIELDS)):
        out = []
        for task_id, group in batch:
            _, prompt_id, round_, kind = group[0][:4]
            if kind == Kind.PAIRWISE:
                pairs = pairwise_pairs(
                    task_id, [Vote._make(row[4:]) for row in group], rules, stats
                )
            else:
                pairs = ranking_pairs(task_id, _ranked_votes(group), rules, stats)
            for pair in pairs:
                out.append((pair, task_id, prompt_id, round_, kind))
        yield out


def _ranked_votes(group: list[tuple]) -> list[Vote]:
    return [Vote(*row[4:10], source.json_value(row[10])) for row in group]


def _likert_groups(project, params) -> Iterator[list[tuple[int, list[Rating], dict]]]:
    """Batches of (prompt id, ratings, completion id -> (task id, round)) from Likert tasks."""
    qs = source.annotations(project=project, params=params).filter(kind=Kind.LIKERT)
    qs = qs.order_by("task__prompt_id", "task_id", "labeler_id")
    for batch in source.batches(source.tuples(qs, *_LIKERT_FIELDS)):
        out = []
        for prompt_id, group in batch:
            ratings, tasks = [], {}
            for _, task_id, round_, cid, aid, labeler, score, scores in group:
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


def _likert_pairs(project, params, rules, stats) -> Iterator[list[tuple]]:
    for batch in _likert_groups(project, params):
        out = []
        for prompt_id, ratings, tasks in batch:
            for pair in likert_pairs(prompt_id, ratings, rules, stats):
                round_c, round_r = tasks[pair.chosen_id][1], tasks[pair.rejected_id][1]
                round_ = round_c if round_c == round_r else None
                out.append((pair, None, prompt_id, round_, Kind.LIKERT))
        yield out


def _pair_batches(project, params, stats, gens) -> Iterator[tuple[list[tuple], dict, dict]]:
    """Batches of pairs with the texts they need: (pairs, prompts by id, completions by id)."""
    rules = _rules(project, params)
    for gen in gens:
        for batch in gen(project, params, rules, stats):
            if not batch:
                continue
            prompts = source.prompts(project=project, ids={p[2] for p in batch})
            cids = {c for p in batch for c in (p[0].chosen_id, p[0].rejected_id)}
            yield batch, prompts, source.completions(project=project, ids=cids)


def _preference(project, params, stats) -> Iterator[dict]:
    conversational = params.schema == "preference-conversational"
    gens = (_task_pairs, _likert_pairs)
    for batch, prompts, texts in _pair_batches(project, params, stats, gens):
        for pair, task_id, prompt_id, round_, kind in batch:
            text, messages, split = prompts[prompt_id]
            chosen, rejected = texts[pair.chosen_id], texts[pair.rejected_id]
            if conversational:
                prompt = prompt_messages(text, messages)
                chosen, rejected = _assistant(chosen), _assistant(rejected)
            else:
                prompt = prompt_text(text, messages)
            yield {
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "margin": pair.margin,
                "votes": pair.votes,
                "agreement": pair.agreement,
                "task_id": task_id,
                "prompt_id": prompt_id,
                "chosen_id": pair.chosen_id,
                "rejected_id": pair.rejected_id,
                "labelers": pair.labelers,
                "round": round_,
                "split": split,
                "group": pair.group,
                "source": kind,
            }


def _unpaired(project, params, stats) -> Iterator[dict]:
    """TRL's unpaired form: a pair gives its chosen (True) and its rejected (False);
    a Likert-rated completion is True above the threshold and False below."""
    for batch, prompts, texts in _pair_batches(project, params, stats, (_task_pairs,)):
        for pair, task_id, prompt_id, round_, kind in batch:
            text, messages, split = prompts[prompt_id]
            for cid, label in ((pair.chosen_id, True), (pair.rejected_id, False)):
                yield _unpaired_row(
                    prompt_text(text, messages), texts[cid], label, cid, prompt_id, task_id,
                    pair.votes, pair.agreement, pair.labelers, round_, split, kind,
                )  # fmt: skip
    rules = _rules(project, params)
    threshold = params.threshold_for(project)
    for batch in _likert_groups(project, params):
        labels = [
            (prompt_id, tasks, label)
            for prompt_id, ratings, tasks in batch
            for label in likert_labels(ratings, threshold, rules, stats)
        ]
        prompts = source.prompts(project=project, ids={p for p, _, _ in labels})
        texts = source.completions(project=project, ids={lab.completion_id for *_, lab in labels})
        for prompt_id, tasks, lab in labels:
            text, messages, split = prompts[prompt_id]
            task_id, round_ = tasks[lab.completion_id]
            yield _unpaired_row(
                prompt_text(text, messages), texts[lab.completion_id], lab.label,
                lab.completion_id, prompt_id, task_id, lab.votes, lab.agreement, lab.labelers,
                round_, split, Kind.LIKERT,
            )  # fmt: skip


def _unpaired_row(*values) -> dict:
    return dict(zip([name for name, _ in COLUMNS["unpaired"]], values, strict=True))


# --- Full rankings, Likert answers, raw annotations -----------------------------------------


def _ranking(project, params, stats) -> Iterator[dict]:
    rules = _rules(project, params)
    qs = source.annotations(project=project, params=params).filter(kind=Kind.RANKING)
    qs = qs.order_by("task_id", "labeler_id")
    for batch in source.batches(source.tuples(qs, *_TASK_FIELDS, *_VOTE_FIELDS)):
        orders = []
        for task_id, group in batch:
            _, prompt_id, round_, _ = group[0][:4]
            for order in ranking_orders(_ranked_votes(group), rules, stats):
                orders.append((order, task_id, prompt_id, round_))
        prompts = source.prompts(project=project, ids={o[2] for o in orders})
        texts = source.completions(project=project, ids={c for o in orders for c in o[0].ranking})
        for order, task_id, prompt_id, round_ in orders:
            text, messages, split = prompts[prompt_id]
            yield {
                "prompt": prompt_text(text, messages),
                "ranking": [texts[cid] for cid in order.ranking],
                "ranking_ids": order.ranking,
                "votes": order.votes,
                "agreement": order.agreement,
                "task_id": task_id,
                "prompt_id": prompt_id,
                "labelers": order.labelers,
                "round": round_,
                "split": split,
            }


_LIKERT_ROW_FIELDS = (
    "task_id", "labeler_id", "task__prompt_id", "task__round",
    "task__task_completions__completion_id", "id", "score", "scores", "flags", "notes",
    "created_at",
)  # fmt: skip


def _likert(project, params, stats) -> Iterator[dict]:
    """One row per (completion, labeler), or per (completion, labeler, aspect) with aspects."""
    qs = source.annotations(project=project, params=params).filter(kind=Kind.LIKERT)
    qs = qs.order_by("task_id", "labeler_id")
    for batch in source.batches(source.stream(qs, *_LIKERT_ROW_FIELDS)):
        answers = [row for _, group in batch for row in group]
        prompts = source.prompts(project=project, ids={row[2] for row in answers})
        texts = source.completions(project=project, ids={row[4] for row in answers})
        for (
            task_id,
            labeler,
            prompt_id,
            round_,
            cid,
            aid,
            score,
            scores,
            flags,
            notes,
            at,
        ) in answers:
            text, messages, split = prompts[prompt_id]
            for aspect, value in _aspect_scores(project, params, score, scores):
                yield {
                    "prompt": prompt_text(text, messages),
                    "completion": texts[cid],
                    "score": value,
                    "aspect": aspect,
                    "flags": flags,
                    "notes": notes,
                    "completion_id": cid,
                    "task_id": task_id,
                    "prompt_id": prompt_id,
                    "labeler": labeler,
                    "annotation_id": aid,
                    "round": round_,
                    "split": split,
                    "created_at": at.isoformat(),
                }


def _aspect_scores(project, params, score, scores) -> list[tuple[str | None, int]]:
    if not scores:
        return [(None, score)]
    if params.aspect is not None:
        return [(params.aspect, scores[params.aspect])] if params.aspect in scores else []
    # jsonb does not keep key order: follow the project's aspect order.
    order = [a for a in project.aspects or [] if a in scores]
    order += sorted(set(scores) - set(order))
    return [(aspect, scores[aspect]) for aspect in order]


_RAW_FIELDS = (
    "id", "task_id", "task__prompt_id", "labeler_id", "kind", "verdict", "chosen_id",
    "rejected_id", "strength", "score", "scores", "flags", "ranking", "notes", "shown_order",
    "time_spent_ms", "is_simulated", "created_at", "task__round", "task__prompt__split",
)  # fmt: skip


def _raw(project, params, stats) -> Iterator[dict]:
    names = [name for name, _ in COLUMNS["raw"]]
    qs = source.annotations(project=project, params=params).order_by("id")
    for row in source.stream(qs, *_RAW_FIELDS):
        out = dict(zip(names, row, strict=True))
        out["scores"] = out["scores"] or None
        out["created_at"] = out["created_at"].isoformat()
        yield out
