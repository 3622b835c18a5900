"""What an export is asked for: one validated, frozen set of parameters.

The API's query string and the management command's options both go through
`ExportQuery`, so the same words mean the same export everywhere.
"""

from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from fractions import Fraction

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotator.models import Project

SCHEMAS = [
    "preference", "preference-conversational", "ranking", "likert", "unpaired", "raw", "sft",
    "sft-conversational", "critiques",
]  # fmt: skip
FORMATS = ["jsonl", "csv", "parquet"]
AGGREGATES = ["majority", "all", "reliability"]
DB_INT_MAX = 2**31 - 1  # rounds and user ids are 32-bit integer columns
# Who made an annotation (annotator.models.LabelerKind): people, simulated labelers, AI judges,
# or an imported preference file (annotator/preference_import.py).
SOURCES = ["human", "simulated", "ai", "imported"]
# The schemas whose rows are pairs and can carry a per-source `weight` (`source_weight`).
WEIGHTED_SCHEMAS = ("preference", "preference-conversational", "preference-native")
MAX_SOURCE_WEIGHT = 100.0
# One `source_weight` item as the schema states it: a source, a colon and a number above 0 and
# at most 100 (source_weights_from also refuses a source named twice).
SOURCE_WEIGHT_PATTERN = (
    rf"^({'|'.join(SOURCES)}):\s*(0*[1-9][0-9]?(\.[0-9]+)?|0*\.[0-9]*[1-9][0-9]*|0*100(\.0+)?)$"
)

# The InstructGPT flags that say a response is harmful (the others say it is off-task or
# opinionated). A completion with any of them is never exported as the chosen one.
HARM_FLAGS = (
    "Contains sexual content",
    "Contains violent content",
    "Encourages or fails to discourage violence/abuse/terrorism/self-harm",
    "Denigrates a protected class",
    "Gives harmful advice",
)


@dataclass(frozen=True)
class ExportParams:
    schema: str = "preference"
    format: str = "jsonl"
    aggregate: str = "majority"
    min_votes: int = 1
    min_agreement: float = 0.0
    since: datetime | None = None
    until: datetime | None = None  # None: now, fixed when the export starts
    split: str | None = None
    round: int | None = None
    labelers: tuple[int, ...] = ()
    harmful_flags: tuple[str, ...] | None = None  # None: HARM_FLAGS the project uses
    allow_harmful_chosen: bool = False
    aspect: str | None = None
    likert_threshold: float | None = None  # None: the middle of the project's scale
    exclude_rejected: bool = True  # leave out answers a reviewer rejected
    reviewed_only: bool = False  # only answers a reviewer accepted or overrode
    min_labeler_reliability: float | None = None  # drop labelers estimated below this
    source: str | None = None  # None: every kind of labeler (SOURCES)
    # ((source, weight), ...): pair rows gain a `weight`, the mean of their labelers' sources'
    # weights (1 for a source not named), which reward training multiplies each row's loss by.
    source_weights: tuple[tuple[str, float], ...] = ()
    posterior_margin: bool = False  # reliability: margin = 2 * posterior - 1
    revisions: bool = True  # edit tasks' revisions: sft rows, and preferences over originals
    ids: bool = True  # False: leave out the columns that name this database's rows (ID_COLUMNS)
    # Worked out when the export starts (annotator.export.quality), never asked for.
    excluded_labelers: tuple[int, ...] = field(default=(), repr=False)
    model: object = field(default=None, compare=False, hash=False, repr=False)

    def pinned(self) -> "ExportParams":
        """The same export with `until` fixed, so repeating it gives the same bytes."""
        return self if self.until is not None else replace(self, until=timezone.now())

    def harm_flags_for(self, project: Project) -> tuple[str, ...]:
        if self.harmful_flags is not None:
            return self.harmful_flags
        return tuple(f for f in HARM_FLAGS if f in (project.flags or []))

    def threshold_for(self, project: Project) -> Fraction:
        if self.likert_threshold is not None:
            return Fraction(str(self.likert_threshold))
        return Fraction(1 + project.likert_points, 2)

    def as_query(self) -> dict:
        """The query parameters that ask for exactly this export (defaults left out)."""
        query: dict = {}
        for name, default in vars(ExportParams()).items():
            if name in DERIVED:
                continue
            value = getattr(self, name)
            if value == default:
                continue
            if isinstance(value, datetime):
                value = value.isoformat()
            if name == "source_weights":
                value = tuple(f"{source}:{weight:g}" for source, weight in value)
            key = {
                "labelers": "labeler", "harmful_flags": "harmful_flag",
                "source_weights": "source_weight",
            }.get(name, name)  # fmt: skip
            query[key] = list(value) if isinstance(value, tuple) else value
        return query


