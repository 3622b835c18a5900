"""The export over HTTP: access, streaming, the three formats, the summary, and the
annotation listing for incremental sync."""

import csv
import hashlib
import io
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from annotator.export import ExportParams, export_start, export_summary, formats
from annotator.models import Annotation, Kind, Membership
from tests.annotator.exportkit import labelers, pick, prompt_for, task_over
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

URLS = ["/api/v1/projects/{}/export/", "/api/v1/projects/{}/export/summary/",
        "/api/v1/projects/{}/annotations/"]  # fmt: skip


@pytest.fixture
def answered(project):
    """Two pairwise tasks, each answered by one labeler; the texts are hostile on purpose."""
    (l1,) = labelers(1)
    t1, (a, _) = task_over(
        prompt_for(project, '=HYPERLINK("http://x")'),
        ["-2+3", 'line one\nline two, "quoted"'],
        kind=Kind.PAIRWISE,
    )
    pick(t1, l1, a)
    t2, (_, d) = task_over(prompt_for(project, "Ünïcode ✓"), ["@cmd", "\tTab"], kind=Kind.PAIRWISE)
    pick(t2, l1, d)
    return project


def body(response) -> bytes:
    assert response.streaming
    return b"".join(response.streaming_content)


@pytest.mark.parametrize("url", URLS)
def test_it_lets_only_the_projects_admins_export(answered, alice, bob, charlie, api_as, url):
    url = url.format(answered.id)
    assert APIClient().get(url).status_code == 401
    assert api_as(bob).get(url).status_code == 403  # a labeler on the project
    assert api_as(charlie).get(url).status_code == 404  # not a member
    other_admin = UserFactory(username="dana", is_staff=True)
    MembershipFactory(project=ProjectFactory(), user=other_admin, role=Membership.Role.ADMIN)
    assert api_as(other_admin).get(url).status_code == 404
    assert api_as(alice).get(url).status_code == 200


