"""The training pages (trainer/views.py): access, launch form, live job page, cancel, model
registry, escaping and query counts. The worker is never reached: the task's delay is mocked."""

import xml.etree.ElementTree as ET
from datetime import timedelta
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from annotator.models import Membership
from tests.factories import ProjectFactory, UserFactory
from trainer import views
from trainer.forms import dataset_form_fields
from trainer.models import ModelVersion, TrainingJob
from trainer.snapshots import dataset_validate

Status = TrainingJob.Status
HTMX = {"HTTP_HX_REQUEST": "true"}
XSS = "<script>alert(1)</script><img src=x onerror=alert(1)>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture
def delay():
    with mock.patch("trainer.tasks.run_training_job.delay") as delay:
        yield delay


def make_job(project, **fields) -> TrainingJob:
    fields.setdefault("kind", "reward")
    fields.setdefault("config", {"learning_rate": 1e-5})
    return TrainingJob.objects.create(project=project, **fields)


def running_job(project, *, steps: int = 30, total: int = 120, **fields) -> TrainingJob:
    now = timezone.now()
    fields.setdefault(
        "metrics",
        [
            {"step": s, "train_loss": 0.7 / s**0.5, "train_accuracy": min(1.0, 0.5 + s / 60)}
            for s in range(1, steps + 1)
        ],
    )
    return make_job(
        project,
        status=Status.RUNNING,
        step=steps,
        total_steps=total,
        started_at=now - timedelta(seconds=steps * 2),
        heartbeat_at=now,
        worker="gpu-1:42",
        attempts=1,
        **fields,
    )


def job_url(job) -> str:
    return reverse("training_job", args=[job.id])


def cancel_url(job) -> str:
    return reverse("training_job_cancel", args=[job.id])


def new_url(project, kind="reward") -> str:
    return reverse("training_job_new", args=[project.id, kind])


def project_urls(project, job) -> list[tuple[str, str]]:
    return [
        ("get", reverse("training_jobs", args=[project.id])),
        ("get", new_url(project)),
        ("post", new_url(project)),
        ("get", reverse("training_models", args=[project.id])),
        ("get", job_url(job)),
        ("post", cancel_url(job)),
    ]


# --- Access ---------------------------------------------------------------------------------


def test_it_sends_anonymous_users_to_the_login_page(client, project):
    job = make_job(project)
    for method, url in [*project_urls(project, job), ("get", reverse("training"))]:
        resp = getattr(client, method)(url)
        assert resp.status_code == 302, url
        assert resp.url.startswith(reverse("login")), url


def test_it_answers_404_to_outsiders(client, project, charlie, delay):
    job = make_job(project)
    client.force_login(charlie)
    for method, url in project_urls(project, job):
        assert getattr(client, method)(url).status_code == 404, url
    assert TrainingJob.objects.get().status == Status.QUEUED
    assert TrainingJob.objects.count() == 1


def test_it_answers_403_to_the_projects_labelers(client, project, bob, delay):
    job = make_job(project)
    client.force_login(bob)
    for method, url in project_urls(project, job):
        assert getattr(client, method)(url).status_code == 403, url
    assert TrainingJob.objects.get().status == Status.QUEUED
    assert TrainingJob.objects.count() == 1


def test_it_answers_404_for_a_job_of_a_project_i_do_not_administer(client, alice):
    other = ProjectFactory()
    job = make_job(other)
    client.force_login(alice)
    assert client.get(job_url(job)).status_code == 404
    assert client.post(cancel_url(job)).status_code == 404
    assert client.get(reverse("training_jobs", args=[other.id])).status_code == 404
    assert client.get(reverse("training_job", args=[job.id + 1000])).status_code == 404
    assert TrainingJob.objects.get().status == Status.QUEUED


def test_it_opens_everything_to_a_superuser(client, project):
    job = make_job(project)
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))
    for method, url in project_urls(project, job):
        if method == "get":
            assert client.get(url).status_code == 200, url


def test_it_refuses_get_on_cancel_and_unknown_kinds(client, project, alice):
    job = make_job(project)
    client.force_login(alice)
    assert client.get(cancel_url(job)).status_code == 405
    assert client.get(new_url(project, "nonsense")).status_code == 404


