"""Label-quality pages for a project's admins: gold tasks and paused labelers.

Same access rules as the project pages (annotator/project_views.py): anonymous users go to
the login page, a project's outsiders get 404, its labelers 403. Writes go through
annotator/gold.py.
"""

import json

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotator import gold as gold_services
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
    if task.kind == Kind.PAIRWISE:
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
