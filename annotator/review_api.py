"""REST API of label quality's queue side: gold answers and paused labelers
(docs/api.md, "Gold tasks"). Project admins only; outsiders get 404, labelers 403."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from annotator import gold as gold_services
from annotator import selectors
from annotator.exceptions import ServiceError
from annotator.models import Membership


def _require_admin(role: str) -> None:
    if role != Membership.Role.ADMIN:
        raise PermissionDenied("Only the project's admins can do this.")


class GoldIn(serializers.Serializer):
    gold = serializers.JSONField(
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
        return Response(exc.as_dict(), status=exc.status_code)
    return Response({"task": task.id, "gold": task.gold})


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
