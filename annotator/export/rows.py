"""Row generators, one per schema: annotations in, tuples in `COLUMNS` order out, batch by
batch.

Order is stable: pairwise and ranking tasks by task id (pairs within a task in a fixed
order), then Likert-derived rows by prompt id; `ranking` by task id; `likert` by task then
labeler; `raw` by annotation id.
"""

from collections.abc import Iterator
from operator import itemgetter

from annotator.export import source
from annotator.export.aggregate import Stats, likert_labels, ranking_orders
from annotator.export.pairs import (
    RANKED_FIELDS,
    adjudicated,
    likert_groups,
    pair_rows,
    ranked_votes,
    rules_for,
)
from annotator.export.params import ExportParams
from annotator.models import Kind, LabelerKind, Project

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
        ("round", "int"), ("split", "str"), ("labeler_kind", "str"),
    ],
}  # fmt: skip
COLUMNS["preference-conversational"] = [
    (name, "messages" if name in ("prompt", "chosen", "rejected") else kind)
    for name, kind in COLUMNS["preference"]
]
# Demonstrations and edit tasks' revisions (docs/demonstrations.md), in TRL's SFT forms:
# prompt-completion text, or one conversation of messages ending in the written reply.
_SFT_TAIL = [
    ("kind", "str"), ("task_id", "int"), ("prompt_id", "int"), ("annotation_id", "int"),
    ("labeler", "int"), ("round", "int"), ("split", "str"),
]  # fmt: skip
COLUMNS["sft"] = [("prompt", "str"), ("completion", "str"), *_SFT_TAIL]
COLUMNS["sft-conversational"] = [("messages", "messages"), *_SFT_TAIL]
# Edit tasks' critiques (Constitutional AI's critique and revise): the response as it was, the
# labeler's critique and the principle it names (null when not given), and the revision.
COLUMNS["critiques"] = [
    ("prompt", "str"), ("response", "str"), ("critique", "str"), ("principle", "str"),
    ("revision", "str"), ("task_id", "int"), ("prompt_id", "int"), ("response_id", "int"),
    ("revision_id", "int"), ("annotation_id", "int"), ("labeler", "int"), ("round", "int"),
    ("split", "str"),
]  # fmt: skip
# Training snapshots only (trainer/snapshots.py), not offered by the API: a chat prompt stays
# its list of messages and a plain prompt stays text, so the training code renders the prompt
# exactly as the policy will see it when it generates (the chat template for a chat). The
# standard "preference" schema flattens a chat into "user: ...\n\nassistant: " text instead,
# which is right for a text dataset but is not what the policy is prompted with. One column
# holding both strings and lists suits JSON lines, not typed formats, hence internal.
SNAPSHOT_SCHEMA = "preference-native"
COLUMNS[SNAPSHOT_SCHEMA] = [
    (name, "json" if name == "prompt" else kind) for name, kind in COLUMNS["preference"]
]
# The same for an SFT job on demonstrations: `sft` with a chat prompt kept as its messages.
SFT_SNAPSHOT_SCHEMA = "sft-native"
COLUMNS[SFT_SNAPSHOT_SCHEMA] = [("prompt", "json"), ("completion", "str"), *_SFT_TAIL]


# The columns that name this database's rows, and a group made of such ids: `ids=false`
# leaves them out, so a file depends on the labels alone and survives a move to another
# project (an imported preference file exports the same bytes, docs/import.md).
ID_COLUMNS = frozenset({
    "id", "task_id", "prompt_id", "chosen_id", "rejected_id", "completion_id", "ranking_ids",
    "annotation_id", "labeler", "labelers", "group", "response_id", "revision_id",
})  # fmt: skip


def _all_columns(params: ExportParams) -> list[tuple[str, str]]:
    """The schema's columns, and `weight` last when per-source weights were asked for."""
    columns = COLUMNS[params.schema]
    return [*columns, ("weight", "float")] if params.source_weights else columns


def columns_for(params: ExportParams) -> list[tuple[str, str]]:
    """The export's columns: the schema's, less the id columns with `ids=false`."""
    columns = _all_columns(params)
    if params.ids:
        return columns
    return [column for column in columns if column[0] not in ID_COLUMNS]


def rows_for_columns(rows: Iterator[tuple], params: ExportParams) -> Iterator[tuple]:
    """Rows cut to `columns_for(params)`."""
    if params.ids:
        return rows
    keep = [i for i, (name, _) in enumerate(_all_columns(params)) if name not in ID_COLUMNS]
    pick = itemgetter(*keep)
    return (pick(row) for row in rows)


