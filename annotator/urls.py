from django.urls import path

from annotator import views
from annotator.quality import views as quality_views

urlpatterns = [
    path("", views.home, name="home"),
    path("account/token/", views.api_token, name="api_token"),
    path("account/token/new/", views.api_token_regenerate, name="api_token_regenerate"),
    path("projects/<int:project_id>/", views.project_admin, name="project_admin"),
    path("projects/<int:project_id>/import/", views.project_import, name="project_import"),
    path("projects/<int:project_id>/label/", views.label, name="label"),
    path(
        "projects/<int:project_id>/tasks/<int:task_id>/submit/",
        views.label_submit,
        name="label_submit",
    ),
    path(
        "projects/<int:project_id>/tasks/<int:task_id>/skip/",
        views.label_skip,
        name="label_skip",
    ),
    path("projects/<int:project_id>/annotations/", views.my_annotations, name="my_annotations"),
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
]
