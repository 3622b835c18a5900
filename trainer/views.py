"""The training pages: job list, live job page, run comparison, model registry. Admins only.

The launch form is in trainer/launch_views.py. Same rules as the project admin page
(annotator/views.py): a project's outsiders get 404, its labelers 403, anonymous users the
login page. The job page and its live part are one template (trainer/job_detail.html and its
"job-live" partial); the partial polls itself every 2 s with htmx while the job runs, and the
answer that carries a finished job is a 286, which stops the polling.
"""

import json
from collections import defaultdict
from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from annotator import selectors as annotator_selectors
from annotator.audit import AuditEntry, audit_record
from annotator.models import Membership, Project
from annotator.views import login_required
from trainer import inventory, job_data, model_services, plots, selectors, services
from trainer.configs import config_fields
from trainer.exceptions import JobError
from trainer.forms import (
    ModelRegisterForm,
)
from trainer.kinds import LAUNCHABLE, choices
from trainer.logs import clean_log
from trainer.models import ModelVersion, TrainingJob, Worker

JOBS_PER_PAGE = 50
# The job list shows none of these; metrics and the log tail can be large.
LIST_DEFERRED = ("config", "dataset", "metrics", "log_tail", "error")
Kind = TrainingJob.Kind
Status = TrainingJob.Status


def _project_for_admin(request: HttpRequest, project_id: int) -> Project:
    project, role = annotator_selectors.project_get_for_member(
        project_id=project_id, user=request.user
    )
    if role != Membership.Role.ADMIN:
        raise PermissionDenied("Only the project's admins can see its training pages.")
    return project


def _job_for_admin(request: HttpRequest, job_id: int) -> TrainingJob:
    job = (
        selectors.jobs_for_admin(request.user)
        .select_related("reward_model", "created_by")
        .filter(id=job_id)
        .first()
    )
    if job is not None:
        return job
    # Not one of the user's admin jobs: 403 if they label on its project, else 404.
    project_id = TrainingJob.objects.filter(id=job_id).values_list("project_id", flat=True).first()
    if project_id is None:
        raise Http404("No such job.")
    _project_for_admin(request, project_id)
    raise Http404("No such job.")


def _launchable_kinds() -> list[tuple[str, str]]:
    return choices(LAUNCHABLE)


def _model_url(model: ModelVersion) -> str:
    return f"{reverse('training_models', args=[model.project_id])}#model-{model.id}"


# --- Overview and job list ------------------------------------------------------------------


@require_GET
@login_required
def training_home(request: HttpRequest) -> HttpResponse:
    projects = selectors.projects_for_admin(request.user)
    jobs = selectors.jobs_for_admin(request.user).defer(*LIST_DEFERRED)[:20]
    return render(request, "trainer/home.html", {"projects": projects, "jobs": jobs})


@require_GET
@login_required
def job_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project_for_admin(request, project_id)
    jobs = (
        selectors.jobs_for_admin(request.user)
        .filter(project=project)
        .select_related("created_by")
        .defer(*LIST_DEFERRED)
    )
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "project": project,
        "page": page,
        "kinds": _launchable_kinds(),
        "tab": "jobs",
        # While a job on the page runs, the table refreshes itself, so statuses stay true.
        "live": any(not job.is_finished for job in page.object_list),
        "workers": inventory_rows(),
    }
    return render(request, "trainer/job_list.html", context)


def inventory_rows() -> list[dict]:
    """Every worker that reported, with its devices' memory in GiB and whether it is live."""
    cutoff = inventory.live_cutoff()
    gib = 1024**3
    return [
        {
            "name": w.name,
            "queues": w.queues,
            "seen_at": w.seen_at,
            "live": w.seen_at >= cutoff,
            "devices": [
                {
                    "name": d.get("name", "?"),
                    "total_gib": (d.get("total_bytes") or 0) / gib,
                    "free_gib": (d.get("free_bytes") or 0) / gib,
                }
                for d in w.devices or []
            ],
        }
        for w in Worker.objects.all()[:50]
    ]


# --- Job page -------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_view(job: TrainingJob, now) -> dict:
    """Step, total, percent, elapsed time and ETA.

    The ETA comes from the step rate between the first and the last logged step, so neither
    the model loading before step one nor the steps a resumed job starts from count; with
    fewer than two timed steps, from the rate since started_at."""
    total = job.total_steps or 0
    percent = min(100, int(100 * job.step / total)) if total else None
    end = job.finished_at or now
    elapsed = (end - job.started_at).total_seconds() if job.started_at else None
    eta = None
    if job.status == Status.RUNNING and total and job.step > 0:
        rate = _step_rate(job.metrics or [])
        if rate is None and elapsed and elapsed > 0:
            rate = job.step / elapsed
        if rate:
            eta = max(total - job.step, 0) / rate
    heartbeat = (now - job.heartbeat_at).total_seconds() if job.heartbeat_at else None
    return {
        "step": job.step,
        "total": total,
        "percent": percent,
        "elapsed": duration(elapsed) if elapsed is not None else "",
        "eta": duration(eta) if eta is not None else "",
        "eta_at": now + timedelta(seconds=eta) if eta is not None else None,
        "heartbeat_age": duration(heartbeat) if heartbeat is not None else "",
    }


