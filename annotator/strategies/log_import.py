"""Import an offline log of (query, strategy, response, outcome) rows (docs/prompt-optimisation.md).

JSONL (one object a line) or CSV (a header with query, strategy, outcome and optionally
response, split). All-or-nothing like the dataset import (annotator/importing.py):
every bad line is named with its number and nothing is written unless all are good.

Each distinct query becomes a prompt (a query already in the project as a plain-text prompt is
reused), each row a completion of it with `meta.strategy` and `meta.outcome`; a strategy name
the project does not have yet is created (empty templates). No labeling tasks are made: the
outcome is already known.
"""

import csv
import io
import json
import math
from dataclasses import dataclass

from django.db import transaction

from annotator.exceptions import ImportFailed
from annotator.importing import MAX_ERRORS_REPORTED, MAX_TEXT, decode
from annotator.models import Completion, Project, Prompt, PromptStrategy
from annotator.strategies.services import NAME
from webapp import safejson

KEYS = {"query", "strategy", "response", "outcome", "split"}
REQUIRED = ("query", "strategy", "outcome")
TRUE = {"correct", "true", "yes", "1", "pass", "win"}
FALSE = {"incorrect", "false", "no", "0", "fail", "loss"}


@dataclass
class LogRow:
    number: int
    query: str
    strategy: str
    response: str
    outcome: float
    split: str


class RowError(ValueError):
    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


def parse_outcome(value) -> float:
    """correct / incorrect (true / false, yes / no, 1 / 0), or a score from 0 to 1."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE:
            return 1.0
        if text in FALSE:
            return 0.0
        try:
            value = float(text)
        except ValueError:
            value = None
    if isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1:
        return float(value)
    raise RowError(
        "outcome must be correct or incorrect (true/false, 1/0) or a score from 0 to 1",
        "outcome",
    )


def _row(number: int, obj) -> LogRow:
    if not isinstance(obj, dict):
        raise RowError("each line must be a JSON object")
    unknown = sorted(set(obj) - KEYS)
    if unknown:
        raise RowError(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(KEYS))}")
    for key in REQUIRED:
        if obj.get(key) in (None, ""):
            raise RowError(f"{key} is missing", key)
    query, strategy = obj["query"], obj["strategy"]
    if not isinstance(query, str) or not query.strip():
        raise RowError("query must be a non-empty string", "query")
    if not isinstance(strategy, str) or not NAME.match(strategy.strip()):
        raise RowError(
            "strategy must be a name of letters, digits, _ . or - (e.g. step_by_step)", "strategy"
        )
    response = obj.get("response") or ""
    if not isinstance(response, str):
        raise RowError("response must be a string", "response")
    for key, text in (("query", query), ("response", response)):
        if len(text) > MAX_TEXT:
            raise RowError(f"{key} is longer than {MAX_TEXT} characters", key)
        try:
            safejson.check_text(text, key)
        except safejson.UnsafeJSON as exc:
            raise RowError(str(exc), key) from None
    split = obj.get("split") or Prompt.Split.TRAIN
    if split not in Prompt.Split.values:
        raise RowError(f"split must be one of {', '.join(Prompt.Split.values)}", "split")
    return LogRow(number, query, strategy.strip(), response, parse_outcome(obj["outcome"]), split)


def _error(number: int, exc: Exception) -> dict:
    field = getattr(exc, "field", "")
    return {"line": number, **({"field": field} if field else {}), "error": str(exc)}


def parse(text: str, fmt: str) -> tuple[list[LogRow], list[dict]]:
    rows, errors = [], []
    if fmt == "jsonl":
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                rows.append(_row(number, safejson.loads(raw)))
            except json.JSONDecodeError as exc:
                errors.append({"line": number, "error": f"invalid JSON: {exc.msg}"})
            except (RowError, safejson.UnsafeJSON) as exc:
                errors.append(_error(number, exc))
    elif fmt == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [k for k in REQUIRED if k not in (reader.fieldnames or [])]
        if missing:
            return [], [{"line": 1, "error": f"header needs the column(s) {', '.join(missing)}"}]
        try:
            for obj in reader:
                if None in obj:
                    errors.append({"line": reader.line_num, "error": "more cells than columns"})
                    continue
                obj = {k: v for k, v in obj.items() if v != "" and k in KEYS}
                try:
                    rows.append(_row(reader.line_num, obj))
                except RowError as exc:
                    errors.append(_error(reader.line_num, exc))
        except csv.Error as exc:
            errors.append({"line": reader.line_num, "error": f"unreadable CSV: {exc}"})
    else:
        errors.append({"line": 0, "error": f"unknown format {fmt!r}; use jsonl or csv"})
    return rows, errors


@dataclass
class LogImported:
    rows: int
    queries: int
    new_strategies: list[str]


def strategy_log_import(*, project: Project, data: bytes, fmt: str) -> LogImported:
    """Import a log into `project`; ImportFailed lists every bad line and nothing is written."""
    rows, errors = parse(decode(data), fmt)
    if not rows and not errors:
        errors.append({"line": 0, "error": "the file has no rows to import"})
    if errors:
        raise ImportFailed(sorted(errors, key=lambda e: e["line"])[:MAX_ERRORS_REPORTED])
    with transaction.atomic():
        known = set(PromptStrategy.objects.filter(project=project).values_list("name", flat=True))
        new = sorted({r.strategy for r in rows} - known)
        PromptStrategy.objects.bulk_create(
            [PromptStrategy(project=project, name=name) for name in new]
        )
        queries = list(dict.fromkeys(r.query for r in rows))
        prompts = {}
        existing = Prompt.objects.filter(
            project=project, messages__isnull=True, text__in=queries
        ).order_by("id")
        for prompt in existing:
            prompts.setdefault(prompt.text, prompt)
        first_row = {}
        for r in rows:
            first_row.setdefault(r.query, r)
        fresh = Prompt.objects.bulk_create(
            [
                Prompt(project=project, text=q, split=first_row[q].split)
                for q in queries
                if q not in prompts
            ],
            batch_size=1000,
        )
        prompts |= {p.text: p for p in fresh}
        Completion.objects.bulk_create(
            [
                Completion(
                    prompt=prompts[r.query],
                    text=r.response,
                    meta={"strategy": r.strategy, "outcome": r.outcome, "log_line": r.number},
                )
                for r in rows
            ],
            batch_size=1000,
        )
    return LogImported(rows=len(rows), queries=len(queries), new_strategies=new)
