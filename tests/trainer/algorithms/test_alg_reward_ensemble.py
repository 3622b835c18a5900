"""Reward ensembles (issue #10): K scalar heads on one body, bootstrapped."""

import random
import statistics

import pytest

from tests.trainer.algorithms.helpers import marker_rows
from trainer.algorithms.acquisition import Candidate, disagreement
from trainer.algorithms.reward import RewardConfig, RewardScorer, score_texts, train
from trainer.algorithms.reward_scoring import reward_heads

HEADS = 4


@pytest.fixture(scope="module")
def ensemble(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ensemble") / "rm"
    config = RewardConfig(
        model_name_or_path=tiny_model_dir,
        learning_rate=1e-3,
        max_steps=30,
        batch_size=8,
        save_steps=0,
        seed=0,
        ensemble_heads=HEADS,
    )
    metrics = train(config, marker_rows(120, seed=1), out, val_rows=marker_rows(30, seed=2))
    return str(out), metrics


def margin_spread(scorer, prompts, a, b) -> list[float]:
    """Per pair: the variance over the heads of the margin r_k(a) - r_k(b)."""
    ha, hb = scorer.heads(prompts, a), scorer.heads(prompts, b)
    return [
        disagreement(Candidate(0, tuple(x)), Candidate(1, tuple(y)))
        for x, y in zip(ha, hb, strict=True)
    ]


def test_it_trains_k_distinct_heads_that_still_learn_the_preference(ensemble):
    path, metrics = ensemble
    assert reward_heads(path) == HEADS
    assert metrics["val_accuracy"] >= 0.8
    scorer = RewardScorer(path, device="cpu")
    rows = marker_rows(6, seed=5)
    heads = scorer.heads([r["prompt"] for r in rows], [r["chosen"] for r in rows])
    assert all(len(h) == HEADS for h in heads)
    # Distinct heads: no two give the same scores.
    columns = [tuple(round(h[k], 6) for h in heads) for k in range(HEADS)]
    assert len(set(columns)) == HEADS
    weight = scorer.model.score.weight.detach()
    assert weight.shape[0] == HEADS
    assert all(not weight[i].equal(weight[j]) for i in range(HEADS) for j in range(i + 1, HEADS))


def test_it_scores_with_the_mean_of_the_heads(ensemble):
    scorer = RewardScorer(ensemble[0], device="cpu")
    prompts, texts = ["say:", "say:"], [" a cat sat.", " the sea is blue."]
    heads = scorer.heads(prompts, texts)
    means = score_texts(ensemble[0], prompts, texts, device="cpu")
    assert means == pytest.approx([statistics.mean(h) for h in heads], abs=1e-5)


def test_its_spread_is_zero_on_identical_inputs(ensemble):
    scorer = RewardScorer(ensemble[0], device="cpu")
    rows = marker_rows(8, seed=7)
    prompts, texts = [r["prompt"] for r in rows], [r["chosen"] for r in rows]
    assert margin_spread(scorer, prompts, texts, texts) == pytest.approx([0.0] * 8, abs=1e-10)


def test_its_spread_grows_out_of_distribution(ensemble):
    """Responses like the labelled ones against character noise no label ever showed: the
    heads disagree more on the noise, alone and in a pair."""
    scorer = RewardScorer(ensemble[0], device="cpu")
    rows, others = marker_rows(24, seed=11), marker_rows(24, seed=12)
    prompts = [r["prompt"] for r in rows]
    rng = random.Random(3)

    def noise() -> str:
        return " " + "".join(rng.choice("qxzjkv#@%&0123456789") for _ in range(40))

    inside = [r["rejected"] for r in rows] + [r["chosen"] for r in rows]
    outside = [noise() for _ in inside]
    spread_in = statistics.mean(statistics.variance(h) for h in scorer.heads(prompts * 2, inside))
    spread_out = statistics.mean(statistics.variance(h) for h in scorer.heads(prompts * 2, outside))
    assert spread_out > 2 * spread_in

    rejected = [r["rejected"] for r in rows]
    pair_in = margin_spread(scorer, prompts, rejected, [r["rejected"] for r in others])
    pair_out = margin_spread(scorer, prompts, rejected, outside[: len(rows)])
    assert statistics.mean(pair_out) > 2 * statistics.mean(pair_in)


def test_it_refuses_fewer_than_one_head(tiny_model_dir):
    with pytest.raises(ValueError, match="ensemble_heads"):
        RewardConfig(model_name_or_path=tiny_model_dir, ensemble_heads=0)
