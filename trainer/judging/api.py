"""AI judges over the REST API (docs/ai-judges.md): list, create, change, run, resume.

Project admins only. No answer ever holds an API key: a judge stores the *name* of the
environment variable that holds it on the workers.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from annotator import selectors as annotator_selectors
from annotator.api import service_error_response
from annotator.api_fields import IdField, StrictModelSerializer
from annotator.exceptions import ServiceError
from annotator.models import Membership
from trainer.exceptions import JobError
from trainer.judging import services as judging
from trainer.models import Judge, ModelVersion


class JudgeSerializer(StrictModelSerializer):
    reward_model = IdField(queryset=ModelVersion.objects.none(), required=False, allow_null=True)
    labeler_id = serializers.IntegerField(source="user_id", read_only=True)
    labeler_kind = serializers.SerializerMethodField()
    rubrics = serializers.DictField(
        child=serializers.CharField(max_length=20000, allow_blank=True, trim_whitespace=False),
        required=False,
        help_text='The judge\'s prompt per task kind, e.g. {"pairwise": "..."}; missing or '
        "empty: the default.",
    )
    principles = serializers.ListField(
        child=serializers.CharField(max_length=2000, allow_blank=True, trim_whitespace=False),
        required=False,
        max_length=50,
    )
    api_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=1000,
        help_text="The endpoint's API key, stored encrypted and never answered back (see "
        "api_key_stored); or name a workers' environment variable in api_key_env instead.",
    )  # fmt: skip
    clear_api_key = serializers.BooleanField(
        write_only=True, required=False, help_text="true: drop the stored API key."
    )
    api_key_stored = serializers.SerializerMethodField()

    class Meta:
        model = Judge
        fields = ["id", "name", "labeler_id", "labeler_kind", *judging.FIELDS,
                  *judging.SECRET_FIELDS, "api_key_stored", "paused", "paused_reason",
                  "created_at"]  # fmt: skip
        read_only_fields = ["paused", "paused_reason", "created_at"]

    def __init__(self, *args, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        if project is not None:
            self.fields["reward_model"].queryset = ModelVersion.objects.filter(
                project=project, role=ModelVersion.Role.REWARD
            )

    def get_labeler_kind(self, judge) -> str:
        return "ai"

    def get_api_key_stored(self, judge) -> bool:
        return bool(judge.api_key_encrypted)


def _admin_project(request: Request, project_id: int):
    project, role = annotator_selectors.project_get_for_member(
        project_id=project_id, user=request.user
    )
    if role != Membership.Role.ADMIN:
        raise PermissionDenied("Only the project's admins can manage its judges.")
    return project


def _judge(request: Request, judge_id: int) -> Judge:
    judge = Judge.objects.select_related("project").filter(id=judge_id).first()
    if judge is None:
        raise NotFound()
    _admin_project(request, judge.project_id)
    return judge


@extend_schema(methods=["GET"], responses=JudgeSerializer(many=True))
@extend_schema(methods=["POST"], request=JudgeSerializer, responses={201: JudgeSerializer})
@api_view(["GET", "POST"])
def judge_list_create(request: Request, project_id: int) -> Response:
    project = _admin_project(request, project_id)
    if request.method == "GET":
        return Response(JudgeSerializer(project.judges.all(), many=True).data)
    data = JudgeSerializer(data=request.data, project=project)
    data.is_valid(raise_exception=True)
    fields = dict(data.validated_data)
    try:
        judge = judging.judge_create(project=project, name=fields.pop("name"), **fields)
    except ServiceError as exc:
        return service_error_response(exc)
    return Response(JudgeSerializer(judge).data, status=status.HTTP_201_CREATED)


@extend_schema(methods=["GET"], responses=JudgeSerializer)
@extend_schema(methods=["PATCH"], request=JudgeSerializer, responses=JudgeSerializer)
@api_view(["GET", "PATCH"])
def judge_detail(request: Request, judge_id: int) -> Response:
    judge = _judge(request, judge_id)
    if request.method == "PATCH":
        data = JudgeSerializer(judge, data=request.data, partial=True, project=judge.project)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        fields.pop("name", None)  # the account's name stays
        try:
            judging.judge_update(judge=judge, **fields)
        except ServiceError as exc:
            return service_error_response(exc)
    return Response(JudgeSerializer(judge).data)


class RunIn(serializers.Serializer):
    max_tasks = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000)
    round = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    include_complete = serializers.BooleanField(
        default=False, help_text="Also judge tasks people completed (calibration)."
    )


class RunOut(serializers.Serializer):
    job_id = serializers.IntegerField()
    status = serializers.CharField()


@extend_schema(request=RunIn, responses={202: RunOut})
@api_view(["POST"])
def judge_run(request: Request, judge_id: int) -> Response:
    """Queue a judging job over the tasks this judge has not judged yet."""
    judge = _judge(request, judge_id)
    data = RunIn(data=request.data)
    data.is_valid(raise_exception=True)
    try:
        job = judging.judge_run(judge=judge, created_by=request.user, **data.validated_data)
    except JobError as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    return Response({"job_id": job.id, "status": job.status}, status=status.HTTP_202_ACCEPTED)


@extend_schema(request=None, responses=JudgeSerializer)
@api_view(["POST"])
def judge_resume(request: Request, judge_id: int) -> Response:
    judge = _judge(request, judge_id)
    judging.judge_resume(judge=judge)
    judge.refresh_from_db()
    return Response(JudgeSerializer(judge).data)
