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
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from rest_framework.authtoken.models import Token

from annotator import selectors, services
from annotator.answers import STRENGTHS
from annotator.audit import AuditEntry, audit_record
from annotator.exceptions import (
    AlreadyAnswered,
    ImportFailed,
    InvalidAnswer,
    LabelerPaused,
    ServiceError,
)
from annotator.forms import (
    MAX_TIME_SPENT_MS,
    ImportForm,
    PreferenceImportForm,
    SkipForm,
    answer_from_post,
    answer_to_post,
    answer_widgets,
    time_spent_from_post,
)
from annotator.importing import project_import as import_file
from annotator.models import (
    Annotation,
    Assignment,
    Kind,
    Membership,
    Project,
    Prompt,
    Task,
    TaskCompletion,
)
from annotator.preference_import import preferences_import
from annotator.rendering import word_diff
from annotator.throttling import import_wait

ANNOTATIONS_PER_PAGE = 25
SKIP_REASONS = ["I can't judge this", "The prompt is unclear", "Offensive or unsafe content"]
# A chat with more turns than this shows only its last one at first; the rest fold away.
EARLIER_TURNS_FOLDED_FROM = 3
# An answer error's field (answers.py) -> the control it is shown beside.
ERROR_PLACES = {
    "choice": "choice", "strength": "strength", "score": "score", "scores": "score",
    "flags": "flags", "ranking": "ranking", "notes": "notes", "text": "text",
    "critique": "critique", "principle": "critique",
}  # fmt: skip


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


def _label(kind: str, position: int) -> str:
    """The name the labeler sees for the response shown at `position` (1-based)."""
    if kind == Kind.PAIRWISE:
        return "AB"[position - 1]
    if kind == Kind.LIKERT:
        return "Response"
    if kind == Kind.EDIT:
        return "Original"
    return str(position)


def _responses(*, kind: str, shown_order: list[int], texts: dict[int, str], ranks: dict) -> list:
    """The completions in the order shown, with the labels the labeler sees; for a pair, the
    word-level differences between A and B too (shown on request)."""
    responses = [
        {
            "position": position,
            "label": _label(kind, position),
            "id": completion_id,
            "text": texts[completion_id],
            "rank": ranks.get(position, ""),
        }
        for position, completion_id in enumerate(shown_order, start=1)
    ]
    if kind == Kind.PAIRWISE and len(responses) == 2:
        diff = word_diff(responses[0]["text"], responses[1]["text"])
        for response, marked in zip(responses, diff or (None, None), strict=True):
            response["diff"] = marked
    return responses


def _prompt_view(prompt: Prompt) -> dict:
    """A chat's turns split into the earlier ones (folded away on the page) and the last one,
    the message the responses answer, so a long transcript does not push the responses off
    the first screen."""
    if not prompt.is_chat:
        return {"earlier": [], "recent": []}
    messages = list(prompt.messages or [])
    if len(messages) <= EARLIER_TURNS_FOLDED_FROM:
        return {"earlier": [], "recent": messages}
    return {"earlier": messages[:-1], "recent": messages[-1:]}


