"""The audit log page, reached from the project admin page; admins of the project only."""

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotator import selectors
from annotator.audit import AuditEntry, audit_entries
from annotator.views import _admin_only, login_required

PAGE_SIZE = 50


@require_GET
@login_required
def audit_log(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    _admin_only(role)
    entries = audit_entries(project=project)
    action = request.GET.get("action", "")
    if action in AuditEntry.Action.values:
        entries = entries.filter(action=action)
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "project": project,
        "page": page,
        "action": action,
        "actions": AuditEntry.Action.choices,
    }
    return render(request, "annotator/audit_log.html", context)
