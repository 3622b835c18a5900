"""Registering a base model from the models page (trainer/model_services.py)."""

import pytest
from django.urls import reverse

from trainer.models import ModelVersion

REGISTRY_MAX_QUERIES = 7


def register(client, project, **data):
    return client.post(reverse("training_model_register", args=[project.id]), data)


@pytest.mark.parametrize("path", ["/models/base", "./ckpt", "gpt2", "Qwen/Qwen2.5-0.5B-Instruct"])
def test_it_registers_a_base_model_by_path_or_hub_id(client, project, alice, path):
    client.force_login(alice)
    response = register(client, project, name="base", role="policy", path=path)
    model = ModelVersion.objects.get(project=project)
    assert response.status_code == 302 and response.url.endswith(f"#model-{model.id}")
    assert (model.name, model.role, model.path, model.parent, model.job) == (
        "base", "policy", path, None, None,
    )  # fmt: skip
    page = client.get(reverse("training_job_new", args=[project.id, "reward"])).content.decode()
    assert f'<option value="{model.id}"' in page


def test_it_says_what_is_wrong_next_to_the_field(client, project, alice):
    client.force_login(alice)
    ModelVersion.objects.create(project=project, name="base", role="policy", path="gpt2")
    response = register(client, project, name="base", role="policy", path="not a path!")
    html = response.content.decode()
    assert response.status_code == 400
    assert "neither a local directory" in html
    response = register(client, project, name="base", role="policy", path="gpt2")
    assert "already has a model named “base”" in response.content.decode()
    assert ModelVersion.objects.count() == 1


def test_it_refuses_labelers_and_outsiders(client, project, bob, charlie):
    for user, code in ((bob, 403), (charlie, 404)):
        client.force_login(user)
        assert register(client, project, name="x", role="policy", path="gpt2").status_code == code
    assert not ModelVersion.objects.exists()


def test_it_shows_the_registry_and_its_form_within_the_query_budget(
    client, project, alice, django_assert_max_num_queries
):
    for i in range(10):
        ModelVersion.objects.create(project=project, name=f"m{i}", role="policy", path="gpt2")
    client.force_login(alice)
    with django_assert_max_num_queries(REGISTRY_MAX_QUERIES):
        response = client.get(reverse("training_models", args=[project.id]))
    assert response.status_code == 200 and 'name="path"' in response.content.decode()
