"""RLOO and GRPO hold the policy near the reference given by ref_model_path (the loop's base
policy from round 2 on), not near the policy they start from."""

import dataclasses

import pytest

from tests.trainer.algorithms.test_alg_rloo import prompt_rows, tiny
from trainer.algorithms.grpo import GRPOConfig
from trainer.algorithms.grpo import train as train_grpo
from trainer.algorithms.rloo import train as train_rloo


@pytest.fixture(scope="module")
def other_policy(tiny_model_dir, tmp_path_factory):
    """The tiny policy with its weights moved: a reference the starting policy is far from."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.5)
    path = tmp_path_factory.mktemp("other") / "policy"
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(path)
    return str(path)


def first_kl(progress) -> float:
    return progress.values("kl")[0]


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["rloo", "grpo"])
def test_the_kl_is_measured_against_the_reference_path(
    tiny_model_dir, tiny_reward, other_policy, tmp_path, progress, algorithm
):
    train = train_rloo if algorithm == "rloo" else train_grpo
    settings = {"max_steps": 1, "beta": 0.1}

    def config(**overrides):
        base = tiny(tiny_model_dir, tiny_reward[0], **settings, **overrides)
        if algorithm == "rloo":
            return base
        shared = {f.name for f in dataclasses.fields(GRPOConfig)}
        return GRPOConfig(**{k: v for k, v in vars(base).items() if k in shared})

    train(config(), prompt_rows(4), tmp_path / "own", progress=progress)
    own = first_kl(progress)
    progress.calls.clear()
    train(config(ref_model_path=other_policy), prompt_rows(4), tmp_path / "ref", progress=progress)

    # Before its first update the policy is its own reference: KL 0. Against another policy, not.
    assert own == pytest.approx(0.0, abs=1e-6)
    assert first_kl(progress) > 0.01
