"""PPO details from the references (lm-human-preferences, TRL, OpenRLHF) that tiny models
would not reveal by training worse, checked one by one."""

import math
import shutil

import pytest
import torch

from tests.trainer.algorithms.test_alg_ppo import ppo_config, prompt_rows
from trainer.algorithms import ppo, ppo_core
from trainer.algorithms.common import TrainingError, load_training_state, save_training_state
from trainer.algorithms.ppo import load_models, train


@pytest.fixture(scope="module")
def foreign_reward(tmp_path_factory):
    """A reward model with a vocabulary of its own (its scores still come through text)."""
    from transformers import AutoModelForSequenceClassification

    from trainer.algorithms.tiny import build_model, build_tokenizer, tiny_corpus

    tokenizer = build_tokenizer(tiny_corpus(seed=1)[:200], vocab_size=400)
    path = tmp_path_factory.mktemp("foreign") / "rm"
    build_model(tokenizer, hidden_size=32, layers=1).save_pretrained(path)
    tokenizer.save_pretrained(path)
    AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1).save_pretrained(
        path
    )
    return str(path)


def test_it_refuses_greedy_sampling(tiny_model_dir, tiny_reward, tmp_path):
    with pytest.raises(TrainingError, match="temperature > 0"):
        train(ppo_config(tiny_model_dir, tiny_reward[0], temperature=0.0), prompt_rows(2), tmp_path)


def test_a_value_model_of_another_vocabulary_starts_from_the_policy(
    tiny_model_dir, foreign_reward, tiny_reward
):
    foreign = load_models(ppo_config(tiny_model_dir, foreign_reward), None)
    assert foreign.value.config.vocab_size == foreign.policy.config.vocab_size
    assert foreign.value_source == "policy"
    assert torch.count_nonzero(foreign.value.score.weight) == 0  # a fresh head

    own = load_models(ppo_config(tiny_model_dir, tiny_reward[0]), None)
    assert own.value_source == "reward"
    assert torch.equal(own.value.score.weight, own.scorer.model.score.weight)


def test_trained_models_keep_float32_weights_and_frozen_ones_take_the_dtype(
    tiny_model_dir, tiny_reward, tmp_path
):
    # A reward (and so value) checkpoint stored in bfloat16, as many are.
    from transformers import AutoModelForSequenceClassification

    bf16_reward = tmp_path / "bf16-rm"
    shutil.copytree(tiny_reward[0], bf16_reward)
    AutoModelForSequenceClassification.from_pretrained(
        tiny_reward[0], dtype=torch.bfloat16
    ).save_pretrained(bf16_reward)

    fp32 = load_models(ppo_config(tiny_model_dir, str(bf16_reward), dtype="fp32"), None)
    assert fp32.value.dtype == torch.float32 and fp32.policy.dtype == torch.float32

    bf16 = load_models(ppo_config(tiny_model_dir, str(bf16_reward), dtype="bf16"), None)
    assert bf16.policy.dtype == torch.float32 and bf16.value.dtype == torch.float32
    assert bf16.reference.dtype == torch.bfloat16 and bf16.scorer.model.dtype == torch.bfloat16
    assert bf16.autocast == torch.bfloat16


def test_it_trains_under_bf16_autocast(tiny_model_dir, tiny_reward, tmp_path, progress):
    from tests.trainer.algorithms.helpers import params_changed, weights

    train(
        ppo_config(tiny_model_dir, tiny_reward[0], steps=1, dtype="bf16"),
        prompt_rows(4),
        tmp_path,
        progress=progress,
    )

    assert all(math.isfinite(v) for v in progress.values("policy_loss"))
    assert {t.dtype for t in weights(tmp_path).values()} == {torch.float32}
    assert params_changed(tiny_model_dir, tmp_path)


