"""PPO's arithmetic against hand-worked numbers."""

import pytest
import torch

from trainer.algorithms import ppo_core as core


def test_gae_matches_a_hand_computation():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.4, 0.8, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the last token does not exist

    advantages, returns = core.gae(rewards, values, mask, gamma=0.9, lam=0.5)

    d2 = 1.0 - 0.8
    d1 = 0.9 * 0.8 - 0.4
    d0 = 0.9 * 0.4 - 0.5
    a2, a1 = d2, d1 + 0.45 * d2
    expected = torch.tensor([[d0 + 0.45 * a1, a1, a2, 0.0]])
    assert torch.allclose(advantages, expected)
    assert torch.allclose(returns, expected + values * mask)


def test_the_score_lands_on_the_last_real_token_and_kl_is_penalised():
    logprobs = torch.tensor([[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -1.0, -1.0], [-1.0, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])

    rewards, kl = core.kl_penalised_rewards(torch.tensor([2.0, 3.0]), logprobs, ref, mask, 0.1)

    assert torch.allclose(rewards, torch.tensor([[-0.05, 2.0, 0.0], [0.0, 0.0, 3.0]]))
    assert torch.allclose(kl.sum(1), torch.tensor([0.5, 0.0]))


def test_the_surrogate_clips_large_ratios():
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[2.0, 1.0]]))
    advantages = torch.ones(1, 2)

    loss, clip_fraction, _ = core.policy_loss(new, old, advantages, torch.ones(1, 2), 0.2)

    assert loss.item() == pytest.approx(-(1.2 + 1.0) / 2)
    assert clip_fraction.item() == pytest.approx(0.5)


def test_running_moments_match_the_whole_sample():
    data = torch.randn(50, generator=torch.Generator().manual_seed(0)) * 3 + 1
    moments = core.RunningMoments(count=0)
    for chunk in data.split(7):
        moments.update(chunk)
    assert moments.mean == pytest.approx(data.mean().item(), abs=1e-6)
    assert moments.std == pytest.approx(data.std(unbiased=False).item(), abs=1e-6)


def test_the_adaptive_kl_coefficient_moves_towards_the_target():
    controller = core.AdaptiveKLController(0.1, target=1.0, horizon=100)
    controller.update(current_kl=5.0, n_steps=10)
    assert controller.value == pytest.approx(0.1 * 1.02)
    controller.update(current_kl=0.0, n_steps=10)
    assert controller.value < 0.1 * 1.02


def test_masked_whitening_ignores_the_padding():
    values = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 5.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    garbage = values + (1 - mask) * 1000.0

    whitened = core.masked_whiten(garbage, mask)

    real = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    expected = (real - real.mean()) / real.std(unbiased=False)
    assert torch.allclose(whitened[mask.bool()], expected, atol=1e-5)


def test_the_value_loss_is_clipped_around_the_old_values():
    old = torch.tensor([[0.0, 0.0]])
    returns = torch.tensor([[1.0, 1.0]])
    mask = torch.tensor([[1.0, 0.0]])
    # A new value past the clip towards the return: the clipped one (0.2) is further off,
    # and the loss takes the larger of the two.
    new = torch.tensor([[0.9, 5.0]])

    loss = core.value_loss(new, old, returns, mask, cliprange_value=0.2)

    assert loss.item() == pytest.approx(0.5 * (1.0 - 0.2) ** 2)
    unclipped = core.value_loss(new, old, returns, mask, cliprange_value=10.0)
    assert unclipped.item() == pytest.approx(0.5 * (1.0 - 0.9) ** 2)


def test_the_eos_penalty_touches_only_unfinished_rows():
    scores = torch.tensor([1.0, 2.0, 3.0])
    finished = torch.tensor([True, False, True])

    penalised = core.penalise_unfinished(scores, finished, 0.5)

    assert penalised.tolist() == [1.0, 1.5, 3.0]
    assert core.penalise_unfinished(scores, finished, None).tolist() == [1.0, 2.0, 3.0]


def test_stop_tokens_end_the_response_mask_and_what_follows_is_padding(tiny_model_dir):
    from trainer.algorithms.generate import load_policy, mask_after_stop, stop_token_ids
    from trainer.algorithms.ppo import Models, response_mask

    model, tokenizer = load_policy(tiny_model_dir)
    eos, im_end = stop_token_ids(model, tokenizer)[:2]
    pad = tokenizer.pad_token_id
    response = torch.tensor([[5, 6, eos, 7, 8], [5, im_end, 9, eos, 6], [5, 6, 7, 8, 9]])

    cleaned = mask_after_stop(response, model, tokenizer)
    models = Models(model, None, None, None, tokenizer, {})
    mask, finished = response_mask(cleaned, models)

    assert cleaned.tolist() == [[5, 6, eos, pad, pad], [5, im_end, pad, pad, pad], [5, 6, 7, 8, 9]]
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert finished.tolist() == [True, True, False]
