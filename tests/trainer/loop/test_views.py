"""The loop page (trainer/loop/views.py): access, settings form, controls, the live timeline,
the fresh-accuracy button, escaping and query counts. No worker is reached: job and
measurement messages are mocked."""

import xml.etree.ElementTree as ET
from unittest import mock

import pytest
from django.urls import reverse

from annotator.models import Prompt
from tests.factories import ProjectFactory
from tests.trainer.loop.test_selectors import judge, make_round, policy_model
from trainer.loop import services as loop
from trainer.models import LoopPolicy, LoopRound, ModelVersion, TrainingJob

HTMX = {"HTTP_HX_REQUEST": "true"}
XSS = "<script>alert(1)</script><img src=x onerror=alert(1)>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture(autouse=True)
def no_broker():
    with (
        mock.patch("trainer.tasks.run_training_job.delay") as run,
        mock.patch("trainer.tasks.advance_loop.delay"),
        mock.patch("trainer.tasks.measure_fresh_accuracy.apply_async") as measure,
    ):
        yield {"run": run, "measure": measure}


@pytest.fixture
def base(project):
    return policy_model(project, "base")


@pytest.fixture
def policy(project, base):
    return loop.loop_configure(
        project=project, base_policy=base, enabled=True, reward_after=5, compare_with_base=True
    )


def page_url(project) -> str:
    return reverse("training_loop", args=[project.id])


def settings_url(project) -> str:
    return reverse("training_loop_settings", args=[project.id])


def action_url(project, action: str) -> str:
    return reverse("training_loop_action", args=[project.id, action])


def fresh_url(project, model) -> str:
    return reverse("training_loop_fresh_accuracy", args=[project.id, model.id])


def valid_settings(base, **changes) -> dict:
    data = {
        "enabled": "on",
        "base_policy": str(base.id),
        "algorithm": "raft",
        "reward_after": "50",
        "train_prompts": "8",
        "task_priority": "10",
        "policy_config": '{"iterations": 2, "num_samples": 8}',
        "reward_config": '{"max_steps": 30}',
        "generate_config": "",
    }
    return {**data, **changes}


def all_urls(project, model) -> list[tuple[str, str]]:
    return [
        ("get", page_url(project)),
        ("post", settings_url(project)),
        *[("post", action_url(project, a)) for a in ("pause", "resume", "stop", "retrain")],
        ("post", fresh_url(project, model)),
    ]


# --- Access ---------------------------------------------------------------------------------


def test_it_sends_anonymous_users_to_the_login_page(client, project, policy, base):
    for method, url in all_urls(project, base):
        resp = getattr(client, method)(url)
        assert resp.status_code == 302 and resp.url.startswith(reverse("login")), url


@pytest.mark.parametrize(("persona", "status"), [("charlie", 404), ("bob", 403)])
def test_it_refuses_outsiders_and_labelers(client, request, project, policy, base, persona, status):
    rm = ModelVersion.objects.create(project=project, name="rm", role="reward", path="/rm")
    client.force_login(request.getfixturevalue(persona))
    for method, url in all_urls(project, rm):
        data = valid_settings(base, enabled="") if "settings" in url else {}
        assert getattr(client, method)(url, data).status_code == status, url
    policy.refresh_from_db()
    assert policy.enabled and not policy.paused and policy.reward_after == 5
    assert not LoopRound.objects.exists() and "fresh_accuracy" not in rm.metrics


def test_it_answers_404_for_another_projects_models_and_unknown_actions(
    client, alice, project, policy
):
    other = ProjectFactory()
    theirs = ModelVersion.objects.create(project=other, name="rm", role="reward", path="/rm")
    client.force_login(alice)
    assert client.post(fresh_url(project, theirs)).status_code == 404
    assert client.post(fresh_url(project, policy.base_policy)).status_code == 404  # a policy
    assert client.post(action_url(project, "explode")).status_code == 404
    assert client.get(page_url(other)).status_code == 404
    assert client.get(action_url(project, "pause")).status_code == 405
    assert client.get(settings_url(project)).status_code == 405


