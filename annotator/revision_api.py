"""Correcting one's answers over the API (contract: docs/api.md): undo shortly after a submit,
edit later. Thin views over services.annotation_undo / annotation_edit.

An annotation outside the caller's projects answers 404; another labeler's answer 403.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from annotator import selectors, services
from annotator.api import service_error_response
from annotator.exceptions import ServiceError


class UndoOut(serializers.Serializer):
    undone = serializers.IntegerField(help_text="The id of the answer taken back.")
    task = serializers.IntegerField(help_text="The task, leased to you again.")
    expires_at = serializers.DateTimeField()


@extend_schema(request=None, responses={200: UndoOut})
@api_view(["POST"])
def annotation_undo(request: Request, annotation_id: int) -> Response:
    selectors.annotation_get_for_member(annotation_id=annotation_id, user=request.user)
    try:
        lease = services.annotation_undo(annotation_id=annotation_id, user=request.user)
    except ServiceError as exc:
        return service_error_response(exc)
    return Response(
        {"undone": annotation_id, "task": lease.task_id, "expires_at": lease.expires_at}
    )


class EditOut(serializers.Serializer):
    id = serializers.IntegerField()
    revisions = serializers.IntegerField(help_text="How many times the answer was changed.")


@extend_schema(
    request={"application/json": {"type": "object"}},
    responses={200: EditOut},
    description="The whole answer, in the shape a submit takes (it replaces the old one).",
)
@api_view(["PUT"])
def annotation_edit(request: Request, annotation_id: int) -> Response:
    selectors.annotation_get_for_member(annotation_id=annotation_id, user=request.user)
    if not isinstance(request.data, dict):
        return Response({"detail": "Send the answer as a JSON object."}, status=400)
    try:
        annotation = services.annotation_edit(
            annotation_id=annotation_id, user=request.user, answer=dict(request.data)
        )
    except ServiceError as exc:
        return service_error_response(exc)
    revisions = selectors.annotation_revision_count(annotation_id=annotation.id)
    return Response({"id": annotation.id, "revisions": revisions})
