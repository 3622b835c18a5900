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