def test_the_training_pages_link_to_the_loop(client, alice, project):
    client.force_login(alice)
    page = client.get(reverse("training_jobs", args=[project.id])).content.decode()
    assert f'href="{page_url(project)}"' in page


# --- Settings -------------------------------------------------------------------------------


def test_it_offers_the_form_before_there_is_a_loop(client, alice, project, base):
    ModelVersion.objects.create(project=project, name="rm", role="reward", path="/rm")
    policy_model(ProjectFactory(), "someone-elses")
    client.force_login(alice)
    page = client.get(page_url(project)).content.decode()
    assert "No loop yet" in page and 'name="csrfmiddlewaretoken"' in page
    assert f'<option value="{base.id}"' in page
    assert ">rm<" not in page and "someone-elses" not in page  # policies of this project only
    assert 'hx-trigger="every 5s"' not in page


def test_it_saves_the_settings_and_starts_the_first_round(client, alice, project, base):
    for i in range(3):
        Prompt.objects.create(project=project, text=f"p{i}")
    client.force_login(alice)
    resp = client.post(settings_url(project), valid_settings(base, compare_with_base="on"))
    assert resp.status_code == 302 and resp.url == page_url(project)
    policy = LoopPolicy.objects.get(project=project)
    assert (policy.enabled, policy.base_policy, policy.algorithm) == (True, base, "raft")
    assert (policy.reward_after, policy.train_prompts, policy.task_priority) == (50, 8, 10)
    assert policy.compare_with_base
    assert policy.policy_config == {"iterations": 2, "num_samples": 8}
    assert policy.reward_config == {"max_steps": 30} and policy.generate_config == {}
    assert LoopRound.objects.get(project=project).status == "collecting"
    page = client.get(page_url(project)).content.decode()
    assert "Loop settings saved." in page and "Round 1" in page
    assert "&quot;iterations&quot;: 2" in page  # the saved config is shown back, escaped


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("policy_config", "{not json", "Not valid JSON"),
        ("reward_config", "[1, 2]", "Give a JSON object"),
        ("policy_config", '{"no_such_field": 1}', "Invalid raft config"),
        ("generate_config", '{"nope": 1}', "Invalid generate config"),
        ("reward_after", "0", "greater than or equal to 1"),
        ("algorithm", "sft", "Select a valid choice"),
        ("base_policy", "", "This field is required"),
    ],
)
def test_it_refuses_bad_settings_and_says_why(client, alice, project, base, field, value, error):
    client.force_login(alice)
    resp = client.post(settings_url(project), valid_settings(base, **{field: value}))
    assert resp.status_code == 200
    page = resp.content.decode()
    assert "Not saved." in page and error in page
    assert f'href="#id_{field}"' in page
    assert not LoopPolicy.objects.exists()


def test_a_base_policy_must_be_a_policy_of_the_project(client, alice, project, base):
    reward = ModelVersion.objects.create(project=project, name="rm", role="reward", path="/rm")
    foreign = policy_model(ProjectFactory(), "foreign")
    client.force_login(alice)
    for model in (reward, foreign):
        page = client.post(settings_url(project), valid_settings(base, base_policy=str(model.id)))
        assert "Select a valid choice" in page.content.decode()
    assert not LoopPolicy.objects.exists()


def test_it_escapes_what_was_typed_in_errors_and_configs(client, alice, project, base):
    client.force_login(alice)
    typed = '{"' + XSS.replace('"', "'") + '": 1}'
    page = client.post(settings_url(project), valid_settings(base, policy_config=typed))
    html = page.content.decode()
    assert "Invalid raft config" in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- Controls -------------------------------------------------------------------------------


