"""The project's helpers for hand-written SQL (where it is allowed and why:
docs/architecture.md, "Raw SQL").

Used by the labeling hot path (annotator/selectors.py, annotator/services.py, token auth in
webapp/authentication.py, the loop's per-annotation mark in trainer/outbox.py) and by the
export's streaming reads, the import's statistics refresh and the label-quality arrays
(annotator/quality/arrays.py), so every raw statement in the apps goes through one place.

"Next task" and "submit" run a few hundred times a second under load, and building their
statements through the ORM cost more CPU than the database spent running them
(bench/labeling_load.py). These helpers keep the hand-written statements short and safe: only
the models' own table and column names are formatted into SQL (quoted), values are always
bound, and rows come back as model instances with the same conversions the ORM applies
(JSON, booleans, aware datetimes on SQLite). Column lists and converters are worked out once
per model and database connection, not on every request.
"""

from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model


def one(statement: str, params: Sequence = ()) -> tuple | None:
    """Run a statement on the default database and return its first row (None if none)."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone()


def all_rows(statement: str, params: Sequence = ()) -> list[tuple]:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


def run(statement: str, params: Sequence = ()) -> None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(statement, params)


def stream(statement: str, params: Sequence = (), *, size: int) -> Iterator[tuple]:
    """PostgreSQL only: rows as the server sends them without waiting to be asked (psycopg's
    `Cursor.stream`, libpq chunked mode). The connection is busy until the rows are consumed
    or the iterator is closed: run no other query meanwhile."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        yield from cursor.stream(statement, params, size=size)


def chunked(statement: str, params: Sequence = (), *, size: int) -> Iterator[tuple]:
    """Rows fetched `size` at a time through a server-side cursor on PostgreSQL (the whole
    result is never held in memory), a plain cursor elsewhere."""
    with connections[DEFAULT_DB_ALIAS].chunked_cursor() as cursor:
        cursor.execute(statement, params)
        while rows := cursor.fetchmany(size):
            yield from rows


def binary_rows(statement: str, params: Sequence = ()) -> list[tuple]:
    """PostgreSQL only: a statement's rows with every value in the server's binary format, so
    a bytea comes back as its bytes without the hex text round trip (the label-quality
    arrays read a whole project's answers as a few such values)."""
    import psycopg

    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        # Django's cursor binds on the client, which sends text only; a plain psycopg cursor
        # on the same connection (same transaction) binds on the server and can ask for
        # binary results.
        with psycopg.Cursor(cursor.cursor.connection) as binary:
            binary.execute(statement, params, binary=True)
            return binary.fetchall()