def _step_rate(metrics: list[dict]) -> float | None:
    """Steps per second between the first and the last row timed by the runner."""
    timed = [
        (row["step"], row["elapsed_s"])
        for row in metrics
        if all(isinstance(row.get(key), int | float) for key in ("step", "elapsed_s"))
    ]
    if len(timed) < 2:
        return None
    (first_step, first_at), (last_step, last_at) = timed[0], timed[-1]
    if last_step <= first_step or last_at <= first_at:
        return None
    return (last_step - first_step) / (last_at - first_at)


SMOOTHING_CHOICES = [(0.0, "none"), (0.6, "0.6"), (0.9, "0.9"), (0.97, "0.97")]
SAMPLE_REPORTS_SHOWN = 3
COMPARE_MAX_JOBS = 7


def _smoothing(request: HttpRequest) -> float:
    try:
        value = float(request.GET.get("smooth", 0))
    except ValueError:
        return 0.0
    return value if value in dict(SMOOTHING_CHOICES) else 0.0


def sample_reports(metrics: list[dict], limit: int = SAMPLE_REPORTS_SHOWN) -> list[dict]:
    """The last sample generations the job reported, newest first: [{"step", "rows"}]."""
    reports = [
        {"step": row.get("step"), "rows": [r for r in row["samples"] if isinstance(r, dict)]}
        for row in metrics or []
        if isinstance(row, dict) and isinstance(row.get("samples"), list)
    ]
    return reports[::-1][:limit]


def _live_context(
    job: TrainingJob, notice: str = "", error: str = "", smoothing: float = 0.0
) -> dict:
    # plots.py escapes every piece of text it writes into the SVG.
    charts = [
        c | {"svg": mark_safe(c["svg"])}  # noqa: S308
        for c in plots.charts(job.metrics, smoothing=smoothing)
    ]
    return {
        "job": job,
        "progress": progress_view(job, timezone.now()),
        "charts": charts,
        "constants": plots.constants(job.metrics),
        "samples": sample_reports(job.metrics),
        "log": clean_log(job.log_tail),
        "smoothing": smoothing,
        "smoothing_choices": SMOOTHING_CHOICES,
        "trained_on": job_data.job_data_size(job),
        "models": [
            (label, model, _model_url(model) if model else "")
            for label, model in (
                ("Input model", job.input_model),
                ("Reward model", job.reward_model),
                ("Output model", job.output_model),
            )
        ],
        "notice": notice,
        "error": error,
    }


def _config_rows(job: TrainingJob) -> list[dict]:
    try:
        defaults = {f["name"]: f["default"] for f in config_fields(job.kind)}
    except JobError:
        defaults = {}
    return [
        {
            "name": name,
            "value": json.dumps(value),
            "changed": name in defaults and defaults[name] != value,
        }
        for name, value in (job.config or {}).items()
    ]


def _render_live(request: HttpRequest, context: dict) -> HttpResponse:
    if context["job"].is_finished:
        html = render_to_string("trainer/job_detail.html#job-live", context, request=request)
        return HttpResponseStopPolling(html)
    return render(request, "trainer/job_detail.html#job-live", context)


@require_GET
@login_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _job_for_admin(request, job_id)
    context = _live_context(job, smoothing=_smoothing(request))
    if request.htmx and not request.htmx.boosted:
        return _render_live(request, context)
    context |= {
        "project": job.project,
        "config_rows": _config_rows(job),
        "dataset_rows": [(k, json.dumps(v)) for k, v in (job.dataset or {}).items()],
        "tab": "jobs",
    }
    return render(request, "trainer/job_detail.html", context)


@require_POST
@login_required
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _job_for_admin(request, job_id)
    notice, error = "", ""
    try:
        job = services.job_cancel(job=job)
    except JobError as exc:
        error = str(exc)
    else:
        audit_record(
            request=request,
            project=job.project_id,
            action=AuditEntry.Action.JOB_CANCEL,
            target=f"job {job.id}",
        )
        notice = (
            "Cancelled."
            if job.status == Status.CANCELLED
            else "Cancel requested: the job stops and saves at its next step."
        )
    if request.htmx:
        return _render_live(request, _live_context(job, notice=notice, error=error))
    if error:
        messages.error(request, error)
    else:
        messages.success(request, notice)
    return redirect("training_job", job_id=job.id)


