"""Operations: the demo seeding, and a real Celery worker answering a task over Redis."""

import io
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
from celery import Celery
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from annotator.models import Kind, Membership, Project, Prompt, Task

ROOT = Path(__file__).resolve().parent.parent


def _seed(credentials: Path) -> str:
    out = io.StringIO()
    call_command("seed_demo", credentials_file=credentials, stdout=out)
    return out.getvalue()


def _counts() -> tuple:
    return (
        get_user_model().objects.count(),
        Project.objects.count(),
        Prompt.objects.count(),
        Task.objects.count(),
        Membership.objects.count(),
    )


def test_it_seeds_the_demo_once_and_leaves_it_alone_after(db, tmp_path):
    credentials = tmp_path / "accounts.txt"
    first = _seed(credentials)
    assert "password:" in first
    projects = {p.kind: p for p in Project.objects.all()}
    assert set(projects) == {Kind.PAIRWISE, Kind.LIKERT, Kind.RANKING}
    for project in projects.values():
        assert project.guidelines.startswith("# ")
        assert project.prompts.count() >= 24
        assert Task.objects.filter(project=project).count() >= 24
        assert project.prompts.filter(messages__isnull=False).exists()
        roles = dict(project.memberships.values_list("user__username", "role"))
        assert roles == {"admin": "admin", "labeler1": "labeler", "labeler2": "labeler"}
    assert projects[Kind.LIKERT].aspects and len(projects[Kind.LIKERT].flags) == 8
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    before = _counts()
    stored = credentials.read_text()
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"

    second = _seed(credentials)

    assert _counts() == before
    assert "password:" not in second and second.count("unchanged") == 3
    assert credentials.read_text() == stored


def test_it_prints_passwords_that_log_in(db, tmp_path):
    credentials = tmp_path / "accounts.txt"
    _seed(credentials)
    call_command(
        "seed_demo", reset_passwords=True, credentials_file=credentials, stdout=io.StringIO()
    )
    accounts = dict(line.split(" ", 1) for line in credentials.read_text().splitlines())
    assert set(accounts) == {"admin", "labeler1", "labeler2"}
    client = Client()
    assert client.login(username="labeler1", password=accounts["labeler1"])
    assert client.get("/").status_code == 200


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 6379), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.slow
def test_it_gets_ping_answered_by_a_real_worker(tmp_path):
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
    if not _reachable(broker) and not os.environ.get("CI"):
        pytest.skip(f"no Redis at {broker} (./scripts/test starts one)")
    # A queue of its own, so workers of other test runs on the same Redis cannot take the task.
    queue = f"ops-test-{uuid.uuid4().hex[:12]}"
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "webapp.test_settings",
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": broker,
        "PREFLOOP_VAR_DIR": str(tmp_path),
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "webapp", "worker"),
                *("-Q", queue, "--pool=solo", "--concurrency=1", "--prefetch-multiplier=1"),
                *("--without-gossip", "--without-mingle", "--hostname", f"{queue}@%h"),
                "--loglevel=INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    app = Celery("ops-test", broker=broker, backend=broker)
    try:
        result = app.send_task("annotator.tasks.ping", queue=queue)
        try:
            answer = result.get(timeout=120)
        except Exception as exc:
            pytest.fail(f"no answer from the worker ({exc!r}); its log:\n{log.read_text()}")
        assert answer == "pong"
        result.forget()
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        app.close()
    assert "ready." in log.read_text()


def test_it_describes_the_compose_stack():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis"} <= set(services)
    assert services["web"]["command"][:2] == ["gunicorn", "webapp.wsgi"]
    worker = services["worker"]["command"]
    assert "--pool=solo" in worker and any(q.startswith("--queues=gpu") for q in worker)
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]
    assert "pgdata" in compose["volumes"]
    assert "FROM python:3.11-slim" in (ROOT / "Dockerfile").read_text()


def test_it_passes_docker_compose_config_where_compose_is_installed(tmp_path):
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run([*command, "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            break
    else:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    done = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr


def test_it_shows_every_model_in_the_admin_and_keeps_annotations_read_only(db, tmp_path):
    from annotator import services
    from annotator.models import Annotation, Assignment, Completion

    _seed(tmp_path / "accounts.txt")
    labeler = get_user_model().objects.get(username="labeler1")
    project = Project.objects.get(kind=Kind.PAIRWISE)
    assignment = services.task_claim_next(project=project, labeler=labeler)
    services.annotation_submit(task=assignment.task, labeler=labeler, answer={"choice": "a"})
    client = Client()
    client.force_login(get_user_model().objects.get(username="admin"))
    annotation = Annotation.objects.get()
    objects = [
        project,
        project.memberships.first(),
        project.prompts.first(),
        Completion.objects.first(),
        assignment.task,
        Assignment.objects.first(),
        annotation,
    ]
    for obj in objects:
        base = f"/admin/annotator/{obj._meta.model_name}/"
        assert client.get(base).status_code == 200, base
        assert client.get(f"{base}{obj.pk}/change/").status_code == 200, base
    page = client.get(f"/admin/annotator/annotation/{annotation.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert client.get("/admin/annotator/annotation/add/").status_code == 403
    assert client.post(f"/admin/annotator/annotation/{annotation.pk}/delete/").status_code == 403
    assert Annotation.objects.filter(pk=annotation.pk).exists()


def test_it_makes_the_creator_admin_of_a_project_added_in_the_admin(alice):
    alice.is_superuser = True
    alice.save()
    client = Client()
    client.force_login(alice)
    form = {
        "name": "Added in the admin",
        "kind": "pairwise",
        "guidelines": "",
        "overlap": 1,
        "lease_seconds": 600,
        "allow_tie": "on",
        "wide_lines": "all_pairs",
        "likert_points": 7,
        "flags": "[]",
        "aspects": "[]",
        # The quality checks' fields, as the add form fills them in (their defaults).
        "gold_every": 0,
        "repeat_share": 0.0,
        "gold_min_answers": 10,
        "memberships-TOTAL_FORMS": 0,
        "memberships-INITIAL_FORMS": 0,
    }
    resp = client.post("/admin/annotator/project/add/", form)
    assert resp.status_code == 302, resp.content.decode()[:3000]
    project = Project.objects.get(name="Added in the admin")
    assert project.created_by == alice
    assert project.memberships.get().user == alice
    assert project.memberships.get().role == Membership.Role.ADMIN
