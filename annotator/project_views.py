"""Project setup and export pages for a project's admins: create a project, edit its settings
and guidelines, manage its members, and export its labels from the browser.

Same access rules as the project page (annotator/views.py): anonymous users go to the login
page, a project's outsiders get 404, its labelers 403. Creating a project takes a staff
account. Writes go through annotator/project_services.py.
"""

from datetime import datetime

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework.exceptions import ValidationError as ApiValidationError

from annotator import export, project_services, selectors
from annotator.exceptions import ServiceError
from annotator.models import Membership, Project
from annotator.project_forms import ExportForm, MemberForm, ProjectForm
from annotator.rendering import render_markdown
from annotator.views import login_required


def _admin_project(request: HttpRequest, project_id: int) -> Project:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    if role != Membership.Role.ADMIN:
        raise PermissionDenied("Only the project's admins can see this page.")
    return project


def _form_error(form, exc: ServiceError) -> None:
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, exc.message)


# --- Create and configure -------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def project_new(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("Only staff accounts can create projects.")
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = project_services.project_create(created_by=request.user, **form.cleaned_data)
        except ServiceError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, f"Project “{project.name}” created. Import its data next.")
            return redirect("project_admin", project_id=project.id)
    return render(request, "annotator/project_form.html", {"form": form, "project": None})


@require_http_methods(["GET", "POST"])
@login_required
def project_settings(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _admin_project(request, project_id)
    form = ProjectForm(request.POST or None, instance=Project(pk=project.pk, **_values(project)))
    if request.method == "POST" and form.is_valid():
        try:
            project_services.project_update(project=project, **form.cleaned_data)
        except ServiceError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, "Settings saved.")
            return redirect("project_admin", project_id=project.id)
    context = {"form": form, "project": project, "role": Membership.Role.ADMIN}
    return render(request, "annotator/project_form.html", context)


def _values(project: Project) -> dict:
    # The form edits a copy, so a refused save leaves the project page's header as it was.
    return {f: getattr(project, f) for f in project_services.SETTINGS}


@require_POST
@login_required
def guidelines_preview(request: HttpRequest) -> HttpResponse:
    """The guidelines as labelers will see them (the same safe renderer as the label page)."""
    html = render_markdown(request.POST.get("guidelines", ""))
    return render(request, "annotator/project_form.html#preview", {"preview": html})


# --- Members --------------------------------------------------------------------------------


def _render_members(request: HttpRequest, project: Project, form: MemberForm) -> HttpResponse:
    context = {
        "project": project,
        "role": Membership.Role.ADMIN,
        "members": selectors.project_members(project=project),
        "form": form,
    }
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "annotator/project_members.html", context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def project_members(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _admin_project(request, project_id)
    form = MemberForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            member = project_services.member_set_by_username(project=project, **form.cleaned_data)
        except ServiceError as exc:
            _form_error(form, exc)
        else:
            messages.success(
                request, f"{member.user.get_username()} is now {member.get_role_display().lower()}."
            )
            return redirect("project_members", project_id=project.id)
    return _render_members(request, project, form)


@require_POST
@login_required
def project_member_remove(request: HttpRequest, project_id: int, membership_id: int):
    project = _admin_project(request, project_id)
    try:
        project_services.membership_remove(project=project, membership_id=membership_id)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Removed from the project.")
    return redirect("project_members", project_id=project.id)


# --- Export ---------------------------------------------------------------------------------


def _export_params(project: Project, form: ExportForm, extra: dict):
    """The export's parameters, or None with the problems put on the form's fields."""
    try:
        return export.params_from_query(project=project, data=form.query() | extra)
    except ApiValidationError as exc:
        for name, problems in exc.detail.items():
            for problem in problems if isinstance(problems, list) else [problems]:
                form.add_error(name if name in form.fields else None, str(problem))
        return None


@require_GET
@login_required
@never_cache
def project_export(request: HttpRequest, project_id: int) -> HttpResponse:
    """Choose schema, format and filters; "Check" shows the row count and checksum of the
    file the download link then gives (its `until` is pinned, so the bytes match)."""
    project = _admin_project(request, project_id)
    checking = "check" in request.GET
    form = ExportForm(ExportForm.with_defaults(request.GET) if checking else None)
    context = {"project": project, "role": Membership.Role.ADMIN, "form": form}
    if checking and form.is_valid():
        params = _export_params(project, form, {})
        if params is not None:
            summary = export.export_summary(project=project, params=params)
            query = urlencode(summary["query"], doseq=True)
            context |= {
                "summary": summary,
                "until": datetime.fromisoformat(summary["until"]),
                "dropped": sorted(summary["dropped"].items()),
                "download_url": f"{reverse('project_export_download', args=[project.id])}?{query}",
                "api_url": f"{reverse('api-export', args=[project.id])}?{query}",
            }
    return render(request, "annotator/project_export.html", context)


@require_GET
@login_required
def project_export_download(request: HttpRequest, project_id: int) -> HttpResponse:
    """The file itself, streamed, for the browser session (the API's export takes a token)."""
    project = _admin_project(request, project_id)
    try:
        params = export.params_from_query(project=project, data=request.GET)
    except ApiValidationError as exc:
        problems = "; ".join(
            f"{name}: {' '.join(map(str, p)) if isinstance(p, list) else p}"
            for name, p in exc.detail.items()
        )
        return HttpResponse(
            f"Bad export parameters: {problems}", status=400, content_type="text/plain"
        )
    job = export.export_start(project=project, params=params)
    response = StreamingHttpResponse(job.chunks(), content_type=job.content_type)
    response["Content-Disposition"] = f'attachment; filename="{job.filename}"'
    response["X-Export-Until"] = job.params.until.isoformat()
    response["Cache-Control"] = "no-store"
    return response
