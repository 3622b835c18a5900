from django.urls import path

from trainer import views

urlpatterns = [
    path("", views.training_home, name="training"),
    path("projects/<int:project_id>/jobs/", views.job_list, name="training_jobs"),
    path(
        "projects/<int:project_id>/jobs/new/<slug:kind>/",
        views.job_new,
        name="training_job_new",
    ),
    path("projects/<int:project_id>/models/", views.model_list, name="training_models"),
    path("jobs/<int:job_id>/", views.job_detail, name="training_job"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="training_job_cancel"),
]
