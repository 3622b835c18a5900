"""Calibration of an AI judge's Likert scores and rankings, against values worked out by hand."""

import pytest

from annotator.quality.calibration import (
    LikertItem,
    RankingItem,
    calibrate_likert,
    calibrate_ranking,
    consensus,
    pair_agreement,
)


def test_likert_figures_by_hand():
    items = [
        LikertItem(1, 1, judge=5, humans=[5, 6]),  # median_low 5: exact
        LikertItem(2, 1, judge=3, humans=[4]),  # within one, not exact
        LikertItem(3, 1, judge=7, humans=[2, 3, 6]),  # median 3: off by 4
        LikertItem(4, 1, judge=4, humans=[]),  # no people: not counted
    ]
    f = calibrate_likert(items, points=7)
    assert f["verdicts"] == 4 and f["tasks"] == 3
    assert f["agreement"] == pytest.approx(2 / 3)
    assert f["agreement_interval"] == pytest.approx([0.2077, 0.9385], abs=1e-4)  # Wilson, 2 of 3
    assert f["exact"] == pytest.approx(1 / 3)
    assert f["mean_abs_difference"] == pytest.approx((0 + 1 + 4) / 3)
    # People's pairs within one point: (5,6) yes; (2,3) yes, (2,6) no, (3,6) no.
    assert f["human_pairs"] == 4 and f["human_human"] == pytest.approx(2 / 4)
    assert f["mean_score_judge"] == pytest.approx(5) and f["mean_score_people"] == pytest.approx(4)
    # Quadratic weights over 1..7, worked by hand: people (5, 4, 3), judge (5, 3, 7).
    # Observed weighted disagreement: (0 + 1 + 16) / 36 / 3; expected from the marginals:
    # sum over the 9 (people, judge) products of (i - j)^2 / 36, each weight 1/9.
    observed = (0 + 1 + 16) / 36 / 3
    expected = sum((i - j) ** 2 for i in (5, 4, 3) for j in (5, 3, 7)) / 36 / 9
    assert f["kappa_quadratic"] == pytest.approx(1 - observed / expected)


def test_likert_without_people_has_no_figures():
    f = calibrate_likert([LikertItem(1, None, judge=5)], points=7)
    assert f["tasks"] == 0 and f["agreement"] is None and f["kappa_quadratic"] is None


def test_consensus_and_pair_agreement():
    assert consensus([[1, 2, 3], [2, 1, 3], [1, 3, 2]]) == [1, 2, 3]  # mean positions 1/3, 1, 4/3
    assert pair_agreement([1, 2, 3], [1, 2, 3]) == (3, 3)
    assert pair_agreement([3, 2, 1], [1, 2, 3]) == (0, 3)
    assert pair_agreement([2, 1, 3], [1, 2, 3]) == (2, 3)


def ranking(task_id, first, second, humans, *, shown=(1, 2, 3), lengths=None):
    return RankingItem(
        task_id=task_id,
        round=1,
        shown_order=list(shown),
        first=list(first),
        second=list(second),
        consistent=list(first) == list(second),
        lengths=lengths or {1: 3, 2: 3, 3: 3},
        humans=[list(h) for h in humans],
    )


def test_ranking_figures_by_hand():
    items = [
        # Judge = people's consensus: 3 of 3 pairs, same top.
        ranking(1, [1, 2, 3], [1, 2, 3], [[1, 2, 3]], lengths={1: 9, 2: 5, 3: 1}),
        # Judge swaps the top two: 2 of 3 pairs, other top.
        ranking(2, [2, 1, 3], [2, 1, 3], [[1, 2, 3], [1, 2, 3]]),
        # Inconsistent: left out of agreement, counted for position and consistency.
        ranking(3, [1, 2, 3], [3, 2, 1], [[3, 2, 1]]),
    ]
    f = calibrate_ranking(items)
    assert f["verdicts"] == 3 and f["tasks"] == 2
    assert f["agreement"] == pytest.approx(5 / 6)
    assert f["kendall_tau"] == pytest.approx((1 + 1 / 3) / 2)
    assert f["top_agreement"] == pytest.approx(1 / 2)
    # Two people on task 2 agree on all 3 pairs.
    assert f["human_pairs"] == 3 and f["human_human"] == pytest.approx(1.0)
    assert f["inconsistent"] == pytest.approx(1 / 3)
    # Shown first (1) on top: task 1 first asking (1) yes; second asking (reversed: 3 shown
    # first) puts 1 on top: no. Task 2: no, no. Task 3: first yes, second (3 shown first) 3
    # on top: yes. 3 of 6 against the chance 1/3.
    assert f["first_shown_top_share"] == pytest.approx(3 / 6)
    assert f["position_bias"] == pytest.approx(1 / 2 - 1 / 3)
    # Lengths differ on task 1 only: the judge ranks longer higher in all 3 pairs, as people.
    assert f["longer_higher_judge"] == pytest.approx(1.0)
    assert f["longer_higher_people"] == pytest.approx(1.0)
