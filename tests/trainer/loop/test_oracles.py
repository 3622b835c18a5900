"""trainer/loop/oracles.py: the rules simulated labelers answer by. Plain Python, no database."""

import subprocess
import sys
from collections import Counter

import pytest

from trainer.loop.oracles import OracleConfig, OracleError, make_oracle, oracle_names, text_terms

WORDS = ("sun", "garden", "music")

RICH = "The sun shone on the garden while music played"  # 3 target words, 9 words
POOR = "It rained all day and nobody went out at all"  # 0 target words, 10 words
SHORT = "The sun."  # 1 target word, 2 words


# Callables for the module:function oracle (looked up by name, so they live at module level).


def prefers_shorter(a: str, b: str) -> str:
    if len(a) == len(b):
        return "tie"
    return "a" if len(a) < len(b) else "b"


def prefers_shorter_with_prompt(a: str, b: str, *, prompt: str) -> str:
    return "a" if prompt in a else "b"


def rates_by_length(text: str, *, points: int) -> int:
    return min(points, len(text.split()))


def answers_nonsense(a: str, b: str) -> str:
    return "maybe"


CALLABLE = f"{__name__}:prefers_shorter"


def test_it_counts_the_raw_terms():
    terms = text_terms("Sun, SUN and the Garden's gate", OracleConfig(target_words=WORDS))
    # Distinct target words: "sun" (twice, any case) counts once; "garden's" is not "garden".
    assert terms == {"target_words": 1, "length": 6, "length_distance": 6}


def test_it_prefers_the_response_with_more_target_words():
    oracle = make_oracle("target-words", target_words=WORDS)
    assert oracle.prefer(RICH, POOR) == "a"
    assert oracle.prefer(POOR, RICH) == "b"
    assert oracle.prefer(POOR, "Nothing here") == "tie"
    assert oracle.terms(RICH)["target_words"] == 3 and oracle.terms(RICH)["score"] == 3


def test_it_prefers_the_response_closer_to_the_target_length():
    oracle = make_oracle("target-length", target_length=9)
    assert oracle.prefer(RICH, POOR) == "a"  # 9 words vs 10
    assert oracle.prefer(SHORT, POOR) == "b"
    assert oracle.terms(POOR)["length_distance"] == 1 and oracle.terms(POOR)["score"] == -1


def test_it_weighs_words_against_length_in_the_mix():
    # SHORT: 1 word matched, 10 words off -> 1 - 0.25 * 10 = -1.5; POOR: 0 - 0.25 * 2 = -0.5.
    oracle = make_oracle("words-and-length", target_words=WORDS, target_length=12)
    assert oracle.score(SHORT) == pytest.approx(-1.5)
    assert oracle.prefer(SHORT, POOR) == "b"
    words_only = make_oracle("words-and-length", target_words=WORDS, length_weight=0.0)
    assert words_only.prefer(SHORT, POOR) == "a"
    alias = make_oracle("target-words-plus-length", target_words=WORDS, target_length=12)
    assert alias.score(SHORT) == oracle.score(SHORT)


def test_it_maps_the_rule_onto_a_likert_scale():
    oracle = make_oracle("likert-target-words", target_words=WORDS)
    # top_words = 3: 3 words -> top score, 0 -> bottom, 1 -> a third of the way.
    assert oracle.rate(RICH, points=7) == 7
    assert oracle.rate(POOR, points=7) == 1
    assert oracle.rate(SHORT, points=7) == 3
    length = make_oracle("target-length", target_length=10)
    assert length.rate(POOR, points=5) == 5
    assert length.rate(SHORT, points=5) == 1 + round(0.2 * 4)


def test_it_ranks_by_the_rule():
    oracle = make_oracle("ranking-target-words", target_words=WORDS)
    assert oracle.order([POOR, RICH, SHORT]) == [1, 2, 0]
    assert oracle.answer_ranking([POOR, RICH, SHORT]) == [1, 2, 0]


def test_it_knows_its_names_and_refuses_others():
    assert {"target-words", "target-length", "words-and-length"} <= set(oracle_names())
    assert "likert-target-length" in oracle_names()
    for name in oracle_names():
        make_oracle(name)
    with pytest.raises(OracleError, match="unknown oracle"):
        make_oracle("longest")
    with pytest.raises(OracleError, match="cannot load"):
        make_oracle("no_such_module_here:judge")
    with pytest.raises(OracleError, match="noise"):
        make_oracle("target-words", noise=1.5)


def test_it_always_answers_by_the_rule_without_noise():
    oracle = make_oracle("target-words", target_words=WORDS, noise=0.0, seed=1)
    for _ in range(200):
        assert oracle.answer_pairwise(RICH, POOR) == "a"
        assert oracle.answer_likert(RICH, points=5) == 5
        assert oracle.answer_ranking([POOR, RICH, SHORT]) == [1, 2, 0]