def test_pause_resume_retrain_and_stop(client, alice, project, policy):
    for i in range(3):
        Prompt.objects.create(project=project, text=f"p{i}")
    client.force_login(alice)
    assert client.post(action_url(project, "pause")).status_code == 302
    policy.refresh_from_db()
    assert policy.paused
    page = client.get(page_url(project)).content.decode()
    assert "Paused" in page and action_url(project, "resume") in page
    client.post(action_url(project, "resume"))
    policy.refresh_from_db()
    assert not policy.paused
    assert LoopRound.objects.get(project=project).status == "collecting"  # resume advanced it
    client.post(action_url(project, "retrain"))
    round_ = LoopRound.objects.get(project=project)
    assert round_.status == "reward" and round_.reward_job.kind == "reward"
    page = client.get(page_url(project)).content.decode()
    assert (
        "Retraining now" in page
        and f'href="{reverse("training_job", args=[round_.reward_job_id])}"' in page
    )
    client.post(action_url(project, "stop"))
    policy.refresh_from_db()
    round_.refresh_from_db()
    assert not policy.enabled and round_.status == "stopped"
    assert TrainingJob.objects.get(id=round_.reward_job_id).status == "cancelled"
    page = client.get(page_url(project)).content.decode()
    assert "Disabled" in page and "open a new round" in page


def test_an_action_needs_a_loop(client, alice, project):
    client.force_login(alice)
    resp = client.post(action_url(project, "retrain"), follow=True)
    assert "no loop yet" in resp.content.decode()
    assert not LoopPolicy.objects.exists()


# --- Timeline -------------------------------------------------------------------------------


def test_the_timeline_polls_while_the_loop_is_enabled(client, alice, project, policy):
    loop.loop_advance(project_id=project.id)
    client.force_login(alice)
    page = client.get(page_url(project)).content.decode()
    assert 'hx-trigger="every 5s"' in page and f'hx-get="{page_url(project)}"' in page
    part = client.get(page_url(project), **HTMX)
    assert part.status_code == 200
    html = part.content.decode()
    assert html.lstrip().startswith('<div id="loop-live"') and "<html" not in html
    assert "Round 1" in html and "Settings" not in html
    loop.loop_stop(policy=policy)
    part = client.get(page_url(project), **HTMX)
    assert part.status_code == 286  # stops the polling
    assert 'hx-trigger="every 5s"' not in part.content.decode()


def test_it_shows_rounds_win_rates_simulated_labels_and_the_warning(client, alice, project, policy):
    base = policy.base_policy
    r1 = make_round(project, 1, base, scores=(1.0, 0.1))
    p1 = r1.policy_job.output_model
    judge(r1, "previous", base, "W" * 10, simulated=4)
    r2 = make_round(project, 2, p1, scores=(2.0, 1.0))
    judge(r2, "previous", p1, "WWWWLLLLTB")
    judge(r2, "base", base, "WWWL")
    LoopRound.objects.filter(id=r2.id).update(tasks_created=14)
    client.force_login(alice)
    page = client.get(page_url(project)).content.decode()
    assert "Round 2" in page and "Round 1" in page
    assert page.index("Round 2") < page.index('id="round-1"')  # newest first
    assert "4 simulated" in page
    assert "Possible over-optimisation" in page and "<strong>Round 2.</strong>" in page
    assert "1.00" in page and "(95 % 0.72–1.00)" in page  # round 1: 10 of 10
    assert "(1 both bad)" in page and ">14<" in page
    assert "a tie and “both bad” count as half a win" in page
    for role in ("reward", "policy", "generate: new", "generate: previous"):
        assert f"{role} #" in page
    # the leaderboard: every version, the base as anchor
    board = page[page.index('id="leaderboard"') :]
    assert "policy-2" in board and "policy-1" in board and "anchor" in board
    for chart in ("win-rate", "rm-accuracy"):
        start = page.index(f'id="chart-{chart}"')
        svg = page[page.index("<svg", start) : page.index("</svg>", start) + 6]
        ET.fromstring(svg)  # noqa: S314 (our own output): well-formed
        assert "<circle" in svg