def rows(*, project: Project, params: ExportParams, stats: Stats) -> Iterator[tuple]:
    """Every row of the export as a tuple in COLUMNS order; `stats` counts them and what was
    dropped."""
    builder = {
        "preference": _preference,
        "preference-conversational": _preference,
        SNAPSHOT_SCHEMA: _preference,
        "ranking": _ranking,
        "likert": _likert,
        "unpaired": _unpaired,
        "raw": _raw,
        "sft": _sft,
        "sft-conversational": _sft,
        SFT_SNAPSHOT_SCHEMA: _sft,
        "critiques": _critiques,
    }[params.schema]
    for row in builder(project, params, stats):
        stats.rows += 1
        yield row


# --- Prompts --------------------------------------------------------------------------------


def prompt_text(text: str, messages: list | None) -> str:
    """A chat prompt as plain text for the standard (string) formats."""
    if messages is None:
        return text
    turns = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)
    return f"{turns}\n\nassistant: "


def prompt_native(text: str, messages: list | None) -> str | list[dict]:
    """A chat prompt as its messages, a plain prompt as its text (training snapshots)."""
    if messages is None:
        return text
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def prompt_messages(text: str, messages: list | None) -> list[dict]:
    """A plain prompt as one user turn for the conversational format."""
    if messages is None:
        return [{"role": "user", "content": text}]
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


# --- Pairs: preference, preference-conversational, unpaired ---------------------------------


def labeler_weights(project: Project, params: ExportParams) -> dict[int, float]:
    """{labeler id: the weight of their source} for `source_weight` (one query); a source not
    named weighs 1, and so does a labeler missing here."""
    weights = dict(params.source_weights)
    kinds = (
        source.annotations(project=project, params=params)
        .order_by()
        .values_list("labeler_id", "labeler_kind")
        .distinct()
    )
    return {labeler: weights.get(kind, 1.0) for labeler, kind in kinds}


def _preference(project, params, stats) -> Iterator[tuple]:
    conversational = params.schema == "preference-conversational"
    native = params.schema == SNAPSHOT_SCHEMA
    weights = labeler_weights(project, params) if params.source_weights else None
    for row in pair_rows(project=project, params=params, stats=stats):
        pair = row.pair
        if conversational:
            prompt = prompt_messages(row.prompt_text, row.messages)
            chosen, rejected = _assistant(row.chosen), _assistant(row.rejected)
        elif native:
            prompt = prompt_native(row.prompt_text, row.messages)
            chosen, rejected = row.chosen, row.rejected
        else:
            prompt = prompt_text(row.prompt_text, row.messages)
            chosen, rejected = row.chosen, row.rejected
        out = (
            prompt, chosen, rejected, pair.margin, pair.votes, pair.agreement, row.task_id,
            row.prompt_id, pair.chosen_id, pair.rejected_id, pair.labelers, row.round,
            row.split, pair.group, row.source,
        )  # fmt: skip
        if weights is not None:
            backers = [weights.get(labeler, 1.0) for labeler in pair.labelers] or [1.0]
            out += (round(sum(backers) / len(backers), 6),)
        yield out


def _unpaired(project, params, stats) -> Iterator[tuple]:
    """TRL's unpaired form: a pair gives its chosen (True) and its rejected (False);
    a Likert-rated completion is True above the threshold and False below."""
    for row in pair_rows(project=project, params=params, stats=stats, likert=False):
        pair, prompt = row.pair, prompt_text(row.prompt_text, row.messages)
        for cid, text, label in ((pair.chosen_id, row.chosen, True),
                                 (pair.rejected_id, row.rejected, False)):  # fmt: skip
            yield (
                prompt, text, label, cid, row.prompt_id, row.task_id, pair.votes,
                pair.agreement, pair.labelers, row.round, row.split, row.source,
            )  # fmt: skip
    rules = rules_for(project, params)
    threshold = params.threshold_for(project)
    for batch in likert_groups(project, params):
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
            yield (
                prompt_text(text, messages), texts[lab.completion_id], lab.label,
                lab.completion_id, prompt_id, task_id, lab.votes, lab.agreement, lab.labelers,
                round_, split, Kind.LIKERT,
            )  # fmt: skip


# --- Full rankings, Likert answers, raw annotations -----------------------------------------


