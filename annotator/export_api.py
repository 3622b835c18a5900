"""Dataset export and incremental annotation sync (contract: docs/export.md).

Only a project's admins may export; labelers get 403, anyone outside the project 404, no
token 401. The export streams: rows are read, encoded and sent a chunk at a time.
"""

from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils.http import urlencode
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.decorators import api_view, renderer_classes
from rest_framework.exceptions import PermissionDenied
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from annotator import export, selectors
from annotator.api_fields import refuse_blank
from annotator.audit import AuditEntry, audit_record
from annotator.models import Annotation, Membership, Project
from annotator.pagination import StrictCursorPagination


def _admin_project(request: Request, project_id: int) -> Project:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    if role != Membership.Role.ADMIN:
        raise PermissionDenied("Only the project's admins can export its data.")
    return project


class _AnyMediaRenderer(JSONRenderer):
    """Lets clients that ask for text/csv or Parquet reach the streaming view (errors are
    still JSON)."""

    media_type = "*/*"
    format = "export"


_FILE = OpenApiResponse(
    OpenApiTypes.BINARY,
    description="The dataset file, streamed. Headers: X-Export-Until (the pinned `until`), "
    "Link rel=describedby (the summary of exactly these bytes).",
)


@extend_schema(
    parameters=[export.ExportQuery],
    responses={
        (200, "application/jsonl"): _FILE,
        (200, "text/csv"): _FILE,
        (200, "application/vnd.apache.parquet"): _FILE,
    },
)
@api_view(["GET"])
@renderer_classes([JSONRenderer, _AnyMediaRenderer])
def project_export(request: Request, project_id: int) -> StreamingHttpResponse:
    """The project's labels as a dataset file (schemas, rules and formats: docs/export.md).

    Streams row by row in a stable order; check it against the summary named in the Link
    header (count and sha256 of these exact bytes).
    """
    project = _admin_project(request, project_id)
    refuse_blank(export.ExportQuery, request.query_params)
    params = export.params_from_query(project=project, data=request.query_params)
    job = export.export_start(project=project, params=params)
    audit_record(
        request=request, project=project, action=AuditEntry.Action.EXPORT,
        target=job.filename, details=job.params.as_query(),
    )  # fmt: skip
    summary_url = reverse("api-export-summary", kwargs={"project_id": project.id})
    summary_url += "?" + urlencode(job.params.as_query(), doseq=True)
    response = StreamingHttpResponse(job.chunks(), content_type=job.content_type)
    response["Content-Disposition"] = f'attachment; filename="{job.filename}"'
    response["X-Export-Until"] = job.params.until.isoformat()
    response["Link"] = f'<{request.build_absolute_uri(summary_url)}>; rel="describedby"'
    response["Cache-Control"] = "no-store"
    return response


class ExportSummaryOut(serializers.Serializer):
    schema = serializers.CharField()
    format = serializers.CharField()
    aggregate = serializers.CharField()
    until = serializers.DateTimeField()
    rows = serializers.IntegerField()
    dropped = serializers.DictField(child=serializers.IntegerField())
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    query = serializers.DictField(help_text="The parameters that give exactly these bytes.")


@extend_schema(parameters=[export.ExportQuery], responses=ExportSummaryOut)
@api_view(["GET"])
def project_export_summary(request: Request, project_id: int) -> Response:
    """Row count, drop counts, byte size and sha256 of the export with the same parameters.

    It runs the whole export, so pass the `until` the export reported (X-Export-Until) to
    describe the same bytes.
    """
    project = _admin_project(request, project_id)
    refuse_blank(export.ExportQuery, request.query_params)
    params = export.params_from_query(project=project, data=request.query_params)
    return Response(export.export_summary(project=project, params=params))


class AnnotationCursor(StrictCursorPagination):
    ordering = "id"
    page_size = 500
    page_size_query_param = "page_size"
    max_page_size = 5000


class AnnotationOut(serializers.ModelSerializer):
    labeler = serializers.IntegerField(source="labeler_id")
    prompt_id = serializers.IntegerField(source="task.prompt_id")
    round = serializers.IntegerField(source="task.round", allow_null=True)
    split = serializers.CharField(source="task.prompt.split")

    class Meta:
        model = Annotation
        fields = [
            "id", "task_id", "prompt_id", "labeler", "kind", "verdict", "chosen_id",
            "rejected_id", "strength", "score", "scores", "flags", "ranking", "notes",
            "shown_order", "time_spent_ms", "is_simulated", "labeler_kind", "created_at", "round",
            "split",
        ]  # fmt: skip


class AnnotationQuery(serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="Annotations at or after.")


@extend_schema(parameters=[AnnotationQuery])
class ProjectAnnotationList(generics.ListAPIView):
    """A project's annotations in id order, cursor-paginated, for incremental sync."""

    serializer_class = AnnotationOut
    pagination_class = AnnotationCursor

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Annotation.objects.none()
        project = _admin_project(self.request, self.kwargs["project_id"])
        refuse_blank(AnnotationQuery, self.request.query_params)
        query = AnnotationQuery(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        qs = Annotation.objects.filter(task__project=project).select_related("task__prompt")
        if "since" in query.validated_data:
            qs = qs.filter(created_at__gte=query.validated_data["since"])
        if "cursor" not in self.request.query_params:  # a sync's first page, not every page
            audit_record(
                request=self.request, project=project, action=AuditEntry.Action.EXPORT,
                target="annotations", details=dict(self.request.query_params.items()),
            )  # fmt: skip
        return qs