def test_it_shows_the_training_link_to_project_admins_only(client, project, alice, bob):
    client.force_login(alice)
    training = f'href="{reverse("training")}"'
    assert training in client.get(reverse("home")).content.decode()
    page = client.get(reverse("project_admin", args=[project.id])).content.decode()
    assert f'href="{reverse("training_jobs", args=[project.id])}"' in page
    client.force_login(bob)
    assert training not in client.get(reverse("home")).content.decode()
    assert client.get(reverse("training")).status_code == 200  # an empty page, nothing in it


# --- Job list and overview ------------------------------------------------------------------


def test_it_lists_the_projects_jobs_newest_first(client, project, alice):
    model = ModelVersion.objects.create(project=project, name="reward-1", role="reward", path="/m")
    first = make_job(project, status=Status.SUCCEEDED, output_model=model, step=10, total_steps=10)
    second = running_job(project, kind="dpo")
    make_job(ProjectFactory())  # another project's job is not listed
    client.force_login(alice)
    page = client.get(reverse("training_jobs", args=[project.id])).content.decode()
    assert page.index(f"#{second.id}") < page.index(f"#{first.id}")
    assert page.count('href="/training/jobs/') == 2
    assert "reward-1" in page and "Succeeded" in page and "30 / 120" in page
    for kind in ("reward", "dpo", "ppo", "raft", "sft", "generate"):
        assert f'href="{new_url(project, kind)}"' in page


def test_it_lists_jobs_in_a_fixed_number_of_queries(
    client, project, alice, django_assert_max_num_queries
):
    client.force_login(alice)
    url = reverse("training_jobs", args=[project.id])
    for count in (1, 25):
        while TrainingJob.objects.count() < count:
            model = ModelVersion.objects.create(project=project, name="m", role="policy", path="/")
            running_job(project, input_model=model, output_model=model, created_by=alice)
        # session, user, membership, count, jobs, workers: nothing a row
        with django_assert_max_num_queries(7):
            assert client.get(url).status_code == 200
        with django_assert_max_num_queries(6):
            assert client.get(reverse("training")).status_code == 200


# --- Launch form ----------------------------------------------------------------------------


def test_it_shows_each_config_field_with_its_default_and_help(client, project, alice):
    ModelVersion.objects.create(project=project, name="base", role="policy", path="/base")
    ModelVersion.objects.create(project=project, name="rm-1", role="reward", path="/rm")
    client.force_login(alice)
    page = client.get(new_url(project, "ppo")).content.decode()
    assert 'name="config__learning_rate" value="1e-06"' in page
    assert 'name="config__steps" value="100"' in page
    assert 'name="config__whiten_rewards" checked' in page
    assert 'name="config__device_map"' in page and "{}</textarea>" in page
    assert "GAE discount γ." in page
    assert 'name="dataset__max_prompts"' in page and 'name="dataset__min_votes"' not in page
    assert '<option value="' in page and "base (Policy)" in page and ">rm-1</option>" in page
    assert 'name="csrfmiddlewaretoken"' in page
    reward_form = client.get(new_url(project, "reward")).content.decode()
    assert 'name="reward_model"' not in reward_form  # a reward job needs none
    assert 'name="dataset__min_votes"' in reward_form and 'name="dataset__split"' in reward_form


def test_it_launches_a_job_and_opens_its_page(
    client, project, alice, delay, django_capture_on_commit_callbacks
):
    base = ModelVersion.objects.create(project=project, name="base", role="policy", path="/base")
    client.force_login(alice)
    form = {
        "input_model": str(base.id),
        "config__max_steps": "5",
        "config__learning_rate": "2e-5",
        "config__device": "auto",  # unchanged: not sent, the default fills it
        "dataset__min_votes": "2",
        "dataset__split": "train",
        "dataset__round": "",
    }
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post(new_url(project), form)
    job = TrainingJob.objects.get()
    assert resp.status_code == 302 and resp.url == job_url(job)
    delay.assert_called_once_with(job.id)
    assert (job.kind, job.status, job.created_by, job.input_model) == (
        "reward",
        "queued",
        alice,
        base,
    )
    assert job.config["max_steps"] == 5 and job.config["learning_rate"] == 2e-5
    assert job.config["model_name_or_path"] == "/base"
    assert job.config["require_trained_head"] is False  # unchecked box, default False
    assert job.dataset == {"min_votes": 2, "split": "train"}
    page = client.get(resp.url).content.decode()
    assert f"Reward model job #{job.id} launched." in page


