"""The outcome of each prompt strategy on each query: a query x strategy table.

A completion names its strategy in `meta.strategy`. What a cell holds (a share from 0 to 1)
depends on the source:

* ``imported``: the outcome of an imported log row (`meta.outcome`), averaged over the rows
  of one (query, strategy);
* ``gold``: correctness against the query's reference answer (the prompt's `meta.answer`):
  a completion is correct when its last non-empty line ends with that answer (case, spaces
  and a final full stop aside);
* ``likert``: the share of Likert ratings of the strategy's completions at or above a
  threshold (default: the middle of the project's scale, 4 on 1-7);
* ``pairwise``: the strategy's win rate in comparisons (and rankings) against completions of
  other strategies on the same query: a win 1, a tie 1/2 each, both bad 0 each.

Annotations on gold tasks (labeler checks, outside the dataset) are left out. ``auto`` takes
the first source, in the order above, that gives the project any cell.
"""

import re
from collections import defaultdict
from dataclasses import dataclass, field

from annotator.models import (
    Annotation,
    Completion,
    Kind,
    Project,
    Prompt,
    PromptStrategy,
    TaskCompletion,
)

SOURCES = ("imported", "gold", "likert", "pairwise")
AUTO = "auto"


@dataclass
class Cell:
    successes: float = 0.0
    n: int = 0

    @property
    def value(self) -> float | None:
        return self.successes / self.n if self.n else None


@dataclass
class QueryRow:
    prompt_id: int
    query: str
    split: str
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass
class OutcomeTable:
    source: str
    strategies: list[str]
    rows: list[QueryRow]
    likert_threshold: int | None = None

    @property
    def cells(self) -> int:
        return sum(len(r.cells) for r in self.rows)

    def training_rows(self):
        """One ``{"query_id", "query", "strategy", "outcome"}`` per cell, for the prompt_reward
        job (trainer/algorithms/prompt_oirl.py)."""
        for row in self.rows:
            for strategy, cell in row.cells.items():
                yield {
                    "query_id": row.prompt_id,
                    "query": row.query,
                    "strategy": strategy,
                    "outcome": cell.value,
                }


class OutcomeError(ValueError):
    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.message, self.field = message, field


def default_threshold(project: Project) -> int:
    return project.likert_points // 2 + 1


def _completions(project: Project, split: str | None):
    """id -> (prompt id, strategy) of the project's completions that name a strategy."""
    rows = Completion.objects.filter(prompt__project=project, meta__has_key="strategy").values_list(
        "id", "prompt_id", "meta", "text"
    )
    if split:
        rows = rows.filter(prompt__split=split)
    return rows


def _imported(project, split, add, **_):
    for _cid, prompt_id, meta, _text in _completions(project, split):
        outcome = meta.get("outcome")
        # A bool is an int (true 1, false 0); a value outside 0..1 (a hand-written meta) is
        # not an outcome and is left out.
        if isinstance(outcome, int | float) and 0 <= outcome <= 1:
            add(prompt_id, meta["strategy"], float(outcome))


def _normal(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".!")


def answer_is_correct(answer: str, response: str) -> bool:
    """The response's last non-empty line ends with the answer (as a whole word)."""
    lines = [line for line in response.splitlines() if line.strip()]
    if not lines or not _normal(str(answer)):
        return False
    expected, last = _normal(str(answer)), _normal(lines[-1])
    return re.search(r"(?:^|[^\w])" + re.escape(expected) + r"$", last) is not None


def _gold(project, split, add, **_):
    answers = dict(
        Prompt.objects.filter(project=project, meta__has_key="answer").values_list("id", "meta")
    )
    for _cid, prompt_id, meta, text in _completions(project, split):
        if prompt_id in answers:
            correct = answer_is_correct(answers[prompt_id]["answer"], text)
            add(prompt_id, meta["strategy"], 1.0 if correct else 0.0)


def _answers(project, kind):
    return Annotation.objects.filter(task__project=project, kind=kind, task__gold__isnull=True)


