from django.urls import path

from annotator import converters  # noqa: F401 (registers <id:>)
from trainer import api
from trainer.loop import api as loop_api
from trainer.selection import api as selection_api

urlpatterns = [
    path("jobs/", api.job_list_create, name="api-jobs"),
    path("jobs/<id:job_id>/", api.job_detail, name="api-job"),
    path("jobs/<id:job_id>/cancel/", api.job_cancel, name="api-job-cancel"),
    path("models/", api.model_list, name="api-models"),
    path("projects/<id:project_id>/loop/", loop_api.loop_detail, name="api-loop"),
    path("projects/<id:project_id>/loop/actions/", loop_api.loop_action, name="api-loop-action"),
    path(
        "projects/<id:project_id>/prompt-selection/choose/",
        selection_api.choose,
        name="api-prompt-choose",
    ),
]
