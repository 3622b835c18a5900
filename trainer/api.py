"""Training-job API (docs/training.md): launch, watch, cancel; list models. Admins only."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from annotator import selectors as annotator_selectors
from annotator.api_fields import DB_BIG_MAX, StrictIntegerField, refuse_blank
from annotator.audit import AuditEntry, audit_record
from annotator.models import Membership
from trainer import model_services, selectors, services
from trainer.exceptions import JobError
from trainer.kinds import LAUNCHABLE, choices
from trainer.models import ModelVersion, TrainingJob


class ModelVersionOut(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "id", "project", "name", "role", "path", "parent", "job", "metrics", "adapter_base",
            "base_model", "created_at",
        ]  # fmt: skip


class JobOut(serializers.ModelSerializer):
    output_model = ModelVersionOut(read_only=True, allow_null=True)

    class Meta:
        model = TrainingJob
        fields = [
            "id",
            "project",
            "kind",
            "status",
            "config",
            "dataset",
            "step",
            "total_steps",
            "metrics",
            "snapshot_sha256",
            "snapshot_rows",
            "input_model",
            "reward_model",
            "output_model",
            "error",
            "log_tail",
            "attempts",
            "worker",
            "heartbeat_at",
            "cancel_requested",
            "created_at",
            "started_at",
            "finished_at",
        ]


class JobIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=choices(LAUNCHABLE))  # trainer/kinds.py
    project = StrictIntegerField(min_value=1, max_value=DB_BIG_MAX)
    config = serializers.DictField(
        required=False, default=dict, help_text="The kind's settings (docs/training.md)."
    )
    dataset = serializers.DictField(
        required=False, default=dict, help_text="Which labels or prompts to train on."
    )
    input_model = StrictIntegerField(
        required=False, allow_null=True, min_value=1, max_value=DB_BIG_MAX
    )
    reward_model = StrictIntegerField(
        required=False, allow_null=True, min_value=1, max_value=DB_BIG_MAX
    )


def _model(project, model_id, field):
    if model_id is None:
        return None
    model = ModelVersion.objects.filter(id=model_id, project=project).first()
    if model is None:
        raise serializers.ValidationError({field: ["No such model in this project."]})
    return model


@extend_schema(methods=["GET"], responses=JobOut(many=True), operation_id="v1_jobs_list")
@extend_schema(methods=["POST"], request=JobIn, responses={201: JobOut})
@api_view(["GET", "POST"])
def job_list_create(request: Request) -> Response:
    if request.method == "GET":
        jobs = selectors.jobs_for_admin(request.user)[:200]
        return Response(JobOut(jobs, many=True).data)
    data = JobIn(data=request.data)
    data.is_valid(raise_exception=True)
    project, role = annotator_selectors.project_get_for_member(
        project_id=data.validated_data["project"], user=request.user
    )
    if role != Membership.Role.ADMIN:
        raise PermissionDenied("Only the project's admins can launch jobs.")
    try:
        job = services.job_create(
            project=project,
            kind=data.validated_data["kind"],
            config=data.validated_data["config"],
            dataset=data.validated_data["dataset"],
            created_by=request.user,
            input_model=_model(project, data.validated_data.get("input_model"), "input_model"),
            reward_model=_model(project, data.validated_data.get("reward_model"), "reward_model"),
        )
    except JobError as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    audit_record(
        request=request, project=project, action=AuditEntry.Action.JOB_LAUNCH,
        target=f"job {job.id}", details={"kind": job.kind},
    )  # fmt: skip
    return Response(JobOut(job).data, status=status.HTTP_201_CREATED)


@extend_schema(responses=JobOut)
@api_view(["GET"])
def job_detail(request: Request, job_id: int) -> Response:
    return Response(JobOut(selectors.job_get_for_admin(job_id=job_id, user=request.user)).data)


@extend_schema(request=None, responses=JobOut)
@api_view(["POST"])
def job_cancel(request: Request, job_id: int) -> Response:
    job = selectors.job_get_for_admin(job_id=job_id, user=request.user)
    try:
        job = services.job_cancel(job=job)
    except JobError as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    audit_record(
        request=request, project=job.project_id, action=AuditEntry.Action.JOB_CANCEL,
        target=f"job {job.id}",
    )  # fmt: skip
    return Response(JobOut(job).data)


class ModelsQuery(serializers.Serializer):
    project = serializers.IntegerField(
        required=False, min_value=1, max_value=DB_BIG_MAX, help_text="Only this project's."
    )


@extend_schema(parameters=[ModelsQuery], responses=ModelVersionOut(many=True))
@api_view(["GET"])
def model_list(request: Request) -> Response:
    models = selectors.models_for_admin(request.user)
    refuse_blank(ModelsQuery, request.query_params)
    query = ModelsQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    if "project" in query.validated_data:
        models = models.filter(project_id=query.validated_data["project"])
    return Response(ModelVersionOut(models[:500], many=True).data)


@extend_schema(request=None, responses={201: ModelVersionOut})
@api_view(["POST"])
def model_merge(request: Request, model_id: int) -> Response:
    """Merge a LoRA adapter version into full weights: a new version, the adapter's child.
    Waits for the merge (a child process); 409 when the version is not an adapter or was
    already merged."""
    model = selectors.models_for_admin(request.user).filter(id=model_id).first()
    if model is None:
        return Response({"detail": "No such model."}, status=status.HTTP_404_NOT_FOUND)
    try:
        merged = model_services.model_merge(model=model, created_by=request.user)
    except model_services.RegistryError as exc:
        return Response({"detail": exc.message}, status=status.HTTP_409_CONFLICT)
    return Response(ModelVersionOut(merged).data, status=status.HTTP_201_CREATED)
