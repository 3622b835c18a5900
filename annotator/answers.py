"""Check a submitted answer against its task and turn it into Annotation fields.

The API and the labeler UI both send answers in one shape:
- pairwise: {"choice": "a" | "b" | "tie" | "both_bad", "strength"?: 1-3, "notes"?: str}
  where "a" / "b" are the first / second completion *as served* (the lease's shown order);
- likert: {"score": n, "flags"?: [...], "notes"?: str}, or {"scores": {aspect: n, ...}}
  when the project has aspects;
- ranking: {"ranking": [completion ids, best first], "notes"?: str};
- demonstration: {"text": the response written, "notes"?: str};
- edit: {"text": the revised response, "critique"?: str, "principle"?: one of the project's
  principles, "notes"?: str}.
What is stored refers to completion ids only, never to screen positions.
"""

from annotator.exceptions import InvalidAnswer
from annotator.models import Annotation, Kind, Project, Task

MAX_NOTES = 5000
STRENGTHS = {1: "slightly better", 2: "clearly better", 3: "much better"}
# How the answer's choices are named to people (the API's values are the keys).
CHOICE_NAMES = {"a": "A", "b": "B", "tie": "tie", "both_bad": "both bad"}


def _or_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _and_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def validate_answer(*, task: Task, project: Project, shown_order: list[int], answer: dict) -> dict:
    if not isinstance(answer, dict):
        raise InvalidAnswer("The answer must be a JSON object.")
    fields = {"notes": _notes(answer.get("notes"))}
    if task.kind == Kind.PAIRWISE:
        fields |= _pairwise(project=project, shown_order=shown_order, answer=answer)
    elif task.kind == Kind.LIKERT:
        fields |= _likert(project=project, answer=answer)
    elif task.kind == Kind.DEMONSTRATION:
        fields["text"] = _written(project=project, value=answer.get("text"))
    elif task.kind == Kind.EDIT:
        fields |= _edit(project=project, answer=answer)
    else:
        fields |= _ranking(shown_order=shown_order, answer=answer)
    return fields


def _notes(value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidAnswer("Notes must be text.", field="notes")
    if len(value) > MAX_NOTES:
        raise InvalidAnswer(f"Notes can be at most {MAX_NOTES:,} characters long.", field="notes")
    return value


def _pairwise(*, project: Project, shown_order: list[int], answer: dict) -> dict:
    choice = answer.get("choice")
    allowed = ["a", "b"]
    if project.allow_tie:
        allowed.append("tie")
    if project.allow_both_bad:
        allowed.append("both_bad")
    if choice not in allowed:
        raise InvalidAnswer(f"Pick {_or_list([CHOICE_NAMES[c] for c in allowed])}.", field="choice")
    strength = answer.get("strength")
    if strength is not None:
        if choice not in ("a", "b"):
            raise InvalidAnswer("Say how much better only when A or B is better.", field="strength")
        if not isinstance(strength, int) or isinstance(strength, bool) or strength not in STRENGTHS:
            raise InvalidAnswer(
                "Pick how much better: slightly (1), clearly (2) or much (3).", field="strength"
            )
    if choice == "tie":
        return {"verdict": Annotation.Verdict.TIE}
    if choice == "both_bad":
        return {"verdict": Annotation.Verdict.BOTH_BAD}
    first, second = shown_order[0], shown_order[1]
    chosen, rejected = (first, second) if choice == "a" else (second, first)
    return {
        "verdict": Annotation.Verdict.PREFERRED,
        "chosen_id": chosen,
        "rejected_id": rejected,
        "strength": strength,
    }


def _score(value, *, points: int, field: str, what: str = "the response") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= points:
        raise InvalidAnswer(f"Give {what} a score from 1 to {points}.", field=field)
    return value


def _likert(*, project: Project, answer: dict) -> dict:
    points = project.likert_points
    fields: dict = {}
    if project.aspects:
        scores = answer.get("scores")
        if not isinstance(scores, dict):
            raise InvalidAnswer(
                f"Give a score for each of {_and_list(project.aspects)}.", field="scores"
            )
        unknown = sorted(set(scores) - set(project.aspects))
        if unknown:
            raise InvalidAnswer(
                f"This project does not score {_and_list(unknown)}.", field="scores"
            )
        fields["scores"] = {
            aspect: _score(
                scores.get(aspect), points=points, field=f"scores.{aspect}", what=f"“{aspect}”"
            )
            for aspect in project.aspects
        }
    else:
        fields["score"] = _score(answer.get("score"), points=points, field="score")
    flags = answer.get("flags") or []
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise InvalidAnswer("Flags must be a list of the project's flag names.", field="flags")
    unknown_flags = [f for f in flags if f not in project.flags]
    if unknown_flags:
        raise InvalidAnswer(
            f"This project has no flag {'; '.join(unknown_flags)!s}.", field="flags"
        )
    # Keep the project's order and drop repeats, so equal answers are stored equally.
    fields["flags"] = [f for f in project.flags if f in set(flags)]
    return fields


def _written(*, project: Project, value) -> str:
    """A written response, its length within the project's bounds (ends' blanks aside)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidAnswer("Write the response.", field="text")
    value = value.strip()
    if len(value) < project.min_chars:
        raise InvalidAnswer(
            f"Write at least {project.min_chars:,} characters ({len(value):,} so far).",
            field="text",
        )
    if len(value) > project.max_chars:
        raise InvalidAnswer(
            f"Write at most {project.max_chars:,} characters ({len(value):,} now).", field="text"
        )
    return value


def _edit(*, project: Project, answer: dict) -> dict:
    critique = answer.get("critique") or ""
    if not isinstance(critique, str):
        raise InvalidAnswer("The critique must be text.", field="critique")
    if len(critique) > MAX_NOTES:
        raise InvalidAnswer(
            f"The critique can be at most {MAX_NOTES:,} characters long.", field="critique"
        )
    principle = answer.get("principle") or ""
    if principle and principle not in (project.principles or []):
        raise InvalidAnswer("Pick one of this project's principles, or none.", field="principle")
    return {
        "text": _written(project=project, value=answer.get("text")),
        "critique": critique.strip(),
        "principle": principle,
    }


def _ranking(*, shown_order: list[int], answer: dict) -> dict:
    ranking = answer.get("ranking")
    if (
        not isinstance(ranking, list)
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in ranking)
        or sorted(ranking) != sorted(shown_order)
    ):
        raise InvalidAnswer(
            "Rank every response once, best first: list each completion id of the task "
            "exactly once.",
            field="ranking",
        )
    return {"ranking": ranking}
