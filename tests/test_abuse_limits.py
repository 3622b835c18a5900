"""Abuse limits: login lock-out (django-axes), API rate per token, import size and rate.

The test settings turn all of them off; each test here turns on the one it checks."""

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotator import throttling
from tests.factories import UserFactory, make_task

LINE = b'{"prompt": "p", "completions": ["a", "b"]}\n'


@pytest.fixture(autouse=True)
def fresh_counters():
    cache.clear()
    yield
    cache.clear()


# --- Login -----------------------------------------------------------------------------------


@pytest.fixture
def lockout(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    return settings


def login(username, password, address="192.0.2.1"):
    client = Client(REMOTE_ADDR=address)
    return client.post(reverse("login"), {"username": username, "password": password})


def test_it_locks_an_account_out_after_repeated_failures(lockout, db):
    UserFactory(username="erin")
    assert login("erin", "pw-for-tests-1").status_code == 302  # works before
    for _ in range(2):
        response = login("erin", "wrong")
        assert response.status_code == 200 and b"Please enter a correct" in response.content
    response = login("erin", "wrong")
    assert response.status_code == 429
    # Locked: even the right password, from another address, is refused, with the reason.
    response = login("erin", "pw-for-tests-1", address="192.0.2.99")
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed logins" in page and "15 minutes" in page
    assert 'name="password"' in page  # still the login page


def test_it_locks_an_address_out_whatever_the_username(lockout, db):
    UserFactory(username="erin")
    for name in ["a", "b", "c"]:
        login(name, "wrong", address="192.0.2.7")
    assert login("erin", "pw-for-tests-1", address="192.0.2.7").status_code == 429
    assert login("erin", "pw-for-tests-1", address="192.0.2.8").status_code == 302


def test_axes_reset_unlocks(lockout, db):
    UserFactory(username="erin")
    for _ in range(3):
        login("erin", "wrong")
    assert login("erin", "pw-for-tests-1").status_code == 429
    call_command("axes_reset")
    assert login("erin", "pw-for-tests-1").status_code == 302


def test_an_admin_unlocks_in_the_django_admin(lockout, db):
    from axes.models import AccessAttempt

    UserFactory(username="erin")
    for _ in range(3):
        login("erin", "wrong")
    assert login("erin", "pw-for-tests-1").status_code == 429
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    web = Client()
    web.force_login(admin)
    ids = list(AccessAttempt.objects.values_list("id", flat=True))
    changelist = reverse("admin:axes_accessattempt_changelist")
    response = web.post(
        changelist, {"action": "delete_selected", "_selected_action": ids, "post": "yes"}
    )
    assert response.status_code == 302
    assert login("erin", "pw-for-tests-1").status_code == 302


# --- API rate --------------------------------------------------------------------------------


def test_the_api_answers_429_with_retry_after_per_token(
    settings, project, alice, bob, api_as, monkeypatch
):
    # 30 s into a window: the four requests cannot straddle two windows.
    monkeypatch.setattr(throttling, "clock", lambda: 60.0 * 29_000_000 + 30.0)
    settings.PREFLOOP_API_RATE = "3/min"
    client = api_as(alice)
    for _ in range(3):
        assert client.get("/api/v1/projects/").status_code == 200
    response = client.get("/api/v1/projects/")
    assert response.status_code == 429
    assert int(response["Retry-After"]) == 30  # the seconds left in the window
    assert "throttled" in response.json()["detail"]
    assert api_as(bob).get("/api/v1/projects/").status_code == 200  # another token


def test_the_limit_costs_the_labeling_hot_path_no_query(settings, project, bob, api_as):
    make_task(project)
    make_task(project)
    client = api_as(bob)
    url = f"/api/v1/projects/{project.id}/tasks/next/"
    assert client.post(url).status_code == 200  # the lease; asking again reads it back
    settings.PREFLOOP_API_RATE = None
    with CaptureQueriesContext(connection) as off:
        assert client.post(url).status_code == 200
    settings.PREFLOOP_API_RATE = "1000/min"
    with CaptureQueriesContext(connection) as on:
        assert client.post(url).status_code == 200
    assert len(on) == len(off)


# --- Import size and rate -------------------------------------------------------------------


def test_it_refuses_an_import_over_the_size_limit(settings, project, alice, api_as):
    settings.PREFLOOP_IMPORT_MAX_BYTES = 100
    url = f"/api/v1/projects/{project.id}/import/"
    big = LINE * 5
    response = api_as(alice).generic("POST", url, big, content_type="application/jsonl")
    assert response.status_code == 413
    assert response.json()["limit_bytes"] == 100
    assert "limited to 100 bytes" in response.json()["detail"]
    upload = SimpleUploadedFile("big.jsonl", LINE * 3000)
    response = api_as(alice).post(url, {"file": upload}, format="multipart")
    assert response.status_code == 413
    assert (
        api_as(alice).generic("POST", url, LINE, content_type="application/jsonl").status_code
        == 201
    )


def test_the_project_page_refuses_an_import_over_the_size_limit(settings, project, alice):
    settings.PREFLOOP_IMPORT_MAX_BYTES = 100
    web = Client()
    web.force_login(alice)
    upload = SimpleUploadedFile("big.jsonl", LINE * 5)
    response = web.post(
        reverse("project_import", args=[project.id]), {"file": upload, "format": "auto"}
    )
    assert response.status_code == 200
    assert "imports are limited to 100 bytes" in response.content.decode()
    assert project.prompts.count() == 0


def test_it_refuses_imports_too_often(settings, project, alice, api_as, monkeypatch):
    monkeypatch.setattr(throttling, "clock", lambda: 3600.0 * 500_000 + 60.0)
    settings.PREFLOOP_IMPORT_RATE = "2/hour"
    url = f"/api/v1/projects/{project.id}/import/"
    client = api_as(alice)
    for _ in range(2):
        assert (
            client.generic("POST", url, LINE, content_type="application/jsonl").status_code == 201
        )
    response = client.generic("POST", url, LINE, content_type="application/jsonl")
    assert response.status_code == 429
    assert int(response["Retry-After"]) == 3540
    # The project page shares the count, and says so.
    web = Client()
    web.force_login(alice)
    upload = SimpleUploadedFile("p.jsonl", LINE)
    response = web.post(
        reverse("project_import", args=[project.id]), {"file": upload, "format": "auto"}
    )
    assert response.status_code == 429
    assert "Too many imports: try again in" in response.content.decode()
    assert project.prompts.count() == 2
    # Other API calls are not import-limited.
    assert client.get(f"/api/v1/projects/{project.id}/").status_code == 200


def test_a_bad_rate_setting_is_refused_at_start(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from webapp.env import env_rate

    monkeypatch.setenv("PREFLOOP_API_RATE", "lots")
    with pytest.raises(ImproperlyConfigured, match="PREFLOOP_API_RATE"):
        env_rate("PREFLOOP_API_RATE", "3000/min")
    monkeypatch.setenv("PREFLOOP_API_RATE", "off")
    assert env_rate("PREFLOOP_API_RATE", "3000/min") is None
    monkeypatch.setenv("PREFLOOP_API_RATE", "20/s")
    assert env_rate("PREFLOOP_API_RATE", "3000/min") == "20/s"
