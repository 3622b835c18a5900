"""Review: the queue shows disagreement, failed gold and a sample; a reviewer accepts, rejects
with a reason or overrides with an adjudicated answer; the labeler reads the feedback; the
adjudicated answer wins in exports, rejected answers are left out by default."""

import json

import pytest

from annotator import services
from annotator.models import Membership, Review
from tests.conftest import api_client_for
from tests.factories import MembershipFactory, UserFactory, make_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(project, bob):
    """Two labelers (bob, carol) and a reviewer (rita) on an overlap-2 pairwise project."""
    project.overlap = 2
    project.save()
    carol, rita = UserFactory(username="carol"), UserFactory(username="rita")
    MembershipFactory(project=project, user=carol)
    MembershipFactory(project=project, user=rita, role=Membership.Role.REVIEWER)
    return bob, carol, rita


def _answer(project, user, pick: str) -> None:
    """The user takes their next task and prefers the completion whose text is `pick`."""
    lease = services.task_claim_next(project=project, labeler=user)
    texts = services.selectors.task_content(lease.task_id)["completions"]
    chosen = next(cid for cid, text in texts.items() if text == pick)
    choice = "a" if lease.shown_order[0] == chosen else "b"
    task = services.Task.objects.select_related("project").get(id=lease.task_id)
    services.annotation_submit(task=task, labeler=user, answer={"choice": choice})


def _export(client, project, query: str = "") -> list[dict]:
    url = f"/api/v1/projects/{project.id}/export/?schema=preference{query}"
    response = client.get(url)
    assert response.status_code == 200, response.content
    body = b"".join(response.streaming_content).decode()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def test_it_queues_disagreement_and_lets_a_reviewer_override_it(project, team, alice, client):
    bob, carol, rita = team
    split = make_task(project, texts=["kind reply", "rude reply"])
    _answer(project, bob, "kind reply")
    _answer(project, carol, "rude reply")
    agreed = make_task(project, texts=["right", "wrong"])
    _answer(project, bob, "right")
    _answer(project, carol, "right")

    reviewer = api_client_for(rita)
    queue = reviewer.get(f"/api/v1/projects/{project.id}/review/").json()
    by_task = {item["task"]: item for item in queue}
    assert by_task[split.id]["reasons"] == ["disagreement"] and by_task[split.id]["answers"] == 2
    assert agreed.id not in by_task or by_task[agreed.id]["reasons"] == ["sample"]
    # Tied 1-1: majority drops it from the export.
    admin = api_client_for(alice)
    assert [r["task_id"] for r in _export(admin, project)] == [agreed.id]

    # The page shows both answers side by side, with the prompt and the responses.
    client.force_login(rita)
    page = client.get(f"/projects/{project.id}/review/{split.id}/").content.decode()
    assert "bob" in page and "carol" in page and "kind reply" in page and "rude reply" in page
    kind = split.task_completions.get(position=0).completion_id
    saved = client.post(
        f"/projects/{project.id}/review/{split.id}/",
        {"action": "override", "choice": str(kind), "reason": "Rudeness is never better."},
    )
    assert saved.status_code == 302

    # The adjudicated answer wins in the export; the queue no longer lists the task.
    rows = {r["task_id"]: r for r in _export(admin, project)}
    assert rows[split.id]["chosen"] == "kind reply" and rows[split.id]["rejected"] == "rude reply"
    assert split.id not in {
        i["task"] for i in reviewer.get(f"/api/v1/projects/{project.id}/review/").json()
    }
    decisions = dict(Review.objects.values_list("annotation__labeler__username", "decision"))
    assert decisions == {"bob": "accepted", "carol": "overridden"}
    # Carol reads the feedback on My annotations.
    client.force_login(carol)
    mine = client.get(f"/projects/{project.id}/annotations/").content.decode()
    assert "Reviewer: overridden" in mine and "Rudeness is never better." in mine
    assert "“kind reply” is better" in mine


