"""Import of existing preference data over the API (docs/import.md, "Preference data")."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view, throttle_classes
from rest_framework.request import Request
from rest_framework.response import Response

from annotator import selectors
from annotator.api import _require_admin, read_upload, service_error_response, upload_request
from annotator.api_fields import refuse_blank
from annotator.audit import AuditEntry, audit_record
from annotator.exceptions import ServiceError
from annotator.preference_import import FORMATS, preferences_import
from annotator.throttling import ApiRateThrottle, ImportRateThrottle


class PreferenceImportQuery(serializers.Serializer):
    format = serializers.ChoiceField(
        list(FORMATS), required=False, help_text="Default: from the content type or file name."
    )
    filename = serializers.CharField(
        required=False,
        max_length=200,
        help_text="Names the import's labeler account; default: the uploaded file's name.",
    )


class PreferenceImportOut(serializers.Serializer):
    preferences = serializers.IntegerField(help_text="Preferences stored, one task each.")
    prompts = serializers.IntegerField()
    labeler = serializers.CharField(help_text="The import's labeler account.")


def _format(name: str, content_type: str) -> str:
    parquet = name.lower().endswith(".parquet") or "parquet" in content_type
    return "parquet" if parquet else "jsonl"


@extend_schema(
    request=upload_request("application/jsonl", "application/vnd.apache.parquet"),
    parameters=[PreferenceImportQuery],
    responses={201: PreferenceImportOut},
)
@api_view(["POST"])
@throttle_classes([ApiRateThrottle, ImportRateThrottle])
def preferences_import_view(request: Request, project_id: int) -> Response:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    _require_admin(role)
    refuse_blank(PreferenceImportQuery, request.query_params)
    query = PreferenceImportQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    fmt, filename = query.validated_data.get("format"), query.validated_data.get("filename")
    upload = read_upload(request)
    if isinstance(upload, Response):
        return upload
    data = upload.data
    filename = filename or upload.filename or "upload"
    fmt = fmt or _format(filename, request.content_type)
    try:
        result = preferences_import(project=project, data=data, fmt=fmt, filename=filename)
    except ServiceError as exc:
        return service_error_response(exc)
    audit_record(
        request=request, project=project, action=AuditEntry.Action.IMPORT,
        details={"format": fmt, "bytes": len(data), "preferences": result.preferences,
                 "labeler": result.labeler},
    )  # fmt: skip
    out = {"preferences": result.preferences, "prompts": result.prompts, "labeler": result.labeler}
    return Response(out, status=status.HTTP_201_CREATED)
