"""The labeler's browser UI: small function views over services and selectors.

htmx as in django-htmx's example: the labeling page and its task panel are one template
(annotator/label.html and its "task-panel" partial); submit and skip are hx-post forms that
answer with the next task's panel. Without JavaScript the same forms post normally and
redirect back to the labeling page.
"""

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect
from rest_framework.authtoken.models import Token

from annotator import selectors, services
from annotator.answers import STRENGTHS
from annotator.audit import AuditEntry, audit_record
from annotator.exceptions import AlreadyAnswered, ImportFailed, InvalidAnswer, ServiceError
from annotator.forms import (
    MAX_TIME_SPENT_MS,
    ImportForm,
    SkipForm,
    answer_from_post,
    answer_widgets,
    time_spent_from_post,
)
from annotator.importing import project_import as import_file
from annotator.models import Annotation, Assignment, Kind, Membership, Project, Task
from annotator.throttling import import_wait

ANNOTATIONS_PER_PAGE = 25
SKIP_REASONS = ["I can't judge this", "The prompt is unclear", "Offensive or unsafe content"]


def login_required(view: Callable) -> Callable:
    """Like Django's, but an htmx request is sent to the login page as a whole page,
    instead of having the login form swapped into the task panel."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if request.htmx:
            back = request.htmx.current_url_abs_path or request.get_full_path()
            return HttpResponseClientRedirect(redirect_to_login(back).url)
        return redirect_to_login(request.get_full_path())

    return wrapper


def _admin_only(role: str) -> None:
    if role != Membership.Role.ADMIN:
        raise PermissionDenied("Only the project's admins can see this page.")


# --- Home and API token ---------------------------------------------------------------------


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = selectors.projects_overview_for_user(request.user).order_by("name", "id")
    return render(request, "annotator/home.html", {"projects": projects})


@require_GET
@login_required
@never_cache
def api_token(request: HttpRequest) -> HttpResponse:
    token = Token.objects.filter(user=request.user).first()
    return render(request, "annotator/api_token.html", {"token": token})


@require_POST
@login_required
def api_token_regenerate(request: HttpRequest) -> HttpResponse:
    services.api_token_regenerate(user=request.user)
    messages.success(request, "A new API token was made; the old one no longer works.")
    return redirect("api_token")


# --- Labeling -------------------------------------------------------------------------------


def _responses(assignment: Assignment, ranks: dict) -> list[dict]:
    """The completions in the lease's order, with the labels the labeler sees."""
    task = assignment.task
    by_id = {c.id: c for c in task.completions.all()}
    responses = []
    for position, completion_id in enumerate(assignment.shown_order, start=1):
        if task.kind == Kind.PAIRWISE:
            label = "AB"[position - 1]
        elif task.kind == Kind.LIKERT:
            label = "Response"
        else:
            label = str(position)
        responses.append(
            {
                "position": position,
                "label": label,
                "id": completion_id,
                "text": by_id[completion_id].text,
                "rank": ranks.get(position, ""),
            }
        )
    return responses


def _panel_context(
    request: HttpRequest,
    *,
    project: Project,
    role: str,
    notice: str = "",
    error: str = "",
    error_field: str = "",
    posted: QueryDict | None = None,
    posted_task_id: int | None = None,
) -> dict:
    """Everything the task panel shows: the labeler's current (or next) task and progress."""
    context = {
        "project": project,
        "role": role,
        "notice": notice,
        "error": error,
        "error_field": error_field,
        "assignment": None,
        "skip_reasons": SKIP_REASONS,
    }
    claimed = services.task_claim_next(project=project, labeler=request.user)
    if claimed is not None:
        assignment = selectors.assignment_with_task(assignment_id=claimed.id)
        task = assignment.task
        # What was posted is shown again only on the task it was posted for.
        if posted is None or posted_task_id != task.id:
            posted = QueryDict()
        widgets = answer_widgets(
            kind=task.kind, project=project, n_responses=len(assignment.shown_order),
            posted=posted,
        )  # fmt: skip
        context |= {
            "assignment": assignment,
            "task": task,
            "prompt": task.prompt,
            "responses": _responses(assignment, widgets.get("ranks", {})),
            "widgets": widgets,
        }
    progress = selectors.labeler_progress(project=project, user=request.user)
    if claimed is not None:
        progress["remaining"] += 1  # the task on screen is still to do (it is leased: not counted)
    progress["total"] = progress["done"] + progress["remaining"]
    context["progress"] = progress
    return context


def _render_panel(request: HttpRequest, context: dict) -> HttpResponse:
    if request.htmx:
        return render(request, "annotator/label.html#task-panel", context)
    project = context["project"]
    kinds = {project.kind}
    if project.kind == Kind.PAIRWISE and project.wide_lines == Project.WideLines.RANKING:
        kinds.add(Kind.RANKING)
    context["help_kinds"] = kinds
    return render(request, "annotator/label.html", context)


def _after_post(request: HttpRequest, *, project: Project, role: str, **outcome) -> HttpResponse:
    """htmx: the next task's panel, with the outcome in it. Plain POST: redirect (the
    outcome travels as a message), except an invalid answer, re-shown with what was sent."""
    if request.htmx or outcome.get("posted") is not None:
        return _render_panel(
            request, _panel_context(request, project=project, role=role, **outcome)
        )
    if outcome.get("error"):
        messages.error(request, outcome["error"])
    elif outcome.get("notice"):
        messages.success(request, outcome["notice"])
    return redirect("label", project_id=project.id)