def test_it_leaves_rejected_answers_out_unless_asked_and_filters_reviewed_only(
    project, team, alice
):
    bob, carol, rita = team
    project.overlap = 1
    project.save()
    first, second = make_task(project), make_task(project)
    for task in (first, second):
        texts = dict(task.task_completions.values_list("completion_id", "completion__text"))
        _answer(project, bob, next(iter(texts.values())))
    reviewer = api_client_for(rita)
    answer_ids = dict(
        services.Annotation.objects.filter(task__project=project).values_list("task_id", "id")
    )
    no_reason = reviewer.post(
        f"/api/v1/annotations/{answer_ids[first.id]}/review/", {"decision": "rejected"}
    )
    assert no_reason.status_code == 400 and no_reason.json()["field"] == "reason"
    rejected = reviewer.post(
        f"/api/v1/annotations/{answer_ids[first.id]}/review/",
        {"decision": "rejected", "reason": "Clicked without reading."},
    )
    assert rejected.status_code == 200 and rejected.json()["decision"] == "rejected"
    admin = api_client_for(alice)
    assert [r["task_id"] for r in _export(admin, project)] == [second.id]
    both = _export(admin, project, "&exclude_rejected=false")
    assert sorted(r["task_id"] for r in both) == sorted([first.id, second.id])
    assert (
        _export(admin, project, "&reviewed_only=true&exclude_rejected=false")[0]["task_id"]
        == first.id
    )
    accepted = reviewer.post(
        f"/api/v1/annotations/{answer_ids[second.id]}/review/", {"decision": "accepted"}
    )
    assert accepted.status_code == 200
    assert [r["task_id"] for r in _export(admin, project, "&reviewed_only=true")] == [second.id]


def test_it_lets_only_reviewers_and_admins_review(project, team, charlie, client):
    bob, carol, rita = team
    task = make_task(project)
    _answer(project, bob, task.task_completions.first().completion.text)
    answer = services.Annotation.objects.get(task=task)
    as_bob = api_client_for(bob)
    assert as_bob.get(f"/api/v1/projects/{project.id}/review/").status_code == 403
    assert (
        as_bob.post(
            f"/api/v1/annotations/{answer.id}/review/", {"decision": "accepted"}
        ).status_code
        == 403
    )
    assert (
        as_bob.put(
            f"/api/v1/tasks/{task.id}/adjudication/", {"answer": {"verdict": "tie"}}, format="json"
        ).status_code
        == 403
    )
    assert api_client_for(charlie).get(f"/api/v1/projects/{project.id}/review/").status_code == 404
    client.force_login(bob)
    assert client.get(f"/projects/{project.id}/review/").status_code == 403
    done = api_client_for(rita).put(
        f"/api/v1/tasks/{task.id}/adjudication/",
        {"answer": {"verdict": "tie"}, "reason": "Both fine."},
        format="json",
    )
    assert done.status_code == 200 and done.json()["answer"] == {"verdict": "tie"}
    bad = api_client_for(rita).put(
        f"/api/v1/tasks/{task.id}/adjudication/", {"answer": {"score": 9}}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["field"] == "answer"


def test_it_shows_the_queue_and_a_task_in_a_fixed_number_of_queries(
    project, team, client, django_assert_max_num_queries
):
    bob, carol, rita = team
    tasks = [make_task(project, texts=[f"x{i}", f"y{i}"]) for i in range(6)]
    for user, side in ((bob, "x"), (carol, "y")):  # bob always x, carol always y
        while lease := services.task_claim_next(project=project, labeler=user):
            texts = services.selectors.task_content(lease.task_id)["completions"]
            pick = next(cid for cid, text in texts.items() if text.startswith(side))
            task = services.Task.objects.select_related("project").get(id=lease.task_id)
            choice = "a" if lease.shown_order[0] == pick else "b"
            services.annotation_submit(task=task, labeler=user, answer={"choice": choice})
    client.force_login(rita)
    with django_assert_max_num_queries(8):
        queue = client.get(f"/projects/{project.id}/review/")
    assert queue.content.decode().count("<td>disagreement</td>") == len(tasks)
    with django_assert_max_num_queries(10):
        page = client.get(f"/projects/{project.id}/review/{tasks[0].id}/")
    assert page.status_code == 200


def test_it_queues_a_failed_gold_answer(project, team):
    bob, carol, rita = team
    project.overlap = 1
    project.gold_every = 1
    project.save()
    make_task(project, texts=["filler a", "filler b"])
    gold = make_task(project, texts=["the truth", "a lie"])
    gold.gold = {"chosen": "the truth"}  # as an import line gives it: by text
    gold.is_complete = True
    gold.save()
    picks = {"the truth": "a lie", "filler a": "filler a"}
    while lease := services.task_claim_next(project=project, labeler=bob):
        texts = services.selectors.task_content(lease.task_id)["completions"]
        first = next(t for t in texts.values() if t in picks)
        pick = next(cid for cid, text in texts.items() if text == picks[first])
        task = services.Task.objects.select_related("project").get(id=lease.task_id)
        choice = "a" if lease.shown_order[0] == pick else "b"
        services.annotation_submit(task=task, labeler=bob, answer={"choice": choice})
    queue = api_client_for(rita).get(f"/api/v1/projects/{project.id}/review/").json()
    assert {"task": gold.id, "prompt": gold.prompt.text, "answers": 1,
            "reasons": ["failed gold"]} in queue  # fmt: skip
