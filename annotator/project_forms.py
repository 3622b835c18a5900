"""Forms of the project setup and export pages (annotator/project_views.py)."""

from django import forms

from annotator.export import FORMATS, SCHEMAS
from annotator.models import Membership, Project, Prompt

MAX_LIST_ITEMS = 50
MAX_ITEM_CHARS = 200


class LinesField(forms.CharField):
    """A list of short texts, typed one per line (flags, aspects): no JSON to write."""

    widget = forms.Textarea(attrs={"rows": 4, "spellcheck": "false"})

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(strip=False, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return "\n".join(str(v) for v in value)
        return value

    def to_python(self, value) -> list[str]:
        text = super().to_python(value) or ""
        items = [line.strip() for line in text.splitlines() if line.strip()]
        seen, repeated = set(), []
        for item in items:
            if item.casefold() in seen:
                repeated.append(item)
            seen.add(item.casefold())
        if repeated:
            raise forms.ValidationError(f"“{repeated[0]}” is listed twice; keep one.")
        if len(items) > MAX_LIST_ITEMS:
            raise forms.ValidationError(f"At most {MAX_LIST_ITEMS} lines.")
        long = next((i for i in items if len(i) > MAX_ITEM_CHARS), None)
        if long:
            raise forms.ValidationError(
                f"“{long[:40]}…” is too long: at most {MAX_ITEM_CHARS} characters a line."
            )
        return items


class ProjectForm(forms.ModelForm):
    flags = LinesField(
        label="Flags",
        help_text="Likert: problems a labeler can tick, one per line.",
    )
    aspects = LinesField(
        label="Aspects",
        help_text="Likert: qualities scored separately, one per line (e.g. helpful, honest). "
        "None: one overall score.",
    )

    principles = LinesField(
        label="Principles",
        help_text="Edit tasks: principles a critique can name, one per line.",
    )

    class Meta:
        model = Project
        fields = [
            "name", "kind", "guidelines", "overlap", "lease_seconds", "allow_tie",
            "allow_both_bad", "ask_strength", "wide_lines", "likert_points", "flags", "aspects",
            "gold_every", "gold_floor", "gold_min_answers", "repeat_share", "min_chars",
            "max_chars", "principles",
        ]  # fmt: skip
        labels = {
            "allow_tie": "Allow “tie”",
            "allow_both_bad": "Allow “both bad”",
            "ask_strength": "Ask how much better",
            "wide_lines": "Lines with more than two responses",
            "likert_points": "Likert scale: points",
            "lease_seconds": "Lease (seconds)",
            "overlap": "Labelers per task",
            "gold_every": "Gold: one task in",
            "gold_floor": "Gold: pause a labeler under this accuracy",
            "gold_min_answers": "Gold: answers before the floor applies",
            "repeat_share": "Swap repeats: share of pairwise answers asked again",
            "min_chars": "Shortest response (characters)",
            "max_chars": "Longest response (characters)",
        }
        help_texts = {
            "guidelines": "Markdown, shown to labelers on every task.",
            "likert_points": "Scores run from 1 to this, 2 to 10.",
        }
        widgets = {"guidelines": forms.Textarea(attrs={"rows": 10})}

    def clean_gold_every(self) -> int:
        # Optional on the page: empty means no gold tasks.
        return self.cleaned_data.get("gold_every") or 0

    def clean_gold_min_answers(self) -> int:
        return self.cleaned_data.get("gold_min_answers") or 10

    def clean_repeat_share(self) -> float:
        return self.cleaned_data.get("repeat_share") or 0.0

    def clean_min_chars(self) -> int:
        return self.cleaned_data.get("min_chars") or 1

    def clean_max_chars(self) -> int:
        value = self.cleaned_data.get("max_chars") or 20_000
        if value < (self.cleaned_data.get("min_chars") or 1):
            raise forms.ValidationError("The longest response must be at least the shortest.")
        return value

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("gold_every", "gold_min_answers", "repeat_share", "min_chars", "max_chars"):
            self.fields[name].required = False
        # The list fields start from the project's lists (a new project: the default flags).
        for name in ("flags", "aspects", "principles"):
            if self.initial.get(name) is None:
                self.initial[name] = getattr(self.instance, name)

    def clean_likert_points(self) -> int:
        value = self.cleaned_data["likert_points"]
        if not 2 <= value <= 10:
            raise forms.ValidationError("Pick a scale of 2 to 10 points.")
        return value

    def clean_overlap(self) -> int:
        value = self.cleaned_data["overlap"]
        if value < 1:
            raise forms.ValidationError("At least one labeler must answer each task.")
        return value

    def clean_lease_seconds(self) -> int:
        value = self.cleaned_data["lease_seconds"]
        if value < 30:
            raise forms.ValidationError("Give labelers at least 30 seconds.")
        return value


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150, label="Username")
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.LABELER)


class ExportForm(forms.Form):
    """The export panel's choices; the same names as the API's query (annotator/export)."""

    schema = forms.ChoiceField(choices=[(s, s) for s in SCHEMAS], initial="preference")
    format = forms.ChoiceField(choices=[(f, f) for f in FORMATS], initial="jsonl")
    aggregate = forms.ChoiceField(
        choices=[
            ("majority", "majority: one row per task (or pair)"),
            ("all", "all: one row per answer"),
        ],
        initial="majority",
    )
    min_votes = forms.IntegerField(min_value=1, max_value=1000, initial=1, label="Minimum votes")
    min_agreement = forms.FloatField(
        min_value=0.0, max_value=1.0, initial=0.0, label="Minimum agreement",
        help_text="Share of labelers who agree, 0 to 1.",
    )  # fmt: skip
    split = forms.ChoiceField(
        choices=[("", "All"), *Prompt.Split.choices], required=False, label="Split"
    )
    round = forms.IntegerField(min_value=0, required=False, label="Loop round")

    @classmethod
    def with_defaults(cls, data) -> dict:
        """The posted choices over the defaults: a link may name only what differs."""
        values = {name: f.initial for name, f in cls.base_fields.items() if f.initial is not None}
        return values | {name: data.get(name) for name in cls.base_fields if name in data}

    def query(self) -> dict:
        """The API query for these choices (defaults and blanks left out)."""
        query = {}
        for name, value in self.cleaned_data.items():
            if value in (None, "") or value == self.fields[name].initial:
                continue
            query[name] = value
        return query
