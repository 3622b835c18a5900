"""The vectorised pairwise metrics give what the plain functions give, on random data."""

import random

import numpy as np
import pytest

from annotator.quality import agreement as ag
from annotator.quality import arrays
from annotator.quality.stats import Row, consensus_agreement


def random_pairwise(seed, tasks=80, labelers=6):
    rng = random.Random(seed)
    rows = []
    for t in range(1, tasks + 1):
        for lab in sorted(rng.sample(range(1, labelers + 1), rng.randint(1, 4))):
            rows.append((t, lab, rng.choice([0, 0, 0, 1, 1, 2, 3])))
    cols = list(zip(*rows, strict=True))
    n = len(rows)
    p = arrays.Pairwise(
        task=np.array(cols[0]), labeler=np.array(cols[1]), code=np.array(cols[2]),
        left=np.full(n, -1, dtype=np.int8), time_ms=np.full(n, np.nan),
        round=np.full(n, -1), prompt=np.array(cols[0]), chosen=np.full(n, -1),
        rejected=np.full(n, -1), simulated=np.zeros(n, dtype=np.int64),
        day=np.zeros(n, dtype=np.int64),
    )  # fmt: skip
    answers = [ag.Answer(t, lab, ag.CATEGORIES[c]) for t, lab, c in rows]
    return p, answers


@pytest.mark.parametrize("seed", range(5))
def test_it_matches_the_plain_functions(seed):
    p, answers = random_pairwise(seed)
    assert arrays.percent_agreement(p) == pytest.approx(ag.percent_agreement(answers))
    fast = {(x.labeler_a, x.labeler_b): x for x in arrays.labeler_pairs(p)}
    plain = {(x.labeler_a, x.labeler_b): x for x in ag.labeler_pairs(answers)}
    assert fast.keys() == plain.keys()
    for key, x in plain.items():
        assert (fast[key].shared, fast[key].percent) == (x.shared, pytest.approx(x.percent))
        assert fast[key].kappa == pytest.approx(x.kappa)
    data = arrays.alpha_matrix(p)
    import krippendorff

    expected = ag.krippendorff_alpha(answers, level="nominal")
    got = krippendorff.alpha(
        reliability_data=data, level_of_measurement="nominal", value_domain=[0, 1, 2, 3]
    )
    assert got == pytest.approx(expected)
    rows = [
        Row(0, a.task_id, a.labeler_id, "pairwise", a.value if a.value in ("tie", "both_bad")
            else "preferred", *((1, 2) if a.value == "first" else (2, 1) if a.value == "second"
            else (None, None)), None, None, [], None, {}, [], None, False, None, a.task_id)
        for a in answers
    ]  # fmt: skip
    compared = {lab: v for lab, v in arrays.consensus(p).items() if v[1]}
    assert compared and compared == consensus_agreement(rows)