def _likert(project, split, add, threshold, **_):
    strategy_of = {
        cid: (pid, meta["strategy"]) for cid, pid, meta, _ in _completions(project, split)
    }
    answers = _answers(project, Kind.LIKERT).values_list(
        "task__task_completions__completion_id", "score", "scores"
    )
    for completion_id, score, scores in answers:
        if completion_id not in strategy_of:
            continue
        values = [score] if score is not None else list((scores or {}).values())
        values = [v for v in values if isinstance(v, int | float)]
        if values:
            prompt_id, strategy = strategy_of[completion_id]
            add(prompt_id, strategy, 1.0 if sum(values) / len(values) >= threshold else 0.0)


def _pairwise(project, split, add, **_):
    strategy_of = {
        cid: (pid, meta["strategy"]) for cid, pid, meta, _ in _completions(project, split)
    }

    def game(first, second, score_first):
        a, b = strategy_of.get(first), strategy_of.get(second)
        if a is None or b is None or a[1] == b[1]:
            return  # only comparisons between two strategies on one query count
        add(a[0], a[1], score_first)
        add(b[0], b[1], 1.0 - score_first)

    answers = list(
        _answers(project, Kind.PAIRWISE).values_list(
            "task_id", "verdict", "chosen_id", "rejected_id"
        )
    )
    # A tie or both-bad answer stores no chosen/rejected: the task's two completions are read.
    open_ids = {task for task, verdict, *_ in answers if verdict != Annotation.Verdict.PREFERRED}
    pairs = defaultdict(list)
    for task_id, completion_id in (
        TaskCompletion.objects.filter(task_id__in=open_ids)
        .order_by("task_id", "position")
        .values_list("task_id", "completion_id")
    ):
        pairs[task_id].append(completion_id)
    for task_id, verdict, chosen, rejected in answers:
        if verdict == Annotation.Verdict.PREFERRED:
            game(chosen, rejected, 1.0)
        elif len(pairs[task_id]) == 2:
            first, second = pairs[task_id]
            if verdict == Annotation.Verdict.TIE:
                game(first, second, 0.5)
            else:  # both bad: a loss for both
                a, b = strategy_of.get(first), strategy_of.get(second)
                if a and b and a[1] != b[1]:
                    add(a[0], a[1], 0.0)
                    add(b[0], b[1], 0.0)
    for ranking in _answers(project, Kind.RANKING).values_list("ranking", flat=True):
        for i, better in enumerate(ranking):
            for worse in ranking[i + 1 :]:
                game(better, worse, 1.0)


READERS = {"imported": _imported, "gold": _gold, "likert": _likert, "pairwise": _pairwise}


def outcome_table(
    *,
    project: Project,
    source: str = AUTO,
    likert_threshold: int | None = None,
    split: str | None = None,
) -> OutcomeTable:
    """The project's query x strategy table from one source (OutcomeError on a bad setting)."""
    if source not in (AUTO, *SOURCES):
        raise OutcomeError(f"source must be one of {AUTO}, {', '.join(SOURCES)}.", "source")
    threshold = likert_threshold or default_threshold(project)
    if not 1 <= threshold <= project.likert_points:
        raise OutcomeError(
            f"likert_threshold must be between 1 and {project.likert_points}.", "likert_threshold"
        )
    for name in SOURCES if source == AUTO else (source,):
        table = _read(project, name, threshold, split)
        if table.rows or source != AUTO:
            return table
    return table


def _read(project, source, threshold, split) -> OutcomeTable:
    cells: dict[int, dict[str, Cell]] = defaultdict(dict)

    def add(prompt_id: int, strategy: str, success: float) -> None:
        cell = cells[prompt_id].setdefault(strategy, Cell())
        cell.successes += success
        cell.n += 1

    READERS[source](project, split, add, threshold=threshold)
    prompts = Prompt.objects.filter(id__in=list(cells)).order_by("id")
    rows = [
        QueryRow(p.id, p.text or _chat_text(p.messages), p.split, cells[p.id])
        for p in prompts.only("id", "text", "messages", "split")
    ]
    seen = {s for row in rows for s in row.cells}
    defined = list(PromptStrategy.objects.filter(project=project).values_list("name", flat=True))
    strategies = [s for s in defined if s in seen] + sorted(seen - set(defined))
    return OutcomeTable(source, strategies, rows, threshold if source == "likert" else None)


def _chat_text(messages) -> str:
    """A chat prompt as the query text: its user turns."""
    return "\n".join(m.get("content", "") for m in messages or [] if m.get("role") == "user")
