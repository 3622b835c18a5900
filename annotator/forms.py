"""The browser's forms: answers, skip and import.

An answer is posted as plain form fields (so it works without JavaScript) and turned here into
the same answer dict the API takes; annotator/answers.py then checks it for both. The field
names:
- pairwise: choice (a | b | tie | both_bad), strength ("" | 1 | 2 | 3);
- likert: score, or score__<i> for the i-th aspect; flag (repeated: indexes into project.flags);
- ranking: rank__<p> = the rank (1 = best) given to the p-th response as shown (1-based);
- demonstration: text; edit: text, critique, principle (an index into project.principles);
- every kind: notes, time_spent_ms.
"""

from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.http import QueryDict

from annotator.answers import STRENGTHS
from annotator.exceptions import InvalidAnswer
from annotator.models import Kind, Project

MAX_TIME_SPENT_MS = 24 * 3600 * 1000
IMPORT_FORMATS = [("auto", "From the file name"), ("jsonl", "JSONL"), ("csv", "CSV")]


def _int_or_raw(value: str | None):
    """An int when the field holds one; otherwise the raw value, which answers.py rejects."""
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return value


def answer_from_post(*, kind: str, project: Project, shown_order: list[int], data: QueryDict):
    """The answer dict for services.annotation_submit, from the posted form fields."""
    answer: dict = {"notes": data.get("notes", "")}
    if kind == Kind.PAIRWISE:
        answer["choice"] = data.get("choice") or None
        strength = _int_or_raw(data.get("strength"))
        if strength is not None:
            answer["strength"] = strength
    elif kind == Kind.LIKERT:
        if project.aspects:
            answer["scores"] = {
                aspect: _int_or_raw(data.get(f"score__{i}"))
                for i, aspect in enumerate(project.aspects)
            }
        else:
            answer["score"] = _int_or_raw(data.get("score"))
        answer["flags"] = _flags(project=project, values=data.getlist("flag"))
    elif kind == Kind.DEMONSTRATION:
        answer["text"] = data.get("text", "")
    elif kind == Kind.EDIT:
        answer["text"] = data.get("text", "")
        answer["critique"] = data.get("critique", "")
        index = _int_or_raw(data.get("principle"))
        principles = project.principles or []
        if isinstance(index, int) and 0 <= index < len(principles):
            answer["principle"] = principles[index]
        elif index is not None:
            raise InvalidAnswer(
                "Pick one of this project's principles, or none.", field="principle"
            )
    else:
        answer["ranking"] = _ranking(shown_order=shown_order, data=data)
    return answer


def _flags(*, project: Project, values: list[str]) -> list[str]:
    flags = []
    for value in values:
        index = _int_or_raw(value)
        if not isinstance(index, int) or not 0 <= index < len(project.flags):
            raise InvalidAnswer(
                "One of the ticked flags is not one of this project's.", field="flags"
            )
        flags.append(project.flags[index])
    return flags


def _ranking(*, shown_order: list[int], data: QueryDict) -> list[int]:
    ranks = [_int_or_raw(data.get(f"rank__{p}")) for p in range(1, len(shown_order) + 1)]
    if sorted(r for r in ranks if isinstance(r, int)) != list(range(1, len(shown_order) + 1)):
        raise InvalidAnswer(
            f"Give every response its own rank, from 1 (best) to {len(shown_order)} (worst).",
            field="ranking",
        )
    by_rank = sorted(zip(ranks, shown_order, strict=True))
    return [completion_id for _, completion_id in by_rank]


def time_spent_from_post(data: QueryDict) -> int | None:
    """What the page measured, or None when it sent nothing usable."""
    value = _int_or_raw(data.get("time_spent_ms"))
    if isinstance(value, int) and 0 <= value <= MAX_TIME_SPENT_MS:
        return value
    return None


# --- What the answer form shows (with the posted values kept after an error) ------------------


@dataclass(frozen=True)
class Option:
    value: str
    label: str
    key: str  # the keyboard shortcut shown beside it
    checked: bool = False


def _digit_key(n: int) -> str:
    return "0" if n == 10 else str(n)


