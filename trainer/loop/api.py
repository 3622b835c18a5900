"""Loop API (docs/loop.md): configure, pause, resume, stop, retrain now; read the rounds."""

from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from annotator import selectors as annotator_selectors
from annotator.api_fields import IdField, StrictModelSerializer
from annotator.audit import AuditEntry, audit_record, plain
from annotator.export.params import MAX_SOURCE_WEIGHT, SOURCES, source_weights_from
from annotator.models import Membership
from trainer.loop import services as loop
from trainer.models import Judge, LoopPolicy, LoopRound, ModelVersion


@extend_schema_field(
    {
        "type": "object",
        "properties": {
            source: {
                "type": "number",
                "minimum": 0,
                "exclusiveMinimum": True,
                "maximum": MAX_SOURCE_WEIGHT,
            }
            for source in SOURCES
        },  # fmt: skip
        "additionalProperties": False,
    }
)
class SourceWeightsField(serializers.Field):
    """``{"ai": 0.5, ...}``: a weight above 0 (at most MAX_SOURCE_WEIGHT) per label source."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError('Give an object, such as {"ai": 0.5}.')
        try:
            return dict(source_weights_from(data))
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value):
        return value


class LoopPolicySerializer(StrictModelSerializer):
    base_policy = IdField(queryset=ModelVersion.objects.none())
    judge = IdField(queryset=Judge.objects.none(), required=False, allow_null=True)
    policy_config = serializers.DictField(required=False)
    reward_config = serializers.DictField(required=False)
    reward_source_weights = SourceWeightsField(
        required=False, help_text=LoopPolicy._meta.get_field("reward_source_weights").help_text
    )
    generate_config = serializers.DictField(required=False)
    sft_config = serializers.DictField(required=False)

    class Meta:
        model = LoopPolicy
        fields = [
            "enabled", "paused", "base_policy", "algorithm", "policy_config", "reward_config",
            "reward_source_weights", "generate_config", "reward_after", "train_prompts",
            "compare_with_base", "task_priority", "reference", "acquisition", "candidates",
            "pairs_per_round", "judge", "sft_first", "sft_config",
        ]  # fmt: skip
        read_only_fields = ["paused"]
        extra_kwargs = {
            "candidates": {"min_value": 1, "max_value": 16},
            "sft_first": {
                "help_text": LoopPolicy._meta.get_field("sft_first").help_text
                + " Refused in a project with no demonstration or edit tasks."
            },
        }

    def __init__(self, *args, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        if project is not None:
            self.fields["judge"].queryset = Judge.objects.filter(project=project)
            self.fields["base_policy"].queryset = ModelVersion.objects.filter(
                project=project, role=ModelVersion.Role.POLICY
            )

    def validate(self, attrs: dict) -> dict:
        """The job configs are checked against their kinds now, as the loop form does."""
        refused = loop.loop_project_check(project=self.project)
        if refused:
            raise serializers.ValidationError({"project": refused})
        if attrs.get("sft_first") and (why := loop.loop_sft_check(project=self.project)):
            raise serializers.ValidationError({"sft_first": why})
        current = LoopPolicy.objects.filter(project=self.project).first()
        algorithm = attrs.get("algorithm") or (
            current.algorithm if current else LoopPolicy.Algorithm.RAFT
        )
        errors = loop.loop_configs_check(
            base_policy=attrs["base_policy"], algorithm=algorithm, data=attrs
        )
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class LoopRoundOut(serializers.ModelSerializer):
    class Meta:
        model = LoopRound
        fields = [
            "number", "status", "previous_policy", "reward_job", "policy_job", "generate_jobs",
            "prompt_ids", "tasks_created", "error", "started_at", "finished_at",
            "reference_policy", "scores", "sft_job",
        ]  # fmt: skip


def _admin_project(request: Request, project_id: int):
    project, role = annotator_selectors.project_get_for_member(
        project_id=project_id, user=request.user
    )
    if role != Membership.Role.ADMIN:
        raise PermissionDenied("Only the project's admins can run its loop.")
    return project


def _state(project) -> dict:
    policy = LoopPolicy.objects.filter(project=project).first()
    rounds = LoopRound.objects.filter(project=project).order_by("number")
    return {
        "policy": LoopPolicySerializer(policy).data if policy else None,
        "rounds": LoopRoundOut(rounds, many=True).data,
    }


LOOP_STATE = inline_serializer(
    name="LoopState",
    fields={"policy": LoopPolicySerializer(allow_null=True), "rounds": LoopRoundOut(many=True)},
)


@extend_schema(methods=["GET"], operation_id="loop_retrieve", responses=LOOP_STATE)
@extend_schema(
    methods=["PUT"], operation_id="loop_update", request=LoopPolicySerializer, responses=LOOP_STATE
)
@api_view(["GET", "PUT"])
def loop_detail(request: Request, project_id: int) -> Response:
    project = _admin_project(request, project_id)
    if request.method == "PUT":
        data = LoopPolicySerializer(data=request.data, project=project)
        data.is_valid(raise_exception=True)
        loop.loop_configure(project=project, **data.validated_data)
        audit_record(
            request=request, project=project, action=AuditEntry.Action.LOOP_CONFIGURE,
            details=plain(data.validated_data),
        )  # fmt: skip
    return Response(_state(project))


class ActionIn(serializers.Serializer):
    action = serializers.ChoiceField(choices=loop.LOOP_ACTIONS)


@extend_schema(request=ActionIn, responses=LOOP_STATE)
@api_view(["POST"])
def loop_action(request: Request, project_id: int) -> Response:
    project = _admin_project(request, project_id)
    data = ActionIn(data=request.data)
    data.is_valid(raise_exception=True)
    policy = LoopPolicy.objects.filter(project=project).first()
    if policy is None:
        return Response(
            {"detail": "This project has no loop yet; PUT its settings first."},
            status=status.HTTP_409_CONFLICT,
        )
    action = data.validated_data["action"]
    loop.loop_act(policy=policy, action=action)
    audit_record(
        request=request, project=project, action=AuditEntry.Action.LOOP_ACTION, target=action
    )
    return Response(_state(project))
