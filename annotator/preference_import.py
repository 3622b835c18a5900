"""Import existing preference data (format: docs/import.md, "Preference data").

Each line (JSONL) or row (Parquet) is one of TRL's preference forms, told apart by its keys:

- explicit prompt: `prompt`, `chosen`, `rejected` (strings, or lists of messages: the
  conversational form, where chosen and rejected are the assistant's turn);
- implicit prompt: `chosen` and `rejected` only, each the whole conversation; the prompt is
  their common beginning (messages for lists, characters for strings, as TRL's
  `extract_prompt` does);
- rated responses (UltraFeedback-like): `prompt` (or `instruction`) and `responses` (or
  `completions`), a list of {text | response, score | overall_score | rating}; every pair of
  responses with different scores becomes one preference, the higher score chosen.

Every preference is stored as a complete pairwise task with one annotation by the import's
own labeler account (a user in the "imported" group, named after the file), of labeler kind
`imported`: exports and reward training count it, and every statistic and filter can tell it
apart (export `source=imported`).

All-or-nothing like the prompt import (annotator/importing.py): every bad line is reported
with its number, and nothing is written unless the whole file is good. The file is read as a
stream (line by line, or Parquet batch by batch) and written with bulk inserts in batches.
"""

import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import connection, transaction
from django.utils import timezone

from annotator.exceptions import ImportFailed
from annotator.importing import MAX_ERRORS_REPORTED, ROLES, LineError, _analyze_tasks
from annotator.models import (
    Annotation,
    Completion,
    Kind,
    LabelerKind,
    Project,
    Prompt,
    Task,
    TaskCompletion,
)
from webapp import safejson, sql

# Users in this group stand for an imported file: their annotations' labeler kind is `imported`.
IMPORTED_GROUP = "imported"
FORMATS = ("jsonl", "parquet")
MAX_TEXT = 100_000
MAX_RESPONSES = 16
BATCH = 5000  # rows per bulk insert
PARQUET_BATCH = 10_000
STRENGTHS = (1, 2, 3)
# The kinds of task a preference export's row can come from (its `source` column).
PAIR_SOURCES = (Kind.PAIRWISE, Kind.RANKING, Kind.LIKERT, Kind.EDIT)


@dataclass(slots=True)
class Item:
    """One line: a prompt, its responses, and the preferences between them."""

    number: int
    text: str
    messages: list | None
    responses: list[str]
    pairs: list[tuple[int, int, int | None]]  # (chosen index, rejected index, strength)
    scores: list | None = None
    split: str = Prompt.Split.TRAIN
    round: int | None = None
    margin: float | None = None
    # What a Prefloop export's row said of the preference (margin, votes, agreement, source):
    # kept with the task, and written back by the export, so an export round-trips.
    kept: dict | None = None


# --- Reading --------------------------------------------------------------------------------


def _jsonl_objects(stream: Iterable[bytes]) -> Iterator[tuple[int, object]]:
    """(line number, object or LineError) for each non-blank line."""
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        try:
            yield number, safejson.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            yield number, LineError(f"not UTF-8 (byte {exc.start})")
        except safejson.UnsafeJSON as exc:
            yield number, LineError(str(exc))
        except json.JSONDecodeError as exc:
            yield number, LineError(f"invalid JSON: {exc.msg} (column {exc.colno})")


def _parquet_objects(data: bytes) -> Iterator[tuple[int, object]]:
    """(row number, row as a dict) for each row, one record batch at a time."""
    try:
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(io.BytesIO(data))
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise ImportFailed([{"line": 0, "error": "Parquet needs pyarrow installed"}]) from None
    except Exception as exc:  # noqa: BLE001 -- any unreadable file is the user's to fix
        raise ImportFailed([{"line": 0, "error": f"not a Parquet file: {exc}"}]) from None
    number = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH):
        for row in batch.to_pylist():
            number += 1
            try:
                safejson.check(row)
                yield number, row
            except safejson.UnsafeJSON as exc:
                yield number, LineError(str(exc))