def answer_widgets(*, kind: str, project: Project, n_responses: int, posted: QueryDict) -> dict:
    """Options for the answer form of one task; `posted` re-checks what was sent."""
    widgets: dict = {"notes": posted.get("notes", "")}
    if kind == Kind.PAIRWISE:
        choices = [("a", "A is better", "1"), ("b", "B is better", "2")]
        if project.allow_tie:
            choices.append(("tie", "Tie", "0"))
        if project.allow_both_bad:
            choices.append(("both_bad", "Both bad", "9"))
        chosen = posted.get("choice")
        widgets["choices"] = [Option(v, label, key, v == chosen) for v, label, key in choices]
        strength = posted.get("strength", "")
        widgets["strengths"] = [Option("", "Not said", "", strength == "")] + [
            Option(str(n), text, key, strength == str(n))
            for (n, text), key in zip(STRENGTHS.items(), "qwe", strict=True)
        ]
    elif kind == Kind.LIKERT:
        points = range(1, project.likert_points + 1)

        def scale(field: str) -> list[Option]:
            value = posted.get(field)
            return [Option(str(n), str(n), _digit_key(n), value == str(n)) for n in points]

        if project.aspects:
            widgets["aspects"] = [
                {
                    "index": i,
                    "name": aspect,
                    "field": f"score__{i}",
                    "options": scale(f"score__{i}"),
                }
                for i, aspect in enumerate(project.aspects)
            ]
        else:
            widgets["scale"] = scale("score")
        checked = set(posted.getlist("flag"))
        widgets["flags"] = [
            Option(str(i), flag, f"⇧{_digit_key(i + 1)}" if i < 10 else "", str(i) in checked)
            for i, flag in enumerate(project.flags)
        ]
    elif kind in (Kind.DEMONSTRATION, Kind.EDIT):
        widgets["text"] = posted.get("text")  # None: start from the draft (or the original)
        widgets["critique"] = posted.get("critique", "")
        chosen = posted.get("principle", "")
        widgets["principles"] = [
            Option(str(i), p, "", str(i) == chosen) for i, p in enumerate(project.principles or [])
        ]
    else:
        widgets["ranks"] = {p: posted.get(f"rank__{p}", "") for p in range(1, n_responses + 1)}
        widgets["rank_choices"] = [str(r) for r in range(1, n_responses + 1)]
    return widgets


# --- Skip and import ------------------------------------------------------------------------


class SkipForm(forms.Form):
    # No max_length: services.task_skip keeps the first 200 characters rather than losing all.
    reason = forms.CharField(required=False, strip=True)


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSONL or CSV, UTF-8.")
    format = forms.ChoiceField(choices=IMPORT_FORMATS, initial="auto")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.PREFLOOP_IMPORT_MAX_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"The file is {upload.size} bytes; imports are limited to {limit} bytes. "
                "Split it into several files."
            )
        return upload

    def fmt(self) -> str:
        chosen = self.cleaned_data["format"]
        if chosen != "auto":
            return chosen
        return "csv" if self.cleaned_data["file"].name.lower().endswith(".csv") else "jsonl"


class PreferenceImportForm(ImportForm):
    """An existing preference file (annotator/preference_import.py)."""

    prefix = "pref"
    file = forms.FileField(help_text="JSONL or Parquet in TRL's preference forms.")
    format = forms.ChoiceField(
        choices=[("auto", "From the file name"), ("jsonl", "JSONL"), ("parquet", "Parquet")],
        initial="auto",
    )

    def fmt(self) -> str:
        chosen = self.cleaned_data["format"]
        if chosen != "auto":
            return chosen
        name = self.cleaned_data["file"].name.lower()
        return "parquet" if name.endswith(".parquet") else "jsonl"


def answer_to_post(
    *, kind: str, project: Project, shown_order: list[int], fields: dict
) -> QueryDict:
    """The form fields that show a stored answer (services.answer_fields) again, so it can
    be changed: the reverse of answer_from_post."""
    data = QueryDict(mutable=True)
    data["notes"] = fields.get("notes") or ""
    if kind == Kind.PAIRWISE:
        verdict = fields.get("verdict")
        if verdict == "preferred":
            data["choice"] = "a" if fields.get("chosen_id") == shown_order[0] else "b"
            if fields.get("strength"):
                data["strength"] = str(fields["strength"])
        elif verdict:
            data["choice"] = verdict  # "tie" / "both_bad": the same word on the form
    elif kind == Kind.LIKERT:
        scores = fields.get("scores") or {}
        for i, aspect in enumerate(project.aspects):
            if aspect in scores:
                data[f"score__{i}"] = str(scores[aspect])
        if fields.get("score") is not None:
            data["score"] = str(fields["score"])
        flags = set(fields.get("flags") or [])
        data.setlist("flag", [str(i) for i, flag in enumerate(project.flags) if flag in flags])
    elif kind in (Kind.DEMONSTRATION, Kind.EDIT):
        data["text"] = fields.get("text") or ""
        data["critique"] = fields.get("critique") or ""
        principles = project.principles or []
        if fields.get("principle") in principles:
            data["principle"] = str(principles.index(fields["principle"]))
    else:
        rank = {cid: r for r, cid in enumerate(fields.get("ranking") or [], start=1)}
        for position, completion_id in enumerate(shown_order, start=1):
            if completion_id in rank:
                data[f"rank__{position}"] = str(rank[completion_id])
    return data
