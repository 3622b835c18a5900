"""Label-quality pages: gold tasks and paused labelers (admins), the review queue and the
review of one task (reviewers and admins).

Same access rules as the project pages (annotator/project_views.py): anonymous users go to
the login page, a project's outsiders get 404, its labelers 403. Writes go through
annotator/gold.py.
"""

import json

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotator import gold as gold_services
from annotator import review, selectors
from annotator.exceptions import ServiceError
from annotator.models import Kind, Membership, Task
from annotator.project_views import _admin_project
from annotator.views import login_required


def _task_view(task: Task) -> dict:
    completions = [tc.completion for tc in task.task_completions.select_related("completion")]
    return {"task": task, "completions": completions, "prompt": task.prompt}


@require_GET
@login_required
def gold_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _admin_project(request, project_id)
    context = {
        "project": project,
        "role": Membership.Role.ADMIN,
        "gold_tasks": gold_services.gold_tasks(project=project),
        "paused": gold_services.paused_members(project=project),
        "repeats": gold_services.repeat_stats(project=project),
        "pick": None,
    }
    task_id = request.GET.get("task", "").strip()
    if task_id:
        task = Task.objects.filter(project=project, id=task_id if task_id.isdigit() else 0)
        task = task.select_related("prompt").first()
        if task is None:
            context["pick_error"] = f"This project has no task {task_id[:20]}."
        else:
            context["pick"] = _task_view(task)
            context["pick_json"] = json.dumps(task.gold) if task.gold else ""
    return render(request, "annotator/gold.html", context)


def _posted_gold(task: Task, data) -> dict | None:
    if data.get("clear"):
        return None
    if task.kind == Kind.PAIRWISE and "gold_json" not in data:
        choice = data.get("choice", "")
        if choice in ("tie", "both_bad"):
            return {"verdict": choice}
        return {"chosen_id": int(choice) if choice.isdigit() else choice}
    try:
        return json.loads(data.get("gold_json", ""))
    except ValueError:
        raise ServiceError(
            'The gold answer must be JSON, e.g. {"score": 5}.', field="gold"
        ) from None


@require_POST
@login_required
def gold_set(request: HttpRequest, project_id: int, task_id: int) -> HttpResponse:
    project = _admin_project(request, project_id)
    task = get_object_or_404(
        Task.objects.filter(project=project).select_related("project"), id=task_id
    )
    try:
        task = gold_services.task_gold_set(task=task, gold=_posted_gold(task, request.POST))
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect(f"{reverse('gold_page', args=[project.id])}?task={task.id}")
    if task.gold is None:
        messages.success(request, f"Task {task.id} is an ordinary task again.")
    else:
        messages.success(request, f"Task {task.id} is a gold task.")
    return redirect("gold_page", project_id=project.id)


@require_POST
@login_required
def member_resume(request: HttpRequest, project_id: int, user_id: int) -> HttpResponse:
    project = _admin_project(request, project_id)
    user = get_object_or_404(get_user_model(), id=user_id)
    try:
        gold_services.membership_resume(project=project, user_id=user.id)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{user.get_username()} can label again.")
    return redirect("gold_page", project_id=project.id)


# --- Review ---------------------------------------------------------------------------------


def _reviewer_project(request: HttpRequest, project_id: int):
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    if not review.can_review(role):
        raise PermissionDenied("Only the project's reviewers and admins can review.")
    return project, role


@require_GET
@login_required
def review_queue(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = _reviewer_project(request, project_id)
    context = {"project": project, "role": role, "queue": review.review_queue(project=project)}
    return render(request, "annotator/review_queue.html", context)


def _answer_text(annotation, texts: dict[int, str], labels: dict[int, str]) -> str:
    if annotation.kind == Kind.PAIRWISE:
        if annotation.verdict != "preferred":
            return annotation.get_verdict_display()
        return f"{labels.get(annotation.chosen_id, '?')} is better"
    if annotation.kind == Kind.LIKERT:
        if annotation.scores:
            return ", ".join(f"{k} {v}" for k, v in annotation.scores.items())
        return f"Score {annotation.score}"
    return "Best first: " + ", ".join(labels.get(c, "?") for c in annotation.ranking)


@require_http_methods(["GET", "POST"])
@login_required
def review_task(request: HttpRequest, project_id: int, task_id: int) -> HttpResponse:
    project, role = _reviewer_project(request, project_id)
    found = review.review_task(project=project, task_id=task_id)
    if found is None:
        raise Http404("No such task.")
    task = found["task"]
    if request.method == "POST":
        try:
            _review_post(request, task, found["answers"])
        except ServiceError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Review saved.")
        return redirect("review_task", project_id=project.id, task_id=task.id)
    # Responses named by their place in the task (Response 1, 2, ...), not as any labeler saw them.
    labels = {c.id: f"Response {i}" for i, c in enumerate(found["completions"], start=1)}
    texts = {c.id: c.text for c in found["completions"]}
    answers = [
        {"a": a, "text": _answer_text(a, texts, labels), "review": getattr(a, "review", None)}
        for a in found["answers"]
    ]
    adj = found["adj"]
    context = {
        "project": project, "role": role, "task": task, "prompt": task.prompt,
        "turns": {"earlier": [], "recent": task.prompt.messages or []},
        "responses": [{"label": labels[c.id], "id": c.id, "text": c.text}
                      for c in found["completions"]],
        "answers": answers, "adj": adj,
        "adj_json": json.dumps(adj.answer) if adj else "",
    }  # fmt: skip
    return render(request, "annotator/review_task.html", context)


def _review_post(request: HttpRequest, task: Task, answers: list) -> None:
    action = request.POST.get("action", "")
    reason = request.POST.get("reason", "")
    if action == "override":
        review.task_adjudicate(
            task=task, reviewer=request.user, answer=_posted_gold(task, request.POST),
            reason=reason,
        )  # fmt: skip
        return
    by_id = {str(a.id): a for a in answers}
    annotation = by_id.get(request.POST.get("annotation", ""))
    if annotation is None:
        raise ServiceError("Pick an answer of this task.", field="annotation")
    review.annotation_review(
        annotation=annotation, reviewer=request.user, decision=action, reason=reason
    )
