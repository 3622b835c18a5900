"""Rows to bytes: JSON Lines, CSV and Parquet, each written a chunk at a time.

Column types (from rows.COLUMNS) fix the CSV header order and the Parquet schema, so an
empty export still has its columns. CSV cells that a spreadsheet would run as a formula
(starting with = + - @, tab or carriage return) get a leading apostrophe.
"""

import csv
import io
import json
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring  # the C escaper json.dumps uses

from annotator.export.rows import COLUMNS

CHUNK_BYTES = 256 * 1024
PARQUET_ROW_GROUP = 10_000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PREFERENCE_COLUMNS = COLUMNS["preference"]

CONTENT_TYPES = {
    "jsonl": "application/jsonl; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}


def encode(rows: Iterable[tuple], *, fmt: str, columns: list[tuple[str, str]]) -> Iterator[bytes]:
    """Rows are tuples in `columns` order."""
    return {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet}[fmt](rows, columns)


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _json_encoder(kind: str):
    """value -> JSON text, for one column type: what json.dumps writes, without the dict."""
    if kind == "str":
        return lambda v: "null" if v is None else encode_basestring(v)
    if kind == "int":
        return lambda v: "null" if v is None else str(v)
    if kind == "float":
        return lambda v: "null" if v is None else repr(float(v))
    if kind == "bool":
        return lambda v: "null" if v is None else ("true" if v else "false")
    if kind == "int[]":
        return lambda v: "null" if v is None else _int_list(v)
    return _dumps


def line_encoder(columns):
    """A function from a row tuple to one JSON object line, keys in column order."""
    return _preference_line if columns == PREFERENCE_COLUMNS else template_encoder(columns)


def template_encoder(columns):
    """What json.dumps would write for the row as a dict, without building the dict."""
    template = "{" + ",".join(f"{encode_basestring(name)}:%s" for name, _ in columns) + "}"
    encoders = [_json_encoder(kind) for _, kind in columns]

    def encode(row: tuple) -> str:
        return template % tuple([enc(value) for enc, value in zip(encoders, row, strict=True)])

    return encode


def _null_or(value) -> str:
    return "null" if value is None else value


def _int_list(values: list[int]) -> str:
    # JSONEncoder.encode builds a new C encoder on every call: slow for a short list.
    return "[" + ",".join(map(str, values)) + "]"


def _preference_line(row: tuple) -> str:
    """`line_encoder` for the preference schema, written out: the JSON encoding is most of an
    export's work, and this is about twice as fast as filling the generic template.
    test_export_formats checks that both write the same bytes."""
    (prompt, chosen, rejected, margin, votes, agreement, task_id, prompt_id, chosen_id,
     rejected_id, labelers, round_, split, group, source) = row  # fmt: skip
    return (
        f'{{"prompt":{encode_basestring(prompt)},"chosen":{encode_basestring(chosen)},'
        f'"rejected":{encode_basestring(rejected)},"margin":{float(margin)!r},'
        f'"votes":{votes},"agreement":{float(agreement)!r},"task_id":{_null_or(task_id)},'
        f'"prompt_id":{prompt_id},"chosen_id":{chosen_id},"rejected_id":{rejected_id},'
        f'"labelers":{_int_list(labelers)},"round":{_null_or(round_)},'
        f'"split":{encode_basestring(split)},"group":{encode_basestring(group)},'
        f'"source":{encode_basestring(source)}}}'
    )


def _jsonl(rows: Iterable[tuple], columns) -> Iterator[bytes]:
    encode = line_encoder(columns)
    buffer: list[str] = []
    size = 0
    for row in rows:
        line = encode(row)
        buffer.append(line)
        size += len(line)
        if size >= CHUNK_BYTES:
            yield ("\n".join(buffer) + "\n").encode()
            buffer, size = [], 0
    if buffer:
        yield ("\n".join(buffer) + "\n").encode()


def csv_cell(value, kind: str):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind in ("str[]", "int[]", "messages", "json"):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv(rows: Iterable[tuple], columns) -> Iterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([name for name, _ in columns])
    kinds = [kind for _, kind in columns]
    for row in rows:
        writer.writerow([csv_cell(value, kind) for value, kind in zip(row, kinds, strict=True)])
        if out.tell() >= CHUNK_BYTES:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()


class _Sink(io.RawIOBase):
    """A write-only file that keeps what Parquet wrote until the stream takes it."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def arrow_schema(columns):
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    types = {
        "str": pa.string(),
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "int[]": pa.list_(pa.int64()),
        "str[]": pa.list_(pa.string()),
        "messages": pa.list_(message),
        "json": pa.string(),  # free-form objects (raw `scores`) travel as JSON text
    }
    return pa.schema([(name, types[kind]) for name, kind in columns])


def _parquet(rows: Iterable[tuple], columns) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(columns)
    sink = _Sink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    group: list[tuple] = []

    def flush() -> bytes:
        arrays = []
        for (_, kind), field, values in zip(columns, schema, zip(*group, strict=True), strict=True):
            if kind == "json":
                values = [None if v is None else _dumps(v) for v in values]
            arrays.append(pa.array(values, type=field.type))
        writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
        group.clear()
        return sink.take()

    for row in rows:
        group.append(row)
        if len(group) >= PARQUET_ROW_GROUP:
            yield flush()
    if group:
        yield flush()
    writer.close()
    yield sink.take()
