"""Label quality over the REST API: labeler statistics, agreement and the reliability fit.

Project admins only: a labeler of the project gets 403, anyone else 404 (ids do not leak),
no token 401. Shares and estimates are rounded to 4 decimals.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from annotator import selectors as core
from annotator.api_fields import refuse_blank
from annotator.models import Membership, Project
from annotator.quality import calibration as calibration_reads
from annotator.quality import selectors, stats

DIGITS = 4


def _admin_project(request: Request, project_id: int) -> Project:
    project, role = core.project_get_for_member(project_id=project_id, user=request.user)
    if role != Membership.Role.ADMIN:
        raise PermissionDenied("Only the project's admins can see its label quality.")
    return project


def _rounded(value):
    if isinstance(value, float):
        return round(value, DIGITS)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


class RateOut(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    low = serializers.FloatField(allow_null=True, help_text="95 % Wilson interval.")
    high = serializers.FloatField(allow_null=True)


class LabelerStatsOut(serializers.Serializer):
    labeler_id = serializers.IntegerField()
    username = serializers.CharField()
    simulated = serializers.BooleanField()
    imported = serializers.BooleanField(help_text="The account of an imported preference file.")
    ai = serializers.BooleanField(help_text="An AI judge's account (labeler kind ai).")
    tasks_done = serializers.IntegerField()
    median_seconds = serializers.FloatField(allow_null=True)
    skip_rate = serializers.FloatField(allow_null=True)
    agreement = RateOut(help_text="Agreement with the other labelers' consensus.")
    reliability = serializers.FloatField(allow_null=True)
    left_share = RateOut(help_text="Share of pairwise answers for the response on the left.")
    harmful_rate = RateOut()
    gold = RateOut()


class LabelersOut(serializers.Serializer):
    labelers = LabelerStatsOut(many=True)


@extend_schema(responses=LabelersOut)
@api_view(["GET"])
def labeler_stats(request: Request, project_id: int) -> Response:
    """Every labeler's statistics in the project, by username (docs/quality.md)."""
    project = _admin_project(request, project_id)
    rows = [s.as_dict() for s in stats.page_numbers(project)["rows"]]
    return Response({"labelers": _rounded(rows)})


class AgreementQuery(serializers.Serializer):
    round = serializers.IntegerField(required=False, min_value=0, help_text="One loop round.")


class AgreementOut(serializers.Serializer):
    kind = serializers.CharField()
    round = serializers.IntegerField(allow_null=True)
    pairwise = serializers.DictField(required=False)
    likert = serializers.DictField(required=False, help_text="One entry per aspect.")
    ranking = serializers.DictField(required=False)
    transitivity = serializers.ListField(child=serializers.DictField())


@extend_schema(parameters=[AgreementQuery], responses=AgreementOut)
@api_view(["GET"])
def agreement(request: Request, project_id: int) -> Response:
    """Agreement between the project's labelers, over all rounds or one (docs/quality.md)."""
    project = _admin_project(request, project_id)
    refuse_blank(AgreementQuery, request.query_params)
    query = AgreementQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    out = stats.project_agreement(project, round=query.validated_data.get("round"))
    return Response(_rounded(out))


class ReliabilityQuery(serializers.Serializer):
    tasks = serializers.BooleanField(default=False, help_text="Include every task's posterior.")


class ReliabilityOut(serializers.Serializer):
    method = serializers.CharField()
    iterations = serializers.IntegerField()
    converged = serializers.BooleanField()
    labelers = serializers.ListField(child=serializers.DictField())
    tasks = serializers.ListField(child=serializers.DictField(), required=False)


@extend_schema(parameters=[ReliabilityQuery], responses=ReliabilityOut)
@api_view(["GET"])
def reliability(request: Request, project_id: int) -> Response:
    """The Dawid-Skene fit of the project's pairwise answers: each labeler's estimated
    accuracy, and (with tasks=true) each task's posterior (docs/quality.md)."""
    project = _admin_project(request, project_id)
    refuse_blank(ReliabilityQuery, request.query_params)
    query = ReliabilityQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    fit = selectors.project_fit(project)
    accuracy = fit.accuracy()
    names = dict(
        Membership.objects.filter(project=project, user_id__in=fit.labelers).values_list(
            "user_id", "user__username"
        )
    )
    out = {
        "method": "dawid-skene",
        "iterations": fit.iterations,
        "converged": fit.converged,
        "labelers": [
            {
                "labeler_id": lab,
                "username": names.get(lab, ""),
                "answers": int(n),
                "accuracy": accuracy[lab],
            }
            for lab, n in sorted(zip(fit.labelers, fit.answers, strict=True))
        ],  # fmt: skip
    }
    if query.validated_data["tasks"]:
        pairs = selectors.task_pairs(project)
        out["tasks"] = [
            {"task_id": t, "first_id": pairs[t][0], "second_id": pairs[t][1], "p_first": p}
            for t, p in fit.task_posteriors().items()
            if t in pairs
        ]
    return Response(_rounded(out))


class CalibrationQuery(serializers.Serializer):
    round = serializers.IntegerField(
        required=False, min_value=0, max_value=2**31 - 1, help_text="One loop round."
    )


class JudgeCalibrationOut(serializers.Serializer):
    labeler_id = serializers.IntegerField()
    username = serializers.CharField()
    labeler_kind = serializers.CharField(help_text="Always ai.")
    all = serializers.DictField(
        help_text="Figures over every pairwise verdict (docs/ai-judges.md)."
    )
    rounds = serializers.ListField(
        child=serializers.DictField(), help_text="Pairwise figures, one per round."
    )
    likert = serializers.DictField(
        allow_null=True,
        help_text="Figures over its Likert scores, with the same per round under rounds; "
        "null: none given.",
    )
    ranking = serializers.DictField(
        allow_null=True,
        help_text="Figures over its rankings, with the same per round under rounds; null: "
        "none given.",
    )


class CalibrationOut(serializers.Serializer):
    judges = JudgeCalibrationOut(many=True)


@extend_schema(parameters=[CalibrationQuery], responses=CalibrationOut)
@api_view(["GET"])
def calibration(request: Request, project_id: int) -> Response:
    """Each AI judge of the project against the people on the same tasks: agreement with their
    majority, Cohen's kappa, agreement by the people's own agreement, position and length
    bias, confusion matrix; overall and per round (docs/ai-judges.md). Likert scores and
    rankings apart: agreement within one point, weighted kappa; pair agreement, Kendall's
    tau, position and length bias."""
    project = _admin_project(request, project_id)
    refuse_blank(CalibrationQuery, request.query_params)
    unknown = sorted(set(request.query_params) - set(CalibrationQuery().fields))
    if unknown:
        raise serializers.ValidationError({name: ["Unknown parameter."] for name in unknown})
    query = CalibrationQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    judges = []
    for labeler_id, username in calibration_reads.judge_accounts(project):
        figures = calibration_reads.judge_calibration(
            project=project, labeler_id=labeler_id, round=query.validated_data.get("round")
        )
        rounds = [{"round": r, **f} for r, f in figures["rounds"].items()]
        judges.append({"labeler_id": labeler_id, "username": username, "labeler_kind": "ai",
                       "all": figures["all"], "rounds": rounds, "likert": figures["likert"],
                       "ranking": figures["ranking"]})  # fmt: skip
    return Response(_rounded({"judges": judges}))