def test_it_streams_jsonl_with_a_summary_of_the_same_bytes(answered, alice, api_as):
    client = api_as(alice)
    response = client.get(f"/api/v1/projects/{answered.id}/export/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    assert f"project-{answered.id}-preference.jsonl" in response["Content-Disposition"]
    data = body(response)
    rows = [json.loads(line) for line in data.decode().splitlines()]
    assert [r["chosen"] for r in rows] == ["-2+3", "\tTab"]
    assert rows[1]["prompt"] == "Ünïcode ✓"

    until = response["X-Export-Until"]
    summary = client.get(f"/api/v1/projects/{answered.id}/export/summary/", {"until": until}).json()
    assert summary["rows"] == 2
    assert summary["bytes"] == len(data)
    assert summary["sha256"] == hashlib.sha256(data).hexdigest()
    assert summary["dropped"] == {}
    # The Link header points at the summary of exactly this export.
    link = response["Link"]
    assert link.startswith("<http://testserver/api/v1/projects/") and "until=" in link
    linked = client.get(link[1 : link.index(">")].removeprefix("http://testserver")).json()
    assert linked["sha256"] == summary["sha256"]


def test_it_streams_in_chunks(answered, alice, api_as, monkeypatch):
    monkeypatch.setattr(formats, "CHUNK_BYTES", 10)
    response = api_as(alice).get(f"/api/v1/projects/{answered.id}/export/")
    chunks = list(response.streaming_content)
    assert len(chunks) == 2  # one per row: the rows are never gathered into one string


def test_it_writes_csv_that_spreadsheets_cannot_run(answered, alice, api_as):
    response = api_as(alice).get(f"/api/v1/projects/{answered.id}/export/", {"format": "csv"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = body(response).decode()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in rows] == [
        ('\'=HYPERLINK("http://x")', "'-2+3", 'line one\nline two, "quoted"'),
        ("Ünïcode ✓", "'\tTab", "'@cmd"),
    ]
    assert rows[0]["labelers"].startswith("[") and rows[0]["round"] == ""
    assert list(rows[0]) == [name for name, _ in formats_columns("preference")]


def formats_columns(schema):
    from annotator.export.rows import COLUMNS

    return COLUMNS[schema]


def test_it_writes_parquet_with_the_same_rows_as_jsonl(answered, alice, api_as):
    import pyarrow.parquet as pq

    client = api_as(alice)
    url = f"/api/v1/projects/{answered.id}/export/"
    for schema in ["preference", "preference-conversational", "unpaired", "raw"]:
        jsonl = body(client.get(url, {"schema": schema}))
        parquet = body(client.get(url, {"schema": schema, "format": "parquet"}))
        table = pq.read_table(io.BytesIO(parquet))
        expected = [json.loads(line) for line in jsonl.splitlines()]
        assert table.to_pylist() == expected, schema


def test_it_answers_400_for_a_bad_parameter(answered, alice, api_as):
    client = api_as(alice)
    url = f"/api/v1/projects/{answered.id}/export/"
    assert client.get(url, {"schema": "nope"}).status_code == 400
    assert client.get(url, {"min_agreement": "2"}).status_code == 400
    assert client.get(url, {"aspect": "helpful"}).json() == {
        "aspect": ["The project has no aspect 'helpful'."]
    }


def test_it_serves_clients_that_ask_for_the_file_type(answered, alice, api_as):
    response = api_as(alice).get(
        f"/api/v1/projects/{answered.id}/export/", {"format": "csv"}, HTTP_ACCEPT="text/csv"
    )
    assert response.status_code == 200


def test_it_lists_annotations_a_page_at_a_time_for_sync(project, alice, api_as):
    voters = labelers(5)
    task, (a, _) = task_over(prompt_for(project, "Q"), ["a", "b"], kind=Kind.PAIRWISE)
    answers = [pick(task, voter, a) for voter in voters]
    start = timezone.now()
    for minute, answer in enumerate(answers):  # distinct times, whatever the clock's grain
        answer.created_at = start + timedelta(minutes=minute)
        Annotation.objects.filter(pk=answer.pk).update(created_at=answer.created_at)
    client = api_as(alice)

    seen, url = [], f"/api/v1/projects/{project.id}/annotations/?page_size=2"
    while url:
        page = client.get(url).json()
        seen += page["results"]
        url = page["next"]
    assert [r["id"] for r in seen] == [x.id for x in answers]
    assert seen[0]["labeler"] == voters[0].id and seen[0]["chosen_id"] == a.id

    since = answers[3].created_at.isoformat()
    page = client.get(f"/api/v1/projects/{project.id}/annotations/", {"since": since}).json()
    assert [r["id"] for r in page["results"]] == [answers[3].id, answers[4].id]


def test_it_frees_the_database_when_a_download_stops_early(project, monkeypatch):
    (voter,) = labelers(1)
    for i in range(40):
        task, (a, _) = task_over(prompt_for(project, f"Q{i}"), ["a", "b"], kind=Kind.PAIRWISE)
        pick(task, voter, a)
    monkeypatch.setattr(formats, "CHUNK_BYTES", 10)
    chunks = export_start(project=project, params=ExportParams()).chunks()
    assert next(chunks).startswith(b'{"prompt":"Q0"')
    chunks.close()  # what the response does when the client goes away

    # On PostgreSQL a half-read stream would still hold the connection here.
    assert Annotation.objects.filter(task__project=project).count() == 40


@pytest.mark.parametrize("schema", ["preference", "preference-conversational", "ranking", "raw"])
@pytest.mark.parametrize(
    "filters",
    [{"round": 7}, {"labeler": [424242]}, {"round": 0, "labeler": [1]}, {"split": "eval"}],
)
def test_it_summarises_filters_that_match_nothing_as_empty(
    answered, alice, api_as, schema, filters
):
    response = api_as(alice).get(
        f"/api/v1/projects/{answered.id}/export/summary/", {"schema": schema, **filters}
    )
    assert response.status_code == 200, response.content
    assert response.json()["rows"] == 0


@pytest.mark.parametrize("schema", ["preference", "ranking", "unpaired", "raw"])
def test_it_exports_nothing_for_filter_values_beyond_the_columns_range(answered, schema):
    # The ORM knows such a filter matches nothing and says so while writing the SQL
    # (EmptyResultSet); the streamed readers answered 500 instead of an empty export.
    for params in [
        ExportParams(schema=schema, round=2**40),
        ExportParams(schema=schema, labelers=(2**40,)),
    ]:
        summary = export_summary(project=answered, params=params)
        assert summary["rows"] == 0


def test_it_refuses_round_and_labeler_beyond_the_columns_range(answered, alice, api_as):
    url = f"/api/v1/projects/{answered.id}/export/summary/"
    response = api_as(alice).get(url, {"round": 2**40, "labeler": 2**40})
    assert response.status_code == 400
    assert set(response.json()) == {"round", "labeler"}


@pytest.mark.parametrize("url", URLS)
def test_it_refuses_a_blank_date_instead_of_ignoring_it(answered, alice, api_as, url):
    # DRF reads `?since=` as "no since": the API answers 400 naming it, as its schema says.
    response = api_as(alice).get(url.format(answered.id), {"since": ""})
    assert response.status_code == 400
    assert "since" in response.json()


def test_the_models_list_refuses_a_blank_project(alice, api_as):
    response = api_as(alice).get("/api/v1/models/", {"project": ""})
    assert response.status_code == 400
    assert "project" in response.json()
