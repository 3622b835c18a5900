"""Django admin for training jobs and the model registry: a back office, read-mostly.

Jobs are written by trainer/services.py only (launched through the API or the training pages,
run by the workers), so every field is read-only here; the one action, cancel, goes through
services.job_cancel. A model version made by a job is read-only too; a base model (a Hugging
Face id or a local path that no job made) can be registered here by hand, so jobs can start
from it.
"""

from django.contrib import admin, messages
from django.http import HttpRequest

from annotator.audit import AuditEntry, audit_record
from trainer import services
from trainer.exceptions import JobError
from trainer.models import ModelVersion, TrainingJob


def _audit(request: HttpRequest, job: TrainingJob, action: str) -> None:
    audit_record(
        request=request, project=job.project_id, action=action, target=f"job {job.id}",
        details={"kind": job.kind},
    )  # fmt: skip


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "kind", "status", "step", "total_steps", "created_at"]
    list_filter = ["status", "kind", "project"]
    list_select_related = ["project"]
    search_fields = ["error", "worker"]
    actions = ["cancel_jobs"]

    def get_queryset(self, request: HttpRequest):
        queryset = super().get_queryset(request)
        # The list shows none of the large fields.
        if getattr(request.resolver_match, "url_name", "").endswith("changelist"):
            return queryset.defer("metrics", "log_tail", "config", "dataset")
        return queryset

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return [f.name for f in TrainingJob._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: TrainingJob) -> None:
        _audit(request, obj, AuditEntry.Action.JOB_DELETE)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        for job in queryset.only("id", "project_id", "kind"):
            _audit(request, job, AuditEntry.Action.JOB_DELETE)
        super().delete_queryset(request, queryset)

    @admin.action(description="Cancel the selected jobs")
    def cancel_jobs(self, request: HttpRequest, queryset) -> None:
        cancelled, ended = 0, 0
        for job in queryset:
            try:
                services.job_cancel(job=job)
                _audit(request, job, AuditEntry.Action.JOB_CANCEL)
                cancelled += 1
            except JobError:
                ended += 1
        self.message_user(request, f"Cancelled or asked to stop: {cancelled}.", messages.SUCCESS)
        if ended:
            self.message_user(request, f"Already ended: {ended}.", messages.WARNING)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "role", "path", "parent", "made_by", "created_at"]
    list_filter = ["role", "project"]
    list_select_related = ["project", "parent"]
    search_fields = ["name", "path"]
    raw_id_fields = ["project", "parent"]

    @admin.display(description="Made by", ordering="job_id")
    def made_by(self, obj: ModelVersion) -> str:
        # The id alone: loading the job would bring its whole metric series, once a row.
        return f"job #{obj.job_id}" if obj.job_id else "registered"

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        if obj is None:
            return ["job", "metrics", "config", "created_at"]
        # What a checkpoint is and where it came from never changes; its name may.
        return ["project", "role", "path", "parent", "job", "metrics", "config", "created_at"]