def test_it_escapes_names_and_errors_on_the_page(client, alice, project, policy):
    base = policy.base_policy
    r1 = make_round(project, 1, base)
    ModelVersion.objects.filter(id=r1.policy_job.output_model_id).update(name=XSS)
    ModelVersion.objects.filter(id=r1.reward_job.output_model_id).update(
        name=XSS, metrics={"fresh_accuracy": {"status": "failed", "error": XSS}}
    )
    judge(r1, "previous", base, "WL")
    LoopRound.objects.filter(id=r1.id).update(status="failed", error=XSS)
    LoopPolicy.objects.filter(id=policy.id).update(policy_config={"note": XSS})
    client.force_login(alice)
    for resp in (client.get(page_url(project)), client.get(page_url(project), **HTMX)):
        html = resp.content.decode()
        assert "<script>alert(1)" not in html and "<img src=x" not in html
        assert ESCAPED in html


# --- Reward models --------------------------------------------------------------------------


def test_the_measure_button_queues_a_gpu_task(
    client, alice, project, policy, no_broker, django_capture_on_commit_callbacks
):
    r1 = make_round(project, 1, policy.base_policy, val_accuracy=0.83)
    rm = r1.reward_job.output_model
    client.force_login(alice)
    page = client.get(page_url(project)).content.decode()
    assert fresh_url(project, rm) in page and "0.830" in page and "not measured" in page
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post(fresh_url(project, rm))
    assert resp.status_code == 302 and resp.url.endswith("#reward-models")
    no_broker["measure"].assert_called_once_with((rm.id,), queue="gpu")
    rm.refresh_from_db()
    assert rm.metrics["fresh_accuracy"]["status"] == "queued"
    assert rm.metrics["val_accuracy"] == 0.83
    page = client.get(page_url(project)).content.decode()
    assert "queued" in page and "Measure again" in page
    rm.metrics["fresh_accuracy"] = {
        "status": "done",
        "n": 20,
        "correct": 15,
        "simulated": 20,
        "cutoff": "2026-05-01T10:00:00+00:00",
    }
    rm.save()
    page = client.get(page_url(project)).content.decode()
    assert "0.750" in page and "15 of 20 right" in page and "20 simulated" in page


# --- Queries --------------------------------------------------------------------------------


def test_the_page_and_the_timeline_take_a_fixed_number_of_queries(
    client, alice, project, policy, django_assert_max_num_queries
):
    client.force_login(alice)
    base, previous = policy.base_policy, policy.base_policy
    for number in (1, 2, 3, 4):
        r = make_round(project, number, previous, scores=(float(number), 0.0))
        judge(r, "previous", previous, "WLT")
        judge(r, "base", base, "WW")
        previous = r.policy_job.output_model
        # session, user, membership, the menu's "admins a project"; loop policy, rounds,
        # generate jobs, judgments, label counts; the base-policy choices (exists, options);
        # the AI judge choices
        with django_assert_max_num_queries(13):
            assert client.get(page_url(project)).status_code == 200
        # session, user, membership; loop policy, rounds, generate jobs, judgments, labels
        with django_assert_max_num_queries(9):
            assert client.get(page_url(project), **HTMX).status_code == 200


# --- Held-out numbers, the KL reference, a Likert project, the live page ---------------------


def test_it_says_the_win_rates_are_on_eval_prompts_or_that_there_are_none(
    client, alice, project, policy
):
    client.force_login(alice)
    page = client.get(page_url(project)).content.decode()
    assert "This project has no eval-split prompts" in page
    Prompt.objects.create(project=project, text="held out", split="eval")
    page = client.get(page_url(project)).content.decode()
    assert "on the project's 1 eval-split prompt only" in page
    assert "no eval-split prompts" not in page


def test_a_round_page_says_which_policy_the_kl_holds_near(client, alice, project, policy):
    base = policy.base_policy
    r1 = make_round(project, 1, base)
    r2 = make_round(project, 2, r1.policy_job.output_model)
    LoopRound.objects.filter(id=r1.id).update(reference_policy=base)
    LoopRound.objects.filter(id=r2.id).update(reference_policy=r1.policy_job.output_model)
    client.force_login(alice)
    page = client.get(page_url(project)).content.decode()
    round_2 = page[page.index('id="round-2"') : page.index('id="round-1"')]
    round_1 = page[page.index('id="round-1"') :]
    assert "KL reference" in round_2 and "the previous round's policy" in round_2
    assert "policy-1" in round_2
    assert "KL reference" in round_1 and "the base policy" in round_1


