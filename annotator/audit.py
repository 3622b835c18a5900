"""The audit log: who did what to a project's data, jobs, members and loop, when, from where.

One append-only table. `audit_record(...)` is the only writer; views and API views call it
once, next to the service call they log, with the request (actor and source address come
from it). Nothing updates or deletes an entry: the Django admin shows them read-only and the
API only lists them (docs/api.md).
"""

from typing import TYPE_CHECKING

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.http import HttpRequest

if TYPE_CHECKING:  # models.py imports this module, so only type checkers read this one
    from annotator.models import Project


class AuditEntry(models.Model):
    class Action(models.TextChoices):
        EXPORT = "export", "Exported data"
        IMPORT = "import", "Imported data"
        MEMBER_ROLE = "member.role", "Set a member's role"
        JOB_LAUNCH = "job.launch", "Launched a job"
        JOB_CANCEL = "job.cancel", "Cancelled a job"
        JOB_DELETE = "job.delete", "Deleted a job"
        LOOP_CONFIGURE = "loop.configure", "Changed the loop's settings"
        LOOP_ACTION = "loop.action", "Paused, resumed, stopped or retrained the loop"

    project = models.ForeignKey(
        "annotator.Project", on_delete=models.CASCADE, related_name="audit_entries"
    )
    # Kept as a name too, so the entry still says who it was once the account is gone.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    target = models.CharField(max_length=200, blank=True, help_text='What it acted on: "job 12".')
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    source_address = models.GenericIPAddressField(null=True, blank=True)
    via = models.CharField(max_length=8, blank=True, help_text="web, api or admin.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        app_label = "annotator"
        ordering = ["-id"]
        indexes = [models.Index(fields=["project", "-id"], name="audit_project_recent")]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.target}"


def client_address(request: HttpRequest) -> str | None:
    """The caller's address: REMOTE_ADDR, or the proxy's X-Forwarded-For entry when
    PREFLOOP_TRUSTED_PROXIES says how many proxies in front of us append to it."""
    proxies = getattr(settings, "PREFLOOP_TRUSTED_PROXIES", 0)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if len(hops) >= proxies:
            return hops[-proxies] or None
    return request.META.get("REMOTE_ADDR") or None


def audit_record(
    *,
    request: HttpRequest,
    project: "Project | int",
    action: str,
    target: str = "",
    details: dict | None = None,
) -> AuditEntry:
    """Append one entry for what `request.user` just did to `project`."""
    user = request.user if request.user.is_authenticated else None
    path = request.path
    via = "api" if path.startswith("/api/") else "admin" if path.startswith("/admin/") else "web"
    return AuditEntry.objects.create(
        project_id=project if isinstance(project, int) else project.id,
        actor=user,
        actor_name=user.get_username() if user else "",
        action=action,
        target=target[:200],
        details=details or {},
        source_address=client_address(request),
        via=via,
    )


def plain(values: dict) -> dict:
    """Validated form or serializer data as details: model instances by their id."""
    return {k: v.pk if isinstance(v, models.Model) else v for k, v in values.items()}


def audit_entries(*, project: "Project"):
    """A project's entries, newest first (the UI's page and the API's list)."""
    return AuditEntry.objects.filter(project=project).order_by("-id")