def _text(value, name: str) -> str:
    if not isinstance(value, str):
        raise LineError(f"{name} must be a string or a list of messages", name)
    if not value.strip():
        raise LineError(f"{name} is empty", name)
    if len(value) > MAX_TEXT:
        raise LineError(f"{name} is longer than {MAX_TEXT} characters", name)
    return value


def _messages(value, name: str) -> list[dict]:
    if not value:
        raise LineError(f"{name} is an empty list of messages", name)
    clean = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not {"role", "content"} <= set(m):
            raise LineError(f"{name}[{i}] must be an object with role and content", name)
        if m["role"] not in ROLES:
            raise LineError(f"{name}[{i}].role must be one of {', '.join(sorted(ROLES))}", name)
        if not isinstance(m["content"], str):
            raise LineError(f"{name}[{i}].content must be a string", name)
        if len(m["content"]) > MAX_TEXT:
            raise LineError(f"{name}[{i}] is longer than {MAX_TEXT} characters", name)
        clean.append({"role": m["role"], "content": m["content"]})
    return clean


def _reply(value, name: str) -> str:
    """A response: a string, or (conversational) one assistant message."""
    if isinstance(value, list):
        turns = _messages(value, name)
        if len(turns) != 1 or turns[0]["role"] != "assistant":
            raise LineError(f"{name} must be one assistant message after the prompt", name)
        return _text(turns[0]["content"], name)
    return _text(value, name)


def _prompt(value, name: str = "prompt") -> tuple[str, list | None]:
    if isinstance(value, list):
        return "", _messages(value, name)
    return _text(value, name), None


def _common_prefix(chosen, rejected) -> int:
    n = 0
    for a, b in zip(chosen, rejected, strict=False):
        if a != b:
            break
        n += 1
    return n


def _implicit(chosen, rejected) -> tuple[str, list | None, str, str]:
    """Split two whole conversations into the prompt they share and the two replies."""
    if isinstance(chosen, list) and isinstance(rejected, list):
        chosen, rejected = _messages(chosen, "chosen"), _messages(rejected, "rejected")
        n = _common_prefix(chosen, rejected)
        if n == 0:
            raise LineError("chosen and rejected share no prompt: their first messages differ")
        return "", chosen[:n], _reply(chosen[n:], "chosen"), _reply(rejected[n:], "rejected")
    if isinstance(chosen, str) and isinstance(rejected, str):
        n = _common_prefix(chosen, rejected)
        # As TRL does: a space before the point where they part goes with the replies.
        if 0 < n < min(len(chosen), len(rejected)) and chosen[n - 1] == " ":
            n -= 1
        if n == 0 or not chosen[:n].strip():
            raise LineError("chosen and rejected share no prompt: they differ from the start")
        return (
            _text(chosen[:n], "prompt"),
            None,
            _text(chosen[n:], "chosen"),
            _text(rejected[n:], "rejected"),
        )
    raise LineError("chosen and rejected must both be strings or both lists of messages")


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LineError(f"{name} must be a number", name)
    return float(value)


def _rated(obj: dict) -> tuple[list[str], list[float]]:
    responses = obj.get("responses", obj.get("completions"))
    if not isinstance(responses, list) or len(responses) < 2:
        raise LineError("responses must be a list of at least 2 {text, score} objects")
    if len(responses) > MAX_RESPONSES:
        raise LineError(f"{len(responses)} responses; at most {MAX_RESPONSES} per line")
    texts, scores = [], []
    for i, r in enumerate(responses):
        name = f"responses[{i}]"
        if not isinstance(r, dict):
            raise LineError(f"{name} must be an object with text and score", name)
        text = next((r[k] for k in ("text", "response", "completion") if k in r), None)
        score = next((r[k] for k in ("score", "overall_score", "rating") if k in r), None)
        if score is None:
            raise LineError(f"{name} has no score", name)
        texts.append(_reply(text, f"{name}.text"))
        scores.append(_number(score, f"{name}.score"))
    return texts, scores