def test_rewards_are_normalised_on_the_starting_policys_samples(
    tiny_model_dir, tiny_reward, monkeypatch
):
    config = ppo_config(tiny_model_dir, tiny_reward[0])
    models = load_models(config, None)
    prompts = [row["prompt"] for row in prompt_rows(4)]
    scored = []
    real = type(models.scorer).__call__
    monkeypatch.setattr(
        type(models.scorer), "__call__", lambda *a: scored.append(real(*a)) or scored[-1]
    )
    ids = models.tokenizer(["hello there"], return_tensors="pt")
    raw = ppo.token_values(models.value, ids["input_ids"], ids["attention_mask"], 1)

    moments = ppo.normalise_rewards(models, prompts, config)

    (scores,) = scored
    mean = sum(scores) / len(scores)
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
    assert moments.mean == pytest.approx(mean) and moments.std == pytest.approx(std, rel=1e-4)
    assert moments.count == len(prompts)
    whitened = ppo.token_values(models.value, ids["input_ids"], ids["attention_mask"], 1)
    assert whitened.item() == pytest.approx((raw.item() - mean) / std, rel=1e-4)


def test_the_logged_reward_is_the_score_before_the_eos_penalty(
    tiny_model_dir, tiny_reward, tmp_path, progress
):
    # Two new tokens: every response is cut off, so every one is penalised.
    config = ppo_config(
        tiny_model_dir, tiny_reward[0], steps=1, max_new_tokens=2, missing_eos_penalty=100.0
    )

    train(config, prompt_rows(4), tmp_path, progress=progress)

    (reward,), (penalty,) = progress.values("reward"), progress.values("eos_penalty")
    assert penalty == pytest.approx(100.0) and abs(reward) < 50


def test_both_learning_rates_warm_up_then_decay_linearly(
    tiny_model_dir, tiny_reward, tmp_path, progress
):
    config = ppo_config(tiny_model_dir, tiny_reward[0], steps=3, warmup_steps=1, max_new_tokens=4)

    train(config, prompt_rows(4), tmp_path, progress=progress)

    lr = config.learning_rate
    assert progress.values("learning_rate") == pytest.approx([lr / 2, lr, lr / 2])


def test_rollout_logits_are_computed_a_mini_batch_at_a_time_and_updates_accumulate(
    tiny_model_dir, tiny_reward, tmp_path, monkeypatch, progress
):
    sizes = []
    real = ppo_core.response_logits
    monkeypatch.setattr(
        ppo_core,
        "response_logits",
        lambda model, ids, *a: sizes.append(len(ids)) or real(model, ids, *a),
    )
    config = ppo_config(
        tiny_model_dir,
        tiny_reward[0],
        steps=1,
        batch_size=8,
        mini_batch_size=4,
        gradient_accumulation_steps=2,
        normalize_reward=False,
    )

    train(config, prompt_rows(8), tmp_path, progress=progress)

    assert sizes and max(sizes) <= 4  # never the whole rollout batch at full vocabulary
    assert sizes.count(2) == 4  # two mini-batches, each in two micro-batches of 2
    assert progress.values("updates") == [2.0]


def test_it_stops_a_batchs_updates_early_when_the_approximate_kl_runs_away(
    tiny_model_dir, tiny_reward, tmp_path, progress
):
    config = ppo_config(
        tiny_model_dir,
        tiny_reward[0],
        steps=1,
        mini_batch_size=2,
        ppo_epochs=4,
        learning_rate=1e-2,
        early_stop_kl=1e-9,
    )

    train(config, prompt_rows(4), tmp_path, progress=progress)

    # The first mini-batch sees the rollout policy (KL 0); after one update the KL passes.
    assert progress.values("updates") == [2.0] and progress.values("early_stopped") == [1.0]


def test_the_training_forward_pass_recomputes_the_rollouts_log_probs(
    tiny_model_dir, tiny_reward, tmp_path, progress
):
    config = ppo_config(
        tiny_model_dir,
        tiny_reward[0],
        steps=1,
        batch_size=4,
        mini_batch_size=2,
        learning_rate=0.0,
        value_learning_rate=0.0,
        ppo_epochs=2,
    )

    train(config, prompt_rows(4), tmp_path, progress=progress)

    # No update, so every ratio is exactly what the rollout recorded.
    assert progress.values("approx_kl")[0] < 1e-9
    assert progress.values("clip_fraction") == [0.0]


def test_checkpoints_carry_the_cuda_random_state(tmp_path, monkeypatch):
    state = torch.ByteTensor([1, 2, 3])
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [state])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])

    save_training_state(tmp_path, 1, optimizer, None)
    from trainer.algorithms.common import restore_rng_state

    restore_rng_state(load_training_state(tmp_path))

    assert len(restored) == 1 and torch.equal(restored[0][0], state)
