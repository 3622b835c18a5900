"""Import prompts and responses from JSONL or CSV (format: docs/import.md).

All-or-nothing: every line is validated first, every bad line is reported with its line
number and reason, and nothing is written unless the whole file is good. Only the uploaded
bytes are read; nothing is ever fetched from a URL.
"""

import csv
import io
import json
from dataclasses import dataclass, field
from itertools import combinations

from django.conf import settings
from django.db import connection, transaction

from annotator.exceptions import ImportFailed
from annotator.models import Completion, Kind, Project, Prompt, Task
from annotator.task_services import NewTask, tasks_create
from webapp import safejson, sql

MAX_TEXT = 100_000
MAX_COMPLETIONS = 9
MAX_ERRORS_REPORTED = 1000
ROLES = {"system", "user", "assistant", "tool"}
PRIORITY_MIN, PRIORITY_MAX = -(2**31), 2**31 - 1  # the column is a 32-bit integer
JSONL_KEYS = {"prompt", "completions", "meta", "split", "priority", "gold"}


@dataclass
class Line:
    number: int
    text: str = ""
    messages: list | None = None
    completions: list[str] = field(default_factory=list)
    # Per completion: its meta, e.g. {"strategy": "step_by_step"} (docs/prompt-optimisation.md).
    completion_meta: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    split: str = Prompt.Split.TRAIN
    priority: int = 0
    gold: dict | None = None


class LineError(ValueError):
    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


def _line_error(number: int, exc: Exception) -> dict:
    """One bad line for the report: its number, the field when known, and the reason."""
    field = getattr(exc, "field", "")
    return {"line": number, **({"field": field} if field else {}), "error": str(exc)}


# --- Parsing --------------------------------------------------------------------------------


