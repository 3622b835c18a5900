"""REST API of label quality's queue side (docs/api.md, "Gold tasks" and "Review"): gold
answers, paused labelers and swap repeats (project admins), the review queue and review
actions (reviewers and admins). Outsiders get 404, others 403."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from annotator import gold as gold_services
from annotator import review, selectors
from annotator.api import service_error_response
from annotator.exceptions import ServiceError
from annotator.models import Membership, Project


def _require_admin(role: str) -> None:
    if role != Membership.Role.ADMIN:
        raise PermissionDenied("Only the project's admins can do this.")


class GoldIn(serializers.Serializer):
    gold = serializers.DictField(
        allow_null=True,
        help_text='The known answer: pairwise {"chosen_id": id} or {"verdict": "tie" | '
        '"both_bad"}, Likert {"score": n}, ranking {"ranking": [ids, best first]}; '
        "null makes the task an ordinary one again.",
    )


class GoldOut(serializers.Serializer):
    task = serializers.IntegerField()
    gold = serializers.JSONField(allow_null=True)


@extend_schema(request=GoldIn, responses={200: GoldOut})
@api_view(["PUT"])
def task_gold(request: Request, task_id: int) -> Response:
    task = selectors.task_get_for_member(task_id=task_id, user=request.user)
    _require_admin(selectors.project_role(project=task.project, user=request.user))
    data = GoldIn(data=request.data)
    data.is_valid(raise_exception=True)
    try:
        task = gold_services.task_gold_set(task=task, gold=data.validated_data["gold"])
    except ServiceError as exc:
        return service_error_response(exc)
    return Response({"task": task.id, "gold": task.gold})


class RepeatStatsOut(serializers.Serializer):
    labeler = serializers.IntegerField(source="labeler_id")
    username = serializers.CharField()
    repeats = serializers.IntegerField(help_text="Swap repeats answered.")
    self_consistency = serializers.FloatField(source="consistency", allow_null=True)
    self_consistency_interval = serializers.ListField(
        source="consistency_interval", child=serializers.FloatField(), allow_null=True
    )
    left_share = serializers.FloatField(
        allow_null=True, help_text="Preferences for the left response in the repeated pairs."
    )
    left_share_interval = serializers.ListField(
        source="left_interval", child=serializers.FloatField(), allow_null=True
    )


@extend_schema(request=None, responses={200: RepeatStatsOut(many=True)})
@api_view(["GET"])
def project_repeats(request: Request, project_id: int) -> Response:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    _require_admin(role)
    stats = gold_services.repeat_stats(project=project)
    return Response(RepeatStatsOut(stats, many=True).data)


class PausedOut(serializers.Serializer):
    user = serializers.IntegerField(source="user_id")
    username = serializers.CharField(source="user.username")
    paused_at = serializers.DateTimeField()
    reason = serializers.CharField(source="paused_reason")


@extend_schema(request=None, responses={200: PausedOut(many=True)})
@api_view(["GET"])
def project_paused(request: Request, project_id: int) -> Response:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    _require_admin(role)
    paused = gold_services.paused_members(project=project)
    return Response(PausedOut(paused, many=True).data)


@extend_schema(request=None, responses={204: None})
@api_view(["POST"])
def member_resume(request: Request, project_id: int, user_id: int) -> Response:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    _require_admin(role)
    try:
        gold_services.membership_resume(project=project, user_id=user_id)
    except ServiceError as exc:
        return Response(exc.as_dict(), status=status.HTTP_404_NOT_FOUND)
    return Response(status=status.HTTP_204_NO_CONTENT)


# --- Review ---------------------------------------------------------------------------------


def _require_reviewer(role: str | None) -> None:
    if not review.can_review(role):
        raise PermissionDenied("Only the project's reviewers and admins can review.")


class QueueItemOut(serializers.Serializer):
    task = serializers.IntegerField(source="task_id")
    prompt = serializers.CharField(help_text="Its first 120 characters.")
    answers = serializers.IntegerField()
    reasons = serializers.ListField(
        child=serializers.ChoiceField(["disagreement", "failed gold", "sample"])
    )


@extend_schema(request=None, responses={200: QueueItemOut(many=True)})
@api_view(["GET"])
def review_queue(request: Request, project_id: int) -> Response:
    project, role = selectors.project_get_for_member(project_id=project_id, user=request.user)
    _require_reviewer(role)
    return Response(QueueItemOut(review.review_queue(project=project), many=True).data)


class ReviewIn(serializers.Serializer):
    decision = serializers.ChoiceField(["accepted", "rejected"])
    reason = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text="Needed to reject."
    )


class ReviewOut(serializers.Serializer):
    annotation = serializers.IntegerField(source="annotation_id")
    decision = serializers.CharField()
    reason = serializers.CharField()


@extend_schema(request=ReviewIn, responses={200: ReviewOut})
@api_view(["POST"])
def annotation_review(request: Request, annotation_id: int) -> Response:
    # A swap repeat's answer is no annotation of the dataset: nothing to review.
    annotation = selectors.annotation_get_for_member(
        annotation_id=annotation_id, user=request.user, repeats=False
    )
    project = Project.objects.get(tasks__id=annotation.task_id)
    _require_reviewer(selectors.project_role(project=project, user=request.user))
    data = ReviewIn(data=request.data)
    data.is_valid(raise_exception=True)
    try:
        done = review.annotation_review(
            annotation=annotation, reviewer=request.user, **data.validated_data
        )
    except ServiceError as exc:
        return service_error_response(exc)
    return Response(ReviewOut(done).data)


class AdjudicationIn(serializers.Serializer):
    answer = serializers.DictField(
        help_text='Pairwise {"chosen_id": id} or {"verdict": "tie" | "both_bad"}, Likert '
        '{"score": n}, ranking {"ranking": [ids, best first]}.'
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class AdjudicationOut(serializers.Serializer):
    task = serializers.IntegerField(source="task_id")
    answer = serializers.JSONField()
    reason = serializers.CharField()


@extend_schema(request=AdjudicationIn, responses={200: AdjudicationOut})
@api_view(["PUT"])
def task_adjudication(request: Request, task_id: int) -> Response:
    task = selectors.task_get_for_member(task_id=task_id, user=request.user)
    _require_reviewer(selectors.project_role(project=task.project, user=request.user))
    data = AdjudicationIn(data=request.data)
    data.is_valid(raise_exception=True)
    try:
        done = review.task_adjudicate(task=task, reviewer=request.user, **data.validated_data)
    except ServiceError as exc:
        return service_error_response(exc)
    return Response(AdjudicationOut(done).data)
