from django.urls import path

from annotator import converters  # noqa: F401 (registers <id:>)
from trainer import api
from trainer.judging import api as judging_api
from trainer.loop import api as loop_api
from trainer.selection import api as selection_api

urlpatterns = [
    path("jobs/", api.job_list_create, name="api-jobs"),
    path("jobs/<id:job_id>/", api.job_detail, name="api-job"),
    path("jobs/<id:job_id>/cancel/", api.job_cancel, name="api-job-cancel"),
    path("models/", api.model_list, name="api-models"),
    path("models/<id:model_id>/merge/", api.model_merge, name="api-model-merge"),
    path("projects/<id:project_id>/loop/", loop_api.loop_detail, name="api-loop"),
    path("projects/<id:project_id>/loop/actions/", loop_api.loop_action, name="api-loop-action"),
    path("projects/<id:project_id>/judges/", judging_api.judge_list_create, name="api-judges"),
    path("judges/<id:judge_id>/", judging_api.judge_detail, name="api-judge"),
    path("judges/<id:judge_id>/run/", judging_api.judge_run, name="api-judge-run"),
    path("judges/<id:judge_id>/resume/", judging_api.judge_resume, name="api-judge-resume"),
    path(
        "projects/<id:project_id>/prompt-selection/choose/",
        selection_api.choose,
        name="api-prompt-choose",
    ),
]