def decode(data: bytes) -> str:
    limit = settings.PREFLOOP_IMPORT_MAX_BYTES
    if len(data) > limit:
        raise ImportFailed(
            [{"line": 0, "error": f"file is {len(data)} bytes; the limit is {limit} bytes"}]
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFailed(
            [{"line": 0, "error": f"file is not UTF-8 (byte {exc.start})"}]
        ) from None


def parse_jsonl(text: str) -> tuple[list[Line], list[dict]]:
    lines, errors = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = safejson.loads(raw)
        except safejson.UnsafeJSON as exc:
            errors.append(_line_error(number, exc))
            continue
        except json.JSONDecodeError as exc:
            errors.append(
                {"line": number, "error": f"invalid JSON: {exc.msg} (column {exc.colno})"}
            )
            continue
        try:
            lines.append(_line_from_object(number, obj))
        except LineError as exc:
            errors.append(_line_error(number, exc))
    return lines, errors


def parse_csv(text: str) -> tuple[list[Line], list[dict]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    if "prompt" not in header and "prompt_messages" not in header:
        return [], [{"line": 1, "error": "header needs a 'prompt' or 'prompt_messages' column"}]
    completion_cols = sorted(
        (c for c in header if c.startswith("completion_")), key=_completion_col_order
    )
    if not completion_cols:
        return [], [{"line": 1, "error": "header needs completion_1, completion_2, ... columns"}]
    lines, errors = [], []
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a cell over the csv module's size limit
            errors.append({"line": reader.line_num, "error": f"unreadable CSV: {exc}"})
            continue
        number = reader.line_num  # physical line of the row's end; quoted newlines count
        try:
            for column, cell in row.items():
                if isinstance(cell, str):
                    safejson.check_text(cell, column or "")
            lines.append(_line_from_object(number, _csv_row_to_object(row, completion_cols)))
        except (LineError, safejson.UnsafeJSON) as exc:
            errors.append(_line_error(number, exc))
    return lines, errors


def _suffix(field: str) -> str:
    return "" if not field else field if field.startswith("[") else f".{field}"


def _completion_col_order(name: str):
    suffix = name.removeprefix("completion_")
    return (0, int(suffix), "") if suffix.isdigit() else (1, 0, suffix)


def _csv_row_to_object(row: dict, completion_cols: list[str]) -> dict:
    if None in row:
        raise LineError("more cells than header columns")
    obj: dict = {"completions": [row[c] for c in completion_cols if (row.get(c) or "").strip()]}
    if (row.get("prompt_messages") or "").strip():
        try:
            obj["prompt"] = safejson.loads(row["prompt_messages"])
        except safejson.UnsafeJSON as exc:
            raise LineError(
                f"prompt_messages is refused: {exc}", f"prompt_messages{_suffix(exc.field)}"
            ) from None
        except json.JSONDecodeError as exc:
            raise LineError(
                f"prompt_messages is not valid JSON: {exc.msg}", "prompt_messages"
            ) from None
    else:
        obj["prompt"] = row.get("prompt") or ""
    meta = {k.removeprefix("meta."): v for k, v in row.items() if k.startswith("meta.") and v}
    if meta:
        obj["meta"] = meta
    if (row.get("split") or "").strip():
        obj["split"] = row["split"].strip()
    if (row.get("priority") or "").strip():
        try:
            obj["priority"] = int(row["priority"])
        except ValueError:
            raise LineError("priority must be an integer") from None
    return obj


def _line_from_object(number: int, obj) -> Line:
    if not isinstance(obj, dict):
        raise LineError("each line must be a JSON object")
    unknown = sorted(set(obj) - JSONL_KEYS)
    if unknown:
        raise LineError(
            f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(JSONL_KEYS))}"
        )
    line = Line(number=number)
    prompt = obj.get("prompt")
    if isinstance(prompt, str):
        if not prompt.strip():
            raise LineError("prompt is empty")
        line.text = _bounded(prompt, "prompt")
    elif isinstance(prompt, list):
        line.messages = _messages(prompt)
    else:
        raise LineError("prompt must be a string or a list of {role, content} messages")
    # A demonstration project's lines may have none (task_groups says who needs them).
    completions = obj.get("completions", [])
    if not isinstance(completions, list):
        raise LineError("completions must be a non-empty list of strings")
    completions, line.completion_meta = _completion_objects(completions)
    for i, c in enumerate(completions):
        if not isinstance(c, str) or not c.strip():
            raise LineError(f"completions[{i}] must be a non-empty string")
        _bounded(c, f"completions[{i}]")
    if len(completions) > MAX_COMPLETIONS:
        raise LineError(f"{len(completions)} completions; at most {MAX_COMPLETIONS} per line")
    line.completions = completions
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise LineError("meta must be an object")
    line.meta = meta
    split = obj.get("split", Prompt.Split.TRAIN)
    if split not in Prompt.Split.values:
        raise LineError(f"split must be one of {', '.join(Prompt.Split.values)}")
    line.split = split
    priority = obj.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise LineError("priority must be an integer", "priority")
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise LineError(f"priority must be between {PRIORITY_MIN} and {PRIORITY_MAX}", "priority")
    line.priority = priority
    gold = obj.get("gold")
    if gold is not None and not isinstance(gold, dict):
        raise LineError("gold must be an object (the expected answer)")
    line.gold = gold
    return line


def _completion_objects(completions: list) -> tuple[list, list[dict]]:
    """A completion is a string, or ``{"text": ..., "meta": {...}}`` whose meta names e.g. its
    prompt strategy (``{"strategy": "step_by_step"}``); texts and metas, in order."""
    texts, metas = [], []
    for i, c in enumerate(completions):
        if isinstance(c, dict):
            if set(c) - {"text", "meta"}:
                raise LineError(f"completions[{i}] may only have text and meta")
            meta = c.get("meta", {})
            if not isinstance(meta, dict):
                raise LineError(f"completions[{i}].meta must be an object")
            strategy = meta.get("strategy")
            if strategy is not None and (not isinstance(strategy, str) or not strategy.strip()):
                raise LineError(f"completions[{i}].meta.strategy must be a strategy's name")
            texts.append(c.get("text"))
            metas.append(meta)
        else:
            texts.append(c)
            metas.append({})
    return texts, metas


def _bounded(value: str, name: str) -> str:
    if len(value) > MAX_TEXT:
        raise LineError(f"{name} is longer than {MAX_TEXT} characters")
    return value


def _messages(messages: list) -> list[dict]:
    if not messages:
        raise LineError("prompt message list is empty")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) - {"role", "content", "name"}:
            raise LineError(f"prompt[{i}] must be an object with role and content")
        if m.get("role") not in ROLES:
            raise LineError(f"prompt[{i}].role must be one of {', '.join(sorted(ROLES))}")
        if not isinstance(m.get("content"), str):
            raise LineError(f"prompt[{i}].content must be a string")
        clean.append({"role": m["role"], "content": _bounded(m["content"], f"prompt[{i}]")})
    return clean