def test_it_parses_bools_optional_numbers_and_json(client, project, alice, delay):
    ModelVersion.objects.create(project=project, name="rm", role="reward", path="/rm")
    rm = ModelVersion.objects.get()
    client.force_login(alice)
    form = {
        "reward_model": str(rm.id),
        "config__model_name_or_path": "var/tiny",
        "config__target_kl": "6",
        "config__missing_eos_penalty": "",
        "config__device_map": '{"reward": "cpu"}',
        # config__whiten_rewards left out: an unchecked box is False
    }
    assert client.post(new_url(project, "ppo"), form).status_code == 302
    config = TrainingJob.objects.get().config
    assert config["target_kl"] == 6.0 and config["missing_eos_penalty"] is None
    assert config["whiten_rewards"] is False
    assert config["device_map"] == {"reward": "cpu"}
    assert config["reward_model_path"] == "/rm" and config["model_name_or_path"] == "var/tiny"


def test_the_eta_of_a_resumed_job_counts_only_the_steps_it_ran(client, project, alice):
    # Resumed at step 500 of 1000; the runner timed its steps: 501 at 30 s (after loading
    # the model), 510 at 39 s, so 1 step/s and 490 steps to go.
    metrics = [{"step": 501, "elapsed_s": 30.0, "loss": 1.0}]
    metrics += [{"step": 502 + i, "elapsed_s": 31.0 + i, "loss": 0.9} for i in range(9)]
    job = running_job(project, steps=510, total=1000, metrics=metrics)
    job.started_at = timezone.now() - timedelta(seconds=40)
    job.save()
    client.force_login(alice)
    page = client.get(job_url(job)).content.decode()
    assert "ETA 8 min 10 s" in page
    assert page.count("<svg") == 1  # loss only: the step timing is not plotted


def test_it_launches_a_grpo_job_with_its_own_settings(client, project, alice, delay):
    rm = ModelVersion.objects.create(project=project, name="rm", role="reward", path="/rm")
    base = ModelVersion.objects.create(project=project, name="base", role="policy", path="/b")
    client.force_login(alice)
    page = client.get(new_url(project, "grpo")).content.decode()
    assert 'name="config__loss_type"' in page and 'name="config__scale_rewards"' in page
    form = {
        "input_model": str(base.id),
        "reward_model": str(rm.id),
        "config__loss_type": "dr_grpo",
        "config__scale_rewards": "none",
        "config__beta": "0.04",
    }
    assert client.post(new_url(project, "grpo"), form).status_code == 302
    job = TrainingJob.objects.get()
    assert job.kind == "grpo"
    assert (job.config["loss_type"], job.config["scale_rewards"]) == ("dr_grpo", "none")
    assert job.config["beta"] == 0.04 and job.config["epsilon"] == 0.2
    assert job.config["reward_model_path"] == "/rm" and job.config["model_name_or_path"] == "/b"


def test_it_names_each_bad_field_and_launches_nothing(client, project, alice, delay):
    client.force_login(alice)
    form = {
        "config__model_name_or_path": "var/tiny",
        "config__steps": "1.5",
        "config__learning_rate": "fast",
        "config__kl_coef": "inf",
        "config__device_map": "[1, 2]",
        "config__target_kl": "{",
        "dataset__max_prompts": "many",
        "dataset__split": "holdout",
    }
    resp = client.post(new_url(project, "ppo"), form)
    page = resp.content.decode()
    assert resp.status_code == 200
    assert "nothing was launched" in page
    assert page.count('class="field-error"') == 8  # the 7 typos and the missing reward model
    assert "Enter a whole number." in page
    assert "Enter a number, such as 0.5 or 1e-5." in page
    assert "Enter a finite number." in page
    assert "Enter a JSON object" in page
    assert "Pick one of: train, eval." in page
    assert 'value="fast"' in page  # what was typed is shown again
    assert '<a href="#config-learning_rate"><code>learning_rate</code></a>' in page
    assert not TrainingJob.objects.exists()
    delay.assert_not_called()


def test_it_shows_the_services_refusal_on_the_form(client, project, alice, delay):
    client.force_login(alice)
    resp = client.post(new_url(project, "ppo"), {"config__model_name_or_path": "var/tiny"})
    assert resp.status_code == 200
    # Said next to the field, before the service is asked.
    assert "no such model registered yet: register one on the Models page" in resp.content.decode()
    assert not TrainingJob.objects.exists()
    delay.assert_not_called()


