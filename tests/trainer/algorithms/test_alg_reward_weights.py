"""Row weights in reward training (the export's per-source `weight`): the loss is the weighted
mean of the groups' losses, and a small weight on contradicting rows lets the others win."""

import math

import pytest
import torch

from tests.trainer.algorithms.helpers import marker_rows
from trainer.algorithms import reward
from trainer.algorithms.reward import RewardConfig, score_texts, train
from trainer.algorithms.reward_data import Group, rows_to_groups


def nll(x):
    return -math.log(1 / (1 + math.exp(-x)))


def test_the_loss_is_the_weighted_mean_of_the_groups_losses():
    groups = [
        Group("p", ["a", "b", "c"], [(0, 1, 0.0), (0, 2, 0.0), (1, 2, 0.0)], weight=1.0),
        Group("q", ["d", "e"], [(0, 1, 0.0)], weight=3.0),
    ]
    rewards = torch.tensor([2.0, 1.0, 0.5, 0.5, 3.0])

    loss, correct, pairs = reward.ranking_loss(rewards, groups, [0, 3])

    first = (nll(1.0) + nll(1.5) + nll(0.5)) / 3
    second = nll(-2.5)  # the worse one scored higher: a large loss, three times as heavy
    assert loss.item() == pytest.approx((first + 3 * second) / 4, rel=1e-5)
    assert (correct, pairs) == (3, 4)
    # The same weight on every group is the plain mean.
    for group in groups:
        group.weight = 2.0
    same, _, _ = reward.ranking_loss(rewards, groups, [0, 3])
    assert same.item() == pytest.approx((first + second) / 2, rel=1e-5)


def test_rows_carry_their_weight_into_groups_and_bad_weights_are_refused():
    rows = [
        {"prompt": "p", "chosen": "a", "rejected": "b", "group": "t1", "weight": 0.5},
        {"prompt": "p", "chosen": "a", "rejected": "c", "group": "t1", "weight": 1.5},
        {"prompt": "q", "ranking": ["x", "y"], "weight": 2},
        {"prompt": "r", "chosen": "u", "rejected": "v"},
    ]
    assert [g.weight for g in rows_to_groups(rows)] == [1.0, 2.0, 1.0]
    for bad in (0, -1, "1", True, None, math.nan):
        with pytest.raises(ValueError, match="Row 0: 'weight' must be a number above 0"):
            rows_to_groups([{"prompt": "p", "chosen": "a", "rejected": "b", "weight": bad}])


def marker_accuracy(model_dir) -> int:
    """How many of 40 held-out pairs the model scores the marker response higher on."""
    rows = marker_rows(40, seed=99)
    prompts = [row["prompt"] for row in rows]
    chosen = score_texts(model_dir, prompts, [row["chosen"] for row in rows], device="cpu")
    rejected = score_texts(model_dir, prompts, [row["rejected"] for row in rows], device="cpu")
    return sum(c > r for c, r in zip(chosen, rejected, strict=True))


@pytest.mark.slow
def test_a_small_weight_on_contradicting_rows_lets_the_others_win(tiny_model_dir, tmp_path):
    people = marker_rows(60, seed=1)  # the marker response is the better one
    # Twice as many rows that say the opposite, as a bad judge would.
    judge = [
        dict(row, chosen=row["rejected"], rejected=row["chosen"])
        for row in marker_rows(120, seed=3)
    ]
    config = RewardConfig(
        model_name_or_path=tiny_model_dir, learning_rate=1e-3, max_steps=40, batch_size=8,
        save_steps=0, val_fraction=0.0, seed=0, device="cpu",
    )  # fmt: skip

    def trained(judge_weight: float, name: str) -> int:
        rows = people + [dict(row, weight=judge_weight) for row in judge]
        train(config, rows, tmp_path / name, val_rows=[])
        return marker_accuracy(tmp_path / name)

    assert trained(1.0, "equal") <= 10  # unweighted, the judge's majority wins
    assert trained(0.1, "judge-at-0.1") >= 30  # people's 60 outweigh the judge's 120 x 0.1
