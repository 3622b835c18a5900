"""The launch forms (trainer/views.py job_new): every kind launches with its defaults,
required fields are marked and explained next to the field, and the form says how many rows
the chosen data gives (with its split) and warns below a floor."""

from unittest import mock

import pytest
from django.urls import reverse

from annotator.models import Kind
from tests.annotator.exportkit import pick, prompt_for, task_over
from trainer.forms import config_form_fields, dataset_form_fields
from trainer.job_data import FLOORS, data_size
from trainer.kinds import LAUNCHABLE
from trainer.models import ModelVersion, TrainingJob

NEW_MAX_QUERIES = 15  # 9 of them the snapshot count (savepoint, settings, cursors; edit revisions)


@pytest.fixture
def delay():
    with mock.patch("trainer.tasks.run_training_job.delay") as delay:
        yield delay


@pytest.fixture
def models(project):
    base = ModelVersion.objects.create(project=project, name="base", role="policy", path="gpt2")
    rm = ModelVersion.objects.create(project=project, name="rm", role="reward", path="/rm")
    return base, rm


def labelled(project, bob, n: int) -> None:
    for i in range(n):
        task, (a, _b) = task_over(prompt_for(project, f"P{i}?"), ["x", "y"], kind=Kind.PAIRWISE)
        pick(task, bob, a)


def defaults_as_posted(kind: str, picked: dict) -> dict:
    """What a browser sends for the form as it is shown: every field with its default."""
    data = {k: v for k, v in picked.items() if v}
    for f in config_form_fields(kind):
        if f.type == "bool":
            if f.default:
                data[f"config__{f.name}"] = "on"
        else:
            data[f"config__{f.name}"] = f.default_text
    for f in dataset_form_fields(kind):
        data[f"dataset__{f.name}"] = ""
    return data


def new_url(project, kind: str) -> str:
    return reverse("training_job_new", args=[project.id, kind])


# Every kind the jobs page launches (a judging job starts from its judge: docs/ai-judges.md).
@pytest.mark.parametrize("kind", sorted(k.name for k in LAUNCHABLE))
def test_every_kind_launches_with_its_defaults(client, project, alice, models, delay, kind):
    client.force_login(alice)
    form = client.get(new_url(project, kind))
    response = client.post(new_url(project, kind), defaults_as_posted(kind, form.context["picked"]))
    assert response.status_code == 302, response.context["form_error"]
    job = TrainingJob.objects.get()
    assert job.input_model == models[0]
    # prompt_reward starts from no model: its encoder model, if any, is typed as a path.
    if any(f.name == "model_name_or_path" for f in config_form_fields(kind)):
        assert job.config["model_name_or_path"] == "gpt2"
    else:
        assert "model_name_or_path" not in job.config


def test_it_marks_required_fields_and_explains_a_missing_model_next_to_it(
    client, project, alice, delay
):
    client.force_login(alice)
    page = client.get(new_url(project, "reward")).content.decode()
    assert '<code>model_name_or_path</code> <span class="required" title="required">*</span>' in (
        page
    )
    response = client.post(new_url(project, "reward"), defaults_as_posted("reward", {}))
    html = response.content.decode()
    assert not TrainingJob.objects.exists()
    assert "RewardConfig.__init__()" not in html
    field = html.split('id="config-model_name_or_path"')[1].split("</div>")[0]
    assert "no such model registered yet: register one on the Models page" in field
    assert 'aria-invalid="true"' in html.split('id="config-model_name_or_path"')[1][:200]


def test_it_asks_for_a_reward_model_next_to_its_field(client, project, alice, delay):
    ModelVersion.objects.create(project=project, name="base", role="policy", path="gpt2")
    ModelVersion.objects.create(project=project, name="rm", role="reward", path="/rm")
    client.force_login(alice)
    response = client.post(new_url(project, "raft"), defaults_as_posted("raft", {}) | {
        "config__model_name_or_path": "gpt2"  # and "None" picked for the reward model
    })  # fmt: skip
    html = response.content.decode()
    assert not TrainingJob.objects.exists()
    field = html.split('id="config-reward_model_path"')[1].split("</div>")[0]
    assert "Pick a reward model above, or type the path of a trained reward model here." in field