# --- Cutting lines into tasks ---------------------------------------------------------------


def task_groups(project: Project, line: Line) -> list[tuple[str, list[int]]]:
    """The tasks a line becomes: (task kind, indexes of its completions)."""
    k = len(line.completions)
    if project.kind == Kind.DEMONSTRATION:
        # The labeler writes the response; completions given are kept with the prompt.
        return [(Kind.DEMONSTRATION, [])]
    if k == 0:
        raise LineError("completions must be a non-empty list of strings")
    if project.kind == Kind.EDIT:
        return [(Kind.EDIT, [i]) for i in range(k)]
    if project.kind == Kind.LIKERT:
        return [(Kind.LIKERT, [i]) for i in range(k)]
    if k < 2:
        raise LineError(f"a {project.kind} task needs at least 2 completions, got {k}")
    if project.kind == Kind.RANKING:
        return [(Kind.RANKING, list(range(k)))]
    if k == 2:
        return [(Kind.PAIRWISE, [0, 1])]
    if project.wide_lines == Project.WideLines.RANKING:
        return [(Kind.RANKING, list(range(k)))]
    return [(Kind.PAIRWISE, [i, j]) for i, j in combinations(range(k), 2)]


# --- Writing --------------------------------------------------------------------------------


def import_lines(*, project: Project, lines: list[Line], errors: list[dict]) -> int:
    """Validate the cut of every line, then write all or nothing. Returns tasks created."""
    plans = []
    for line in lines:
        try:
            plans.append((line, task_groups(project, line)))
        except LineError as exc:
            errors.append({"line": line.number, "error": str(exc)})
    if not lines and not errors:
        errors.append({"line": 0, "error": "the file has no lines to import"})
    if errors:
        errors.sort(key=lambda e: e["line"])
        raise ImportFailed(errors[:MAX_ERRORS_REPORTED])
    with transaction.atomic():
        created = _write(project=project, plans=plans)
        transaction.on_commit(_analyze_tasks)
    return created


def _analyze_tasks() -> None:
    # PostgreSQL plans the queue's query from table statistics. A fresh bulk load has none
    # until autovacuum comes round, and meanwhile "next task" sorts every open task.
    if connection.vendor == "postgresql":
        sql.run(f"ANALYZE {sql.table(Task)}")


def _write(*, project: Project, plans: list) -> int:
    prompts = Prompt.objects.bulk_create(
        [
            Prompt(
                project=project,
                text=line.text,
                messages=line.messages,
                meta=line.meta,
                split=line.split,
            )
            for line, _ in plans
        ],
        batch_size=1000,
    )
    completions = Completion.objects.bulk_create(
        [
            Completion(prompt=prompt, text=text, meta=meta)
            for prompt, (line, _) in zip(prompts, plans, strict=True)
            for text, meta in zip(
                line.completions, line.completion_meta or [{}] * len(line.completions), strict=True
            )
        ],
        batch_size=1000,
    )
    tasks = []
    offset = 0
    for prompt, (line, groups) in zip(prompts, plans, strict=True):
        for kind, indexes in groups:
            tasks.append(
                NewTask(
                    prompt_id=prompt.id,
                    kind=kind,
                    completion_ids=tuple(completions[offset + i].id for i in indexes),
                    priority=line.priority,
                    gold=line.gold,
                    # A gold task is outside the dataset's overlap (annotator/gold.py).
                    is_complete=line.gold is not None,
                )
            )
        offset += len(line.completions)
    return tasks_create(project=project, tasks=tasks)


def project_import(*, project: Project, data: bytes, fmt: str) -> int:
    """Import a JSONL or CSV file into a project. Raises ImportFailed listing every bad line."""
    text = decode(data)
    if fmt == "csv":
        lines, errors = parse_csv(text)
    elif fmt == "jsonl":
        lines, errors = parse_jsonl(text)
    else:
        raise ImportFailed([{"line": 0, "error": f"unknown format {fmt!r}; use jsonl or csv"}])
    return import_lines(project=project, lines=lines, errors=errors)
