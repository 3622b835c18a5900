"""The labeling API (contract: docs/api.md). Thin views over services and selectors.

Every object is reached through the caller's memberships, so another project's ids answer
404; no token answers 401.
"""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.decorators import api_view, throttle_classes
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from annotator import selectors, services
from annotator.answers import MAX_NOTES, STRENGTHS
from annotator.api_fields import (
    StrictCharField,
    StrictIntegerField,
    StrictModelSerializer,
    refuse_blank,
)
from annotator.audit import AuditEntry, audit_record
from annotator.exceptions import LabelerPaused, ServiceError
from annotator.importing import project_import
from annotator.models import Membership, Project
from annotator.throttling import ApiRateThrottle, ImportRateThrottle


def service_error_response(exc: ServiceError) -> Response:
    """A service's refusal as the API answers it: its status and {detail, field}."""
    return Response(exc.as_dict(), status=exc.status_code)


def _require_admin(role: str) -> None:
    if role != Membership.Role.ADMIN:
        raise PermissionDenied("Only the project's admins can do this.")


# --- Projects -------------------------------------------------------------------------------


def _between(name: str, low: int, high: int) -> dict:
    message = f"{name} must be between {low} and {high}."
    return {
        "min_value": low,
        "max_value": high,
        "error_messages": {"min_value": message, "max_value": message},
    }


@extend_schema_field(
    {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 200,
                                "pattern": r"\S"}, "uniqueItems": True}
)  # fmt: skip
class StringList(serializers.ListField):
    """A list of distinct, non-blank strings (flags, aspects)."""

    def __init__(self, **kwargs):
        child = serializers.CharField(max_length=200, trim_whitespace=False)
        super().__init__(child=child, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, list) and not all(isinstance(v, str) for v in data):
            raise serializers.ValidationError(f"{self.field_name} must be a list of strings.")
        value = super().to_internal_value(data)
        if not all(v.strip() for v in value):
            raise serializers.ValidationError(f"{self.field_name} must be non-empty strings.")
        if len(set(value)) != len(value):
            raise serializers.ValidationError(f"{self.field_name} has duplicates.")
        return value


class ProjectSerializer(StrictModelSerializer):
    flags = StringList(required=False, help_text="Likert flags labelers can tick.")
    aspects = StringList(required=False, help_text="Named aspects scored separately.")
    principles = StringList(required=False, help_text="Principles an edit's critique can name.")

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "guidelines",
            "kind",
            "overlap",
            "lease_seconds",
            "allow_tie",
            "allow_both_bad",
            "ask_strength",
            "wide_lines",
            "likert_points",
            "flags",
            "aspects",
            "gold_every",
            "gold_floor",
            "gold_min_answers",
            "repeat_share",
            "min_chars",
            "max_chars",
            "principles",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]
        # In the fields, so the schema states them too.
        extra_kwargs = {
            "overlap": _between("overlap", 1, 50),
            "lease_seconds": _between("lease_seconds", 10, 7 * 24 * 3600),
            "likert_points": _between("likert_points", 2, 10),
            "gold_every": _between("gold_every", 0, 1000),
            "gold_floor": _between("gold_floor", 0, 1),
            "gold_min_answers": _between("gold_min_answers", 1, 1000),
            "repeat_share": _between("repeat_share", 0, 1),
            "min_chars": _between("min_chars", 1, 100_000),
            "max_chars": _between("max_chars", 1, 100_000),
        }


@extend_schema(
    methods=["GET"], responses=ProjectSerializer(many=True), operation_id="v1_projects_list"
)
@extend_schema(methods=["POST"], request=ProjectSerializer, responses={201: ProjectSerializer})
@api_view(["GET", "POST"])
def project_list_create(request: Request) -> Response:
    if request.method == "GET":
        projects = selectors.projects_for_user(request.user).order_by("id")
        return Response(ProjectSerializer(projects, many=True).data)
    if not request.user.is_staff:
        raise PermissionDenied("Only staff can create projects.")
    serializer = ProjectSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    project = services.project_create(created_by=request.user, **serializer.validated_data)
    return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


@extend_schema(responses=ProjectSerializer)
@api_view(["GET"])
def project_detail(request: Request, project_id: int) -> Response:
    project, _ = selectors.project_get_for_member(project_id=project_id, user=request.user)
    return Response(ProjectSerializer(project).data)


