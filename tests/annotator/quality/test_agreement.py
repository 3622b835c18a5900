"""Agreement metrics: values worked out by hand, and the reference implementations on random
data (scikit-learn, krippendorff, scipy)."""

import random

import krippendorff
import numpy as np
import pytest
from scipy.stats import friedmanchisquare, kendalltau
from sklearn.metrics import cohen_kappa_score

from annotator.quality import agreement as ag
from annotator.quality.agreement import BOTH_BAD, FIRST, SECOND, TIE, Answer, Preference, Ranked


def test_it_computes_percent_agreement_and_kappa_by_hand():
    # Labelers 1 and 2 on 4 tasks: agree on tasks 1, 2, 3; differ on 4.
    # a = F F S T, b = F F S S. p_o = 3/4.
    # Marginals a: F 2/4, S 1/4, T 1/4; b: F 2/4, S 2/4.
    # p_e = 2/4*2/4 + 1/4*2/4 + 1/4*0 = 6/16. kappa = (12/16 - 6/16) / (1 - 6/16) = 6/10.
    answers = [
        Answer(1, 1, FIRST), Answer(1, 2, FIRST),
        Answer(2, 1, FIRST), Answer(2, 2, FIRST),
        Answer(3, 1, SECOND), Answer(3, 2, SECOND),
        Answer(4, 1, TIE), Answer(4, 2, SECOND),
    ]  # fmt: skip
    (pair,) = ag.labeler_pairs(answers)
    assert (pair.labeler_a, pair.labeler_b, pair.shared) == (1, 2, 4)
    assert pair.percent == 0.75
    assert pair.kappa == pytest.approx(0.6)
    assert ag.percent_agreement(answers) == 0.75


def test_it_counts_a_tie_as_its_own_category_not_as_either_side():
    answers = [Answer(1, 1, TIE), Answer(1, 2, FIRST), Answer(2, 1, TIE), Answer(2, 2, TIE)]
    (pair,) = ag.labeler_pairs(answers)
    assert pair.percent == 0.5


def test_it_averages_percent_agreement_over_labeler_pairs_of_a_task():
    # Task 1: F, F, S -> pairs (F,F) agree, (F,S), (F,S) do not: 1/3. Task 2: F, F: 1.
    answers = [Answer(1, 1, FIRST), Answer(1, 2, FIRST), Answer(1, 3, SECOND),
               Answer(2, 1, FIRST), Answer(2, 2, FIRST), Answer(3, 1, FIRST)]  # fmt: skip
    assert ag.percent_agreement(answers) == pytest.approx((1 / 3 + 1) / 2)


def test_it_says_none_when_kappa_or_alpha_is_undefined():
    same = [Answer(t, lab, FIRST) for t in (1, 2) for lab in (1, 2)]
    assert ag.labeler_pairs(same)[0].kappa is None
    assert ag.krippendorff_alpha(same, level="nominal") is None
    assert ag.percent_agreement([Answer(1, 1, FIRST)]) is None


def test_it_computes_nominal_alpha_by_hand():
    # Two labelers, two tasks: (F, F) and (F, S). Coincidences: F-F 2, F-S 1, S-F 1; n = 4.
    # D_o = 2/4; expected: n_F = 3, n_S = 1 -> D_e = 2*3*1 / (4*3) = 1/2... alpha = 1 - D_o/D_e
    # = 1 - (2/4) / (6/12) = 0.
    answers = [Answer(1, 1, FIRST), Answer(1, 2, FIRST), Answer(2, 1, FIRST), Answer(2, 2, SECOND)]
    assert ag.krippendorff_alpha(answers, level="nominal") == pytest.approx(0.0)


def test_it_computes_kendall_tau_and_w_by_hand():
    # 1 2 3 vs 1 3 2: one discordant pair of three: tau = (2 - 1) / 3.
    assert ag.kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert ag.kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    # Three identical rankings: W = 1. Two reversed rankings of 3: rank sums all 4: W = 0.
    assert ag.kendall_w([[1, 2, 3]] * 3) == pytest.approx(1.0)
    assert ag.kendall_w([[1, 2, 3], [3, 2, 1]]) == pytest.approx(0.0)
    # m=2, K=3: [a b c], [a c b]: rank sums a 2, b 5, c 5; mean 4; S = 4 + 1 + 1 = 6;
    # W = 12 * 6 / (4 * 24) = 0.75.
    assert ag.kendall_w([[1, 2, 3], [1, 3, 2]]) == pytest.approx(0.75)


