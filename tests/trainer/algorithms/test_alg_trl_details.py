"""Details of the TRL-based kinds: the DPO reference's precision, what SFT trains on, and how
RLOO/GRPO treat truncated completions."""

import pytest
import torch

from tests.trainer.algorithms.helpers import marker_rows
from trainer.algorithms.dpo import DPOConfig
from trainer.algorithms.dpo import train as train_dpo
from trainer.algorithms.reward_scoring import RewardScorer
from trainer.algorithms.rloo import ModelReward, RLOOConfig, policy_stop_ids, training_arguments
from trainer.algorithms.sft import best_responses, demonstration_rows


def test_an_explicit_dpo_reference_is_loaded_like_the_policy(tiny_model_dir, tmp_path, monkeypatch):
    import trl
    from transformers import AutoModelForCausalLM

    reference = tmp_path / "bf16-reference"
    AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).save_pretrained(
        reference
    )
    seen = {}

    class Recording(trl.DPOTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.update(policy=self.model.dtype, reference=self.ref_model.dtype)

    monkeypatch.setattr(trl, "DPOTrainer", Recording)
    config = DPOConfig(
        model_name_or_path=tiny_model_dir,
        ref_model_name_or_path=str(reference),
        max_steps=1,
        batch_size=4,
        max_length=64,
        save_steps=0,
        device="cpu",
    )

    train_dpo(config, marker_rows(4), tmp_path / "out")

    assert seen == {"policy": torch.float32, "reference": torch.float32}


def test_sft_from_labels_takes_each_prompts_best_response_once():
    ranking = ["first", "second", "third"]
    rows = [
        {"prompt": "p", "prompt_id": 1, "chosen": ranking[i], "rejected": ranking[j]}
        for i, j in [(1, 2), (0, 2), (0, 1)]
    ]
    rows += [
        {"prompt": "q", "chosen": "yes", "rejected": "no"},
        {"prompt": "q", "chosen": "yes", "rejected": "maybe"},
        {"prompt": "r", "ranking": ["top", "bottom"]},
    ]

    demonstrations = best_responses(rows)

    assert demonstrations == [
        {"prompt": "p", "completion": "first"},
        {"prompt": "q", "completion": "yes"},
        {"prompt": "r", "completion": "top"},
    ]


def test_the_sft_job_on_labels_uses_the_best_responses():
    from trainer.job_child import ROW_ADAPTERS

    rows = [
        {"prompt": "p", "chosen": "b", "rejected": "c"},
        {"prompt": "p", "chosen": "a", "rejected": "b"},
        {"prompt": "p", "chosen": "a", "rejected": "c"},
    ]
    assert ROW_ADAPTERS["sft"](rows) == [{"prompt": "p", "completion": "a"}]


def test_sft_on_a_conversation_trains_on_the_assistant_turn_only():
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "and?"},
        {"role": "assistant", "content": "that is all"},
    ]

    (row,) = demonstration_rows([{"messages": messages}])

    assert row == {"prompt": messages[:3], "completion": messages[3:]}
    with pytest.raises(ValueError, match="assistant turn"):
        demonstration_rows([{"messages": messages[:3]}])


def test_the_online_reward_scores_a_truncated_completion_without_eos(tiny_model_dir, tiny_reward):
    from transformers import AutoTokenizer

    scorer = RewardScorer(tiny_reward[0], device="cpu")
    stops = policy_stop_ids(tiny_model_dir, AutoTokenizer.from_pretrained(tiny_model_dir))
    reward = ModelReward(scorer, stops)
    ids = [[5, 6, stops[0]], [5, 6, 7]]  # the first ended, the second hit the length limit

    scores = reward(
        prompts=["say:", "say:"], completions=[" a cat.", " a cat."], completion_ids=ids
    )

    assert scores == pytest.approx(scorer(["say:"] * 2, [" a cat."] * 2, [True, False]))
    assert scores[0] != pytest.approx(scores[1], abs=1e-4)


def test_rloo_and_grpo_pass_the_truncation_and_advantage_options_to_trl(tmp_path):
    config = RLOOConfig(
        model_name_or_path="m",
        reward_model_path="rm",
        mask_truncated_completions=True,
        normalize_advantages=True,
    )
    assert training_arguments(config, tmp_path)["mask_truncated_completions"] is True
    assert config.normalize_advantages is True