def _ranking(project, params, stats) -> Iterator[tuple]:
    rules = rules_for(project, params)
    qs = source.annotations(project=project, params=params).filter(kind=Kind.RANKING)
    qs = qs.order_by("task_id", "labeler_id")
    for batch in source.batches(source.tuples(qs, *RANKED_FIELDS)):
        orders = []
        for task_id, group in batch:
            _, prompt_id, round_ = group[0][:3]
            for order in ranking_orders(ranked_votes(group), rules, stats):
                orders.append((order, task_id, prompt_id, round_))
        prompts = source.prompts(project=project, ids={o[2] for o in orders})
        texts = source.completions(project=project, ids={c for o in orders for c in o[0].ranking})
        for order, task_id, prompt_id, round_ in orders:
            text, messages, split = prompts[prompt_id]
            yield (
                prompt_text(text, messages), [texts[cid] for cid in order.ranking],
                order.ranking, order.votes, order.agreement, task_id, prompt_id, order.labelers,
                round_, split,
            )  # fmt: skip


_LIKERT_ROW_FIELDS = (
    "task_id", "labeler_id", "task__prompt_id", "task__round",
    "task__task_completions__completion_id", "id", "score", "scores", "flags", "notes",
    "created_at", "task__adjudication__answer",
)  # fmt: skip


def _likert(project, params, stats) -> Iterator[tuple]:
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
            adj,
        ) in answers:
            text, messages, split = prompts[prompt_id]
            if (won := adjudicated(adj, "score")) is not None:
                # The reviewer's adjudicated score wins, in each aspect's row too.
                score, scores = won, {aspect: won for aspect in scores or {}}
            for aspect, value in _aspect_scores(project, params, score, scores):
                yield (
                    prompt_text(text, messages), texts[cid], value, aspect, flags, notes, cid,
                    task_id, prompt_id, labeler, aid, round_, split, at.isoformat(),
                )  # fmt: skip


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
    "time_spent_ms", "created_at", "task__round", "task__prompt__split", "labeler_kind",
)  # fmt: skip


def _raw(project, params, stats) -> Iterator[tuple]:
    qs = source.annotations(project=project, params=params).order_by("id")
    for row in source.stream(qs, *_RAW_FIELDS):
        # scores {} (no aspects) is written as null; times as ISO 8601 text; is_simulated
        # from the labeler's kind.
        simulated = row[19] == LabelerKind.SIMULATED
        yield (*row[:10], row[10] or None, *row[11:16], simulated, row[16].isoformat(), *row[17:])


# --- Written responses: sft ---------------------------------------------------------------

_SFT_FIELDS = ("id", "kind", "task_id", "task__prompt_id", "labeler_id", "text", "task__round")


def _sft(project, params, stats) -> Iterator[tuple]:
    """One row per written answer (a demonstration, or an edit's revision), by annotation id."""
    kinds = [Kind.DEMONSTRATION, Kind.EDIT] if params.revisions else [Kind.DEMONSTRATION]
    qs = source.annotations(project=project, params=params).filter(kind__in=kinds)
    conversational = params.schema == "sft-conversational"
    for batch in source.batches(source.stream(qs.order_by("id"), *_SFT_FIELDS)):
        answers = [row for _, group in batch for row in group]
        prompts = source.prompts(project=project, ids={row[3] for row in answers})
        for aid, kind, task_id, prompt_id, labeler, text, round_ in answers:
            prompt, messages, split = prompts[prompt_id]
            tail = (kind, task_id, prompt_id, aid, labeler, round_, split)
            if conversational:
                yield (prompt_messages(prompt, messages) + _assistant(text), *tail)
            elif params.schema == SFT_SNAPSHOT_SCHEMA:
                yield (prompt_native(prompt, messages), text, *tail)
            else:
                yield (prompt_text(prompt, messages), text, *tail)


# --- Critiques of edit tasks ---------------------------------------------------------------

_CRITIQUE_FIELDS = (
    "id", "task_id", "task__prompt_id", "labeler_id", "text", "critique", "principle",
    "chosen_id", "task__task_completions__completion_id", "task__round",
)  # fmt: skip


def _critiques(project, params, stats) -> Iterator[tuple]:
    """One row per edit answer, by annotation id: the response, its critique and principle
    (null when the labeler gave none) and the revision. `revision_id` is the revision stored
    as a response, null when the labeler left the text as it was (no preference then)."""
    qs = source.annotations(project=project, params=params).filter(kind=Kind.EDIT)
    for batch in source.batches(source.stream(qs.order_by("id"), *_CRITIQUE_FIELDS)):
        answers = [row for _, group in batch for row in group]
        prompts = source.prompts(project=project, ids={row[2] for row in answers})
        texts = source.completions(project=project, ids={row[8] for row in answers})
        for aid, task_id, prompt_id, labeler, text, critique, principle, revision_id, \
                response_id, round_ in answers:  # fmt: skip
            prompt, messages, split = prompts[prompt_id]
            yield (
                prompt_text(prompt, messages), texts[response_id], critique or None,
                principle or None, text, task_id, prompt_id, response_id, revision_id, aid,
                labeler, round_, split,
            )  # fmt: skip
