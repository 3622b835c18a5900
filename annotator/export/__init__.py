"""Preference datasets out (issue #3; contract in docs/export.md).

    export = export_start(project=project, params=params)
    for chunk in export.chunks(): ...          # bytes, streamed; export.stats after the end
    export_summary(project=project, params=params)  # rows, bytes and sha256 of those bytes

The API, the management command and the trainer's snapshots all go through here, so the
same parameters give the same bytes everywhere.
"""

import hashlib
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field

from annotator.export import quality, source
from annotator.export.aggregate import Stats
from annotator.export.formats import CONTENT_TYPES, encode
from annotator.export.params import (
    AGGREGATES,
    FORMATS,
    SCHEMAS,
    ExportParams,
    ExportQuery,
    params_from_query,
)
from annotator.export.rows import columns_for, rows, rows_for_columns
from annotator.models import Project

__all__ = [
    "AGGREGATES",
    "FORMATS",
    "SCHEMAS",
    "Export",
    "ExportParams",
    "ExportQuery",
    "export_start",
    "export_summary",
    "params_from_query",
]


@dataclass
class Export:
    project: Project
    params: ExportParams  # with `until` pinned
    stats: Stats = field(default_factory=Stats)

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.params.format]

    @property
    def filename(self) -> str:
        return f"project-{self.project.id}-{self.params.schema}.{self.params.format}"

    def chunks(self) -> Iterator[bytes]:
        """The file, chunk by chunk, read inside one database snapshot.

        On PostgreSQL the connection streams while this iterates: run no other query on it
        between chunks (use another connection, or finish or close the iterator first).
        """
        columns = columns_for(self.params)
        with source.snapshot():
            stream = rows(project=self.project, params=self.params, stats=self.stats)
            # Closed before the snapshot ends, also when the download stops early: a
            # half-read PostgreSQL stream keeps the connection busy.
            with closing(stream):
                cut = rows_for_columns(stream, self.params)
                yield from encode(cut, fmt=self.params.format, columns=columns)

    def summary(self, *, size: int, sha256: str) -> dict:
        p = self.params
        return {
            "schema": p.schema,
            "format": p.format,
            "aggregate": p.aggregate,
            "until": p.until.isoformat(),
            **self.stats.as_dict(),
            "bytes": size,
            "sha256": sha256,
            "query": p.as_query(),
        }


def export_start(*, project: Project, params: ExportParams) -> Export:
    return Export(project=project, params=quality.resolved(project, params.pinned()))


def export_summary(*, project: Project, params: ExportParams) -> dict:
    """Run the export without sending it: its row count, drop counts, size and sha256."""
    export = export_start(project=project, params=params)
    digest, size = hashlib.sha256(), 0
    for chunk in export.chunks():
        digest.update(chunk)
        size += len(chunk)
    return export.summary(size=size, sha256=digest.hexdigest())