def next_id(model: type[Model]) -> int:
    """Take the next value of a model's id sequence without inserting a row: an id that no
    row of the model will ever get (a swap repeat's answer borrows one, so it reads as any
    answer's id). SQLite: its AUTOINCREMENT counter, which never hands a number out twice."""
    db = connections[DEFAULT_DB_ALIAS]
    name = model._meta.db_table
    if db.vendor == "postgresql":
        return one("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [_quote(name)])[0]
    run("INSERT INTO sqlite_sequence (name, seq) SELECT %s, 0 WHERE NOT EXISTS "
        "(SELECT 1 FROM sqlite_sequence WHERE name = %s)", [name, name])  # fmt: skip
    return one("UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = %s RETURNING seq", [name])[0]


def table(model: type[Model]) -> str:
    return _quote(model._meta.db_table)


def columns(model: type[Model], alias: str, names: Sequence[str] | None = None) -> str:
    """`alias."col", ...` for the given fields (default: all concrete fields)."""
    return _columns(model, alias, None if names is None else tuple(names))


def instance(model: type[Model], row: Sequence, names: Sequence[str] | None = None) -> Model:
    """A model instance from the values `columns(model, alias, names)` selected, converted
    as the ORM converts them; fields not selected are deferred."""
    db = connections[DEFAULT_DB_ALIAS]
    attnames, converters = _converters(db, model, None if names is None else tuple(names))
    values = [_convert(raw, conv, db) for raw, conv in zip(row, converters, strict=True)]
    return model.from_db(db.alias, attnames, values)


def value(model: type[Model], name: str, raw: Any) -> Any:
    """One selected value, converted as the ORM converts that field."""
    db = connections[DEFAULT_DB_ALIAS]
    return _convert(raw, _converters(db, model, (name,))[1][0], db)


def param(model: type[Model], name: str, python_value: Any) -> Any:
    """A Python value adapted for a statement parameter of that field (JSON, datetimes)."""
    db = connections[DEFAULT_DB_ALIAS]
    return model._meta.get_field(name).get_db_prep_save(python_value, db)


def insert(obj: Model) -> Model:
    """INSERT a new instance (defaults and auto_now_add applied as save() would) and set its
    id. Sends no signals, like bulk_create."""
    db = connections[DEFAULT_DB_ALIAS]
    statement, fields = _insert(type(obj))
    params = [f.get_db_prep_save(f.pre_save(obj, True), db) for f in fields]
    obj.pk = one(statement, params)[0]
    return loaded(obj)


def loaded(obj: Model) -> Model:
    """Mark an instance built from values already in the database as loaded from it."""
    obj._state.adding = False
    obj._state.db = DEFAULT_DB_ALIAS
    return obj


# --- Worked out once ------------------------------------------------------------------------


@cache
def _quote(name: str) -> str:
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(name)


def _fields(model: type[Model], names: tuple[str, ...] | None) -> list:
    if names is None:
        return list(model._meta.concrete_fields)
    return [model._meta.get_field(name) for name in names]


@cache
def _columns(model: type[Model], alias: str, names: tuple[str, ...] | None) -> str:
    return ", ".join(f"{alias}.{_quote(f.column)}" for f in _fields(model, names))


@cache
def _insert(model: type[Model]) -> tuple[str, list]:
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    names = ", ".join(_quote(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    statement = f"INSERT INTO {table(model)} ({names}) VALUES ({marks}) RETURNING id"  # noqa: S608
    return statement, fields


def _converters(db, model: type[Model], names: tuple[str, ...] | None):
    # Per connection: the backend's converters are methods of that connection's operations.
    cache_ = db.__dict__.setdefault("_prefloop_converters", {})
    key = (model, names)
    if key not in cache_:
        fields = _fields(model, names)
        per_field = []
        for field in fields:
            expression = field.get_col(model._meta.db_table)
            found = db.ops.get_db_converters(expression) + field.get_db_converters(db)
            per_field.append((expression, tuple(found)))
        cache_[key] = ([f.attname for f in fields], per_field)
    return cache_[key]


def _convert(raw: Any, converter, db) -> Any:
    if raw is None:
        return None
    expression, functions = converter
    for convert in functions:
        raw = convert(raw, expression, db)
    return raw


# --- Bulk loads (PostgreSQL) ----------------------------------------------------------------


def reserve_ids(model: type[Model], n: int) -> list[int]:
    """PostgreSQL only: `n` ids taken from the model's id sequence, for rows written by COPY
    (which returns nothing) that later rows must refer to."""
    if n == 0:
        return []
    rows = all_rows(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
        [model._meta.db_table, n],
    )
    return [r[0] for r in rows]


def copy_in(model: type[Model], names: Sequence[str], rows: Iterator[Sequence]) -> None:
    """PostgreSQL only: COPY rows (values for the columns `names`, by attname; JSON as text)
    into the model's table. Every other column gets its field's default, so a column another
    change adds with a default needs nothing here."""
    connection = connections[DEFAULT_DB_ALIAS]
    given = set(names)
    rest = [
        f for f in model._meta.concrete_fields
        if f.attname not in given and not f.primary_key
    ]  # fmt: skip
    defaults = tuple(_copy_default(f, connection) for f in rest)
    cols = ", ".join(_quote(n) for n in [*names, *(f.column for f in rest)])
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table(model)} ({cols}) FROM STDIN") as copy:  # noqa: S608
            for row in rows:
                copy.write_row((*row, *defaults))


def _copy_default(field, connection) -> Any:
    import json

    from django.db.models import JSONField
    from django.utils import timezone

    if getattr(field, "auto_now_add", False) or getattr(field, "auto_now", False):
        return timezone.now()
    value = field.get_default()
    if isinstance(field, JSONField):
        return None if value is None else json.dumps(value)
    return field.get_db_prep_save(value, connection)
