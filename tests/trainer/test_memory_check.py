"""The memory check before a job is queued (trainer/memory_check.py) and the worker inventory
it reads (trainer/inventory.py)."""

import json

import pytest
from django.urls import reverse

from trainer import inventory, services
from trainer.algorithms.memory import GIB, estimate_job, shape_from_config
from trainer.exceptions import JobError
from trainer.models import TrainingJob, Worker

LLAMA_8B = {
    "model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "vocab_size": 128256,
    "intermediate_size": 14336, "num_attention_heads": 32, "num_key_value_heads": 8,
    "tie_word_embeddings": False,
}  # fmt: skip


@pytest.fixture
def llama_8b_dir(tmp_path):
    """A model directory with only its config.json: enough for the estimate."""
    directory = tmp_path / "llama-8b"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(LLAMA_8B))
    return str(directory)


def gpu_worker(gib: float, queues=("gpu",), name="w1") -> Worker:
    device = {"name": "cuda:0 GPU", "kind": "cuda", "total_bytes": int(gib * GIB),
              "free_bytes": int(gib * GIB)}  # fmt: skip
    return inventory.worker_report(name=name, queues=list(queues), devices=[device])


def test_the_estimator_counts_an_8b_model_and_what_lora_saves():
    shape = shape_from_config(LLAMA_8B)
    assert 7.9e9 < shape.params < 8.1e9
    full = estimate_job("ppo", {"dtype": "fp32"}, shape, device="cuda")
    lora = estimate_job(
        "ppo", {"use_lora": True, "dtype": "bf16", "gradient_checkpointing": True}, shape
    )
    # fp32 full PPO: policy and value with Adam (16 bytes/param each) alone pass 250 GB.
    assert full.total_bytes > 250e9
    assert lora.total_bytes < 80 * GIB < full.total_bytes
    assert "reference weights" in full.parts and "reference weights" not in lora.parts


@pytest.mark.django_db
def test_a_job_that_cannot_fit_is_refused_with_the_numbers(project, llama_8b_dir):
    gpu_worker(24)
    config = {"model_name_or_path": llama_8b_dir, "dtype": "fp32"}
    with pytest.raises(JobError) as refused:
        services.job_create(project=project, kind="dpo", config=config)
    message = str(refused.value)
    assert "GiB (policy weights" in message and "at its peak" in message
    assert "24.0 GiB (cuda:0 GPU on w1)" in message
    assert "set use_lora" in message and "gradient_checkpointing" in message
    assert not TrainingJob.objects.exists()

    # With LoRA, bf16 and checkpointing it fits on an 80 GB worker.
    gpu_worker(80, name="w2")
    fits = {**config, "use_lora": True, "dtype": "bf16", "gradient_checkpointing": True,
            "batch_size": 2, "max_length": 512}  # fmt: skip
    assert services.job_create(project=project, kind="dpo", config=fits).kind == "dpo"


@pytest.mark.django_db
def test_no_report_or_another_queue_means_no_refusal(project, llama_8b_dir):
    config = {"model_name_or_path": llama_8b_dir, "dtype": "fp32"}
    gpu_worker(24, queues=("default",))
    assert services.job_create(project=project, kind="sft", config=config).kind == "sft"


@pytest.mark.django_db
def test_workers_report_their_devices_and_the_jobs_page_shows_them(client, project, alice):
    devices = inventory.device_report()
    assert devices and all(d["total_bytes"] >= d["free_bytes"] > 0 for d in devices)
    worker = inventory.worker_report(name="celery@box", queues=["gpu", "default"])
    assert worker.devices == devices or worker.devices[0]["kind"] == devices[0]["kind"]
    assert list(inventory.workers_for_queue("gpu")) == [worker]

    client.force_login(alice)
    page = client.get(reverse("training_jobs", args=[project.id])).content.decode()
    assert "celery@box" in page and devices[0]["name"] in page and "GiB" in page


@pytest.mark.django_db
def test_the_launch_form_shows_the_estimate(client, project, alice, llama_8b_dir):
    from trainer.models import ModelVersion

    ModelVersion.objects.create(project=project, name="8b", role="policy", path=llama_8b_dir)
    gpu_worker(48)
    client.force_login(alice)
    page = client.get(reverse("training_job_new", args=[project.id, "sft"])).content.decode()
    assert "Estimated peak" in page and "48.0 GiB" in page and "it does not fit" in page
    response = client.post(
        reverse("training_job_new", args=[project.id, "sft"]),
        {"input_model": "", "config__model_name_or_path": llama_8b_dir, "config__dtype": "fp32"},
    )
    assert response.status_code == 200 and "at its peak" in response.content.decode()