def _error_at(field: str) -> str:
    """Which control of the answer form an error's field belongs to ("" for none)."""
    return ERROR_PLACES.get((field or "").split(".")[0], "")


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
    undo: Annotation | None = None,
) -> dict:
    """Everything the task panel shows: the labeler's current (or next) task and progress."""
    context = {
        "project": project,
        "role": role,
        "notice": notice,
        "error": error,
        "error_at": _error_at(error_field),
        "assignment": None,
        "skip_reasons": SKIP_REASONS,
        "undo": undo,
        "undo_seconds": services.UNDO_SECONDS,
    }
    try:
        claimed = services.task_claim_next(project=project, labeler=request.user)
    except LabelerPaused as exc:
        context["paused"] = exc.message
        claimed = None
    if claimed is not None:
        assignment = selectors.assignment_with_task(assignment_id=claimed.id)
        # A swap repeat is read through the first lease, shown in its own (swapped) order.
        assignment.shown_order, assignment.expires_at = claimed.shown_order, claimed.expires_at
        task = assignment.task
        # What was posted is shown again only on the task it was posted for.
        if posted is None or posted_task_id != task.id:
            posted = QueryDict()
        widgets = answer_widgets(
            kind=task.kind, project=project, n_responses=len(assignment.shown_order),
            posted=posted,
        )  # fmt: skip
        texts = {c.id: c.text for c in task.completions.all()}
        context |= {
            "assignment": assignment,
            "task": task,
            "prompt": task.prompt,
            "turns": _prompt_view(task.prompt),
            "responses": _responses(
                kind=task.kind, shown_order=assignment.shown_order, texts=texts,
                ranks=widgets.get("ranks", {}),
            ),
            "widgets": widgets,
        }  # fmt: skip
    else:
        context["next_project"] = selectors.next_project_with_work(user=request.user, after=project)
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
    repeat = services.repeat_held(task_id=task.id, labeler_id=request.user.pk)
    shown_order = (repeat or assignment).shown_order if (repeat or assignment) else []
    time_spent = time_spent_from_post(request.POST)
    if time_spent is None and assignment is not None:
        # The page did not measure it (no JavaScript): time since the lease was taken.
        elapsed = (timezone.now() - assignment.created_at).total_seconds() * 1000
        time_spent = min(int(elapsed), MAX_TIME_SPENT_MS)
    try:
        answer = answer_from_post(
            kind=task.kind, project=project, shown_order=shown_order, data=request.POST
        )
        result = services.annotation_submit(
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
    # A swap repeat's answer can be undone like any other (nothing tells it apart).
    undo = result.annotation if request.htmx else None
    return _after_post(request, project=project, role=role, notice="Saved.", undo=undo)


@require_POST
@login_required
def label_preview(request: HttpRequest, project_id: int, task_id: int) -> HttpResponse:
    """The written response as it will look (the same safe Markdown as everywhere), and for an
    edit task the word differences from the original: the writer's live preview."""
    project, _ = selectors.project_get_for_member(project_id=project_id, user=request.user)
    task = _task_in_project(project, task_id)
    text = request.POST.get("text", "")[: project.max_chars]
    diff = None
    if task.kind == Kind.EDIT:
        link = TaskCompletion.objects.filter(task=task).select_related("completion").first()
        if link is not None and link.completion.text.strip() != text.strip():
            diff = word_diff(link.completion.text, text)
    context = {"text": text, "diff": diff, "length": len(text.strip()), "project": project}
    return render(request, "annotator/_preview.html", context)


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
    if annotation.kind == Kind.DEMONSTRATION:
        return "Written"
    if annotation.kind == Kind.EDIT:
        return "Revised" if annotation.chosen_id else "Kept unchanged"
    return "Best first:"


def _judged(annotation: Annotation, texts: dict[int, str]) -> list[dict]:
    """The responses an answer judged, as the labeler saw them labelled: the one rated
    (Likert), every one best first (ranking). Pairwise shows the chosen one beside it."""
    shown = annotation.shown_order or []
    labels = {cid: _label(annotation.kind, i) for i, cid in enumerate(shown, start=1)}
    if annotation.kind == Kind.LIKERT:
        ids = shown[:1]
    elif annotation.kind == Kind.RANKING:
        ids = annotation.ranking
    elif annotation.kind in (Kind.DEMONSTRATION, Kind.EDIT):
        return [{"label": "Written", "text": annotation.text}]
    else:
        ids = [annotation.chosen_id] if annotation.chosen_id else []
    return [{"label": labels.get(cid, "?"), "text": texts.get(cid, "")} for cid in ids]


@require_GET
@login_required
def my_annotations(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    annotations = selectors.labeler_annotations(project=project, user=request.user)
    page = Paginator(annotations, ANNOTATIONS_PER_PAGE).get_page(request.GET.get("page"))
    texts = selectors.completion_texts(
        ids={cid for a in page.object_list for cid in (a.shown_order or [])}
    )
    rows = [
        {"annotation": a, "summary": _summary(a), "judged": _judged(a, texts)}
        for a in page.object_list
    ]
    return render(
        request,
        "annotator/my_annotations.html",
        {"project": project, "role": role, "page": page, "rows": rows},
    )


@require_POST
@login_required
def label_undo(request: HttpRequest, project_id: int, annotation_id: int) -> HttpResponse:
    """Take back the answer just given: the task comes back with that answer filled in."""
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    annotation = _own_answer(project=project, user=request.user, annotation_id=annotation_id)
    try:
        lease = services.annotation_undo(annotation_id=annotation.id, user=request.user)
    except ServiceError as exc:
        return _after_post(request, project=project, role=role, error=exc.message)
    posted = answer_to_post(
        kind=annotation.kind, project=project, shown_order=lease.shown_order,
        fields=services.answer_fields(annotation),
    )  # fmt: skip
    return _after_post(
        request, project=project, role=role, notice="Undone: your answer is back to change.",
        posted=posted, posted_task_id=lease.task_id,
    )  # fmt: skip


def _own_answer(*, project: Project, user, annotation_id: int) -> Annotation:
    """One's own answer in this project (an annotation, or a swap repeat's answer shaped as
    one): 404 outside it, 403 for another labeler's."""
    annotation = (
        Annotation.objects.select_related("task__prompt")
        .filter(task__project=project, pk=annotation_id)
        .first()
    ) or selectors.repeat_answer_for_member(answer_id=annotation_id, user=user)
    if annotation is None or annotation.task.project_id != project.id:
        raise Http404("No such answer in this project.")
    if annotation.labeler_id != user.pk:
        raise PermissionDenied("Only the labeler who gave an answer can change it.")
    return annotation


@require_http_methods(["GET", "POST"])
@login_required
def annotation_edit(request: HttpRequest, project_id: int, annotation_id: int) -> HttpResponse:
    """Change one of one's past answers: the task as it was shown, the answer filled in."""
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    annotation = _own_answer(project=project, user=request.user, annotation_id=annotation_id)
    shown = annotation.shown_order
    posted = answer_to_post(
        kind=annotation.kind, project=project, shown_order=shown,
        fields=services.answer_fields(annotation),
    )  # fmt: skip
    error, error_field = "", ""
    if request.method == "POST":
        posted = request.POST
        try:
            answer = answer_from_post(
                kind=annotation.kind, project=project, shown_order=shown, data=request.POST
            )
            services.annotation_edit(annotation_id=annotation.id, user=request.user, answer=answer)
        except ServiceError as exc:
            error, error_field = exc.message, exc.field or ""
        else:
            messages.success(request, f"Your answer to task {annotation.task_id} was changed.")
            return redirect("my_annotations", project_id=project.id)
    widgets = answer_widgets(
        kind=annotation.kind, project=project, n_responses=len(shown), posted=posted
    )
    texts = selectors.completion_texts(ids=set(shown))
    context = {
        "project": project,
        "role": role,
        "annotation": annotation,
        "task": annotation.task,
        "prompt": annotation.task.prompt,
        "turns": _prompt_view(annotation.task.prompt),
        "responses": _responses(
            kind=annotation.kind, shown_order=shown, texts=texts, ranks=widgets.get("ranks", {})
        ),
        "widgets": widgets,
        "error": error,
        "error_at": _error_at(error_field),
        "revisions": selectors.annotation_revisions(annotation_id=annotation.id),
        "help_kinds": {annotation.kind},
    }
    return render(request, "annotator/annotation_edit.html", context)


# --- Project admin --------------------------------------------------------------------------


def _render_admin(
    request: HttpRequest,
    project: Project,
    form: ImportForm,
    import_errors=None,
    refused: str = "",
    status: int = 200,
    pref_form: PreferenceImportForm | None = None,
    pref_errors=None,
) -> HttpResponse:
    context = {
        "pref_form": pref_form or PreferenceImportForm(),
        "pref_errors": pref_errors,
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


@require_POST
@login_required
def project_import_preferences(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    _admin_only(role)
    if (wait := import_wait(request)) is not None:
        refused = f"Too many imports: try again in {round(wait)} seconds."
        return _render_admin(request, project, ImportForm(), refused=refused, status=429)
    form = PreferenceImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render_admin(request, project, ImportForm(), pref_form=form)
    upload = form.cleaned_data["file"]
    try:
        result = preferences_import(
            project=project, data=upload.read(), fmt=form.fmt(), filename=upload.name
        )
    except ImportFailed as exc:
        return _render_admin(request, project, ImportForm(), pref_form=form, pref_errors=exc.errors)
    audit_record(
        request=request, project=project, action=AuditEntry.Action.IMPORT,
        details={"format": form.fmt(), "preferences": result.preferences,
                 "labeler": result.labeler},
    )  # fmt: skip
    messages.success(
        request,
        f"Imported {result.preferences} preference(s) over {result.prompts} prompt(s) as "
        f"labeler {result.labeler}.",
    )
    return redirect("project_admin", project_id=project.id)