def test_it_refuses_a_model_of_another_project(client, project, alice, delay):
    foreign = ModelVersion.objects.create(
        project=ProjectFactory(), name="theirs", role="policy", path="/theirs"
    )
    client.force_login(alice)
    resp = client.post(new_url(project, "sft"), {"input_model": str(foreign.id)})
    assert "Pick a model of this project from the list." in resp.content.decode()
    assert not TrainingJob.objects.exists()


@pytest.mark.parametrize(
    "kind", ["reward", "dpo", "sft", "ppo", "raft", "rloo", "grpo", "generate"]
)
def test_it_offers_only_dataset_fields_the_snapshot_accepts(kind):
    samples = {"int": 2, "float": 0.5, "split": "train", "bool": True, "json": {"ai": 0.5}}
    dataset = {f.name: samples[f.type] for f in dataset_form_fields(kind)}
    assert dataset_validate(kind=kind, dataset=dataset) == dataset


# --- Job page -------------------------------------------------------------------------------


def test_it_shows_progress_eta_plots_log_and_snapshot(client, project, alice):
    base = ModelVersion.objects.create(project=project, name="base", role="policy", path="/b")
    job = running_job(
        project,
        input_model=base,
        snapshot_sha256="ab" * 32,
        snapshot_rows=1234,
        log_tail="step 30: loss 0.12\n",
        dataset={"min_votes": 2},
    )
    client.force_login(alice)
    page = client.get(job_url(job)).content.decode()
    assert 'hx-trigger="every 2s"' in page and f'hx-get="{job_url(job)}"' in page
    assert 'max="120" value="30"' in page and "step 30 / 120 · 25 %" in page
    assert "ETA 3 min 00 s" in page  # 30 steps in 60 s, 90 to go
    assert page.count("<svg") == 2 and "train_loss" in page and "train_accuracy" in page
    assert "ab" * 32 in page and "1234 rows" in page
    assert "step 30: loss 0.12" in page
    assert f'href="{reverse("training_models", args=[project.id])}#model-{base.id}"' in page
    assert "min_votes" in page and "learning_rate" in page
    assert "Cancel job" in page


def test_its_plots_are_valid_svg_with_a_point_a_step(client, project, alice):
    job = running_job(project, steps=37)
    client.force_login(alice)
    page = client.get(job_url(job), **HTMX).content.decode()
    svgs = [
        page[i : page.index("</svg>", i) + 6]
        for i in range(len(page))
        if page[i:].startswith("<svg")
    ]
    assert len(svgs) == 2
    for svg in svgs:
        root = ET.fromstring(svg)  # noqa: S314 (our own output)
        (line,) = root.iter("{http://www.w3.org/2000/svg}polyline")
        assert len(line.get("points").split()) == 37


def test_it_polls_with_200_while_the_job_runs_and_286_once_it_ended(client, project, alice):
    job = running_job(project)
    client.force_login(alice)
    resp = client.get(job_url(job), **HTMX)
    assert resp.status_code == 200
    fragment = resp.content.decode()
    assert fragment.lstrip().startswith('<div id="job-live"')
    assert 'hx-trigger="every 2s"' in fragment and "<html" not in fragment

    TrainingJob.objects.filter(id=job.id).update(
        status=Status.SUCCEEDED, finished_at=timezone.now()
    )
    resp = client.get(job_url(job), **HTMX)
    assert resp.status_code == 286
    fragment = resp.content.decode()
    assert "Succeeded" in fragment and "hx-trigger" not in fragment
    assert "Cancel job" not in fragment
    page = client.get(job_url(job)).content.decode()
    assert resp.status_code == 286 and "hx-trigger" not in page


def test_it_shows_a_queued_job_waiting_and_a_failed_jobs_error(client, project, alice):
    queued = make_job(project)
    failed = make_job(project, status=Status.FAILED, error="CUDA out of memory")
    client.force_login(alice)
    assert "Waiting for a worker" in client.get(job_url(queued)).content.decode()
    page = client.get(job_url(failed)).content.decode()
    assert "CUDA out of memory" in page and "Cancel job" not in page


