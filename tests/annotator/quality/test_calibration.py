"""Calibration of an AI judge against people, checked against values worked out by hand."""

import pytest
from sklearn.metrics import cohen_kappa_score

from annotator.quality.calibration import Item, calibrate, judge_label, majority


def item(task_id, first, second, humans, *, shown=(1, 2), lengths=None, round=1):
    """A task over completions 1 and 2 ("x" = completion 1 wins)."""
    swapped_agrees = {"a": "b", "b": "a"}.get(first, first) == second
    return Item(
        task_id=task_id, round=round, pair=(1, 2), first=first, second=second,
        shown_order=list(shown), consistent=swapped_agrees, lengths=lengths or {1: 5, 2: 5},
        humans=list(humans),
    )  # fmt: skip


def test_judge_label_follows_the_served_order():
    assert judge_label(item(1, "a", "b", [], shown=(1, 2))) == "x"
    assert judge_label(item(1, "a", "b", [], shown=(2, 1))) == "y"
    assert judge_label(item(1, "a", "a", [])) is None  # inconsistent
    assert judge_label(item(1, "tie", "tie", [])) == "tie"


def test_majority_leaves_out_a_tied_vote():
    assert majority(["x", "x", "y"]) == "x"
    assert majority(["x", "y"]) is None
    assert majority([]) is None


def test_hand_worked_figures():
    items = [
        # judge x; people x, x (unanimous) -> agree
        item(1, "a", "b", ["x", "x"]),
        # judge y (shown 2 first, answered a); people x, x, y (split, majority x) -> disagree
        item(2, "a", "b", ["x", "x", "y"], shown=(2, 1)),
        # judge y; one person y -> agree (single)
        item(3, "b", "a", ["y"]),
        # inconsistent: a both times -> no label, counts for position bias
        item(4, "a", "a", ["x"]),
        # judge x; people x, y tie -> no majority, left out
        item(5, "a", "b", ["x", "y"]),
        # judge tie; people tie, tie -> agree (unanimous)
        item(6, "tie", "tie", ["tie", "tie"]),
    ]
    f = calibrate(items)
    # Tasks with a judge label and a people majority: 1, 2, 3, 6; agree on 1, 3, 6.
    assert f["tasks"] == 4
    assert f["agreement"] == pytest.approx(3 / 4)
    # Wilson, 3 of 4, z = 1.96: centre (0.75 + z^2/8) / (1 + z^2/4) = 0.6275, half-width
    # z sqrt(0.75 * 0.25 / 4 + z^2/64) / (1 + z^2/4) = 0.3269.
    assert f["agreement_interval"] == pytest.approx([0.3006, 0.9544], abs=1e-4)
    people, judge = ["x", "x", "y", "tie"], ["x", "y", "y", "tie"]
    assert f["kappa"] == pytest.approx(cohen_kappa_score(people, judge))
    # By hand: po = 3/4; pe = (2/4)(1/4) [x] + (1/4)(2/4) [y] + (1/4)(1/4) [tie] = 5/16;
    # kappa = (3/4 - 5/16) / (1 - 5/16) = 7/11.
    assert f["kappa"] == pytest.approx(7 / 11)
    levels = f["by_human_agreement"]
    assert levels["unanimous"] == {"agreement": 1.0, "n": 2}
    assert levels["split"] == {"agreement": 0.0, "n": 1}
    assert levels["single"] == {"agreement": 1.0, "n": 1}
    # Pairs of people agreeing: t1 1/1, t2 1/3, t5 0/1, t6 1/1 -> 3 of 6.
    assert (f["human_human"], f["human_pairs"]) == (0.5, 6)
    # Answers: a,b a,b b,a a,a a,b tie,tie -> a: 6, b: 4, of 12 answers.
    assert f["position_bias"] == pytest.approx((6 - 4) / 12)
    assert f["first_shown_share"] == pytest.approx(6 / 10)
    assert f["same_position_share"] == pytest.approx(1 / 6)
    assert f["inconsistent"] == pytest.approx(1 / 6)
    assert f["confusion"]["x"] == {"x": 1, "y": 1, "tie": 0, "both_bad": 0}
    assert f["confusion"]["y"]["y"] == 1 and f["confusion"]["tie"]["tie"] == 1


def test_position_bias_of_a_judge_that_always_picks_the_first_is_one():
    f = calibrate([item(i, "a", "a", []) for i in range(4)])
    assert f["position_bias"] == 1.0 and f["inconsistent"] == 1.0 and f["tasks"] == 0


def test_length_bias_compares_judge_and_people_on_the_same_tasks():
    long_x = {1: 20, 2: 5}
    items = [
        item(1, "a", "b", ["x", "y"], lengths=long_x),  # judge: longer; people: 1 of 2
        item(2, "a", "b", ["x"], lengths=long_x),  # judge: longer; people: longer
        item(3, "b", "a", ["y", "y"], lengths=long_x),  # judge: shorter; people: shorter x2
        item(4, "a", "b", ["x"], lengths={1: 5, 2: 5}),  # same length: left out
    ]
    f = calibrate(items)
    assert f["length_pairs"] == 3
    assert f["longer_wins_judge"] == pytest.approx(2 / 3)
    assert f["longer_wins_people"] == pytest.approx(2 / 5)


def test_nothing_to_compare_gives_none_not_zero():
    f = calibrate([])
    assert f["agreement"] is None and f["kappa"] is None and f["position_bias"] is None
    assert f["agreement_interval"] is None