@require_GET
@login_required
def label(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    return _render_panel(request, _panel_context(request, project=project, role=role))


def _task_in_project(project: Project, task_id: int) -> Task:
    task = get_object_or_404(Task.objects.filter(project=project), pk=task_id)
    task.project = project
    return task


@require_POST
@login_required
def label_submit(request: HttpRequest, project_id: int, task_id: int) -> HttpResponse:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    task = _task_in_project(project, task_id)
    assignment = Assignment.objects.filter(task=task, labeler=request.user).first()
    shown_order = assignment.shown_order if assignment else []
    time_spent = time_spent_from_post(request.POST)
    if time_spent is None and assignment is not None:
        # The page did not measure it (no JavaScript): time since the lease was taken.
        elapsed = (timezone.now() - assignment.created_at).total_seconds() * 1000
        time_spent = min(int(elapsed), MAX_TIME_SPENT_MS)
    try:
        answer = answer_from_post(
            kind=task.kind, project=project, shown_order=shown_order, data=request.POST
        )
        services.annotation_submit(
            task=task, labeler=request.user, answer=answer, time_spent_ms=time_spent
        )
    except InvalidAnswer as exc:
        return _after_post(
            request, project=project, role=role, error=exc.message,
            error_field=exc.field or "", posted=request.POST, posted_task_id=task.id,
        )  # fmt: skip
    except AlreadyAnswered:
        # A double submit: the first one was stored; just go on.
        return _after_post(
            request, project=project, role=role,
            notice="That task was already answered; here is the next one.",
        )  # fmt: skip
    except ServiceError as exc:  # LeaseLost, NotAssigned: their messages say nothing was stored.
        return _after_post(request, project=project, role=role, error=exc.message)
    return _after_post(request, project=project, role=role, notice="Saved.")


@require_POST
@login_required
def label_skip(request: HttpRequest, project_id: int, task_id: int) -> HttpResponse:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    task = _task_in_project(project, task_id)
    form = SkipForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        services.task_skip(task=task, labeler=request.user, reason=reason)
    except AlreadyAnswered:
        return _after_post(
            request, project=project, role=role,
            notice="That task was already answered; here is the next one.",
        )  # fmt: skip
    except ServiceError as exc:
        return _after_post(request, project=project, role=role, error=exc.message)
    return _after_post(request, project=project, role=role, notice="Skipped.")


def _summary(annotation: Annotation) -> str:
    """One line saying what the labeler answered, in the labels they saw."""
    shown = annotation.shown_order or []
    if annotation.kind == Kind.PAIRWISE:
        if annotation.verdict != Annotation.Verdict.PREFERRED:
            return Annotation.Verdict(annotation.verdict).label
        side = "A" if shown and annotation.chosen_id == shown[0] else "B"
        return f"{side} {STRENGTHS.get(annotation.strength, 'is better')}"
    if annotation.kind == Kind.LIKERT:
        if annotation.scores:
            return ", ".join(f"{aspect} {score}" for aspect, score in annotation.scores.items())
        return f"Score {annotation.score}"
    positions = {cid: i for i, cid in enumerate(shown, start=1)}
    return " › ".join(str(positions.get(cid, "?")) for cid in annotation.ranking)


@require_GET
@login_required
def my_annotations(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    annotations = selectors.labeler_annotations(project=project, user=request.user)
    page = Paginator(annotations, ANNOTATIONS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [{"annotation": a, "summary": _summary(a)} for a in page.object_list]
    return render(
        request,
        "annotator/my_annotations.html",
        {"project": project, "role": role, "page": page, "rows": rows},
    )


# --- Project admin --------------------------------------------------------------------------


def _render_admin(
    request: HttpRequest,
    project: Project,
    form: ImportForm,
    import_errors=None,
    refused: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "project": project,
        "role": Membership.Role.ADMIN,
        "stats": selectors.project_stats(project=project),
        "members": selectors.project_members(project=project),
        "form": form,
        "import_errors": import_errors,
        "import_refused": refused,
    }
    return render(request, "annotator/project_admin.html", context, status=status)


@require_GET
@login_required
def project_admin(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    _admin_only(role)
    return _render_admin(request, project, ImportForm())


@require_POST
@login_required
def project_import(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    _admin_only(role)
    if (wait := import_wait(request)) is not None:
        refused = f"Too many imports: try again in {round(wait)} seconds."
        return _render_admin(request, project, ImportForm(), refused=refused, status=429)
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render_admin(request, project, form)
    try:
        created = import_file(
            project=project, data=form.cleaned_data["file"].read(), fmt=form.fmt()
        )
    except ImportFailed as exc:
        return _render_admin(request, project, form, import_errors=exc.errors)
    audit_record(
        request=request,
        project=project,
        action=AuditEntry.Action.IMPORT,
        details={"format": form.fmt(), "tasks_created": created},
    )
    messages.success(request, f"Imported {created} task(s).")
    return redirect("project_admin", project_id=project.id)
