"""AI judge backends against a real HTTP server speaking the chat-completions protocol,
started as a separate process (trainer/loop/judge_server.py). No Django."""

import sys

import pytest

from tests.judge_server import judge_server
from trainer.algorithms.judges import (
    CallableJudge,
    JudgeConfig,
    JudgeError,
    OpenAIJudge,
    judge_row,
    parse_answer,
    train,
)

# Word rule: more target words wins. "happy garden" beats "a plain reply".
GOOD, BAD = "a happy garden with music", "a plain reply here now"
ROW = {"task_id": 7, "prompt": "Say hi", "shown_order": [11, 12], "responses": [GOOD, BAD]}
NO_SLEEP = lambda s: None  # noqa: E731


@pytest.fixture(scope="module")
def auth_log(tmp_path_factory):
    return tmp_path_factory.mktemp("judge") / "auth.log"


@pytest.fixture(scope="module")
def server(auth_log):
    with judge_server(auth_log) as url:
        yield url


def judge(server, model="rule=target-words", **kw):
    return OpenAIJudge(JudgeConfig(base_url=server, model=model, **kw), sleep=NO_SLEEP)


def test_it_asks_both_orders_and_a_fair_judge_agrees_with_itself(server):
    result = judge_row(judge(server), ROW)
    # First order: GOOD shown first ("a"); swapped: GOOD shown second ("b").
    assert (result["first"], result["second"]) == ("a", "b")
    assert result["usage"]["calls"] == 2 and result["usage"]["prompt_tokens"] > 0


def test_it_finds_a_judge_that_always_picks_the_left_side_inconsistent(server):
    metrics_rows = []
    final = train(
        JudgeConfig(base_url=server, model="rule=target-words;left=1", batch_size=2),
        [ROW, {**ROW, "task_id": 8}], ".", emit_batch=metrics_rows.append,
    )  # fmt: skip
    assert [(r["first"], r["second"]) for r in metrics_rows[0]] == [("a", "a"), ("a", "a")]
    assert final["inconsistent"] == 2 and final["judged"] == 2


def test_it_retries_429_and_500_then_succeeds(server):
    assert judge(server, "rule=target-words;fail=429x2", retries=2)("p", GOOD, BAD).choice == "a"
    assert judge(server, "rule=target-words;fail=500x1", retries=1)("p", BAD, GOOD).choice == "b"


def test_it_gives_up_after_its_retries_with_the_last_status(server):
    with pytest.raises(JudgeError, match=r"failed 3 time\(s\); last: HTTP 500"):
        judge(server, "fail=500x9;rule=target-words", retries=2)("p", GOOD, BAD)


def test_it_times_out_a_slow_endpoint(server):
    slow = judge(server, "delay=2", timeout_s=0.3, retries=1)
    with pytest.raises(JudgeError, match="no answer within 0.3 s"):
        slow("p", GOOD, BAD)


def test_it_turns_a_malformed_answer_into_a_clear_error(server):
    with pytest.raises(JudgeError, match="no verdict line"):
        judge(server, "malformed=1")("p", GOOD, BAD)
    with pytest.raises(JudgeError, match="not JSON"):
        judge(server, "notjson=1")("p", GOOD, BAD)


def test_a_failing_judge_stops_the_job_after_max_errors(server):
    with pytest.raises(JudgeError, match="Task 7: .*no verdict line"):
        train(JudgeConfig(base_url=server, model="malformed=1"), [ROW], ".")
    final = train(JudgeConfig(base_url=server, model="malformed=1", max_errors=1), [ROW], ".")
    assert final["errors"] == 1 and final["judged"] == 0


def test_it_sends_the_key_from_the_environment_and_never_shows_it(server, auth_log, monkeypatch):
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("JUDGE_KEY_FOR_TEST", secret)
    ok = judge(server, "rule=target-words;key-check=1", api_key_env="JUDGE_KEY_FOR_TEST")
    ok("p", GOOD, BAD)
    assert f"Bearer {secret}" in auth_log.read_text()
    failing = judge(server, "fail=500x9", api_key_env="JUDGE_KEY_FOR_TEST", retries=0)
    with pytest.raises(JudgeError) as info:
        failing("p", GOOD, BAD)
    assert secret not in str(info.value) and secret not in repr(vars(failing.config))


def test_a_missing_key_variable_is_named():
    with pytest.raises(JudgeError, match="NO_SUCH_JUDGE_KEY .* is not set"):
        OpenAIJudge(JudgeConfig(base_url="http://x/v1", model="m", api_key_env="NO_SUCH_JUDGE_KEY"))


def test_it_records_token_usage_and_cost(server):
    j = judge(server, "rule=target-words", cost_per_1k_prompt=1.0, cost_per_1k_completion=2.0)
    answer = j("p", GOOD, BAD)
    u = answer.usage
    assert u["prompt_tokens"] > 0 and u["completion_tokens"] > 0
    assert u["cost"] == pytest.approx(u["prompt_tokens"] / 1000 + 2 * u["completion_tokens"] / 1000)


def test_chain_of_thought_is_kept_beside_the_verdict(server):
    answer = judge(server, "rule=target-words", chain_of_thought=True)("p", GOOD, BAD)
    assert answer.rationale == "Comparing the two by the rule."


def test_parse_answer_reads_the_last_verdict_and_confidence():
    assert parse_answer("A is long. Verdict: B\nConfidence: 0.75") == ("b", 0.75, "A is long.")
    assert parse_answer("Verdict: both bad")[0] == "both_bad"
    assert parse_answer("tie") == ("tie", None, "")


def pick_longer(a, b, *, prompt):
    return "a" if len(a) > len(b) else "b"


def test_a_callable_judge():
    judge_ = CallableJudge(JudgeConfig(backend="callable",
                                       callable_path=f"{__name__}:pick_longer"))  # fmt: skip
    assert judge_row(judge_, ROW)["first"] == "a"


def test_the_judges_module_imports_no_django():
    import subprocess

    code = "import sys, trainer.algorithms.judges; print('django' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
