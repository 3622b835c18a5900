from django.urls import path

from trainer import launch_views, views
from trainer.judging import views as judging_views
from trainer.loop import views as loop_views
from trainer.selection import views as selection_views

urlpatterns = [
    path("", views.training_home, name="training"),
    path("projects/<int:project_id>/jobs/", views.job_list, name="training_jobs"),
    path(
        "projects/<int:project_id>/jobs/new/<slug:kind>/",
        launch_views.job_new,
        name="training_job_new",
    ),
    path(
        "projects/<int:project_id>/jobs/new/<slug:kind>/data/",
        launch_views.job_new_data,
        name="training_job_new_data",
    ),
    path("projects/<int:project_id>/models/", views.model_list, name="training_models"),
    path(
        "projects/<int:project_id>/models/register/",
        views.model_register,
        name="training_model_register",
    ),
    path(
        "projects/<int:project_id>/models/<int:model_id>/merge/",
        views.model_merge,
        name="training_model_merge",
    ),
    path("projects/<int:project_id>/loop/", loop_views.loop_page, name="training_loop"),
    path(
        "projects/<int:project_id>/loop/settings/",
        loop_views.loop_settings,
        name="training_loop_settings",
    ),
    path(
        "projects/<int:project_id>/loop/actions/<slug:action>/",
        loop_views.loop_action,
        name="training_loop_action",
    ),
    path(
        "projects/<int:project_id>/loop/reward-models/<int:model_id>/fresh-accuracy/",
        loop_views.loop_fresh_accuracy,
        name="training_loop_fresh_accuracy",
    ),
    path("projects/<int:project_id>/judges/", judging_views.judge_list, name="training_judges"),
    path(
        "projects/<int:project_id>/judges/new/", judging_views.judge_new, name="training_judge_new"
    ),
    path(
        "projects/<int:project_id>/judges/<int:judge_id>/<slug:action>/",
        judging_views.judge_action,
        name="training_judge_action",
    ),
    path("projects/<int:project_id>/compare/", views.job_compare, name="training_compare"),
    path(
        "projects/<int:project_id>/prompt-selection/",
        selection_views.selection_page,
        name="training_selection",
    ),
    path(
        "projects/<int:project_id>/prompt-selection/export/",
        selection_views.selection_export,
        name="training_selection_export",
    ),
    path("jobs/<int:job_id>/", views.job_detail, name="training_job"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="training_job_cancel"),
]
