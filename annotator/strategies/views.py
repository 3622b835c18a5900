"""Pages for a project's admins: its prompt strategies, the import of offline logs, and the
query x strategy outcome table with its export (docs/prompt-optimisation.md).

Same access rules as the other project pages: anonymous users go to the login page, a
project's outsiders get 404, its labelers 403.
"""

import csv
import io
import json

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotator.exceptions import ImportFailed, ServiceError
from annotator.export.formats import csv_cell
from annotator.models import PromptStrategy
from annotator.project_views import _admin_project
from annotator.strategies import services
from annotator.strategies.log_import import strategy_log_import
from annotator.strategies.outcomes import (
    AUTO,
    SOURCES,
    OutcomeError,
    default_threshold,
    outcome_table,
)
from annotator.views import login_required

ROWS_PER_PAGE = 100
FIELDS = ("name", "system_prompt", "instruction")


@require_http_methods(["GET", "POST"])
@login_required
def strategy_list(request: HttpRequest, project_id: int) -> HttpResponse:
    """The strategies, a form to add one, and the offline-log import."""
    project = _admin_project(request, project_id)
    values, error, import_errors = {}, None, []
    if request.method == "POST" and request.POST.get("action") == "import":
        upload = request.FILES.get("file")
        fmt = request.POST.get("format", "jsonl")
        if upload is None:
            error = ServiceError("Choose a file to import.", field="file")
        else:
            try:
                done = strategy_log_import(project=project, data=upload.read(), fmt=fmt)
            except ImportFailed as exc:
                import_errors = exc.errors
                error = exc
            else:
                created = (
                    f" New strategies: {', '.join(done.new_strategies)}."
                    if done.new_strategies
                    else ""
                )
                messages.success(
                    request, f"Imported {done.rows} rows over {done.queries} queries.{created}"
                )
                return redirect("strategy_list", project_id=project.id)
    elif request.method == "POST":
        values = {k: request.POST.get(k, "") for k in FIELDS}
        try:
            strategy = services.strategy_create(project=project, **values)
        except ServiceError as exc:
            error = exc
        else:
            messages.success(request, f"Strategy “{strategy.name}” added.")
            return redirect("strategy_list", project_id=project.id)
    context = {
        "project": project,
        "strategies": PromptStrategy.objects.filter(project=project),
        "values": values,
        "error": error,
        "import_errors": import_errors,
    }
    return render(request, "annotator/strategies/list.html", context, status=400 if error else 200)


@require_http_methods(["GET", "POST"])
@login_required
def strategy_edit(request: HttpRequest, project_id: int, strategy_id: int) -> HttpResponse:
    project = _admin_project(request, project_id)
    strategy = get_object_or_404(PromptStrategy, project=project, id=strategy_id)
    error = None
    if request.method == "POST":
        values = {k: request.POST.get(k, "") for k in FIELDS}
        try:
            services.strategy_update(strategy=strategy, **values)
        except ServiceError as exc:
            error = exc
        else:
            messages.success(request, f"Strategy “{strategy.name}” saved.")
            return redirect("strategy_list", project_id=project.id)
    else:
        values = {k: getattr(strategy, k) for k in FIELDS}
    example = services.strategy_render(strategy=strategy, query="What is 17 x 23?")
    context = {
        "project": project,
        "strategy": strategy,
        "values": values,
        "error": error,
        "example": example,
    }
    return render(request, "annotator/strategies/edit.html", context, status=400 if error else 200)


@require_POST
@login_required
def strategy_delete(request: HttpRequest, project_id: int, strategy_id: int) -> HttpResponse:
    project = _admin_project(request, project_id)
    strategy = get_object_or_404(PromptStrategy, project=project, id=strategy_id)
    services.strategy_delete(strategy=strategy)
    messages.success(request, f"Strategy “{strategy.name}” deleted; its logged outcomes stay.")
    return redirect("strategy_list", project_id=project.id)


def _table_params(request: HttpRequest) -> tuple[str, int | None]:
    source = request.GET.get("source") or AUTO
    raw = (request.GET.get("likert_threshold") or "").strip()
    try:
        threshold = int(raw) if raw else None
    except ValueError:
        raise OutcomeError("likert_threshold must be a whole number.", "likert_threshold") from None
    return source, threshold


@require_GET
@login_required
def outcome_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _admin_project(request, project_id)
    context = {
        "project": project,
        "sources": (AUTO, *SOURCES),
        "default_threshold": default_threshold(project),
    }
    try:
        source, threshold = _table_params(request)
        table = outcome_table(project=project, source=source, likert_threshold=threshold)
    except OutcomeError as exc:
        context["error"] = exc
        return render(request, "annotator/strategies/outcomes.html", context, status=400)
    page = Paginator(table.rows, ROWS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [(row, [row.cells.get(s) for s in table.strategies]) for row in page.object_list]
    means = []
    for s in table.strategies:
        cells = [r.cells[s].value for r in table.rows if s in r.cells]
        means.append(sum(cells) / len(cells) if cells else None)
    context |= {
        "table": table,
        "page": page,
        "rows": rows,
        "means": means,
        "source": source,
        "threshold": threshold or "",
        "query": request.GET.urlencode(),
    }
    return render(request, "annotator/strategies/outcomes.html", context)


@require_GET
@login_required
def outcome_export(request: HttpRequest, project_id: int) -> HttpResponse:
    """The table as CSV (a column per strategy, empty where nothing was logged) or JSONL."""
    project = _admin_project(request, project_id)
    try:
        source, threshold = _table_params(request)
        table = outcome_table(project=project, source=source, likert_threshold=threshold)
    except OutcomeError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    if request.GET.get("format") == "jsonl":
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in table.training_rows())
        response = HttpResponse(body, content_type="application/jsonl; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="outcomes-{project.id}.jsonl"'
        return response
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        ["prompt_id", "query", "split", *(csv_cell(s, "str") for s in table.strategies)]
    )
    for row in table.rows:
        values = [row.cells[s].value if s in row.cells else None for s in table.strategies]
        writer.writerow(
            [row.prompt_id, csv_cell(row.query, "str"), row.split]
            + [csv_cell(v, "float") for v in values]
        )
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="outcomes-{project.id}.csv"'
    return response