DERIVED = {"excluded_labelers", "model"}
assert DERIVED <= {f.name for f in fields(ExportParams)}


@extend_schema_field({"type": "string", "pattern": SOURCE_WEIGHT_PATTERN, "maxLength": 60})
class SourceWeightItem(serializers.CharField):
    """One `source_weight` item; the schema states its form, source_weights_from checks it
    with a message naming what is wrong."""


class ExportQuery(serializers.Serializer):
    """Query parameters of an export (validated against the project by `params_from_query`)."""

    schema = serializers.ChoiceField(SCHEMAS, default="preference")
    format = serializers.ChoiceField(FORMATS, default="jsonl")
    aggregate = serializers.ChoiceField(
        AGGREGATES,
        default="majority",
        help_text="majority: one row per task (or pair) by majority vote; all: one per answer; "
        "reliability: one per pairwise task by the Dawid-Skene posterior (rankings and Likert "
        "as majority).",
    )
    min_votes = serializers.IntegerField(default=1, min_value=1, max_value=1000)
    min_agreement = serializers.FloatField(
        default=0.0, min_value=0.0, max_value=1.0, help_text="Share of labelers who agree."
    )
    since = serializers.DateTimeField(required=False, help_text="Annotations at or after.")
    until = serializers.DateTimeField(
        required=False, help_text="Annotations before; default now (sent as X-Export-Until)."
    )
    split = serializers.ChoiceField(["train", "eval"], required=False)
    round = serializers.IntegerField(required=False, min_value=0, max_value=DB_INT_MAX)
    labeler = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=DB_INT_MAX),
        required=False,
        help_text="Only these labelers' annotations (user ids; repeat the parameter).",
    )
    harmful_flag = serializers.ListField(
        child=serializers.CharField(max_length=500),
        required=False,
        help_text="Flags that make a completion harmful (repeat); default: InstructGPT harm flags.",
    )
    allow_harmful_chosen = serializers.BooleanField(default=False)
    aspect = serializers.CharField(
        required=False, max_length=200, help_text="Likert aspect to use (default: their mean)."
    )
    likert_threshold = serializers.FloatField(
        required=False, help_text="Unpaired: Likert mean above is good, below is bad."
    )
    min_labeler_reliability = serializers.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        help_text="Leave out labelers whose estimated reliability (pairwise answers) is lower.",
    )
    source = serializers.ChoiceField(
        SOURCES,
        required=False,
        help_text="Only answers by people (human), simulated labelers, AI judges (ai) or read "
        "from an imported preference file (imported); default: all.",
    )
    source_weight = serializers.ListField(
        child=SourceWeightItem(max_length=60),
        required=False,
        help_text="source:weight, e.g. ai:0.5 (repeat the parameter; sources as for `source`, "
        "weights above 0 and at most 100): pair rows gain a `weight` column, the mean of their "
        "labelers' sources' weights (1 for a source not named), which reward training "
        "multiplies each row's loss by. Pair schemas only (preference, "
        "preference-conversational).",
    )
    posterior_margin = serializers.BooleanField(
        default=False,
        help_text="aggregate=reliability: the row's margin is 2p - 1, p the posterior of its "
        "chosen response, instead of the mean strength.",
    )
    exclude_rejected = serializers.BooleanField(
        default=True, help_text="Leave out answers a reviewer rejected."
    )
    revisions = serializers.BooleanField(
        default=True,
        help_text="Include edit tasks' revisions: in sft as rows, in preference and unpaired as "
        "the revision preferred over the original (source `edit`).",
    )
    reviewed_only = serializers.BooleanField(
        default=False, help_text="Only answers a reviewer accepted or overrode."
    )
    ids = serializers.BooleanField(
        default=True,
        help_text="false: leave out the columns that name this database's rows (task, prompt, "
        "completion, annotation and labeler ids, group), so the file depends on the labels "
        "alone: imported into another project, it exports the same bytes.",
    )


