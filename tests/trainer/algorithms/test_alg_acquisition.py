"""Acquisition rules on hand-built reward scores (trainer/algorithms/acquisition.py)."""

import pytest

from trainer.algorithms.acquisition import (
    RULES,
    Candidate,
    choose_pairs,
    disagreement,
    pair_scores,
    priorities,
    uncertainty,
)


def c(key, *scores, text=None):
    return Candidate(key, tuple(scores), text if text is not None else str(key))


def pair(pick):
    return {pick.a, pick.b}


def test_it_picks_the_pair_whose_margin_is_closest_to_zero():
    candidates = [c("a", 3.0), c("b", 0.0), c("c", 2.9), c("d", -4.0)]
    (pick,) = choose_pairs("uncertainty", {"p": candidates})
    assert pair(pick) == {"a", "c"}
    assert pick.score == pytest.approx(uncertainty(candidates[0], candidates[2]))
    assert abs(pick.margin) == pytest.approx(0.1)
    assert pick.rule == "uncertainty"


def test_it_scores_uncertainty_one_at_a_zero_margin_and_towards_zero_when_sure():
    assert uncertainty(c("a", 1.0), c("b", 1.0)) == pytest.approx(1.0)
    assert uncertainty(c("a", 10.0), c("b", -10.0)) < 1e-6
    assert uncertainty(c("a", 0.5), c("b", 0.0)) > uncertainty(c("a", 2.0), c("b", 0.0))


def test_it_picks_the_pair_the_heads_disagree_on():
    # a-b: both heads put the margin near zero (uncertain, but they agree);
    # c-d: the heads' margins are +4 and -4 (mean 0 too): they disagree.
    candidates = [c("a", 1.0, 1.0), c("b", 0.9, 0.9), c("c", 2.0, -2.0), c("d", -2.0, 2.0)]
    (pick,) = choose_pairs("disagreement", {"p": candidates})
    assert pair(pick) == {"c", "d"}
    assert pick.score == pytest.approx(32.0)  # the variance of (4, -4)
    assert disagreement(candidates[0], candidates[1]) == pytest.approx(0.0)
    (closest,) = choose_pairs("uncertainty", {"p": candidates[:2] + candidates[2:3]})
    assert pair(closest) != {"c", "d"}


def test_it_falls_back_to_uncertainty_when_a_single_head_cannot_disagree():
    candidates = [c("a", 3.0), c("b", 0.0), c("c", 2.9)]
    (pick,) = choose_pairs("disagreement", {"p": candidates})
    assert pair(pick) == {"a", "c"}
    assert pick.score == 0.0


def test_it_pairs_the_two_best_for_top_two():
    candidates = [c("a", 1.0), c("b", 5.0), c("c", -2.0), c("d", 4.0)]
    (pick,) = choose_pairs("top-two", {"p": candidates})
    assert pair(pick) == {"b", "d"}


def test_it_never_pairs_identical_texts():
    candidates = [c("a", 1.0, text="same"), c("b", 1.0, text="same"), c("c", 7.0)]
    for rule in RULES:
        for _, _, i, j in pair_scores(rule, candidates):
            assert {i, j} != {0, 1}, rule


def test_it_takes_one_pair_per_prompt_and_the_best_prompts_within_the_budget():
    groups = {
        "sure": [c("s1", 9.0), c("s2", -9.0)],
        "close": [c("c1", 0.0), c("c2", 0.05)],
        "middle": [c("m1", 1.0), c("m2", 0.0), c("m3", -1.5)],
    }
    picks = choose_pairs("uncertainty", groups, budget=2)
    assert [p.prompt for p in picks] == ["close", "middle"]
    assert picks[0].score >= picks[1].score
    assert len(choose_pairs("uncertainty", groups, budget=None, per_prompt=2)) == 4  # 1 + 1 + 2


def test_it_chooses_random_pairs_reproducibly_from_a_seed():
    groups = {p: [c(f"{p}{k}", float(k)) for k in range(4)] for p in "abcdefgh"}
    first = choose_pairs("random", groups, budget=5, seed=3)
    assert first == choose_pairs("random", groups, budget=5, seed=3)
    assert len(first) == 5 and len({p.prompt for p in first}) == 5
    orders = {tuple(p.prompt for p in choose_pairs("random", groups, seed=s)) for s in range(5)}
    assert len(orders) > 1


def test_it_refuses_an_unknown_rule():
    with pytest.raises(ValueError, match="unknown acquisition rule"):
        choose_pairs("loudest", {"p": [c("a", 1.0), c("b", 2.0)]})


def test_it_gives_a_prompt_with_one_candidate_no_pair():
    assert choose_pairs("uncertainty", {"p": [c("a", 1.0)]}) == []
    assert choose_pairs("top-two", {"p": [c("a", 1.0)]}) == []


def test_it_serves_the_best_pick_first_through_its_priority():
    picks = choose_pairs("uncertainty", {p: [c(p + "1", 0.0), c(p + "2", i)]
                                         for i, p in enumerate("abcd")})  # fmt: skip
    values = priorities(picks, base=10)
    assert values == sorted(values, reverse=True)
    assert values[0] == 1010 and values[-1] == 11
    assert priorities(picks[:1], base=10) == [1010]