# --- Comparing runs -------------------------------------------------------------------------


@require_GET
@login_required
def job_compare(request: HttpRequest, project_id: int) -> HttpResponse:
    """Metrics of two or more of the project's jobs overlaid, one chart per metric."""
    project = _project_for_admin(request, project_id)
    ids = [int(i) for i in request.GET.getlist("job") if i.isdigit()][:COMPARE_MAX_JOBS]
    jobs = list(
        TrainingJob.objects.filter(project=project, id__in=ids)
        .only("id", "kind", "status", "metrics", "project_id")
        .order_by("id")
    )
    smoothing = _smoothing(request)
    runs = [(f"#{job.id} {job.kind}", job.metrics) for job in jobs]
    charts = [
        c | {"svg": mark_safe(c["svg"])}  # noqa: S308 - plots.py escapes its text
        for c in plots.compare(runs, smoothing=smoothing)
    ]
    context = {
        "project": project,
        "jobs": jobs,
        "charts": charts if len(jobs) >= 2 else [],
        "smoothing": smoothing,
        "smoothing_choices": SMOOTHING_CHOICES,
        "colours": plots.RUN_COLOURS,
        "tab": "jobs",
    }
    return render(request, "trainer/job_compare.html", context)


# --- Model registry -------------------------------------------------------------------------


def _metric_text(value) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return plots.fmt(value)
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:79] + "…"


def lineage_rows(versions: list[ModelVersion]) -> list[dict]:
    """The versions as a tree, depth first from the roots (oldest first), each with its depth
    and its chain of ancestors (base first). A parent outside the list ends the chain."""
    by_id = {v.id: v for v in versions}
    children: dict[int, list[ModelVersion]] = defaultdict(list)
    roots = []
    for v in sorted(versions, key=lambda v: v.id):
        if v.parent_id in by_id and v.parent_id != v.id:
            children[v.parent_id].append(v)
        else:
            roots.append(v)

    def chain(version: ModelVersion) -> list[ModelVersion]:
        ancestors, seen, current = [], {version.id}, version
        while current.parent_id is not None and current.parent_id not in seen:
            parent = by_id.get(current.parent_id)
            if parent is None:
                break
            ancestors.append(parent)
            seen.add(parent.id)
            current = parent
        return ancestors[::-1]

    rows, visited = [], set()
    stack = [(root, 0) for root in reversed(roots)]
    while stack or len(visited) < len(by_id):
        if not stack:  # a parent cycle has no root: show what is left at the top level
            stack = [(by_id[min(set(by_id) - visited)], 0)]
        version, depth = stack.pop()
        if version.id in visited:
            continue
        visited.add(version.id)
        rows.append(
            {
                "version": version,
                "depth": depth,
                "ancestors": chain(version),
                "metrics": [(k, _metric_text(v)) for k, v in (version.metrics or {}).items()],
            }
        )
        stack.extend((child, depth + 1) for child in reversed(children[version.id]))
    return rows


@require_GET
@login_required
def model_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project_for_admin(request, project_id)
    return _render_models(request, project, ModelRegisterForm())


@require_POST
@login_required
def model_register(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project_for_admin(request, project_id)
    form = ModelRegisterForm(request.POST)
    if form.is_valid():
        try:
            model = model_services.model_register(
                project=project, created_by=request.user, **form.cleaned_data
            )
        except model_services.RegistryError as exc:
            form.add_error(exc.field, exc.message)
        else:
            messages.success(request, f"Registered {model.name}; launch forms now offer it.")
            return redirect(_model_url(model))
    return _render_models(request, project, form, status=400)


@require_POST
@login_required
def model_merge(request: HttpRequest, project_id: int, model_id: int) -> HttpResponse:
    project = _project_for_admin(request, project_id)
    model = get_object_or_404(ModelVersion, id=model_id, project=project)
    try:
        merged = model_services.model_merge(model=model, created_by=request.user)
    except model_services.RegistryError as exc:
        messages.error(request, exc.message)
        return redirect(_model_url(model))
    messages.success(request, f"Merged {model.name} into full weights: {merged.name}.")
    return redirect(_model_url(merged))


def _render_models(request, project: Project, form: ModelRegisterForm, status: int = 200):
    # Only ids of parents and jobs are shown: no joins (the job rows carry their metrics).
    versions = list(
        selectors.models_for_admin(request.user)
        .filter(project=project)
        .select_related(None)
        .defer("config")
    )
    context = {"project": project, "rows": lineage_rows(versions), "tab": "models", "form": form}
    return render(request, "trainer/model_list.html", context, status=status)