def params_from_query(*, project: Project, data) -> ExportParams:
    """Validate a query dict (or QueryDict) for one project; raises ValidationError (400)."""
    query = ExportQuery(data=data)
    query.is_valid(raise_exception=True)
    v = query.validated_data
    errors = {}
    aspect = v.get("aspect")
    if aspect is not None and aspect not in (project.aspects or []):
        errors["aspect"] = [f"The project has no aspect {aspect!r}."]
    flags = v.get("harmful_flag")
    if flags is not None:
        unknown = [f for f in flags if f not in (project.flags or [])]
        if unknown:
            errors["harmful_flag"] = [f"Not a flag of this project: {'; '.join(unknown)}."]
    try:
        weights = source_weights_from(v.get("source_weight") or [])
    except ValueError as exc:
        errors["source_weight"] = [str(exc)]
    else:
        if weights and v["schema"] not in WEIGHTED_SCHEMAS:
            errors["source_weight"] = [
                f"Per-source weights go on pair rows: schema preference or "
                f"preference-conversational, not {v['schema']}."
            ]
    if errors:
        raise serializers.ValidationError(errors)
    return ExportParams(
        schema=v["schema"],
        format=v["format"],
        aggregate=v["aggregate"],
        min_votes=v["min_votes"],
        min_agreement=v["min_agreement"],
        since=v.get("since"),
        until=v.get("until"),
        split=v.get("split"),
        round=v.get("round"),
        labelers=tuple(sorted(set(v.get("labeler") or []))),
        harmful_flags=tuple(flags) if flags is not None else None,
        allow_harmful_chosen=v["allow_harmful_chosen"],
        aspect=aspect,
        likert_threshold=v.get("likert_threshold"),
        min_labeler_reliability=v.get("min_labeler_reliability"),
        source=v.get("source"),
        source_weights=weights,
        posterior_margin=v["posterior_margin"],
        exclude_rejected=v["exclude_rejected"],
        reviewed_only=v["reviewed_only"],
        revisions=v["revisions"],
        ids=v["ids"],
    )


def source_weights_from(items) -> tuple[tuple[str, float], ...]:
    """``["ai:0.5", ...]`` or ``{"ai": 0.5, ...}`` -> ``(("ai", 0.5), ...)`` sorted by source;
    ValueError with a message naming the bad item."""
    pairs = []
    if isinstance(items, dict):
        pairs = list(items.items())
    else:
        for item in items:
            name, sep, weight = str(item).partition(":")
            if not sep:
                raise ValueError(f"{item!r}: write source:weight, e.g. ai:0.5.")
            pairs.append((name.strip(), weight.strip()))
    out: dict[str, float] = {}
    for name, weight in pairs:
        if name not in SOURCES:
            raise ValueError(f"{name!r} is not a source; sources: {', '.join(SOURCES)}.")
        if name in out:
            raise ValueError(f"{name!r} is given twice.")
        try:
            if isinstance(weight, bool):
                raise ValueError
            number = float(weight)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: the weight {weight!r} is not a number.") from None
        if not 0 < number <= MAX_SOURCE_WEIGHT:  # also refuses nan
            raise ValueError(
                f"{name}: the weight must be above 0 and at most {MAX_SOURCE_WEIGHT:g} "
                f"(leave a source out with `source` instead)."
            )
        out[name] = number
    return tuple(sorted(out.items()))
