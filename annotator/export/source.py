"""The export's reads: filtered annotations streamed in a stable order, and texts by id.

Memory stays flat at any size: annotations come through a server-side cursor on PostgreSQL
(`QuerySet.iterator`) as plain tuples, are cut into batches of whole groups (a task, or a
prompt for Likert), and only each batch's texts are looked up. Every read is scoped to the
one project, so an export can never see another project's rows.
"""

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import groupby

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import QuerySet

from annotator.export.params import ExportParams
from annotator.models import Annotation, Completion, Kind, Project, Prompt
from webapp import sql as raw

CHUNK_ROWS = 5000  # rows fetched from the cursor at a time
STREAM_ROWS = 500  # rows per chunk when streaming
BATCH_ROWS = 5000  # annotation rows per batch of text lookups
LOOKUP_IDS = 5000  # ids per IN list on SQLite (it caps bound parameters)


@contextmanager
def snapshot() -> Iterator[None]:
    """One read-only snapshot for all of an export's queries, so it is self-consistent.

    Inside a transaction PostgreSQL's cursors stream instead of being materialised
    (a cursor outside one is WITH HOLD). Nested in an outer transaction (tests), it is a
    savepoint and the outer transaction's isolation applies.
    """
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql":
            if outermost:
                raw.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            # A streamed plan's cost estimate is its whole size, which makes PostgreSQL JIT-
            # compile it with full optimisation: seconds of CPU before the first row.
            raw.run("SET LOCAL jit = off")
            # Plans that start at once and read in index order (the streamed queries are
            # not cursors, so cursor_tuple_fraction does not apply): no hash tables of
            # whole tables, no sorts spilling to disk, first rows in milliseconds.
            raw.run("SET LOCAL enable_hashjoin = off")
            raw.run("SET LOCAL enable_sort = off")
            raw.run("SET LOCAL max_parallel_workers_per_gather = 0")
        yield


def annotations(*, project: Project, params: ExportParams) -> QuerySet[Annotation]:
    """The project's annotations that pass the export's filters."""
    # Gold tasks are checks on the labelers, not training data (annotator/gold.py).
    qs = Annotation.objects.filter(task__project_id=project.id, task__gold__isnull=True)
    if params.until is not None:
        qs = qs.filter(created_at__lt=params.until)
    if params.since is not None:
        qs = qs.filter(created_at__gte=params.since)
    if params.split:
        qs = qs.filter(task__prompt__split=params.split)
    if params.round is not None:
        qs = qs.filter(task__round=params.round)
    if params.labelers:
        qs = qs.filter(labeler_id__in=params.labelers)
    if params.source is not None:
        if params.source == "ai":
            # No AI judges yet. (Not .none(): the streamed queries compile their SQL.)
            return qs.filter(pk__isnull=True)
        if params.source == "imported":
            qs = qs.filter(is_imported=True)
        else:
            qs = qs.filter(is_simulated=params.source == "simulated", is_imported=False)
    if params.excluded_labelers:
        qs = qs.exclude(labeler_id__in=params.excluded_labelers)
    # Review (annotator/review.py): nothing is deleted, the export decides.
    if params.exclude_rejected:
        qs = qs.exclude(review__decision="rejected")
    if params.reviewed_only:
        qs = qs.filter(review__isnull=False)
    return qs


def _sql(qs: QuerySet, fields: tuple[str, ...]) -> tuple[str, tuple] | None:
    """The statement for these columns, or None when the ORM already knows it matches nothing
    (a filter value outside the column's range, such as round=2**40, raises EmptyResultSet
    while the SQL is written; the ORM's own iterators catch it, raw cursors must too)."""
    try:
        return qs.values_list(*fields).query.sql_with_params()
    except EmptyResultSet:
        return None


def stream(qs: QuerySet, *fields: str) -> Iterator[tuple]:
    """Rows as tuples with the ORM's conversions (datetimes, JSON), through `iterator()`."""
    return qs.values_list(*fields).iterator(chunk_size=CHUNK_ROWS)


def streamed(qs: QuerySet, *fields: str) -> Iterator[tuple]:
    """Like `tuples`, but PostgreSQL sends rows without waiting to be asked (libpq chunked
    mode), so the database works on the next rows while Python encodes these; the socket
    buffers bound how far ahead it gets. The connection is busy until the rows are consumed
    or the iterator is closed: run no other query meanwhile."""
    if connection.vendor != "postgresql":
        yield from tuples(qs, *fields)
        return
    if (statement := _sql(qs, fields)) is None:
        return
    yield from raw.stream(*statement, size=STREAM_ROWS)