def test_the_reference_setting_is_saved_and_offered(client, alice, project, base):
    client.force_login(alice)
    response = client.post(settings_url(project), valid_settings(base, reference="previous"))
    assert response.status_code == 302
    assert LoopPolicy.objects.get(project=project).reference == "previous"
    assert 'value="previous" selected' in client.get(page_url(project)).content.decode()


def test_a_likert_only_project_is_refused_with_a_reason(client, alice, base, project, api_as):
    project.kind = "likert"
    project.save(update_fields=["kind"])
    client.force_login(alice)
    assert "Likert scores only" in client.get(page_url(project)).content.decode()
    response = client.post(settings_url(project), valid_settings(base))
    assert response.status_code == 200 and "Likert scores only" in response.content.decode()
    assert not LoopPolicy.objects.filter(project=project).exists()
    api = api_as(alice).put(
        f"/api/v1/projects/{project.id}/loop/",
        {"enabled": True, "base_policy": base.id},
        format="json",
    )
    assert api.status_code == 400 and "Likert scores only" in api.json()["project"][0]
    assert not LoopPolicy.objects.filter(project=project).exists()


def test_the_charts_leaderboard_and_accuracy_refresh_with_the_timeline(
    client, alice, project, policy
):
    base = policy.base_policy
    r1 = make_round(project, 1, base, val_accuracy=0.81)
    judge(r1, "previous", base, "WWL")
    client.force_login(alice)
    html = client.get(page_url(project), **HTMX).content.decode()
    for part in ('id="loop-timeline"', 'id="chart-win-rate"', 'id="leaderboard"',
                 'id="reward-models"', "0.810", "policy-1"):  # fmt: skip
        assert part in html
    assert "Settings" not in html and "<html" not in html


def test_polling_goes_on_while_a_measurement_is_queued_and_then_stops(
    client, alice, project, policy
):
    r1 = make_round(project, 1, policy.base_policy)
    loop.loop_stop(policy=policy)
    LoopRound.objects.filter(id=r1.id).update(scores={"status": "queued"})
    client.force_login(alice)
    assert client.get(page_url(project), **HTMX).status_code == 200  # the score will change
    LoopRound.objects.filter(id=r1.id).update(scores={"status": "failed", "error": "oom"})
    assert client.get(page_url(project), **HTMX).status_code == 286  # nothing left to change


def test_reward_source_weights_are_saved_shown_and_checked(client, alice, project, base, api_as):
    client.force_login(alice)
    weights = '{"ai": 0.5, "human": 1}'
    resp = client.post(settings_url(project), valid_settings(base, reward_source_weights=weights))
    assert resp.status_code == 302
    assert LoopPolicy.objects.get(project=project).reward_source_weights == {"ai": 0.5, "human": 1}
    page = client.get(page_url(project)).content.decode()
    assert "reward-model label weights ai 0.5 human 1" in page
    for bad, error in [('{"robot": 1}', "&#x27;robot&#x27; is not a source"),
                       ('{"ai": 0}', "the weight must be above 0"),
                       ("[1]", "Give a JSON object")]:  # fmt: skip
        resp = client.post(settings_url(project), valid_settings(base, reward_source_weights=bad))
        assert resp.status_code == 200 and error in resp.content.decode(), bad
    api = api_as(alice)
    url = f"/api/v1/projects/{project.id}/loop/"
    refused = api.put(url, {"base_policy": base.id, "reward_source_weights": {"ai": -1}},
                      format="json")  # fmt: skip
    assert refused.status_code == 400 and "above 0" in refused.json()["reward_source_weights"][0]
    assert LoopPolicy.objects.get(project=project).reward_source_weights == {"ai": 0.5, "human": 1}
    done = api.put(url, {"base_policy": base.id, "reward_source_weights": {"ai": 0.25}},
                   format="json")  # fmt: skip
    assert done.status_code == 200
    assert done.json()["policy"]["reward_source_weights"] == {"ai": 0.25}
