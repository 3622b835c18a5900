"""Rows to bytes: JSON Lines, CSV and Parquet, each written a chunk at a time.

Column types (from rows.COLUMNS) fix the CSV header order and the Parquet schema, so an
empty export still has its columns. CSV cells that a spreadsheet would run as a formula
(starting with = + - @, tab or carriage return) get a leading apostrophe.
"""

import csv
import io
import json
from collections.abc import Iterable, Iterator

CHUNK_BYTES = 256 * 1024
PARQUET_ROW_GROUP = 10_000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

CONTENT_TYPES = {
    "jsonl": "application/jsonl; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}


def encode(rows: Iterable[dict], *, fmt: str, columns: list[tuple[str, str]]) -> Iterator[bytes]:
    return {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet}[fmt](rows, columns)


def _jsonl(rows: Iterable[dict], columns) -> Iterator[bytes]:
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    buffer: list[str] = []
    size = 0
    for row in rows:
        line = dumps(row)
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


def _csv(rows: Iterable[dict], columns) -> Iterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([name for name, _ in columns])
    for row in rows:
        writer.writerow([csv_cell(row[name], kind) for name, kind in columns])
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


def _parquet(rows: Iterable[dict], columns) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(columns)
    json_columns = [name for name, kind in columns if kind == "json"]
    sink = _Sink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    group: list[dict] = []

    def flush():
        for row in group:
            for name in json_columns:
                if row[name] is not None:
                    row[name] = json.dumps(row[name], ensure_ascii=False)
        writer.write_table(pa.Table.from_pylist(group, schema=schema))
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
