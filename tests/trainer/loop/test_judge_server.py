"""The simulated AI judge's answers (trainer/loop/judge_server.py), asked in both orders as the
judging job asks them: its error rate, how often it flips when the pair is swapped, and that
its per-pair errors hold in both orders. No HTTP, no Django: the server's verdict function."""

import random

import pytest

from trainer.loop.judge_server import verdict
from trainer.loop.oracles import OracleError, judge_noise_for, judge_rates

WORDS = ("sun", "garden", "music", "bright", "river")
FILLER = "the a today we it is and very with of some more".split()
RULE = {"rule": "target-words", "target": ",".join(WORDS)}


def pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """Pairs whose first text has more target words: the rule's answer is always "a"."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        more, fewer = sorted(rng.sample(range(4), 2), reverse=True)
        texts = [rng.sample(WORDS, k) + rng.choices(FILLER, k=rng.randint(4, 16))
                 for k in (more, fewer)]  # fmt: skip
        for t in texts:
            rng.shuffle(t)
        out.append((" ".join(texts[0]), " ".join(texts[1])))
    return out


def measure(settings: dict, n: int = 3000, seed: int = 0) -> dict[str, float]:
    """Each pair asked as (better, worse) then swapped, like the judging job does."""
    wrong = flips = count = 0
    for better, worse in pairs(n, seed):
        count += 2
        first = verdict(better, worse, settings, count - 1)  # right answer: "a"
        second = verdict(worse, better, settings, count)  # right answer: "b"
        wrong += (first != "a") + (second != "b")
        flips += (first == "a") != (second == "b")
    return {"error": wrong / (2 * n), "flip": flips / n}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_it_errs_a_quarter_of_the_time_and_flips_one_pair_in_eight(seed):
    pair_noise, noise = judge_noise_for(error=0.25, flip=0.125, left=0.1)
    settings = {**RULE, "pair_noise": pair_noise, "noise": noise, "left": 0.1, "seed": seed}
    rates = measure(settings, seed=seed)
    assert rates["error"] == pytest.approx(0.25, abs=0.03)
    assert rates["flip"] == pytest.approx(0.125, abs=0.025)


def test_the_older_judge_draws_every_error_on_its_own_and_flips_far_more():
    settings = {**RULE, "noise": 0.25, "left": 0.2, "seed": 1}
    rates = measure(settings)
    expected = judge_rates(pair_noise=0.0, noise=0.25, left=0.2)
    assert expected == pytest.approx({"error": 0.3, "flip": 0.44})
    assert rates["error"] == pytest.approx(expected["error"], abs=0.03)
    assert rates["flip"] == pytest.approx(expected["flip"], abs=0.03)


def test_a_per_pair_error_holds_in_both_orders_and_on_every_asking():
    settings = {**RULE, "pair_noise": 0.3, "seed": 4}
    rates = measure(settings, n=2000)
    assert rates["flip"] == 0.0
    assert rates["error"] == pytest.approx(0.3, abs=0.03)
    better, worse = pairs(1, 9)[0]
    asked = {verdict(better, worse, settings, c) for c in range(20)}
    assert len(asked) == 1  # the same belief, whatever the request's own stream draws


def test_the_seed_decides_which_pairs_it_is_wrong_about():
    def beliefs(seed):
        s = {**RULE, "pair_noise": 0.5, "seed": seed}
        return [verdict(a, b, s, 1) for a, b in pairs(200, 0)]

    assert beliefs(1) == beliefs(1) and beliefs(1) != beliefs(2)


def test_it_finds_the_two_parts_for_wanted_rates_and_refuses_impossible_ones():
    pair_noise, noise = judge_noise_for(error=0.25, flip=0.125, left=0.1)
    assert judge_rates(pair_noise=pair_noise, noise=noise, left=0.1) == pytest.approx(
        {"error": 0.25, "flip": 0.125}
    )
    assert 0.2 < pair_noise < 0.22 and 0.01 < noise < 0.02
    with pytest.raises(OracleError, match="flips at least"):
        judge_noise_for(error=0.25, flip=0.125, left=0.2)
