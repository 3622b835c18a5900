"""The audit log over the API: a project's entries, newest first, for its admins only.

Read-only by construction: a list view and nothing else (no POST, PUT, PATCH or DELETE).
"""

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import PermissionDenied

from annotator import selectors
from annotator.audit import AuditEntry, audit_entries
from annotator.models import Membership
from annotator.pagination import StrictCursorPagination


class AuditCursor(StrictCursorPagination):
    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class AuditEntryOut(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name", help_text="Username at the time.")
    action = serializers.ChoiceField(choices=AuditEntry.Action.choices)

    class Meta:
        model = AuditEntry
        fields = ["id", "created_at", "actor", "action", "target", "details",
                  "source_address", "via"]  # fmt: skip


@extend_schema(summary="A project's audit log, newest first (admins of the project only).")
class ProjectAuditList(generics.ListAPIView):
    serializer_class = AuditEntryOut
    pagination_class = AuditCursor

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return AuditEntry.objects.none()
        project, role = selectors.project_get_for_member(
            project_id=self.kwargs["project_id"], user=self.request.user
        )
        if role != Membership.Role.ADMIN:
            raise PermissionDenied("Only the project's admins can read its audit log.")
        return audit_entries(project=project)
