"""Label-quality pages for a project's admins: every labeler's statistics, and one labeler's
recent answers beside the consensus."""

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotator import selectors as core
from annotator.models import Kind, Membership
from annotator.quality import calibration, charts, selectors, stats
from annotator.views import login_required

RECENT = 50
# Column -> how it sorts (None sorts last whichever the direction).
SORTS = {
    "username": lambda s: s.username,
    "tasks": lambda s: s.tasks_done,
    "seconds": lambda s: s.median_seconds,
    "skips": lambda s: s.skip_rate,
    "agreement": lambda s: s.agreement.value,
    "reliability": lambda s: s.reliability,
    "left": lambda s: s.left_share.value,
    "harmful": lambda s: s.harmful_rate.value,
    "gold": lambda s: s.gold.value,
}


def _admin_project(request: HttpRequest, project_id: int):
    project, role = core.project_get_for_member(project_id=project_id, user=request.user)
    if role != Membership.Role.ADMIN:
        raise PermissionDenied("Only the project's admins can see this page.")
    return project


def _sorted(rows: list, sort: str, descending: bool) -> list:
    key = SORTS[sort]
    present = [r for r in rows if key(r) is not None]
    missing = [r for r in rows if key(r) is None]
    return sorted(present, key=key, reverse=descending) + missing


@require_GET
@login_required
def labeler_stats(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _admin_project(request, project_id)
    sort = request.GET.get("sort", "username")
    sort = sort if sort in SORTS else "username"
    descending = request.GET.get("dir") == "desc"
    numbers = stats.page_numbers(project)
    rows = _sorted(numbers["rows"], sort, descending)
    by_round, per_day = numbers["by_round"], numbers["per_day"]
    measure = "Kendall's W" if project.kind == Kind.RANKING else "percent agreement"
    context = {
        "project": project,
        "rows": rows,
        "sort": sort,
        "descending": descending,
        "columns": [
            ("username", "Labeler"),
            ("tasks", "Tasks done"),
            ("seconds", "Median s/task"),
            ("skips", "Skip rate"),
            ("agreement", "Agrees with consensus"),
            ("reliability", "Est. reliability"),
            ("left", "Left-side share"),
            ("harmful", "Flagged harmful"),
            ("gold", "Gold accuracy"),
        ],  # fmt: skip
        "agreement": numbers["agreement"],
        "round_chart": charts.bar_chart(
            [(f"round {r}", v) for r, v in by_round], title=f"{measure} per round", y_max=1.0
        )
        if by_round
        else None,
        "day_chart": charts.bar_chart(per_day, title="labels per day") if per_day else None,
        "by_round": by_round,
        "measure": measure,
    }
    return render(request, "annotator/quality/labelers.html", context)


@require_GET
@login_required
def labeler_detail(request: HttpRequest, project_id: int, labeler_id: int) -> HttpResponse:
    project = _admin_project(request, project_id)
    recent = list(
        selectors.annotations(project, labelers=[labeler_id])
        .select_related("task__prompt", "chosen", "labeler")
        .order_by("-created_at", "-id")[:RECENT]
    )
    if not recent:
        raise Http404("This labeler has no answers in the project.")
    others = (
        selectors.annotations(project)
        .filter(task_id__in=[a.task_id for a in recent])
        .exclude(labeler_id=labeler_id)
        .select_related("chosen", "labeler")
    )
    by_task: dict[int, list] = {}
    for a in others.order_by("id"):
        by_task.setdefault(a.task_id, []).append(a)
    fit = selectors.project_fit(project)
    posteriors = dict(zip(fit.tasks, fit.posterior[:, 0].tolist(), strict=True))
    items = []
    for a in recent:
        p_first = posteriors.get(a.task_id)
        items.append({"answer": a, "others": by_task.get(a.task_id, []), "p_first": p_first,
                      "p_chosen": _p_chosen(a, p_first)})  # fmt: skip
    mine = [s for s in stats.page_numbers(project)["rows"] if s.labeler_id == labeler_id]
    context = {"project": project, "labeler": recent[0].labeler, "items": items,
               "stats": mine[0] if mine else None}  # fmt: skip
    return render(request, "annotator/quality/labeler.html", context)


def _p_chosen(annotation, p_first: float | None) -> float | None:
    """The fit's probability that this answer's chosen completion is the better one."""
    if p_first is None or annotation.chosen_id is None:
        return None
    return p_first if annotation.chosen_id < annotation.rejected_id else 1 - p_first


@require_GET
@login_required
def judge_calibration(request: HttpRequest, project_id: int) -> HttpResponse:
    """Each AI judge against the people on the same tasks, overall and per round."""
    project = _admin_project(request, project_id)
    judges = []
    for labeler_id, username in calibration.judge_accounts(project):
        figures = calibration.judge_calibration(project=project, labeler_id=labeler_id)
        rounds = list(figures["rounds"].items())
        judges.append({"labeler_id": labeler_id, "username": username, "all": figures["all"],
                       "likert": figures["likert"], "ranking": figures["ranking"],
                       "rounds": rounds, "labels": calibration.LABELS})  # fmt: skip
    return render(request, "annotator/quality/calibration.html",
                  {"project": project, "judges": judges})  # fmt: skip
