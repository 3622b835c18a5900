"""The peak-memory estimator (trainer/algorithms/memory.py): the model's shape from its files,
and the estimate against measured CPU peaks (bench/memory.py's cases)."""

import json
import sys
from pathlib import Path

import pytest

from trainer.algorithms.memory import estimate_job, model_shape, shape_from_config

ROOT = Path(__file__).resolve().parents[3]


def test_the_shape_comes_from_the_files_and_matches_the_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    shape = model_shape(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert shape.params == sum(p.numel() for p in model.parameters())
    config = json.loads((Path(tiny_model_dir) / "config.json").read_text())
    assert shape_from_config(config).params == pytest.approx(shape.params, rel=0.02)
    assert model_shape("some-org/hub-id") is None


def test_the_estimate_follows_the_settings(tiny_model_dir):
    shape = model_shape(tiny_model_dir)
    base = {"batch_size": 4, "max_length": 128, "dtype": "fp32"}
    full = estimate_job("dpo", base, shape, device="cpu")
    assert estimate_job("dpo", {**base, "batch_size": 8}, shape, device="cpu").total_bytes > (
        full.total_bytes
    )
    lora = estimate_job("dpo", {**base, "use_lora": True}, shape, device="cpu")
    assert lora.parts["policy grads+adam"] < full.parts["policy grads+adam"] / 5
    assert "reference weights" in full.parts and "reference weights" not in lora.parts
    ckpt = estimate_job("dpo", {**base, "gradient_checkpointing": True}, shape, device="cpu")
    assert ckpt.parts["policy activations"] < full.parts["policy activations"]


def test_activations_count_what_autograd_saves(tiny_model_dir):
    """The per-token activation figure against the bytes autograd really saves in a forward
    of the tiny Llama (full training, fp32, no checkpointing)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from trainer.algorithms.memory import activation_bytes

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    model.train()
    ids = torch.randint(5, 100, (2, 64))
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = max(saved.get(storage.data_ptr(), 0), storage.nbytes())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    measured = sum(size for ptr, size in saved.items() if ptr not in weights)
    estimate = activation_bytes(model_shape(tiny_model_dir), 2, 64, "fp32", False, lm_head=False)
    assert estimate == pytest.approx(measured, rel=0.1)


def test_the_docs_table_of_what_fits_is_the_estimators():
    from trainer.algorithms.memory import fits_table

    assert fits_table() in (ROOT / "docs" / "training.md").read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    ["tiny reward full fp32", "tiny reward LoRA", "tiny dpo full fp32", "100M reward full fp32",
     "100M reward LoRA", "100M reward LoRA+ckpt"],
)  # fmt: skip
def test_the_estimate_is_within_1_5x_of_the_measured_peak(case, tmp_path_factory):
    sys.path.insert(0, str(ROOT / "bench"))
    import memory as bench_memory  # bench/memory.py

    models = getattr(test_the_estimate_is_within_1_5x_of_the_measured_peak, "models", {})
    test_the_estimate_is_within_1_5x_of_the_measured_peak.models = models
    result = bench_memory.run_case(case, tmp_path_factory.mktemp("mem"), models)
    assert 1 / 1.5 <= result["ratio"] <= 1.5, result