def test_it_finds_a_cycle_on_one_prompt_only():
    prefs = [
        Preference(7, 1, 10, 11), Preference(7, 1, 11, 12), Preference(7, 1, 12, 10),  # cycle
        Preference(7, 2, 20, 21), Preference(7, 2, 21, 22), Preference(7, 2, 20, 22),  # fine
        # The same three completions split across two prompts are no triad.
        Preference(8, 3, 30, 31), Preference(8, 3, 31, 32), Preference(8, 4, 32, 30),
        # A pair answered both ways is a contradiction.
        Preference(8, 5, 40, 41), Preference(8, 5, 41, 40),
    ]  # fmt: skip
    by = {t.labeler_id: t for t in ag.transitivity(prefs)}
    assert (by[7].triads, by[7].cycles, by[7].contradictions) == (2, 1, 0)
    assert (by[8].triads, by[8].cycles, by[8].contradictions) == (0, 0, 1)


def _random_pairwise(rng, tasks=60, labelers=5, missing=0.3):
    answers = []
    for t in range(tasks):
        truth = rng.choice([FIRST, SECOND])
        for lab in range(labelers):
            if rng.random() < missing:
                continue
            value = truth if rng.random() < 0.7 else rng.choice(ag.CATEGORIES)
            answers.append(Answer(t, lab, value))
    return answers


@pytest.mark.parametrize("seed", range(5))
def test_it_matches_scikit_learns_kappa_on_random_data(seed):
    rng = random.Random(seed)
    answers = _random_pairwise(rng)
    by = {}
    for a in answers:
        by.setdefault(a.labeler_id, {})[a.task_id] = a.value
    pairs = ag.labeler_pairs(answers)
    assert len(pairs) == 10
    for p in pairs:
        shared = sorted(by[p.labeler_a].keys() & by[p.labeler_b].keys())
        x = [by[p.labeler_a][t] for t in shared]
        y = [by[p.labeler_b][t] for t in shared]
        assert p.kappa == pytest.approx(cohen_kappa_score(x, y))
        assert p.percent == pytest.approx(np.mean([a == b for a, b in zip(x, y, strict=True)]))


@pytest.mark.parametrize("seed", range(5))
def test_it_matches_the_krippendorff_package_on_random_data(seed):
    rng = random.Random(seed)
    answers = _random_pairwise(rng)
    data = np.full((5, 60), np.nan)
    for a in answers:
        data[a.labeler_id, a.task_id] = ag.CODE[a.value]
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert ag.krippendorff_alpha(answers, level="nominal") == pytest.approx(expected)
    scores = [Answer(t, lab, rng.randint(1, 7)) for t in range(40) for lab in range(4)]
    data = np.array([[next(s.value for s in scores if s.task_id == t and s.labeler_id == lab)
                      for t in range(40)] for lab in range(4)], dtype=float)  # fmt: skip
    expected = krippendorff.alpha(
        reliability_data=data, level_of_measurement="ordinal", value_domain=list(range(1, 8))
    )
    got = ag.krippendorff_alpha(scores, level="ordinal", domain=list(range(1, 8)))
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(5))
def test_it_matches_scipy_on_random_rankings(seed):
    rng = random.Random(seed)
    items = list(range(100, 106))
    rankings = [rng.sample(items, len(items)) for _ in range(4)]
    a, b = rankings[0], rankings[1]
    expected = kendalltau([a.index(i) for i in items], [b.index(i) for i in items]).statistic
    assert ag.kendall_tau(a, b) == pytest.approx(expected)
    # Kendall's W from Friedman's chi-square (no ties): W = chi2 / (m (K - 1)).
    m, k = len(rankings), len(items)
    chi2 = friedmanchisquare(*[[r.index(i) for r in rankings] for i in items]).statistic
    assert ag.kendall_w(rankings) == pytest.approx(chi2 / (m * (k - 1)))
    ranked = [Ranked(1, lab, r) for lab, r in enumerate(rankings)]
    (first, *_) = ag.ranking_pairs(ranked)
    assert first.tau == pytest.approx(expected)


def test_it_maps_stored_answers_to_categories_by_completion_id():
    assert ag.pairwise_category("preferred", 5, 9) == FIRST
    assert ag.pairwise_category("preferred", 9, 5) == SECOND
    assert ag.pairwise_category("tie", None, None) == TIE
    assert ag.pairwise_category("both_bad", None, None) == BOTH_BAD