def test_it_is_always_wrong_at_noise_1():
    # Noise is an error rate, so 1.0 means every answer is wrong, not random.
    oracle = make_oracle("target-words", target_words=WORDS, noise=1.0, seed=2)
    for _ in range(100):
        assert oracle.answer_pairwise(RICH, POOR) == "b"
        assert oracle.answer_likert(RICH, points=5) != 5
        assert oracle.answer_ranking([POOR, RICH, SHORT]) in ([2, 1, 0], [1, 0, 2])
    # A tie answered wrongly is a side, never a tie.
    assert {oracle.answer_pairwise(POOR, POOR) for _ in range(50)} == {"a", "b"}


def test_it_errs_at_the_configured_rate():
    oracle = make_oracle("target-words", target_words=WORDS, noise=0.2, seed=3)
    answers = Counter(oracle.answer_pairwise(RICH, POOR) for _ in range(5000))
    assert answers["b"] / 5000 == pytest.approx(0.2, abs=0.02)


def test_it_repeats_its_answers_with_a_seed():
    def answers(seed):
        oracle = make_oracle("target-words", target_words=WORDS, noise=0.3, seed=seed)
        return [oracle.answer_pairwise(RICH, POOR) for _ in range(100)]

    assert answers(7) == answers(7)
    assert answers(7) != answers(8)


def test_it_answers_only_what_the_project_allows():
    oracle = make_oracle("target-words", target_words=WORDS, seed=4)
    assert {oracle.answer_pairwise(POOR, POOR, allow_tie=False) for _ in range(50)} == {"a", "b"}
    judge = make_oracle(f"{__name__}:prefers_shorter", seed=5)
    assert judge.answer_pairwise("same", "same", allow_tie=True) == "tie"


def test_pair_ties_break_a_tie_by_the_texts_not_by_the_labeler():
    # POOR and its reversal have no target word each: a tie, broken by the texts alone.
    other = " ".join(reversed(POOR.split()))

    def answers(seed, order):
        oracle = make_oracle(
            "target-words", target_words=WORDS, seed=seed, pair_seed=0, pair_ties=True
        )
        a, b = order
        return {(a, b)[oracle.answer_pairwise(a, b, allow_tie=False) == "b"] for _ in range(20)}

    orders = ((POOR, other), (other, POOR))
    picked = [answers(seed, order) for seed in (1, 2, 3) for order in orders]
    assert all(len(p) == 1 for p in picked) and len({p.pop() for p in picked}) == 1
    # Without pair_ties the random stream decides, so both sides come up.
    oracle = make_oracle("target-words", target_words=WORDS, seed=1)
    assert {oracle.answer_pairwise(POOR, other, allow_tie=False) for _ in range(50)} == {"a", "b"}


def test_pair_noise_labelers_with_different_seeds_agree_on_every_pair():
    pairs = [(f"sun {'x ' * i}", f"garden music {'y ' * (i % 3)}") for i in range(200)]

    def answers(seed):
        oracle = make_oracle(
            "words-and-length", target_words=WORDS, seed=seed, pair_noise=0.3, pair_seed=9,
            pair_ties=True,
        )  # fmt: skip
        return [oracle.answer_pairwise(a, b, allow_tie=False) for a, b in pairs]

    first = answers(1)
    assert answers(2) == first == answers(3)
    truth = make_oracle("words-and-length", target_words=WORDS)
    verdicts = [truth.prefer(a, b) for a, b in pairs]
    decided = [(v, f) for v, f in zip(verdicts, first, strict=True) if v != "tie"]
    wrong = sum(v != f for v, f in decided)
    assert 0.15 < wrong / len(decided) < 0.45


def test_it_calls_a_module_function():
    oracle = make_oracle(CALLABLE)
    assert oracle.prefer("short", "much longer") == "a"
    assert oracle.answer_pairwise("much longer", "short") == "b"
    assert oracle.order(["three words here", "one", "two words"]) == [1, 2, 0]
    assert oracle.terms("anything") == {}
    # Given the prompt when it asks for it.
    with_prompt = make_oracle(f"{__name__}:prefers_shorter_with_prompt")
    assert with_prompt.prefer("x", "about cats", prompt="cats") == "b"


def test_it_calls_a_module_function_for_likert_scores():
    oracle = make_oracle(f"{__name__}:rates_by_length", noise=0.0)
    assert oracle.answer_likert("one two three", points=5) == 3
    assert oracle.answer_likert("one two three four five six seven", points=5) == 5


def test_it_refuses_a_callables_nonsense():
    with pytest.raises(OracleError, match="maybe"):
        make_oracle(f"{__name__}:answers_nonsense").answer_pairwise("x", "y")
    with pytest.raises(OracleError, match="rated 0"):
        make_oracle(f"{__name__}:rates_by_length").rate("", points=5)


def test_it_does_not_import_django():
    code = "import sys, trainer.loop.oracles; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
