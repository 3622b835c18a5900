"""The API's JSON parser (webapp/parsers.py): a body a database cannot store, or that the JSON
decoder cannot take, is a 400 naming the field, on PostgreSQL and SQLite alike."""

from unittest import mock

import pytest

from annotator.models import Annotation
from tests.conftest import api_client_for
from tests.factories import make_task
from trainer.models import TrainingJob

pytestmark = pytest.mark.django_db


def post(client, url: str, body: str):
    return client.post(url, body.encode("utf-8"), content_type="application/json")


@pytest.fixture
def leased(project, bob):
    make_task(project)
    client = api_client_for(bob)
    task = client.post(f"/api/v1/projects/{project.id}/tasks/next/").json()
    return client, f"/api/v1/tasks/{task['id']}/annotations/"


@pytest.mark.parametrize(
    ("notes", "field", "reason"),
    [
        ('"fine\\u0000"', "notes", "NUL"),
        ('"\\ud83d"', "notes", "surrogate"),
        ("[" * 64 + "]" * 64, "notes", "nested deeper than 32"),
        ("[" * 100_000 + "]" * 100_000, "body", "nested deeper than 32"),
        ("1" + "0" * 5000, "notes", "digits"),
        ("1e999", "notes", "out of range"),
        ("Infinity", "notes", "Infinity"),
    ],
    ids=["nul", "surrogate", "deep", "very-deep", "huge-int", "huge-float", "infinity"],
)
def test_an_answer_body_it_cannot_store_is_a_400_naming_the_field(leased, notes, field, reason):
    client, url = leased
    resp = post(client, url, f'{{"choice": "a", "notes": {notes}}}')
    assert resp.status_code == 400, resp.content
    assert resp.json()["field"] == field and reason in resp.json()["detail"]
    assert not Annotation.objects.exists()


def test_a_job_config_with_a_nul_is_a_400_naming_the_field(project, alice):
    config = '{"model_name_or_path": "m\\u0000"}'
    body = f'{{"kind": "reward", "project": {project.id}, "config": {config}}}'
    with mock.patch("trainer.tasks.run_training_job.delay"):
        resp = post(api_client_for(alice), "/api/v1/jobs/", body)
    assert resp.status_code == 400, resp.content
    assert resp.json()["field"] == "config.model_name_or_path"
    assert not TrainingJob.objects.exists()


def test_broken_json_still_says_where(leased):
    client, url = leased
    resp = post(client, url, '{"choice": "a",')
    assert resp.status_code == 400 and "line 1, column" in resp.json()["detail"]


def test_a_plain_answer_still_goes_through(leased):
    client, url = leased
    resp = post(client, url, '{"choice": "a", "notes": "caf\\u00e9 \\ud83d\\ude00"}')
    assert resp.status_code == 201, resp.content
    assert Annotation.objects.get().notes == "café 😀"