def test_it_escapes_logs_errors_metric_names_models_and_config(client, project, alice):
    model = ModelVersion.objects.create(
        project=project, name=XSS, role="policy", path=XSS, metrics={XSS: XSS}
    )
    job = running_job(
        project,
        log_tail=XSS,
        error=XSS,
        input_model=model,
        config={XSS: XSS},
        dataset={"split": XSS},
        metrics=[{"step": 1, XSS: 1.0}],
    )
    client.force_login(alice)
    pages = [
        client.get(job_url(job)).content.decode(),
        client.get(job_url(job), **HTMX).content.decode(),
        client.get(reverse("training_models", args=[project.id])).content.decode(),
    ]
    for page in pages:
        assert "<script>alert(1)</script>" not in page
        assert "<img src=x" not in page
        assert ESCAPED in page or "&lt;script&gt;" in page


def test_it_shows_the_job_page_in_a_fixed_number_of_queries(
    client, project, alice, django_assert_max_num_queries
):
    model = ModelVersion.objects.create(project=project, name="m", role="policy", path="/m")
    job = running_job(project, steps=200, input_model=model, reward_model=model, created_by=alice)
    client.force_login(alice)
    with django_assert_max_num_queries(5):  # session, user, job with its models, nav check
        assert client.get(job_url(job)).status_code == 200
    with django_assert_max_num_queries(3):  # session, user, job with its models
        assert client.get(job_url(job), **HTMX).status_code == 200


@pytest.mark.parametrize(
    "seconds,text", [(0, "0 s"), (59.6, "1 min 00 s"), (185, "3 min 05 s"), (7322, "2 h 02 min")]
)
def test_it_formats_durations(seconds, text):
    assert views.duration(seconds) == text


def test_it_has_no_eta_before_the_first_step_or_without_a_total(project):
    now = timezone.now()
    job = make_job(project, status=Status.RUNNING, started_at=now - timedelta(seconds=10))
    assert views.progress_view(job, now)["eta"] == ""
    job.step = 5
    assert views.progress_view(job, now)["eta"] == ""
    job.total_steps = 10
    progress = views.progress_view(job, now)
    assert (progress["eta"], progress["percent"], progress["elapsed"]) == ("10 s", 50, "10 s")


# --- Cancel ---------------------------------------------------------------------------------


def test_it_cancels_a_queued_job(client, project, alice):
    job = make_job(project)
    client.force_login(alice)
    resp = client.post(cancel_url(job))
    assert resp.status_code == 302 and resp.url == job_url(job)
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    assert "Cancelled." in client.get(resp.url).content.decode()


def test_it_cancels_over_htmx_and_stops_polling_once_the_job_ended(client, project, alice):
    job = make_job(project)
    client.force_login(alice)
    resp = client.post(cancel_url(job), **HTMX)
    assert resp.status_code == 286
    assert "Cancelled" in resp.content.decode()
    assert TrainingJob.objects.get().status == Status.CANCELLED


def test_it_asks_a_running_job_to_stop_and_says_so(client, project, alice):
    job = running_job(project)
    client.force_login(alice)
    resp = client.post(cancel_url(job), **HTMX)
    assert resp.status_code == 200
    fragment = resp.content.decode()
    assert "stops and saves at its next step" in fragment
    assert '<button type="button" disabled>Cancel requested</button>' in fragment
    assert 'hx-trigger="every 2s"' in fragment  # still running: still polled
    job.refresh_from_db()
    assert job.status == Status.RUNNING and job.cancel_requested


def test_it_says_a_finished_job_can_no_longer_be_cancelled(client, project, alice):
    job = make_job(project, status=Status.SUCCEEDED)
    client.force_login(alice)
    resp = client.post(cancel_url(job), follow=True)
    assert "The job has already ended (succeeded)." in resp.content.decode()
    assert TrainingJob.objects.get().status == Status.SUCCEEDED


# --- Model registry -------------------------------------------------------------------------


def lineage_project(project):
    base = ModelVersion.objects.create(project=project, name="base", role="policy", path="/b")
    sft = make_job(project, kind="sft", status=Status.SUCCEEDED)
    sft_model = ModelVersion.objects.create(
        project=project, name=f"sft-{sft.id}", role="policy", path="/s", parent=base, job=sft
    )
    rm = ModelVersion.objects.create(
        project=project, name="rm", role="reward", path="/rm", metrics={"val_accuracy": 0.9375}
    )
    ppo = make_job(project, kind="ppo", status=Status.SUCCEEDED)
    ppo_model = ModelVersion.objects.create(
        project=project, name=f"ppo-{ppo.id}", role="policy", path="/p", parent=sft_model, job=ppo
    )
    return base, sft_model, rm, ppo_model


