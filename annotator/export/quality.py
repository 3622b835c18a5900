"""What an export needs from the reliability fit, worked out once when it starts.

`aggregate=reliability` and `min_labeler_reliability` both need the Dawid-Skene fit
(annotator/quality/reliability.py) of the pairwise answers the export would see (its
`until`, `since`, `split`, `round`, `labeler` and `source` filters applied), so the same
parameters and `until` give the same fit, the same rows and the same bytes.
"""

from dataclasses import replace

from annotator.export import source
from annotator.export.params import ExportParams
from annotator.models import Kind, Project
from annotator.quality import reliability
from annotator.quality.agreement import pairwise_category


def needs_fit(params: ExportParams) -> bool:
    return params.aggregate == "reliability" or params.min_labeler_reliability is not None


def fit_for(project: Project, params: ExportParams) -> reliability.Fit:
    qs = source.annotations(project=project, params=replace(params, excluded_labelers=()))
    rows = qs.filter(kind=Kind.PAIRWISE).values_list(
        "task_id", "labeler_id", "verdict", "chosen_id", "rejected_id"
    )
    return reliability.fit(
        (task, labeler, pairwise_category(verdict, chosen, rejected))
        for task, labeler, verdict, chosen, rejected in rows.iterator(chunk_size=5000)
    )


def resolved(project: Project, params: ExportParams) -> ExportParams:
    """The parameters with the fit and the labelers it leaves out filled in.

    A labeler without pairwise answers has no estimate and is kept."""
    if not needs_fit(params):
        return params
    fit = fit_for(project, params)
    excluded: tuple[int, ...] = ()
    if params.min_labeler_reliability is not None:
        excluded = tuple(
            sorted(
                lab for lab, acc in fit.accuracy().items() if acc < params.min_labeler_reliability
            )
        )
    return replace(params, excluded_labelers=excluded, model=fit)
