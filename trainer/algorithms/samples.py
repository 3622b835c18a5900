"""Sample generations for the job page: a few (prompt, response, score) rows about ten times
a run, sent through the algorithm's progress callback (``{"samples": [...]}``).

No Django here, like everything under trainer/algorithms.
"""

from trainer.algorithms.common import ProgressCallback


class SampleLog:
    """A few (prompt, response, score) examples about ten times a run, for the job page:
    `add` keeps them for the next `report(..., samples=log.pop())`; calling the log sends them
    through ``progress`` at once (the TRL kinds, whose metrics the Trainer reports)."""

    def __init__(self, progress: ProgressCallback | None, total: int, shown: int = 4):
        self.progress, self.total, self.shown = progress, total, shown
        self.last: int | None = None
        self.pending: list[dict] | None = None

    def add(self, step: int, prompts: list, responses: list, scores=None) -> None:
        every = max(1, self.total // 10)
        if self.progress is None or (self.last is not None and step < self.last + every):
            return
        self.last = step
        self.pending = [
            {"prompt": _text(p)[:2000], "response": _text(r)[:2000]}
            | ({"score": float(scores[i])} if scores is not None else {})
            for i, (p, r) in enumerate(zip(prompts[: self.shown], responses, strict=False))
        ]

    def pop(self) -> list[dict] | None:
        pending, self.pending = self.pending, None
        return pending

    def __call__(self, step: int, prompts: list, responses: list, scores=None) -> None:
        self.add(step, prompts, responses, scores)
        if self.pending:
            self.progress(step, self.total, {"samples": self.pop()})


def _text(value) -> str:
    if isinstance(value, list):  # a chat: its messages as "role: content" lines
        return "\n".join(f"{m.get('role', '?')}: {m.get('content', '')}" for m in value)
    return str(value)