def _kept(obj: dict, margin: float | None) -> dict | None:
    """The numbers a preference export wrote for the row, checked: the export writes them
    back for the imported preference (docs/import.md, "Round trip")."""
    # A margin of 0, 1, 2 or 3 is what the export writes back by itself (no strength, or it).
    kept = {} if margin is None or margin in (0, *STRENGTHS) else {"margin": margin}
    votes = obj.get("votes")
    if votes is not None:
        if isinstance(votes, bool) or not isinstance(votes, int) or not 1 <= votes < 2**31:
            raise LineError("votes must be a whole number from 1", "votes")
        kept["votes"] = votes
    agreement = obj.get("agreement")
    if agreement is not None:
        agreement = _number(agreement, "agreement")
        if not 0 < agreement <= 1:
            raise LineError("agreement must be a number above 0 and at most 1", "agreement")
        kept["agreement"] = agreement
    source = obj.get("source")
    if source is not None:
        if source not in PAIR_SOURCES:
            raise LineError(f"source must be one of {', '.join(PAIR_SOURCES)}", "source")
        kept["source"] = source
    return kept or None


def item_from_object(number: int, obj) -> Item:
    if not isinstance(obj, dict):
        raise LineError("each line must be a JSON object")
    if "chosen" in obj or "rejected" in obj:
        if "chosen" not in obj or "rejected" not in obj:
            raise LineError("a preference needs both chosen and rejected")
        if obj.get("prompt") is not None:
            text, messages = _prompt(obj["prompt"])
            chosen, rejected = _reply(obj["chosen"], "chosen"), _reply(obj["rejected"], "rejected")
        else:
            text, messages, chosen, rejected = _implicit(obj["chosen"], obj["rejected"])
        if chosen == rejected:
            raise LineError("chosen and rejected are the same text")
        item = Item(number, text, messages, [chosen, rejected], [(0, 1, None)])
        margin = obj.get("margin")
        if margin is not None:
            item.margin = _number(margin, "margin")
            # Prefloop's own margin is the strength (1 slightly ... 3 much better).
            if item.margin in STRENGTHS:
                item.pairs = [(0, 1, int(item.margin))]
        item.kept = _kept(obj, item.margin)
    elif "responses" in obj or "completions" in obj:
        prompt = obj.get("prompt", obj.get("instruction"))
        if prompt is None:
            raise LineError("rated responses need a prompt (or instruction)")
        text, messages = _prompt(prompt)
        responses, scores = _rated(obj)
        pairs = [
            (i, j, None) if scores[i] > scores[j] else (j, i, None)
            for i in range(len(scores))
            for j in range(i + 1, len(scores))
            if scores[i] != scores[j]
        ]
        if not pairs:
            raise LineError("every response has the same score: no preference to import")
        item = Item(number, text, messages, responses, pairs, scores=scores)
    else:
        raise LineError(
            "not a preference: give prompt, chosen and rejected; chosen and rejected (implicit "
            "prompt); or prompt and responses with scores"
        )
    split = obj.get("split")
    if split is not None:
        if split not in Prompt.Split.values:
            raise LineError(f"split must be one of {', '.join(Prompt.Split.values)}", "split")
        item.split = split
    round_ = obj.get("round")
    if round_ is not None:
        if isinstance(round_, bool) or not isinstance(round_, int) or not 0 <= round_ < 2**31:
            raise LineError("round must be a whole number from 0", "round")
        item.round = round_
    return item


def parse(objects: Iterable[tuple[int, object]]) -> tuple[list[Item], list[dict]]:
    items, errors = [], []
    for number, obj in objects:
        try:
            if isinstance(obj, LineError):
                raise obj
            items.append(item_from_object(number, obj))
        except LineError as exc:
            if len(errors) < MAX_ERRORS_REPORTED:
                field = exc.field
                errors.append({"line": number, **({"field": field} if field else {}),
                               "error": str(exc)})  # fmt: skip
            else:
                break
    return items, errors


