"""Small helpers for the labeling hot path's hand-written SQL.

"Next task" and "submit" run a few hundred times a second under load, and building their
statements through the ORM cost more CPU than the database spent running them
(bench/labeling_load.py). These helpers keep the hand-written statements short and safe: only
the models' own table and column names are formatted into SQL (quoted), values are always
bound, and rows come back as model instances with the same conversions the ORM applies
(JSON, booleans, aware datetimes on SQLite).
"""

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection
from django.db.models import Model


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[Model], name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def columns(model: type[Model], alias: str, names: Iterable[str] | None = None) -> str:
    """`alias."col", ...` for the given fields (default: all concrete fields)."""
    fields = _fields(model, names)
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(f.column)}" for f in fields)


def instance(model: type[Model], row: Sequence, names: Iterable[str] | None = None) -> Model:
    """A model instance from the values `columns(model, alias, names)` selected, converted
    as the ORM converts them; fields not selected are deferred."""
    fields = _fields(model, names)
    values = [_from_db(field, value) for field, value in zip(fields, row, strict=True)]
    return model.from_db(connection.alias, [f.attname for f in fields], values)


def value(model: type[Model], name: str, raw: Any) -> Any:
    """One selected value, converted as the ORM converts that field."""
    return _from_db(model._meta.get_field(name), raw)


def param(model: type[Model], name: str, python_value: Any) -> Any:
    """A Python value adapted for a statement parameter of that field (JSON, datetimes)."""
    return model._meta.get_field(name).get_db_prep_save(python_value, connection)


def insert(obj: Model) -> Model:
    """INSERT a new instance (defaults and auto_now_add applied as save() would) and set its
    id. Sends no signals, like bulk_create."""
    model = type(obj)
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    names = ", ".join(quote(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    statement = f"INSERT INTO {table(model)} ({names}) VALUES ({marks}) RETURNING id"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        obj.pk = cursor.fetchone()[0]
    obj._state.adding = False
    obj._state.db = connection.alias
    return obj


def loaded(obj: Model) -> Model:
    """Mark an instance built from values already in the database as loaded from it."""
    obj._state.adding = False
    obj._state.db = connection.alias
    return obj


def _fields(model: type[Model], names: Iterable[str] | None) -> list:
    if names is None:
        return list(model._meta.concrete_fields)
    return [model._meta.get_field(name) for name in names]


def _from_db(field, raw: Any) -> Any:
    if raw is None:
        return None
    expression = field.get_col(field.model._meta.db_table)
    for convert in connection.ops.get_db_converters(expression) + field.get_db_converters(
        connection
    ):
        raw = convert(raw, expression, connection)
    return raw