def test_it_shows_the_registry_with_lineage(client, project, alice):
    base, sft_model, rm, ppo_model = lineage_project(project)
    ModelVersion.objects.create(project=ProjectFactory(), name="foreign", role="policy", path="/")
    client.force_login(alice)
    page = client.get(reverse("training_models", args=[project.id])).content.decode()
    chain = (
        f'<a href="#model-{base.id}">base</a> → <a href="#model-{sft_model.id}">'
        f"{sft_model.name}</a> → <strong>{ppo_model.name}</strong>"
    )
    assert chain in page
    assert page.index(f'id="model-{base.id}"') < page.index(f'id="model-{sft_model.id}"')
    assert page.index(f'id="model-{sft_model.id}"') < page.index(f'id="model-{ppo_model.id}"')
    assert f'href="{job_url(ppo_model.job)}"' in page
    assert "val_accuracy</code> 0.9375" in page and "Reward model" in page
    assert "foreign" not in page


def test_it_orders_the_tree_depth_first_and_survives_a_parent_cycle(project):
    base, sft_model, rm, ppo_model = lineage_project(project)
    rows = views.lineage_rows(list(ModelVersion.objects.all()))
    assert [(r["version"].name, r["depth"]) for r in rows] == [
        ("base", 0),
        (sft_model.name, 1),
        (ppo_model.name, 2),
        ("rm", 0),
    ]
    ModelVersion.objects.filter(id=base.id).update(parent=ppo_model)  # a loop, by hand
    rows = views.lineage_rows(list(ModelVersion.objects.all()))
    assert sorted(r["version"].id for r in rows) == sorted(
        [base.id, sft_model.id, rm.id, ppo_model.id]
    )


def test_it_shows_the_registry_in_a_fixed_number_of_queries(
    client, project, alice, django_assert_max_num_queries
):
    lineage_project(project)
    client.force_login(alice)
    url = reverse("training_models", args=[project.id])
    with django_assert_max_num_queries(5):  # session, user, membership, versions, nav check
        assert client.get(url).status_code == 200
    for _ in range(3):
        lineage_project(project)
    with django_assert_max_num_queries(5):
        assert client.get(url).status_code == 200


# --- Django admin ---------------------------------------------------------------------------


def test_the_django_admin_lists_jobs_read_only_and_cancels_through_the_service(client, project):
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    job = running_job(project)
    model = ModelVersion.objects.create(
        project=project, name="m", role="policy", path="/m", job=job
    )
    client.force_login(root)
    for name in ("trainingjob", "modelversion"):
        assert client.get(reverse(f"admin:trainer_{name}_changelist")).status_code == 200
        assert client.get(reverse(f"admin:trainer_{name}_add")).status_code in (200, 403)
    assert client.get(reverse("admin:trainer_trainingjob_add")).status_code == 403
    assert client.get(reverse("admin:trainer_trainingjob_change", args=[job.id])).status_code == 200
    assert (
        client.get(reverse("admin:trainer_modelversion_change", args=[model.id])).status_code == 200
    )
    resp = client.post(
        reverse("admin:trainer_trainingjob_changelist"),
        {"action": "cancel_jobs", "_selected_action": [job.id]},
    )
    assert resp.status_code == 302
    job.refresh_from_db()
    assert job.cancel_requested and job.status == Status.RUNNING


def test_the_django_admin_registers_a_base_model(client, project):
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))
    resp = client.post(
        reverse("admin:trainer_modelversion_add"),
        {"project": project.id, "name": "base", "role": "policy", "path": "var/tiny"},
    )
    assert resp.status_code == 302
    assert ModelVersion.objects.get().path == "var/tiny"


def test_a_labeler_made_admin_sees_the_training_pages(client, project, bob):
    Membership.objects.filter(user=bob).update(role=Membership.Role.ADMIN)
    client.force_login(bob)
    assert client.get(reverse("training_jobs", args=[project.id])).status_code == 200
