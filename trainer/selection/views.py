"""The prompt selection page: a selector's held-out evaluation, a query to try, its per-query
choices, and their CSV export (docs/prompt-optimisation.md). Project admins only."""

import csv
import io

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotator.export.formats import csv_cell
from annotator.views import login_required
from trainer.selection import selectors
from trainer.views import _project_for_admin

ROWS_PER_PAGE = 100
MAX_QUERY = 20_000
COMPARED = [
    ("accuracy_selector", "Chosen per query by the selector"),
    ("accuracy_best_single", "Best single strategy for every query"),
    ("accuracy_random", "A random strategy"),
    ("accuracy_oracle", "Oracle: the best logged strategy per query (hindsight)"),
]


def _model_id(request: HttpRequest) -> int | None:
    raw = request.GET.get("model", "")
    return int(raw) if raw.isdigit() else None


@require_GET
@login_required
def selection_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project_for_admin(request, project_id)
    models = list(selectors.prompt_selectors(project=project).only("id", "name", "created_at"))
    context = {"project": project, "models": models, "tab": "selection"}
    try:
        model = selectors.prompt_selector_get(project=project, model_id=_model_id(request))
    except selectors.SelectionError as exc:
        if exc.status == 404:
            raise Http404(exc.message) from None
        context["empty"] = exc.message
        return render(request, "trainer/selection.html", context)
    metrics = model.metrics or {}
    query = request.GET.get("query", "").strip()[:MAX_QUERY]
    if query:
        try:
            context["answer"] = selectors.selector_choose(model=model, query=query)
            context["ranked"] = sorted(
                context["answer"]["scores"].items(), key=lambda kv: kv[1], reverse=True
            )
        except (selectors.SelectionError, ValueError) as exc:
            context["answer_error"] = getattr(exc, "message", str(exc))
    choices = selectors.selector_choices(model=model)
    page = Paginator(choices, ROWS_PER_PAGE).get_page(request.GET.get("page"))
    rows = []
    for c in page.object_list:
        logged = {s: v for s, v in c["outcomes"].items() if v is not None}
        rows.append(
            {
                **c,
                "outcome": c["outcomes"].get(c["chosen"]),
                "best": max(logged.values()) if logged else None,
            }
        )
    context |= {
        "model": model,
        "metrics": metrics,
        "compared": [(label, metrics.get(key)) for key, label in COMPARED],
        "query": query,
        "page": page,
        "rows": rows,
    }
    return render(request, "trainer/selection.html", context)


@require_GET
@login_required
def selection_export(request: HttpRequest, project_id: int) -> HttpResponse:
    """The selector's held-out choices as CSV: query, chosen strategy, its logged outcome, the
    best logged outcome, and every strategy's score."""
    project = _project_for_admin(request, project_id)
    try:
        model = selectors.prompt_selector_get(project=project, model_id=_model_id(request))
    except selectors.SelectionError as exc:
        raise Http404(exc.message) from None
    choices = selectors.selector_choices(model=model)
    strategies = sorted({s for c in choices for s in c["scores"]})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        ["query_id", "query", "chosen", "chosen_outcome", "best_outcome"]
        + [csv_cell(f"score_{s}", "str") for s in strategies]
    )
    for c in choices:
        logged = [v for v in c["outcomes"].values() if v is not None]
        writer.writerow(
            [
                csv_cell(str(c["query_id"]), "str"),
                csv_cell(c["query"], "str"),
                csv_cell(c["chosen"], "str"),
                csv_cell(c["outcomes"].get(c["chosen"]), "float"),
                csv_cell(max(logged) if logged else None, "float"),
            ]
            + [csv_cell(c["scores"].get(s), "float") for s in strategies]
        )
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="prompt-choices-{project.id}-model-{model.id}.csv"'
    )
    return response