# --- Writing --------------------------------------------------------------------------------


def _account_name(project: Project, filename: str) -> str:
    stem = re.sub(r"[^\w.@+-]+", "_", filename.rsplit("/", 1)[-1]).strip("_") or "file"
    base = f"imported-{project.id}-{stem}"[:140]
    users = get_user_model().objects
    name, n = base, 1
    while users.filter(username=name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def import_account_create(*, project: Project, filename: str) -> AbstractBaseUser:
    """The labeler account that stands for one imported file (it cannot log in)."""
    user = get_user_model()(username=_account_name(project, filename))
    user.set_unusable_password()
    user.save()
    user.groups.add(Group.objects.get_or_create(name=IMPORTED_GROUP)[0])
    return user


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _task_meta(item: Item) -> dict:
    meta = {"imported_line": item.number}
    if item.margin is not None:
        meta["margin"] = item.margin
    if item.kept is not None:
        meta["file"] = item.kept
    return meta


def _write_copy(project: Project, labeler: AbstractBaseUser, items: list[Item]) -> int:
    """PostgreSQL: the same rows as `_write`, by COPY with ids reserved from the sequences
    (bulk_create spends most of its time building model instances and SQL text)."""
    tasks_made = 0
    now = timezone.now()
    dumps = json.dumps
    for chunk in _chunks(items, BATCH * 4):
        prompt_ids = sql.reserve_ids(Prompt, len(chunk))
        completion_ids = sql.reserve_ids(Completion, sum(len(i.responses) for i in chunk))
        task_ids = sql.reserve_ids(Task, sum(len(i.pairs) for i in chunk))
        sql.copy_in(
            Prompt, ("id", "project_id", "text", "messages", "split", "created_at"),
            (
                (pid, project.id, i.text, None if i.messages is None else dumps(i.messages),
                 i.split, now)
                for pid, i in zip(prompt_ids, chunk, strict=True)
            ),
        )  # fmt: skip
        completions, tasks, links, answers = [], [], [], []
        c, t = iter(completion_ids), iter(task_ids)
        for pid, item in zip(prompt_ids, chunk, strict=True):
            ids = [next(c) for _ in item.responses]
            for k, (cid, text) in enumerate(zip(ids, item.responses, strict=True)):
                meta = "{}" if item.scores is None else dumps({"score": item.scores[k]})
                completions.append((cid, pid, text, meta, now))
            meta = dumps(_task_meta(item))
            for chosen, rejected, strength in item.pairs:
                tid = next(t)
                tasks.append((tid, project.id, pid, Kind.PAIRWISE, 1, 1, True, item.round, meta,
                              now))  # fmt: skip
                links += [(tid, ids[chosen], 0), (tid, ids[rejected], 1)]
                answers.append(
                    (tid, labeler.pk, Kind.PAIRWISE, Annotation.Verdict.PREFERRED, ids[chosen],
                     ids[rejected], strength, f"[{ids[chosen]},{ids[rejected]}]",
                     LabelerKind.IMPORTED, now)
                )  # fmt: skip
        sql.copy_in(Completion, ("id", "prompt_id", "text", "meta", "created_at"), completions)
        sql.copy_in(
            Task,
            ("id", "project_id", "prompt_id", "kind", "overlap", "annotation_count",
             "is_complete", "round", "meta", "created_at"),
            tasks,
        )  # fmt: skip
        sql.copy_in(TaskCompletion, ("task_id", "completion_id", "position"), links)
        sql.copy_in(
            Annotation,
            ("task_id", "labeler_id", "kind", "verdict", "chosen_id", "rejected_id", "strength",
             "shown_order", "labeler_kind", "created_at"),
            answers,
        )  # fmt: skip
        tasks_made += len(tasks)
    return tasks_made


def _write(project: Project, labeler: AbstractBaseUser, items: list[Item]) -> int:
    if connection.vendor == "postgresql":
        return _write_copy(project, labeler, items)
    tasks_made = 0
    for chunk in _chunks(items, BATCH):
        prompts = Prompt.objects.bulk_create(
            [
                Prompt(project=project, text=i.text, messages=i.messages, split=i.split)
                for i in chunk
            ]
        )
        completions = Completion.objects.bulk_create(
            [
                Completion(
                    prompt=prompt,
                    text=text,
                    meta={} if item.scores is None else {"score": item.scores[k]},
                )  # fmt: skip
                for prompt, item in zip(prompts, chunk, strict=True)
                for k, text in enumerate(item.responses)
            ]
        )
        tasks, answers, offset = [], [], 0
        for prompt, item in zip(prompts, chunk, strict=True):
            ids = [c.id for c in completions[offset : offset + len(item.responses)]]
            offset += len(item.responses)
            meta = _task_meta(item)
            for chosen, rejected, strength in item.pairs:
                tasks.append(
                    Task(
                        project=project, prompt=prompt, kind=Kind.PAIRWISE, overlap=1,
                        annotation_count=1, is_complete=True, round=item.round, meta=meta,
                    )
                )  # fmt: skip
                answers.append((ids[chosen], ids[rejected], strength))
        tasks = Task.objects.bulk_create(tasks)
        TaskCompletion.objects.bulk_create(
            [
                TaskCompletion(task=task, completion_id=cid, position=position)
                for task, (chosen, rejected, _) in zip(tasks, answers, strict=True)
                for position, cid in enumerate((chosen, rejected))
            ]
        )
        Annotation.objects.bulk_create(
            [
                Annotation(
                    task=task,
                    labeler=labeler,
                    kind=Kind.PAIRWISE,
                    verdict=Annotation.Verdict.PREFERRED,
                    chosen_id=chosen,
                    rejected_id=rejected,
                    strength=strength,
                    shown_order=[chosen, rejected],
                    labeler_kind=LabelerKind.IMPORTED,
                )  # fmt: skip
                for task, (chosen, rejected, strength) in zip(tasks, answers, strict=True)
            ]
        )
        tasks_made += len(tasks)
    return tasks_made


@dataclass(frozen=True)
class ImportResult:
    preferences: int  # tasks made, one per preference
    prompts: int
    labeler: str  # the import's account


def preferences_import(
    *, project: Project, data: bytes | Iterable[bytes], fmt: str, filename: str
) -> ImportResult:
    """Import a preference file into the project. Raises ImportFailed listing every bad line.

    `data` is the file's bytes, or (JSONL) any iterable of its lines, e.g. an open file."""
    if fmt == "jsonl":
        lines = io.BytesIO(data) if isinstance(data, bytes) else data
        objects = _jsonl_objects(lines)
    elif fmt == "parquet":
        if not isinstance(data, bytes):
            data = b"".join(data)
        objects = _parquet_objects(data)
    else:
        raise ImportFailed([{"line": 0, "error": f"unknown format {fmt!r}; use jsonl or parquet"}])
    if isinstance(data, bytes) and len(data) > settings.PREFLOOP_IMPORT_MAX_BYTES:
        limit = settings.PREFLOOP_IMPORT_MAX_BYTES
        raise ImportFailed(
            [{"line": 0, "error": f"file is {len(data)} bytes; the limit is {limit} bytes"}]
        )
    items, errors = parse(objects)
    if not items and not errors:
        errors.append({"line": 0, "error": "the file has no preferences to import"})
    if errors:
        raise ImportFailed(errors)
    with transaction.atomic():
        labeler = import_account_create(project=project, filename=filename)
        made = _write(project, labeler, items)
        transaction.on_commit(_analyze_tasks)
    return ImportResult(preferences=made, prompts=len(items), labeler=labeler.get_username())
