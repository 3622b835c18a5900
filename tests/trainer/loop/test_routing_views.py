"""Routing on the pages (issue #10): admins see why a pair was asked and the label-efficiency
view; labelers never see the routing data, in the API or in the labeling page."""

import json
from unittest import mock

import pytest
from django.urls import reverse

from annotator.models import Task
from tests.factories import make_task
from tests.trainer.loop.test_selectors import judge, make_round, policy_model
from trainer.loop import services as loop
from trainer.models import LoopPolicy

# A value no page would show by chance.
SECRET_SCORE = 0.7316492811
ROUTING = {
    "rule": "disagreement",
    "score": SECRET_SCORE,
    "rank": 1,
    "margin": 0.0123987,
    "reward_model": 424242,
    "candidates": [987651, 987652, 987653],
    "rewards": {"987651": 1.5, "987652": 1.49},
}


@pytest.fixture(autouse=True)
def no_broker():
    with (
        mock.patch("trainer.tasks.run_training_job.delay"),
        mock.patch("trainer.tasks.advance_loop.delay"),
        mock.patch("trainer.tasks.measure_fresh_accuracy.apply_async"),
    ):
        yield


@pytest.fixture
def routed_task(project):
    task = make_task(project, priority=1010)
    Task.objects.filter(id=task.id).update(
        meta={"loop": {"round": 1}, "acquisition": ROUTING}, round=1
    )
    return task


def assert_hidden(text: str) -> None:
    for secret in ("acquisition", "disagreement", str(SECRET_SCORE)[:8], "987652", "424242"):
        assert secret not in text, secret


@pytest.mark.django_db
def test_it_never_sends_the_routing_to_a_labeler_through_the_api(bob, project, routed_task, api_as):
    labeler = api_as(bob)
    response = labeler.post(f"/api/v1/projects/{project.id}/tasks/next/")
    assert response.status_code == 200 and response.json()["id"] == routed_task.id
    assert_hidden(response.content.decode())
    listed = labeler.get(f"/api/v1/tasks/{routed_task.id}/")
    assert listed.status_code in (200, 404, 405)
    assert_hidden(listed.content.decode())


@pytest.mark.django_db
def test_it_never_shows_the_routing_on_the_labeling_page(client, bob, project, routed_task):
    client.force_login(bob)
    page = client.get(reverse("label", args=[project.id]))
    assert page.status_code == 200
    text = page.content.decode()
    assert routed_task.prompt.text in text  # the task was served on this page
    assert_hidden(text)


@pytest.mark.django_db
def test_it_shows_the_routing_to_staff_in_the_task_admin(client, admin_user, routed_task):
    client.force_login(admin_user)
    listing = client.get(reverse("admin:annotator_task_changelist")).content.decode()
    assert "disagreement · score 0.7316 · rank 1 of the round · from 3 candidates" in listing
    page = client.get(reverse("admin:annotator_task_change", args=[routed_task.id]))
    assert "disagreement" in page.content.decode()


@pytest.fixture
def routed_rounds(project):
    base = policy_model(project, "base")
    loop.loop_configure(project=project, base_policy=base, enabled=False)
    one = make_round(project, 1, base, scores=(1.5, 0.5))
    one.acquisition = {"rule": "disagreement", "pairs": 7, "candidates": 48, "heads": 4}
    one.scores |= {"spread_new": 0.4321, "spread_previous": 0.1234}
    one.save(update_fields=["acquisition", "scores"])
    two = make_round(project, 2, one.policy_job.output_model)
    judge(two, "previous", one.policy_job.output_model, "WWWL")
    return one, two


@pytest.mark.django_db
def test_the_loop_page_shows_the_label_efficiency_view(client, alice, project, routed_rounds):
    client.force_login(alice)
    text = client.get(reverse("training_loop", args=[project.id])).content.decode()
    assert 'id="label-efficiency"' in text
    section = text.split('id="label-efficiency"')[1].split("</section>")[0]
    # Round 2's labels answered the pairs round 1 chose by disagreement.
    row2 = section.split('data-round="2"')[1].split("</tr>")[0]
    assert "disagreement" in row2 and "7 of 48 candidates" in row2
    assert "0.75" in row2  # 3 wins of 4 against the previous version
    row1 = section.split('data-round="1"')[1].split("</tr>")[0]
    assert "no reward model to route with yet" in row1
    assert "<svg" in section and "labels" in section
    # The round's own routing, in the timeline, and its heads' disagreement on the samples.
    assert "7</span> pairs chosen from" in text
    assert "heads&#x27; disagreement" in text or "heads' disagreement" in text
    assert "0.4321" in text and "0.1234" in text


@pytest.mark.django_db
def test_the_settings_form_saves_the_routing(client, alice, project):
    base = policy_model(project, "base")
    client.force_login(alice)
    data = {
        "enabled": "",
        "base_policy": str(base.id),
        "algorithm": "raft",
        "reward_after": "50",
        "train_prompts": "90",
        "task_priority": "10",
        "acquisition": "uncertainty",
        "candidates": "4",
        "pairs_per_round": "30",
        "policy_config": "",
        "reward_config": '{"ensemble_heads": 4}',
        "generate_config": "",
    }
    response = client.post(reverse("training_loop_settings", args=[project.id]), data)
    assert response.status_code == 302
    policy = LoopPolicy.objects.get(project=project)
    assert (policy.acquisition, policy.candidates, policy.pairs_per_round) == ("uncertainty", 4, 30)
    refused = client.post(
        reverse("training_loop_settings", args=[project.id]),
        data | {"acquisition": "loudest", "candidates": "0"},
    )
    assert refused.status_code == 200 and b"Not saved" in refused.content


@pytest.mark.django_db
def test_the_api_sets_the_routing(alice, project, api_as):
    base = policy_model(project, "base")
    body = {
        "enabled": False,
        "base_policy": base.id,
        "acquisition": "disagreement",
        "candidates": 6,
        "pairs_per_round": 40,
        "reward_config": {"ensemble_heads": 4},
    }
    url = f"/api/v1/projects/{project.id}/loop/"
    response = api_as(alice).put(url, json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["policy"]["acquisition"] == "disagreement"
    assert response.json()["policy"]["candidates"] == 6
    bad = api_as(alice).put(
        url, json.dumps(body | {"acquisition": "loudest"}), content_type="application/json"
    )
    assert bad.status_code == 400 and "acquisition" in bad.json()
