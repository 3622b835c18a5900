"""AI judges on Likert and ranking tasks: the endpoint's answers parsed, a ranking asked as
served and reversed, rankings from pairwise verdicts. Against the simulated chat-completions
server in a separate process (trainer/loop/judge_server.py). No Django."""

import pytest

from tests.judge_server import judge_server
from trainer.algorithms.judges import (
    CallableJudge,
    JudgeConfig,
    JudgeError,
    OpenAIJudge,
    judge_row,
    parse_likert,
    parse_ranking,
    rank_by_pairs,
    train,
)

# Target-words rule: the more of the target words, the better.
BEST, MID, WORST = "a happy garden with bright music", "a happy reply", "a plain reply"
FLAGS = ["Gives harmful advice", "Expresses moral judgment"]
NO_SLEEP = lambda s: None  # noqa: E731


@pytest.fixture(scope="module")
def server():
    with judge_server() as url:
        yield url


def judge(server, model="rule=target-words", **kw):
    return OpenAIJudge(JudgeConfig(base_url=server, model=model, **kw), sleep=NO_SLEEP)


def likert_row(text, points=7):
    return {
        "task_id": 3,
        "kind": "likert",
        "prompt": "Say hi",
        "shown_order": [31],
        "responses": [text],
        "points": points,
        "flags": FLAGS,
    }


def ranking_row(texts, order):
    return {
        "task_id": 4,
        "kind": "ranking",
        "prompt": "Say hi",
        "shown_order": order,
        "responses": texts,
    }


def test_a_likert_score_is_asked_once_on_the_projects_scale(server):
    # target-words: top_words words of the list make the best score.
    best = judge_row(judge(server), likert_row(BEST))
    worst = judge_row(judge(server), likert_row(WORST))
    assert best["kind"] == "likert" and best["second"] == ""
    assert int(best["first"]) > int(worst["first"]) and worst["first"] == "1"
    assert best["usage"]["calls"] == 1 and best["flags"] == []
    five = judge_row(judge(server), likert_row(BEST, points=5))
    assert 1 <= int(five["first"]) <= 5


def test_a_ranking_is_asked_as_served_and_reversed_and_a_fair_judge_agrees(server):
    r = judge_row(judge(server), ranking_row([MID, WORST, BEST], [41, 42, 43]))
    # As served: C (BEST) > A (MID) > B (WORST); reversed, BEST is shown first: A > C > B.
    assert (r["first"], r["second"]) == ("CAB", "ACB")
    assert r["usage"]["calls"] == 2
    assert (
        train(
            JudgeConfig(base_url=server, model="rule=target-words"),
            [ranking_row([MID, WORST, BEST], [41, 42, 43])],
            ".",
        )["inconsistent"]
        == 0
    )


def test_a_judge_that_puts_the_first_response_on_top_is_inconsistent(server):
    r = judge_row(
        judge(server, "rule=target-words;left=1"), ranking_row([WORST, BEST, MID], [1, 2, 3])
    )
    assert r["first"][0] == "A" and r["second"][0] == "A"  # first shown on top both times
    metrics = train(
        JudgeConfig(base_url=server, model="rule=target-words;left=1"),
        [ranking_row([WORST, BEST, MID], [1, 2, 3])],
        ".",
    )
    assert metrics["inconsistent"] == 1


def test_parse_likert_reads_score_flags_and_confidence():
    text = "Fine.\nScore: 6\nFlags: 2\nConfidence: 0.7"
    assert parse_likert(text, 7, FLAGS) == (6, ["Expresses moral judgment"], 0.7, "Fine.")
    assert parse_likert("Score: 3\nFlags: none", 7, FLAGS)[1] == []
    with pytest.raises(JudgeError, match="outside 1 to 5"):
        parse_likert("Score: 6", 5, FLAGS)
    with pytest.raises(JudgeError, match="flag 3"):
        parse_likert("Score: 4\nFlags: 3", 7, FLAGS)
    with pytest.raises(JudgeError, match="no score line"):
        parse_likert("It is good.", 7, FLAGS)


def test_parse_ranking_needs_each_response_once():
    assert parse_ranking("Thinking.\nRanking: C > A > B", 3)[0] == [2, 0, 1]
    assert parse_ranking("Ranking: b, a", 2)[0] == [1, 0]
    with pytest.raises(JudgeError, match="each of the 3"):
        parse_ranking("Ranking: C > A > A", 3)
    with pytest.raises(JudgeError, match="each of the 3"):
        parse_ranking("Ranking: C > A", 3)
    with pytest.raises(JudgeError, match="no ranking line"):
        parse_ranking("C is best", 3)


def test_a_malformed_likert_answer_is_a_clear_error(server):
    with pytest.raises(JudgeError, match="no score line"):
        judge_row(judge(server, "malformed=1"), likert_row(BEST))


def more_words(a, b, *, prompt=""):
    return (
        "a"
        if len(a.split()) > len(b.split())
        else "b"
        if len(b.split()) > len(a.split())
        else "tie"
    )


def test_rank_by_pairs_orders_by_wins_then_position():
    cfg = JudgeConfig(backend="callable", callable_path=f"{__name__}:more_words")
    order = rank_by_pairs(CallableJudge(cfg), "p", ["one two", "one two three four", "one"]).order
    assert order == [1, 0, 2]
    tied = rank_by_pairs(CallableJudge(cfg), "p", ["x y", "y z", "z"]).order
    assert tied == [0, 1, 2]  # equal wins keep the order given


def likert_score(text, *, points):
    return {"score": min(points, len(text.split())), "flags": ["Gives harmful advice"]}


def test_a_callable_judge_scores_and_ranks():
    cfg = JudgeConfig(backend="callable", callable_path=f"{__name__}:likert_score")
    r = judge_row(CallableJudge(cfg), likert_row("one two three"))
    assert r["first"] == "3" and r["flags"] == ["Gives harmful advice"]
    cfg = JudgeConfig(backend="callable", callable_path=f"{__name__}:more_words")
    r = judge_row(CallableJudge(cfg), ranking_row(["a b", "a b c", "a"], [5, 6, 7]))
    assert (r["first"], r["second"]) == ("BAC", "BCA")


def bad_score(text, *, points):
    return points + 1


def test_a_callable_judges_bad_score_is_a_clear_error():
    cfg = JudgeConfig(backend="callable", callable_path=f"{__name__}:bad_score")
    with pytest.raises(JudgeError, match="expected an int from 1 to 7"):
        judge_row(CallableJudge(cfg), likert_row("x"))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from trainer.algorithms.tiny import build_tiny_policy

    return str(build_tiny_policy(tmp_path_factory.mktemp("tiny") / "judge", pretrain_steps=0))


def test_a_local_model_scores_by_the_digits_log_probabilities_and_ranks_by_pairs(tiny_model):
    from trainer.algorithms.judges import TransformersJudge

    local = TransformersJudge(
        JudgeConfig(backend="transformers", model_path=tiny_model, device="cpu")
    )
    r = judge_row(local, likert_row("the cat sat on the mat", points=5))
    assert r["first"] in {"1", "2", "3", "4", "5"} and r["second"] == ""
    assert 1 / 5 <= r["confidence"] <= 1  # the top score's share of five
    r = judge_row(local, ranking_row(["the cat sat", "a dog ran", "one two"], [1, 2, 3]))
    assert sorted(r["first"]) == ["A", "B", "C"] and sorted(r["second"]) == ["A", "B", "C"]
