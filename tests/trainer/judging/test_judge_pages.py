"""The judges page, the calibration page and their API: admins only, the key never shown."""

import pytest

from annotator.judging import VerdictIn, judge_verdicts_store
from annotator.models import Annotation
from tests.factories import UserFactory, make_task
from trainer.judging import services as judging
from trainer.models import Judge

pytestmark = pytest.mark.django_db
SECRET = "sk-secret-4f1c9a7e2b"


@pytest.fixture
def judge(project, monkeypatch):
    monkeypatch.setenv("JUDGE_TEST_KEY", SECRET)
    return judging.judge_create(
        project=project, name="gpt", base_url="http://127.0.0.1:9/v1", model="m",
        api_key_env="JUDGE_TEST_KEY", audit_share=0.0, min_calibration_tasks=0,
    )  # fmt: skip


@pytest.fixture
def judged(project, judge, bob):
    """Three tasks: judge and bob agree on two, disagree on one; one more judged inconsistent."""
    tasks = [
        make_task(project, texts=[f"short {i}", f"a much longer answer {i}"]) for i in range(4)
    ]
    carol = UserFactory(username="carol")
    verdicts = []
    for i, task in enumerate(tasks):
        x, y = task.task_completions.values_list("completion_id", flat=True)
        first, second = ("a", "b") if i < 3 else ("a", "a")
        usage = {"prompt_tokens": 10, "cost": 0.5}
        verdicts.append(
            VerdictIn(task_id=task.id, shown_order=[x, y], first=first, second=second, usage=usage)
        )
        human_choice = y if i == 2 else x
        for person in (bob, carol):
            Annotation.objects.create(task=task, labeler=person, kind="pairwise",
                                      verdict="preferred", chosen_id=human_choice,
                                      rejected_id=y if human_choice == x else x)  # fmt: skip
    judge_verdicts_store(project=project, labeler=judge.user, verdicts=verdicts)
    return tasks


def test_the_judges_page_shows_the_variable_name_never_the_key(client, alice, project, judge):
    client.force_login(alice)
    page = client.get(f"/training/projects/{project.id}/judges/").content.decode()
    assert "JUDGE_TEST_KEY" in page and SECRET not in page
    assert "judge-" in page and "AI" in page


def test_labelers_and_outsiders_are_refused(client, bob, charlie, project, judge):
    client.force_login(bob)
    assert client.get(f"/training/projects/{project.id}/judges/").status_code == 403
    assert client.get(f"/projects/{project.id}/calibration/").status_code == 403
    client.force_login(charlie)
    assert client.get(f"/training/projects/{project.id}/judges/").status_code == 404