class MemberSerializer(serializers.Serializer):
    username = StrictCharField(max_length=150, help_text="An existing account's username.")
    role = serializers.ChoiceField(choices=Membership.Role.choices)


@extend_schema(request=MemberSerializer, responses={201: MemberSerializer})
@api_view(["POST"])
def project_member_add(request: Request, project_id: int) -> Response:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    _require_admin(role)
    serializer = MemberSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    user = get_user_model().objects.filter(username=serializer.validated_data["username"]).first()
    if user is None:
        return Response(
            {"username": ["No user with this username."]}, status=status.HTTP_400_BAD_REQUEST
        )
    services.membership_set(project=project, user=user, role=serializer.validated_data["role"])
    audit_record(
        request=request, project=project, action=AuditEntry.Action.MEMBER_ROLE,
        target=f"user {user.username}", details={"role": serializer.validated_data["role"]},
    )  # fmt: skip
    return Response(
        {"username": user.username, "role": serializer.validated_data["role"]},
        status=status.HTTP_201_CREATED,
    )


def _too_big(size: int, *, slack: int = 0) -> Response | None:
    limit = settings.PREFLOOP_IMPORT_MAX_BYTES
    if size <= limit + slack:
        return None
    return Response(
        {
            "detail": f"The file is {size} bytes; imports are limited to {limit} bytes. "
            "Split it into several files.",
            "limit_bytes": limit,
        },
        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str | None  # the form field's file name; None for a raw body


def read_upload(request: Request) -> Upload | Response:
    """An import's file: the raw request body, or the `file` field of a multipart form. Refused
    with 413 before the body is read when its declared length is over PREFLOOP_IMPORT_MAX_BYTES
    (a form adds a little around the file), and with 400 when a form has no `file`."""
    multipart = request.content_type.startswith("multipart/")
    length = request.META.get("CONTENT_LENGTH", "")
    length = int(length) if length.isdigit() else 0
    if too_big := _too_big(length, slack=64 * 1024 if multipart else 0):
        return too_big
    if not multipart:
        return Upload(request.body, None)
    upload = request.FILES.get("file")
    if upload is None:
        return Response({"detail": "Send the file in a form field named 'file'."}, status=400)
    if too_big := _too_big(upload.size):
        return too_big
    return Upload(upload.read(), upload.name)


class ImportQuery(serializers.Serializer):
    format = serializers.ChoiceField(
        ["jsonl", "csv"], required=False, help_text="Default: from the content type or file name."
    )


class ImportOut(serializers.Serializer):
    tasks_created = serializers.IntegerField()


def upload_request(*media_types: str) -> dict:
    """An import's request body in the schema: the file itself under one of its media types, or
    a multipart form with the file in its `file` field."""
    return {
        **dict.fromkeys(media_types, bytes),
        "multipart/form-data": {
            "type": "object",
            "properties": {"file": {"type": "string", "format": "binary"}},
            "required": ["file"],
        },
    }


@extend_schema(
    request=upload_request("application/jsonl", "text/csv"),
    parameters=[ImportQuery],
    responses={201: ImportOut},
)
@api_view(["POST"])
@throttle_classes([ApiRateThrottle, ImportRateThrottle])
def project_import_view(request: Request, project_id: int) -> Response:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    _require_admin(role)
    refuse_blank(ImportQuery, request.query_params)
    upload = read_upload(request)
    if isinstance(upload, Response):
        return upload
    data, name = upload.data, (upload.filename or "").lower()
    fmt = request.query_params.get("format") or (
        "csv" if name.endswith(".csv") or (not name and "csv" in request.content_type) else "jsonl"
    )
    try:
        created = project_import(project=project, data=data, fmt=fmt)
    except ServiceError as exc:
        return service_error_response(exc)
    audit_record(
        request=request, project=project, action=AuditEntry.Action.IMPORT,
        details={"format": fmt, "bytes": len(data), "tasks_created": created},
    )  # fmt: skip
    return Response({"tasks_created": created}, status=status.HTTP_201_CREATED)


# --- Labeling -------------------------------------------------------------------------------


class CompletionOut(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()


class TaskOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    project = serializers.IntegerField()
    prompt = serializers.DictField()
    completions = CompletionOut(many=True)
    expires_at = serializers.DateTimeField()


@extend_schema(request=None, responses={200: TaskOut, 204: None})
@api_view(["POST"])
def task_next(request: Request, project_id: int) -> Response:
    project, _ = selectors.project_get_for_member(project_id=project_id, user=request.user)
    try:
        assignment = services.task_claim_next(project=project, labeler=request.user)
    except LabelerPaused as exc:  # under the project's gold floor: 403 saying why
        return service_error_response(exc)
    if assignment is None:
        return Response(status=status.HTTP_204_NO_CONTENT)
    # lease_view's dict is already what TaskOut describes (the schema); DRF's JSON encoder
    # writes expires_at as TaskOut's DateTimeField would. Spares a serializer per request.
    return Response(selectors.lease_view(assignment))


class AnswerIn(serializers.Serializer):
    """Loose on purpose: the answer's fields depend on the task kind (see answers.py)."""

    time_spent_ms = StrictIntegerField(
        required=False, allow_null=True, min_value=0, max_value=24 * 3600 * 1000
    )


# The answer as the schema shows it: which fields a task needs depends on its project (kind,
# tie / both-bad allowed, scale, aspects, flags), which answers.py checks and names in a 400.
ANSWER_SCHEMA = {
    "type": "object",
    "description": "Pairwise: `choice` (and `strength` for a or b); Likert: `score`, or "
    "`scores` per aspect when the project has aspects, and `flags`; ranking: `ranking`; "
    "demonstration: `text`; edit: `text`, `critique`, `principle`. "
    "`notes` and `time_spent_ms` for all. A field the task does not take, or a value the "
    "project does not allow (a tie where ties are off, a score above its scale, an unknown "
    "flag), is answered 400 naming it in `field`.",
    "properties": {
        "choice": {"type": "string", "enum": ["a", "b", "tie", "both_bad"]},
        "strength": {"type": "integer", "enum": sorted(STRENGTHS)},
        "score": {"type": "integer", "minimum": 1, "maximum": 10},
        "scores": {
            "type": "object",
            "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 10},
        },
        "flags": {"type": "array", "items": {"type": "string"}},
        "ranking": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
        "notes": {"type": "string", "maxLength": MAX_NOTES},
        "text": {"type": "string", "description": "The response written (demonstration) or "
                 "revised (edit), within the project's min_chars and max_chars."},
        "critique": {"type": "string", "maxLength": MAX_NOTES},
        "principle": {"type": "string", "description": "One of the project's principles."},
        "time_spent_ms": {
            "type": "integer", "minimum": 0, "maximum": 24 * 3600 * 1000, "nullable": True,
        },
    },
}  # fmt: skip


class AnnotationCreated(serializers.Serializer):
    id = serializers.IntegerField()
    late = serializers.BooleanField(help_text="Stored after the lease expired.")


@extend_schema(request={"application/json": ANSWER_SCHEMA}, responses={201: AnnotationCreated})
@api_view(["POST"])
def annotation_create(request: Request, task_id: int) -> Response:
    task = selectors.task_get_for_member(task_id=task_id, user=request.user)
    if not isinstance(request.data, dict):
        return Response({"detail": "Send a JSON object."}, status=status.HTTP_400_BAD_REQUEST)
    meta = AnswerIn(data=request.data)
    meta.is_valid(raise_exception=True)
    answer = {k: v for k, v in request.data.items() if k != "time_spent_ms"}
    try:
        result = services.annotation_submit(
            task=task,
            labeler=request.user,
            answer=answer,
            time_spent_ms=meta.validated_data.get("time_spent_ms"),
        )
    except ServiceError as exc:
        return service_error_response(exc)
    return Response(
        {"id": result.annotation.id, "late": result.late}, status=status.HTTP_201_CREATED
    )


class SkipIn(serializers.Serializer):
    reason = StrictCharField(required=False, allow_blank=True, max_length=200)


class Skipped(serializers.Serializer):
    skipped = serializers.IntegerField(help_text="The task's id.")


@extend_schema(request=SkipIn, responses={200: Skipped})
@api_view(["POST"])
def task_skip(request: Request, task_id: int) -> Response:
    task = selectors.task_get_for_member(task_id=task_id, user=request.user)
    data = SkipIn(data=request.data)
    data.is_valid(raise_exception=True)
    try:
        services.task_skip(
            task=task, labeler=request.user, reason=data.validated_data.get("reason", "")
        )
    except ServiceError as exc:
        return service_error_response(exc)
    return Response({"skipped": task.id})