def tuples(qs: QuerySet, *fields: str) -> Iterator[tuple]:
    """Rows as the driver returns them, for the hot paths: the ORM writes the SQL, but no
    per-row conversion runs (JSON columns stay text). Server-side cursor on PostgreSQL."""
    if (statement := _sql(qs, fields)) is None:
        return
    yield from raw.chunked(*statement, size=CHUNK_ROWS)


def batches(rows: Iterable[tuple], *, key: int = 0) -> Iterator[list[tuple[object, list]]]:
    """Consecutive rows with the same `row[key]` form a group; groups are never split."""
    batch: list = []
    size = 0
    for group_key, group in groupby(rows, key=lambda row: row[key]):
        group = list(group)
        batch.append((group_key, group))
        size += len(group)
        if size >= BATCH_ROWS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _select_ids(sql: str, project_id: int | None, ids: Iterable[int]) -> list:
    """Run `sql` (ending in WHERE or AND; with a %s for `project_id` unless it is None) for
    a set of ids: one array parameter on PostgreSQL, chunks of IN lists elsewhere."""
    ids = sorted(set(ids))
    if not ids:
        return []
    first = [] if project_id is None else [project_id]
    if connection.vendor == "postgresql":
        # One text parameter: adapting a list of thousands of ints costs more than the query.
        array = "{" + ",".join(map(str, ids)) + "}"
        return raw.all_rows(f"{sql} id = ANY(%s::bigint[])", [*first, array])
    found = []
    for start in range(0, len(ids), LOOKUP_IDS):
        chunk = ids[start : start + LOOKUP_IDS]
        marks = ", ".join(["%s"] * len(chunk))
        found += raw.all_rows(f"{sql} id IN ({marks})", [*first, *chunk])
    return found


_PROMPTS_SQL = (
    f"SELECT id, text, messages, split FROM {Prompt._meta.db_table} "  # noqa: S608
    "WHERE project_id = %s AND"
)
_COMPLETIONS_SQL = f"SELECT id, prompt_id, text FROM {Completion._meta.db_table} WHERE"  # noqa: S608
_PROJECT_PROMPTS_SQL = f"SELECT id FROM {Prompt._meta.db_table} WHERE project_id = %s AND"  # noqa: S608


def prompts(*, project: Project, ids: Iterable[int]) -> dict[int, tuple[str, list | None, str]]:
    """prompt id -> (text, messages, split)."""
    rows = _select_ids(_PROMPTS_SQL, project.id, ids)
    return {pid: (text, json_value(messages), split) for pid, text, messages, split in rows}


def completions(*, project: Project, ids: Iterable[int]) -> dict[int, str]:
    """completion id -> text, for completions of the project's prompts only.

    Two index lookups rather than a join: with thousands of ids PostgreSQL would plan the
    join as a scan of every prompt.
    """
    rows = _select_ids(_COMPLETIONS_SQL, None, ids)
    ours = {pid for (pid,) in _select_ids(_PROJECT_PROMPTS_SQL, project.id, {r[1] for r in rows})}
    return {cid: text for cid, prompt_id, text in rows if prompt_id in ours}


def json_value(value):
    """A JSON column read without the ORM: text (or already decoded, by some drivers)."""
    return json.loads(value) if isinstance(value, str) else value


def harmful_completions(*, project: Project, params: ExportParams) -> frozenset[int]:
    """Completions that any Likert answer (before `until`) flagged with a harm flag.

    Deliberately not narrowed by the other filters: a completion one labeler flagged stays
    flagged in an export of another labeler's answers.
    """
    flags = set(params.harm_flags_for(project))
    if not flags or params.allow_harmful_chosen:
        return frozenset()
    qs = Annotation.objects.filter(task__project_id=project.id, kind=Kind.LIKERT)
    if params.until is not None:
        qs = qs.filter(created_at__lt=params.until)
    rows = stream(qs.exclude(flags=[]), "task__task_completions__completion_id", "flags")
    return frozenset(cid for cid, given in rows if flags.intersection(given))
