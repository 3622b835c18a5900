"""Choose a prompt strategy for a query over the REST API (docs/prompt-optimisation.md).

Project admins only: a labeler of the project gets 403, anyone else 404, no token 401.
"""

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from annotator import selectors as annotator_selectors
from annotator.api_fields import DB_BIG_MAX, StrictCharField, StrictIntegerField
from annotator.models import Membership
from trainer.selection import selectors


def _admin_project(request: Request, project_id: int):
    project, role = annotator_selectors.project_get_for_member(
        project_id=project_id, user=request.user
    )
    if role != Membership.Role.ADMIN:
        raise PermissionDenied("Only the project's admins can use its prompt selectors.")
    return project


class ChooseIn(serializers.Serializer):
    query = StrictCharField(
        max_length=20_000,
        trim_whitespace=False,
        validators=[RegexValidator(r"\S", message="Give a non-empty query.")],
        help_text="The query (not blank).",
    )
    model = StrictIntegerField(
        required=False,
        min_value=1,
        max_value=DB_BIG_MAX,
        help_text="A prompt selector of the project (default: its newest).",
    )


class ChooseOut(serializers.Serializer):
    model = serializers.IntegerField()
    strategy = serializers.CharField(help_text="The strategy with the highest score.")
    scores = serializers.DictField(
        child=serializers.FloatField(), help_text="strategy -> estimated chance of success"
    )


@extend_schema(request=ChooseIn, responses=ChooseOut)
@api_view(["POST"])
def choose(request: Request, project_id: int) -> Response:
    """The strategy a prompt selector chooses for a query, and the scores of all."""
    project = _admin_project(request, project_id)
    data = ChooseIn(data=request.data)
    data.is_valid(raise_exception=True)
    query = data.validated_data["query"]
    try:
        model = selectors.prompt_selector_get(
            project=project, model_id=data.validated_data.get("model")
        )
        answer = selectors.selector_choose(model=model, query=query)
    except selectors.SelectionError as exc:
        return Response({"detail": exc.message}, status=exc.status)
    return Response({"model": model.id, **answer})