def test_an_admin_adds_a_judge_from_the_page(client, alice, project):
    client.force_login(alice)
    response = client.post(f"/training/projects/{project.id}/judges/new/", {
        "new-name": "local", "new-backend": "callable", "new-callable_path": "m:f",
        "new-timeout_s": 60, "new-retries": 3, "new-concurrency": 2, "new-audit_share": 0.1,
        "new-min_agreement": 0.7, "new-min_confidence": 0, "new-min_calibration_tasks": 30,
        "new-people_priority": 5, "new-hold_s": 600, "new-cost_per_1k_prompt": 0,
        "new-cost_per_1k_completion": 0, "new-template": "harmless",
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    judge = Judge.objects.get(name="local")
    assert "more harmless" in judge.rubrics["pairwise"]


def test_the_calibration_page_and_api_agree_on_hand_counted_figures(
    client, alice, api_as, project, judge, judged
):
    client.force_login(alice)
    page = client.get(f"/projects/{project.id}/calibration/")
    assert page.status_code == 200 and SECRET not in page.content.decode()
    body = api_as(alice).get(f"/api/v1/projects/{project.id}/quality/calibration/").json()
    [figures] = body["judges"]
    a = figures["all"]
    assert figures["labeler_kind"] == "ai"
    # Tasks 0-2 consistent with a majority (2 people agreeing): judge agrees on 0 and 1.
    assert (a["tasks"], a["agreement"], a["verdicts"]) == (3, 0.6667, 4)
    assert a["agreement_interval"] == [0.2077, 0.9385]  # Wilson, 2 of 3
    assert "95 % CI 20.8 %–93.9 %" in page.content.decode()
    assert a["human_human"] == 1.0 and a["inconsistent"] == 0.25
    assert a["longer_wins_judge"] == 0.0 and a["longer_wins_people"] == 0.3333
    assert a["by_human_agreement"]["unanimous"] == {"agreement": 0.6667, "n": 3}
    assert (
        api_as(UserFactory(username="dave"))
        .get(f"/api/v1/projects/{project.id}/quality/calibration/")
        .status_code
        == 404
    )


def test_the_judges_api_never_answers_the_key(api_as, alice, project, judge, judged):
    client = api_as(alice)
    listed = client.get(f"/api/v1/projects/{project.id}/judges/")
    assert listed.status_code == 200 and SECRET not in listed.content.decode()
    assert listed.json()[0]["api_key_env"] == "JUDGE_TEST_KEY"
    assert listed.json()[0]["labeler_kind"] == "ai"
    export = client.get(f"/api/v1/projects/{project.id}/export/", {"schema": "raw", "source": "ai"})
    text = b"".join(export.streaming_content).decode()
    assert SECRET not in text and text.count("\n") == 3  # the 3 consistent verdicts
    made = client.post(f"/api/v1/projects/{project.id}/judges/", {
        "name": "second", "backend": "openai", "base_url": "http://127.0.0.1:9/v1",
        "model": "m", "api_key_env": SECRET}, format="json")  # fmt: skip
    assert made.status_code == 400 and made.json()["field"] == "api_key_env"
    assert SECRET not in made.content.decode()


def test_run_and_resume_over_the_api(api_as, alice, project, judge):
    client = api_as(alice)
    nothing = client.post(f"/api/v1/judges/{judge.id}/run/", {}, format="json")
    assert nothing.status_code == 409 and "Nothing to judge" in nothing.json()["detail"]
    make_task(project)
    run = client.post(f"/api/v1/judges/{judge.id}/run/", {"max_tasks": 5}, format="json")
    assert run.status_code == 202 and run.json()["status"] == "queued"
    judging.judge_pause(judge=judge, reason="boom")
    again = client.post(f"/api/v1/judges/{judge.id}/run/", {}, format="json")
    assert again.status_code == 409 and "boom" in again.json()["detail"]
    resumed = client.post(f"/api/v1/judges/{judge.id}/resume/")
    assert resumed.json()["paused"] is False


def test_a_key_sent_to_the_api_or_the_page_is_stored_and_never_shown(
    client, api_as, alice, project
):
    api = api_as(alice)
    made = api.post(f"/api/v1/projects/{project.id}/judges/", {
        "name": "hosted", "backend": "openai", "base_url": "http://127.0.0.1:9/v1",
        "model": "m", "api_key": SECRET}, format="json")  # fmt: skip
    assert made.status_code == 201 and made.json()["api_key_stored"] is True
    assert SECRET not in made.content.decode() and "api_key" not in made.json()
    judge = Judge.objects.get(name="hosted")
    assert judge.api_key_encrypted and SECRET not in judge.api_key_encrypted
    listed = api.get(f"/api/v1/projects/{project.id}/judges/")
    assert SECRET not in listed.content.decode()
    client.force_login(alice)
    page = client.get(f"/training/projects/{project.id}/judges/").content.decode()
    assert "stored here, encrypted" in page and SECRET not in page
    # The page's edit form takes a new key; an empty field keeps the stored one.
    other = "sk-typed-on-the-page-99"
    fields = {f"j{judge.id}-{k}": v for k, v in {
        "backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m",
        "timeout_s": 60, "retries": 3, "concurrency": 2, "audit_share": 0.1,
        "min_agreement": 0.7, "min_confidence": 0, "min_calibration_tasks": 30,
        "people_priority": 5, "hold_s": 600, "cost_per_1k_prompt": 0, "cost_per_1k_completion": 0,
    }.items()}  # fmt: skip
    edit = f"/training/projects/{project.id}/judges/{judge.id}/edit/"
    fields[f"j{judge.id}-name"] = "hosted"
    saved = client.post(edit, fields | {f"j{judge.id}-api_key": other}, follow=True)
    assert "Judge hosted saved." in saved.content.decode()
    from trainer.judging import keys

    judge.refresh_from_db()
    assert keys.decrypt(judge.api_key_encrypted) == other
    client.post(edit, fields)
    judge.refresh_from_db()
    assert keys.decrypt(judge.api_key_encrypted) == other
    page = client.get(f"/training/projects/{project.id}/judges/").content.decode()
    assert other not in page and SECRET not in page
    dropped = api.patch(f"/api/v1/judges/{judge.id}/", {"clear_api_key": True}, format="json")
    assert dropped.json()["api_key_stored"] is False
