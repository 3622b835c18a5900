from django.urls import path

from annotator import audit_views, project_views, review_views, views
from annotator.quality import views as quality_views
from annotator.strategies import views as strategy_views

urlpatterns = [
    path("", views.home, name="home"),
    path("account/token/", views.api_token, name="api_token"),
    path("account/token/new/", views.api_token_regenerate, name="api_token_regenerate"),
    path("projects/<int:project_id>/", views.project_admin, name="project_admin"),
    path("projects/<int:project_id>/import/", views.project_import, name="project_import"),
    path(
        "projects/<int:project_id>/import/preferences/",
        views.project_import_preferences,
        name="project_import_preferences",
    ),
    path("projects/<int:project_id>/label/", views.label, name="label"),
    path(
        "projects/<int:project_id>/tasks/<int:task_id>/submit/",
        views.label_submit,
        name="label_submit",
    ),
    path(
        "projects/<int:project_id>/label/<int:task_id>/preview/",
        views.label_preview,
        name="label_preview",
    ),
    path(
        "projects/<int:project_id>/tasks/<int:task_id>/skip/",
        views.label_skip,
        name="label_skip",
    ),
    path("projects/<int:project_id>/annotations/", views.my_annotations, name="my_annotations"),
    path(
        "projects/<int:project_id>/annotations/<int:annotation_id>/undo/",
        views.label_undo,
        name="label_undo",
    ),
    path(
        "projects/<int:project_id>/annotations/<int:annotation_id>/edit/",
        views.annotation_edit,
        name="annotation_edit",
    ),
]

# Project setup and export (annotator/project_views.py).
urlpatterns += [
    path("projects/new/", project_views.project_new, name="project_new"),
    path(
        "projects/guidelines/preview/",
        project_views.guidelines_preview,
        name="project_guidelines_preview",
    ),
    path(
        "projects/<int:project_id>/settings/",
        project_views.project_settings,
        name="project_settings",
    ),
    path(
        "projects/<int:project_id>/members/",
        project_views.project_members,
        name="project_members",
    ),
    path(
        "projects/<int:project_id>/members/<int:membership_id>/remove/",
        project_views.project_member_remove,
        name="project_member_remove",
    ),
    path("projects/<int:project_id>/export/", project_views.project_export, name="project_export"),
    path(
        "projects/<int:project_id>/export/download/",
        project_views.project_export_download,
        name="project_export_download",
    ),
    path("projects/<int:project_id>/audit/", audit_views.audit_log, name="audit_log"),
    path(
        "projects/<int:project_id>/labelers/",
        quality_views.labeler_stats,
        name="quality_labelers",
    ),
    path(
        "projects/<int:project_id>/labelers/<int:labeler_id>/",
        quality_views.labeler_detail,
        name="quality_labeler",
    ),
    path(
        "projects/<int:project_id>/calibration/",
        quality_views.judge_calibration,
        name="quality_calibration",
    ),
]

# Label quality: gold tasks, paused labelers, review (annotator/review_views.py).
urlpatterns += [
    path("projects/<int:project_id>/gold/", review_views.gold_page, name="gold_page"),
    path(
        "projects/<int:project_id>/gold/<int:task_id>/",
        review_views.gold_set,
        name="gold_set",
    ),
    path("projects/<int:project_id>/review/", review_views.review_queue, name="review_queue"),
    path(
        "projects/<int:project_id>/review/<int:task_id>/",
        review_views.review_task,
        name="review_task",
    ),
    path(
        "projects/<int:project_id>/members/<int:user_id>/resume/",
        review_views.member_resume,
        name="member_resume",
    ),
]

# Prompt strategies and their outcomes (annotator/strategies/views.py).
urlpatterns += [
    path(
        "projects/<int:project_id>/strategies/",
        strategy_views.strategy_list,
        name="strategy_list",
    ),
    path(
        "projects/<int:project_id>/strategies/<int:strategy_id>/",
        strategy_views.strategy_edit,
        name="strategy_edit",
    ),
    path(
        "projects/<int:project_id>/strategies/<int:strategy_id>/delete/",
        strategy_views.strategy_delete,
        name="strategy_delete",
    ),
    path(
        "projects/<int:project_id>/strategies/outcomes/",
        strategy_views.outcome_page,
        name="strategy_outcomes",
    ),
    path(
        "projects/<int:project_id>/strategies/outcomes/export/",
        strategy_views.outcome_export,
        name="strategy_outcomes_export",
    ),
]
