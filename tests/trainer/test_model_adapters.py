"""LoRA adapters in the registry: a job that saved an adapter registers it with its base, and
merging into full weights is an explicit action (service, page button, API)."""

import json
import os

import pytest
from django.urls import reverse

from trainer import services
from trainer.models import ModelVersion, TrainingJob

Status = TrainingJob.Status


def finish_with_adapter(job, base_path: str):
    services.job_claim(job_id=job.id, worker="w1")
    out = services.model_dir(job)
    out.mkdir(parents=True)
    (out / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": base_path, "r": 8, "task_type": "CAUSAL_LM"})
    )
    return services.job_finish(job_id=job.id, worker="w1", status=Status.SUCCEEDED).output_model


@pytest.mark.django_db
def test_an_adapter_version_records_its_base_model(project, settings, tmp_path):
    settings.PREFLOOP_MODELS_DIR = tmp_path
    base = ModelVersion.objects.create(project=project, name="base", role="policy", path="/m/b")
    job = TrainingJob.objects.create(
        project=project, kind="dpo", config={}, input_model=base, output_dir=str(tmp_path / "j")
    )
    adapter = finish_with_adapter(job, "/m/b")
    assert adapter.is_adapter and adapter.adapter_base == "/m/b"
    assert adapter.base_model == base and adapter.parent == base

    # The next round starts from the adapter: its output records the same base.
    job2 = TrainingJob.objects.create(
        project=project, kind="dpo", config={}, input_model=adapter, output_dir=str(tmp_path / "k")
    )
    nxt = finish_with_adapter(job2, "/m/b")
    assert (nxt.parent, nxt.base_model) == (adapter, base)

    full = TrainingJob.objects.create(
        project=project, kind="sft", config={}, output_dir=str(tmp_path / "f")
    )
    services.job_claim(job_id=full.id, worker="w1")
    made = services.job_finish(job_id=full.id, worker="w1", status=Status.SUCCEEDED)
    assert not made.output_model.is_adapter and made.output_model.base_model is None


@pytest.fixture
def real_adapter(tmp_path_factory):
    """A tiny base and an untrained LoRA adapter on it, on disk."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.algorithms.tiny import build_tiny_policy

    root = tmp_path_factory.mktemp("adapter")
    base = build_tiny_policy(root / "base", pretrain_steps=0, hidden_size=32, layers=1)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(base)),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    model.save_pretrained(root / "adapter")
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(root / "adapter")
    return str(base), str(root / "adapter")


@pytest.mark.django_db
def test_merging_is_an_explicit_action_that_adds_a_full_version(
    client, project, alice, charlie, settings, tmp_path, real_adapter, api_as
):
    settings.PREFLOOP_MODELS_DIR = tmp_path
    base_path, adapter_path = real_adapter
    adapter = ModelVersion.objects.create(
        project=project, name="dpo-1", role="policy", path=adapter_path, adapter_base=base_path
    )
    url = reverse("training_model_merge", args=[project.id, adapter.id])
    client.force_login(charlie)
    assert client.post(url).status_code == 404
    client.force_login(alice)
    page = client.get(reverse("training_models", args=[project.id])).content.decode()
    assert "Merge into full weights" in page and "LoRA adapter on" in page

    response = client.post(url)
    merged = ModelVersion.objects.get(name="dpo-1-merged")
    assert response.status_code == 302 and response.url.endswith(f"#model-{merged.id}")
    assert (merged.parent, merged.is_adapter, merged.role) == (adapter, False, "policy")
    assert os.path.isfile(os.path.join(merged.path, "model.safetensors"))
    assert os.path.isfile(os.path.join(adapter_path, "adapter_model.safetensors"))  # kept

    api = api_as(alice)
    again = api.post(reverse("api-model-merge", args=[adapter.id]))
    assert again.status_code == 409 and "already merged" in again.json()["detail"]
    full = api.post(reverse("api-model-merge", args=[merged.id]))
    assert full.status_code == 409 and "not a LoRA adapter" in full.json()["detail"]
    listed = api.get(reverse("api-models")).json()
    assert {m["name"]: m["adapter_base"] for m in listed}["dpo-1"] == base_path
