"""Prompt strategies and their outcomes over the REST API (docs/prompt-optimisation.md).

Project admins only: a labeler of the project gets 403, anyone else 404, no token 401.
"""

from django.core.validators import RegexValidator
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view, throttle_classes
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from annotator import selectors
from annotator.api import read_upload, service_error_response, upload_request
from annotator.api_fields import StrictCharField, refuse_blank
from annotator.exceptions import ServiceError
from annotator.models import Membership, Project, PromptStrategy
from annotator.strategies import services
from annotator.strategies.log_import import strategy_log_import
from annotator.strategies.outcomes import AUTO, SOURCES, OutcomeError, outcome_table
from annotator.throttling import ApiRateThrottle, ImportRateThrottle

DIGITS = 4


def _admin_project(request: Request, project_id: int) -> Project:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    if role != Membership.Role.ADMIN:
        raise PermissionDenied("Only the project's admins can do this.")
    return project


class StrategyOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    system_prompt = serializers.CharField(allow_blank=True)
    instruction = serializers.CharField(allow_blank=True)


def _name_field(**kwargs):
    return StrictCharField(
        max_length=100,
        validators=[RegexValidator(services.NAME.pattern)],
        help_text="Letters, digits, _ . or -, unique in the project.",
        **kwargs,
    )


class StrategyIn(serializers.Serializer):
    name = _name_field()
    system_prompt = StrictCharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=services.MAX_TEXT
    )
    instruction = StrictCharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=services.MAX_TEXT,
        help_text="Wrapped around the query: {query} marks where it goes.",
    )


class StrategyPatch(StrategyIn):
    name = _name_field(required=False)


class StrategiesOut(serializers.Serializer):
    strategies = StrategyOut(many=True)


def _out(strategy: PromptStrategy) -> dict:
    return StrategyOut(strategy).data


@extend_schema(methods=["GET"], responses=StrategiesOut)
@extend_schema(methods=["POST"], request=StrategyIn, responses={201: StrategyOut})
@api_view(["GET", "POST"])
def strategy_list_create(request: Request, project_id: int) -> Response:
    """The project's prompt strategies; POST adds one."""
    project = _admin_project(request, project_id)
    if request.method == "GET":
        strategies = PromptStrategy.objects.filter(project=project)
        return Response({"strategies": [_out(s) for s in strategies]})
    data = StrategyIn(data=request.data)
    data.is_valid(raise_exception=True)
    try:
        strategy = services.strategy_create(project=project, **data.validated_data)
    except ServiceError as exc:
        return service_error_response(exc)
    return Response(_out(strategy), status=status.HTTP_201_CREATED)


@extend_schema(methods=["PATCH"], request=StrategyPatch, responses=StrategyOut)
@extend_schema(methods=["DELETE"], responses={204: None})
@api_view(["PATCH", "DELETE"])
def strategy_detail(request: Request, project_id: int, strategy_id: int) -> Response:
    """Change a strategy's name or templates, or delete it (its logged outcomes stay)."""
    project = _admin_project(request, project_id)
    strategy = get_object_or_404(PromptStrategy, project=project, id=strategy_id)
    if request.method == "DELETE":
        services.strategy_delete(strategy=strategy)
        return Response(status=status.HTTP_204_NO_CONTENT)
    data = StrategyPatch(data=request.data)
    data.is_valid(raise_exception=True)
    try:
        services.strategy_update(strategy=strategy, **data.validated_data)
    except ServiceError as exc:
        return service_error_response(exc)
    return Response(_out(strategy))


class LogImportQuery(serializers.Serializer):
    format = serializers.ChoiceField(
        ["jsonl", "csv"], required=False, help_text="Default: from the content type or file name."
    )


class LogImportOut(serializers.Serializer):
    rows = serializers.IntegerField()
    queries = serializers.IntegerField()
    new_strategies = serializers.ListField(child=serializers.CharField())


@extend_schema(
    request=upload_request("application/jsonl", "text/csv"),
    parameters=[LogImportQuery],
    responses={201: LogImportOut},
)
@api_view(["POST"])
@throttle_classes([ApiRateThrottle, ImportRateThrottle])
def strategy_log_import_view(request: Request, project_id: int) -> Response:
    """Import an offline log of (query, strategy, response, outcome) rows, all or nothing."""
    project = _admin_project(request, project_id)
    refuse_blank(LogImportQuery, request.query_params)
    query = LogImportQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    fmt = query.validated_data.get("format")
    upload = read_upload(request)
    if isinstance(upload, Response):
        return upload
    data, name = upload.data, (upload.filename or "").lower()
    fmt = fmt or (
        "csv" if name.endswith(".csv") or (not name and "csv" in request.content_type) else "jsonl"
    )
    try:
        done = strategy_log_import(project=project, data=data, fmt=fmt)
    except ServiceError as exc:
        return service_error_response(exc)
    return Response(
        {"rows": done.rows, "queries": done.queries, "new_strategies": done.new_strategies},
        status=status.HTTP_201_CREATED,
    )


class OutcomeQuery(serializers.Serializer):
    source = serializers.ChoiceField(
        [AUTO, *SOURCES], required=False, help_text="Default auto: the first source with data."
    )
    likert_threshold = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=10,
        help_text="Likert: a rating at or above it is a success (default: the scale's middle).",
    )
    split = serializers.ChoiceField(["train", "eval"], required=False)


class OutcomeCell(serializers.Serializer):
    value = serializers.FloatField()
    n = serializers.IntegerField()


class OutcomeRowOut(serializers.Serializer):
    prompt_id = serializers.IntegerField()
    query = serializers.CharField(allow_blank=True)
    split = serializers.CharField()
    outcomes = serializers.DictField(child=OutcomeCell(), help_text="strategy -> cell")


class OutcomesOut(serializers.Serializer):
    source = serializers.CharField()
    likert_threshold = serializers.IntegerField(allow_null=True)
    strategies = serializers.ListField(child=serializers.CharField())
    rows = OutcomeRowOut(many=True)


@extend_schema(parameters=[OutcomeQuery], responses=OutcomesOut)
@api_view(["GET"])
def outcomes(request: Request, project_id: int) -> Response:
    """The query x strategy outcome table (a share from 0 to 1 per cell, and its count)."""
    project = _admin_project(request, project_id)
    refuse_blank(OutcomeQuery, request.query_params)
    query = OutcomeQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    params = query.validated_data
    try:
        table = outcome_table(
            project=project,
            source=params.get("source", AUTO),
            likert_threshold=params.get("likert_threshold"),
            split=params.get("split"),
        )
    except OutcomeError as exc:
        return Response({"detail": exc.message, "field": exc.field}, status=400)
    rows = [
        {
            "prompt_id": r.prompt_id,
            "query": r.query,
            "split": r.split,
            "outcomes": {
                s: {"value": round(c.value, DIGITS), "n": c.n} for s, c in r.cells.items()
            },
        }
        for r in table.rows
    ]
    return Response(
        {
            "source": table.source,
            "likert_threshold": table.likert_threshold,
            "strategies": table.strategies,
            "rows": rows,
        }
    )
