"""The prompt selection page, its CSV export and the choose API, on a selector trained here."""

import pytest
from django.urls import reverse

from tests.conftest import api_client_for
from trainer.algorithms.oirl_synthetic import synthetic_log
from trainer.algorithms.prompt_oirl import PromptRewardConfig, train
from trainer.models import ModelVersion

pytestmark = pytest.mark.django_db
CODE_QUERY = "In my program, python function list recursion sort string bug #1?"


@pytest.fixture(scope="module")
def selector_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("selector")
    rows = synthetic_log(600, seed=3)  # as in tests/trainer/algorithms/test_prompt_oirl.py
    risky = {f"q{i}" for i in range(60)}  # some of these are held out
    for row in rows:
        if row["query_id"] in risky:
            row["query"] = f'=HYPERLINK("http://x") <script>alert(1)</script> {row["query"]}'
    metrics = train(PromptRewardConfig(seed=0), rows, out)
    return out, metrics


@pytest.fixture
def selector(project, selector_dir):
    out, metrics = selector_dir
    return ModelVersion.objects.create(
        project=project, name="prompt_reward-1", role="prompt_selector", path=str(out),
        metrics=metrics,
    )  # fmt: skip


def test_the_page_shows_the_evaluation_and_the_choices(client, alice, selector):
    client.force_login(alice)
    page = client.get(reverse("training_selection", args=[selector.project_id]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Gap closed" in html and f"{selector.metrics['accuracy_oracle']:.3f}" in html
    assert "Best single strategy for every query" in html
    assert html.count("<tr><td>") >= 100  # one row per held-out query (100 a page)
    assert "<script>alert" not in html


def test_the_page_chooses_for_a_query(client, alice, selector):
    client.force_login(alice)
    url = reverse("training_selection", args=[selector.project_id])
    html = client.get(url, {"query": CODE_QUERY}).content.decode()
    assert '<strong id="chosen">code_first</strong>' in html


def test_the_export_is_safe_from_formulas(client, alice, selector):
    client.force_login(alice)
    body = client.get(reverse("training_selection_export", args=[selector.project_id]))
    lines = body.content.decode().splitlines()
    assert lines[0].startswith("query_id,query,chosen,chosen_outcome,best_outcome,score_code_first")
    assert len(lines) == 1 + selector.metrics["eval_queries"]
    risky = [line for line in lines if "HYPERLINK" in line]
    assert risky and all("\"'=HYPERLINK" in line for line in risky)


def test_a_project_without_a_selector_says_so(client, alice, project):
    client.force_login(alice)
    page = client.get(reverse("training_selection", args=[project.id]))
    assert "no prompt selector yet" in page.content.decode()
    assert client.get(reverse("training_selection_export", args=[project.id])).status_code == 404


def test_the_api_returns_the_choice_and_every_score(alice, bob, charlie, selector):
    url = f"/api/v1/projects/{selector.project_id}/prompt-selection/choose/"
    answer = api_client_for(alice).post(url, {"query": CODE_QUERY}, format="json")
    assert answer.status_code == 200
    body = answer.json()
    assert body["model"] == selector.id and body["strategy"] == "code_first"
    assert len(body["scores"]) == 6 and max(body["scores"], key=body["scores"].get) == "code_first"
    blank = api_client_for(alice).post(url, {"query": "  "}, format="json")
    assert blank.status_code == 400 and blank.json() == {"query": ["Give a non-empty query."]}
    other = api_client_for(alice).post(url, {"query": "q", "model": 10**9}, format="json")
    assert other.status_code == 404
    assert api_client_for(bob).post(url, {"query": "q"}, format="json").status_code == 403
    assert api_client_for(charlie).post(url, {"query": "q"}, format="json").status_code == 404


def test_the_api_answers_409_without_a_selector(alice, project):
    url = f"/api/v1/projects/{project.id}/prompt-selection/choose/"
    answer = api_client_for(alice).post(url, {"query": "q"}, format="json")
    assert answer.status_code == 409 and "no prompt selector" in answer.json()["detail"]


def test_others_selectors_are_not_reachable(alice, selector):
    from tests.factories import MembershipFactory, ProjectFactory

    mine = ProjectFactory()
    MembershipFactory(project=mine, user=alice, role="admin")
    url = f"/api/v1/projects/{mine.id}/prompt-selection/choose/"
    answer = api_client_for(alice).post(url, {"query": "q", "model": selector.id}, format="json")
    assert answer.status_code == 404
