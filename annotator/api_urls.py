from django.urls import path

from annotator import (  # noqa: F401 (converters registers <id:>)
    api,
    audit_api,
    converters,
    export_api,
    preference_api,
    review_api,
    revision_api,
)
from annotator.quality import api as quality_api
from annotator.strategies import api as strategy_api

urlpatterns = [
    path("projects/", api.project_list_create, name="api-projects"),
    path("projects/<id:project_id>/", api.project_detail, name="api-project"),
    path("projects/<id:project_id>/members/", api.project_member_add, name="api-members"),
    path("projects/<id:project_id>/import/", api.project_import_view, name="api-import"),
    path(
        "projects/<id:project_id>/import/preferences/",
        preference_api.preferences_import_view,
        name="api-import-preferences",
    ),
    path("projects/<id:project_id>/tasks/next/", api.task_next, name="api-task-next"),
    path("tasks/<id:task_id>/annotations/", api.annotation_create, name="api-annotate"),
    path("tasks/<id:task_id>/skip/", api.task_skip, name="api-skip"),
    path("annotations/<id:annotation_id>/", revision_api.annotation_edit, name="api-annotation"),
    path(
        "annotations/<id:annotation_id>/undo/",
        revision_api.annotation_undo,
        name="api-annotation-undo",
    ),
    path("projects/<id:project_id>/export/", export_api.project_export, name="api-export"),
    path(
        "projects/<id:project_id>/export/summary/",
        export_api.project_export_summary,
        name="api-export-summary",
    ),
    path(
        "projects/<id:project_id>/annotations/",
        export_api.ProjectAnnotationList.as_view(),
        name="api-annotations",
    ),
    path(
        "projects/<id:project_id>/audit/",
        audit_api.ProjectAuditList.as_view(),
        name="api-audit",
    ),
    path(
        "projects/<id:project_id>/quality/labelers/",
        quality_api.labeler_stats,
        name="api-quality-labelers",
    ),
    path(
        "projects/<id:project_id>/quality/agreement/",
        quality_api.agreement,
        name="api-quality-agreement",
    ),
    path(
        "projects/<id:project_id>/quality/reliability/",
        quality_api.reliability,
        name="api-quality-reliability",
    ),
    path(
        "projects/<id:project_id>/quality/calibration/",
        quality_api.calibration,
        name="api-quality-calibration",
    ),
]

# Label quality, queue side (annotator/review_api.py).
urlpatterns += [
    path("tasks/<id:task_id>/gold/", review_api.task_gold, name="api-task-gold"),
    path("projects/<id:project_id>/paused/", review_api.project_paused, name="api-paused"),
    path("projects/<id:project_id>/repeats/", review_api.project_repeats, name="api-repeats"),
    path("projects/<id:project_id>/review/", review_api.review_queue, name="api-review-queue"),
    path(
        "annotations/<id:annotation_id>/review/",
        review_api.annotation_review,
        name="api-annotation-review",
    ),
    path(
        "tasks/<id:task_id>/adjudication/",
        review_api.task_adjudication,
        name="api-task-adjudication",
    ),
    path(
        "projects/<id:project_id>/members/<id:user_id>/resume/",
        review_api.member_resume,
        name="api-member-resume",
    ),
]

# Prompt strategies and their outcomes (annotator/strategies/api.py).
urlpatterns += [
    path(
        "projects/<id:project_id>/strategies/",
        strategy_api.strategy_list_create,
        name="api-strategies",
    ),
    path(
        "projects/<id:project_id>/strategies/<id:strategy_id>/",
        strategy_api.strategy_detail,
        name="api-strategy",
    ),
    path(
        "projects/<id:project_id>/strategies/import/",
        strategy_api.strategy_log_import_view,
        name="api-strategy-import",
    ),
    path(
        "projects/<id:project_id>/strategies/outcomes/",
        strategy_api.outcomes,
        name="api-strategy-outcomes",
    ),
]
