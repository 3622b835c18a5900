from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotator import selectors


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = selectors.projects_for_user(request.user).order_by("name")
    return render(request, "annotator/home.html", {"projects": projects})