def test_it_shows_the_rows_and_split_the_data_gives_and_warns_below_the_floor(
    client, project, alice, bob, models
):
    labelled(project, bob, 12)
    client.force_login(alice)
    page = client.get(new_url(project, "reward"))
    data = page.context["data"]
    assert (data.rows, data.train, data.val) == (12, 11, 1)
    html = page.content.decode()
    assert 'data-testid="data-rows">12</strong> labelled rows' in html
    assert f"Only 12 labelled rows: below {FLOORS['reward']}" in html
    partial = client.get(
        reverse("training_job_new_data", args=[project.id, "reward"]), {"dataset__split": "eval"}
    )
    # Eval-split prompts are held out of every training job: the form says so at once.
    assert "trains on train-split prompts only" in partial.content.decode()
    assert "<form" not in partial.content.decode()
    partial = client.get(
        reverse("training_job_new_data", args=[project.id, "reward"]), {"dataset__round": 99}
    )
    assert 'data-testid="data-rows">0</strong>' in partial.content.decode()
    assert "No labelled rows match these settings" in partial.content.decode()


def test_it_counts_prompts_for_prompt_kinds(client, project, alice, models):
    for i in range(3):
        prompt_for(project, f"Q{i}", split="eval" if i else "train")
    client.force_login(alice)
    url = reverse("training_job_new_data", args=[project.id, "generate"])
    rows = 'data-testid="data-rows">{}</strong> prompts'
    assert rows.format(3) in client.get(url).content.decode()
    assert rows.format(2) in client.get(url, {"dataset__split": "eval"}).content.decode()


def test_it_warns_of_a_small_validation_set_above_the_floor():
    size = data_size(kind="reward", rows=250, config={"val_fraction": 0.05, "seed": 1})
    assert (size.train, size.val) == (238, 12)
    assert "Only 12 rows held out for validation" in size.warning
    assert data_size(kind="reward", rows=1000, config={"val_fraction": 0.1}).warning == ""


def test_the_job_page_says_what_it_trained_on(client, project, alice):
    job = TrainingJob.objects.create(
        project=project, kind="reward", config={"val_fraction": 0.1, "seed": 42},
        status="succeeded", snapshot_rows=12, snapshot_sha256="ab" * 32,
    )  # fmt: skip
    client.force_login(alice)
    html = client.get(reverse("training_job", args=[job.id])).content.decode()
    assert "Trained on 12 labelled rows: 11 to train on, 1 held out for validation." in html
    assert "Only 12 labelled rows: below" in html


def test_it_renders_the_launch_form_within_its_query_budget(
    client, project, alice, bob, models, django_assert_max_num_queries
):
    labelled(project, bob, 20)
    client.force_login(alice)
    with django_assert_max_num_queries(NEW_MAX_QUERIES):
        assert client.get(new_url(project, "reward")).status_code == 200
    url = reverse("training_job_new_data", args=[project.id, "reward"])
    with django_assert_max_num_queries(NEW_MAX_QUERIES):
        assert 'data-testid="data-rows">20</strong>' in client.get(url).content.decode()


def test_a_reward_job_takes_source_weights_and_explains_a_bad_one(client, project, alice, models):
    client.force_login(alice)
    form = client.get(new_url(project, "reward"))
    assert 'name="dataset__source_weights"' in form.content.decode()
    posted = defaults_as_posted("reward", form.context["picked"])
    bad = client.post(new_url(project, "reward"), posted | {"dataset__source_weights": '{"ai": 0}'})
    assert not TrainingJob.objects.exists()
    assert "dataset.source_weights: ai: the weight must be above 0" in bad.content.decode()
    good = client.post(
        new_url(project, "reward"), posted | {"dataset__source_weights": '{"ai": 0.5}'}
    )
    assert good.status_code == 302
    assert TrainingJob.objects.get().dataset == {"source_weights": {"ai": 0.5}}
