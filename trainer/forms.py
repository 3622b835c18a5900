"""The job launch form: one field per config field of the kind, plus its dataset fields.

The fields come from the algorithm's config dataclass (trainer/configs.py), so a new config
field shows up on the form by itself. Each posted value is parsed to its default's type
(int, float, bool, str; dict or list as JSON; a field whose default is None by its type
annotation, blank meaning None; a field typed `X | None` takes a blank as None too) with a
message naming the field when it does not parse. Only
values that differ from the default are sent to services.job_create, which fills in the rest
and validates the whole config.

Posted names: `config__<name>`, `dataset__<name>`, `input_model`, `reward_model`.
"""

import dataclasses
import json
import math
import re
from dataclasses import dataclass

from django import forms
from django.http import QueryDict

from annotator.models import Prompt
from trainer.configs import config_class, config_fields
from trainer.kinds import LABEL_KINDS, OUTCOME_KINDS
from trainer.models import ModelVersion
from webapp import safejson

TYPES = ("bool", "int", "float", "str", "json")

# The dataset keys of trainer/snapshots.py the form offers, with their help.
LABEL_DATASET = [
    ("min_votes", "int", "Only tasks with at least this many answers (default 1)."),
    ("min_agreement", "float", "Only tasks whose majority share is at least this, 0 to 1."),
    ("split", "split", "Train only: eval-split prompts are held out of every training job."),
    ("round", "int", "Only tasks made by this loop round (default: all)."),
]
PROMPT_DATASET = [
    (
        "split",
        "split",
        "Generate jobs: only prompts of this split (default: all). Training jobs "
        "always take train-split prompts only.",
    ),
    ("max_prompts", "int", "Use at most this many prompts, oldest first (default: all)."),
]
OUTCOME_DATASET = [
    (
        "source",
        "str",
        "Where the outcome per (query, strategy) comes from: imported, gold, likert, pairwise, "
        "or auto (the first of these the project has; default).",
    ),
    (
        "likert_threshold",
        "int",
        "Likert source: a rating at or above this is a success (default: the scale's middle).",
    ),
]


@dataclass
class Field:
    name: str
    type: str  # one of TYPES, or "split" (a select of the prompt splits)
    default: object = None
    help: str = ""
    optional: bool = False  # blank means None / left out
    required: bool = False  # no default: the form must give it (or a picked model fills it)
    value: object = ""  # what the input shows: a string, or a bool for checkboxes
    error: str = ""

    @property
    def default_text(self) -> str:
        return _text(self.default, self.type)


def _text(value, type_: str) -> str:
    if value is None:
        return ""
    if type_ == "json":
        return json.dumps(value)
    return str(value)


def _type_of(default, annotation) -> tuple[str, bool]:
    """(type, optional) of a config field: its default's type; when the default is None,
    the first type its annotation names (`float | None` is an optional float)."""
    # `float | None = 1.0`: a number by default, and blank turns it off.
    optional = default is None or re.search(r"\bNone\b", str(annotation)) is not None
    if default is None:
        names = re.findall(r"\b(bool|int|float|str|dict|list)\b", str(annotation))
        found = names[0] if names else "str"
        return ("json" if found in ("dict", "list") else found), True
    if isinstance(default, bool):
        return "bool", False
    for type_ in (int, float, str):
        if isinstance(default, type_):
            return type_.__name__, optional
    return "json", optional


def config_form_fields(kind: str) -> list[Field]:
    annotations = {f.name: f.type for f in dataclasses.fields(config_class(kind))}
    fields = []
    for spec in config_fields(kind):
        type_, optional = _type_of(spec["default"], annotations.get(spec["name"]))
        field = Field(spec["name"], type_, spec["default"], spec["help"], optional)
        field.required = bool(spec.get("required"))
        field.value = field.default if type_ == "bool" else field.default_text
        fields.append(field)
    return fields


SFT_DEMONSTRATIONS_HELP = (
    "Train on the labelers' written demonstrations and revisions (docs/demonstrations.md) "
    "instead of each prompt's best-judged response."
)

SOURCE_WEIGHTS_HELP = (
    "Weigh each row's loss by who labeled it, e.g. {\"ai\": 0.5}: AI judges' labels at half "
    "weight (sources: human, simulated, ai, imported; 1 for a source not named)."
)


def dataset_form_fields(kind: str) -> list[Field]:
    specs = LABEL_DATASET if kind in LABEL_KINDS else PROMPT_DATASET
    if kind in OUTCOME_KINDS:
        specs = OUTCOME_DATASET
    fields = [Field(name, type_, None, help_, optional=True) for name, type_, help_ in specs]
    if kind == "sft":
        fields.append(Field("demonstrations", "bool", False, SFT_DEMONSTRATIONS_HELP))
    if kind == "reward":
        fields.append(Field("source_weights", "json", None, SOURCE_WEIGHTS_HELP, optional=True))
    return fields


def parse_value(field: Field, raw: str):
    """The posted text as the field's type; ValueError with a message for the user."""
    raw = raw.strip()
    if raw == "" and field.optional:
        return None
    if field.type == "int":
        try:
            return int(raw)
        except ValueError:
            raise ValueError("Enter a whole number.") from None
    if field.type == "float":
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("Enter a number, such as 0.5 or 1e-5.") from None
        if not math.isfinite(value):
            raise ValueError("Enter a finite number.")
        return value
    if field.type == "json":
        try:
            value = safejson.loads(raw)  # refuses what the database cannot store
        except json.JSONDecodeError as exc:
            raise ValueError(f"Enter valid JSON ({exc.msg}).") from None
        if isinstance(field.default, dict) and not isinstance(value, dict):
            raise ValueError('Enter a JSON object, such as {"key": "value"}.')
        if isinstance(field.default, list) and not isinstance(value, list):
            raise ValueError("Enter a JSON list, such as [1, 2].")
        return value
    if field.type == "split":
        if raw not in Prompt.Split.values:
            raise ValueError(f"Pick one of: {', '.join(Prompt.Split.values)}.")
        return raw
    return safejson.check_text(raw)  # a NUL or lone surrogate: a message, not a 500


def parse_fields(fields: list[Field], data: QueryDict, prefix: str) -> dict:
    """The values that differ from their defaults; sets each field's value and error.

    A field that was not posted at all keeps its default, except a checkbox: unchecked."""
    values = {}
    for field in fields:
        key = f"{prefix}__{field.name}"
        if field.type == "bool":
            field.value = key in data  # an unchecked box is not posted
            value = field.value
        elif key not in data:
            continue  # not on the form that was sent: the default
        else:
            field.value = data.get(key, "")
            try:
                value = parse_value(field, field.value)
            except ValueError as exc:
                field.error = str(exc)
                continue
        if value != field.default:  # a blank optional field is None: sent when not the default
            values[field.name] = value
    return values


class ModelRegisterForm(forms.Form):
    """Register a base model by local path or hub id (trainer/model_services.py checks it)."""

    name = forms.CharField(max_length=200, help_text="How the launch forms list it.")
    role = forms.ChoiceField(choices=ModelVersion.Role.choices, initial=ModelVersion.Role.POLICY)
    path = forms.CharField(
        max_length=1000,
        label="Path or hub id",
        help_text="A checkpoint directory on the workers (/models/base) or a Hugging Face id "
        "(Qwen/Qwen2.5-0.5B-Instruct).",
    )
