"""Prompt-OIRL (trainer/algorithms/prompt_oirl.py): the selector learns which strategy suits
which query from a synthetic log where the best strategy depends on the query's type."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainer.algorithms.common import TrainingError
from trainer.algorithms.oirl_synthetic import STRATEGY_NAMES, synthetic_log
from trainer.algorithms.prompt_oirl import (
    CHOICES_FILENAME,
    PromptRewardConfig,
    PromptSelector,
    choose_strategy,
    evaluate_choices,
    outcome_table,
    split_queries,
    train,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("oirl") / "selector"
    steps = []
    metrics = train(
        PromptRewardConfig(seed=0),
        synthetic_log(600, seed=3),
        out,
        progress=lambda step, total, m: steps.append((step, m)),
    )
    return out, metrics, steps


def test_it_beats_the_best_single_strategy_on_held_out_queries(trained):
    _, metrics, steps = trained
    assert metrics["eval_queries"] == 120  # 20 % of 600, split by query
    assert metrics["accuracy_selector"] > metrics["accuracy_best_single"] + 0.1
    assert metrics["accuracy_best_single"] >= metrics["accuracy_random"]
    assert metrics["accuracy_oracle"] >= metrics["accuracy_selector"]
    assert metrics["gap_closed"] > 0.3
    assert steps and all("train_loss" in m for _, m in steps)
    assert steps[-1][1]["train_loss"] < steps[0][1]["train_loss"]


def test_it_picks_the_strategy_each_query_type_favours(trained):
    out, _, _ = trained
    selector = PromptSelector.load(out)
    rows = synthetic_log(60, seed=99, strategies=["plain"], with_truth=True)
    favoured = {"fact": "concise", "code": "code_first", "medical": "expert", "format": "few_shot"}
    chosen = selector.choose_many([r["query"] for r in rows])
    picks = [(r["type"], c) for r, c in zip(rows, chosen, strict=True)]
    hits = [c == favoured[t] for t, c in picks if t in favoured]
    assert sum(hits) / len(hits) > 0.8


def test_it_saves_and_loads_the_same_selector(trained, tmp_path):
    out, _, _ = trained
    selector = PromptSelector.load(out)
    queries = [r["query"] for r in synthetic_log(30, seed=7, strategies=["plain"])]
    selector.save(tmp_path / "copy")
    again = PromptSelector.load(tmp_path / "copy")
    assert again.strategies == sorted(STRATEGY_NAMES)
    np.testing.assert_allclose(again.score_many(queries), selector.score_many(queries))
    assert again.choose_many(queries) == selector.choose_many(queries)


def test_choose_strategy_returns_the_best_and_every_score(trained):
    out, _, _ = trained
    query = "In my program, python function list recursion sort string bug #1?"
    answer = choose_strategy(query, out)
    assert set(answer["scores"]) == set(STRATEGY_NAMES)
    assert answer["strategy"] == max(answer["scores"], key=answer["scores"].get)
    assert answer["strategy"] == "code_first"
    assert all(0 <= s <= 1 for s in answer["scores"].values())
    with pytest.raises(ValueError, match="non-empty"):
        choose_strategy("  ", out)


def test_it_writes_the_held_out_choices_and_its_config(trained):
    out, metrics, _ = trained
    choices = [json.loads(line) for line in (out / CHOICES_FILENAME).read_text().splitlines()]
    assert len(choices) == metrics["eval_queries"]
    first = choices[0]
    assert first["chosen"] == max(first["scores"], key=first["scores"].get)
    assert set(first["outcomes"]) == set(STRATEGY_NAMES)
    assert json.loads((out / "prefloop_config.json").read_text())["algorithm"] == "prompt_reward"


def test_the_gbdt_classifier_also_beats_the_best_single_strategy(tmp_path):
    config = PromptRewardConfig(classifier="gbdt", gbdt_iterations=60, seed=1)
    metrics = train(config, synthetic_log(400, seed=4), tmp_path / "gbdt")
    assert metrics["accuracy_selector"] > metrics["accuracy_best_single"]
    loaded = PromptSelector.load(tmp_path / "gbdt")
    assert loaded.classifier == "gbdt" and len(loaded.scores("Hey! thanks friend #3?")) == 6


def test_it_refuses_bad_rows_with_their_numbers(tmp_path):
    rows = [
        {"query": "q1", "strategy": "a", "outcome": 1},
        {"query": "", "strategy": "a", "outcome": 1},
        {"query": "q2", "outcome": 0},
        {"query": "q2", "strategy": "b", "outcome": 3},
        {"query": "q3", "strategy": "b", "outcome": "yes"},
        "not an object",
    ]
    with pytest.raises(TrainingError) as caught:
        train(PromptRewardConfig(), rows, tmp_path / "bad")
    message = str(caught.value)
    assert "Row 2: query must be a non-empty string" in message
    assert "Row 3: strategy must be" in message
    assert "Row 4: outcome must be true/false or a number from 0 to 1, not 3" in message
    assert "Row 5: outcome" in message and "Row 6: must be an object" in message
    assert "Row 1" not in message


def test_it_needs_two_strategies_and_two_queries():
    with pytest.raises(ValueError, match="at least 2"):
        outcome_table([{"query": "q", "strategy": "a", "outcome": 1}] * 3)
    with pytest.raises(ValueError, match="1 query"):
        outcome_table([{"query": "q", "strategy": s, "outcome": 1} for s in "ab"])


def test_it_refuses_a_bad_config():
    with pytest.raises(ValueError, match="encoder must be one of"):
        PromptRewardConfig(encoder="bert")
    with pytest.raises(ValueError, match="needs encoder_model"):
        PromptRewardConfig(encoder="model")
    with pytest.raises(ValueError, match="classifier must be one of"):
        PromptRewardConfig(classifier="svm")


def test_the_table_averages_repeats_and_keeps_gaps():
    table = outcome_table(
        [
            {"query_id": 1, "query": "q", "strategy": "a", "outcome": 1},
            {"query_id": 1, "query": "q", "strategy": "a", "outcome": 0},
            {"query_id": 1, "query": "q", "strategy": "b", "outcome": True},
            {"query_id": 2, "query": "r", "strategy": "b", "outcome": 0.25},
        ]
    )
    assert table.keys == ["1", "2"] and table.strategies == ["a", "b"]
    assert table.values[0].tolist() == [0.5, 1.0]
    assert math.isnan(table.values[1, 0]) and table.values[1, 1] == 0.25


def test_the_split_is_by_query_and_deterministic():
    kept, held = split_queries(100, 0.2, seed=5)
    assert len(held) == 20 and not set(kept) & set(held) and len(kept) + len(held) == 100
    assert split_queries(100, 0.2, seed=5) == (kept, held)
    assert split_queries(1, 0.5, seed=0) == ([0], [])


def test_evaluation_compares_with_best_single_random_and_oracle():
    values = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, np.nan]])
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9]])
    train_means = np.array([0.6, 0.4])  # "a" was best on the training queries
    result = evaluate_choices(values, scores, train_means)
    # Query 3 has only "a" logged: every choice is "a" there.
    assert result["accuracy_selector"] == 1.0
    assert result["accuracy_best_single"] == pytest.approx(2 / 3)
    assert result["accuracy_random"] == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert result["accuracy_oracle"] == 1.0 and result["gap_closed"] == pytest.approx(1.0)


def test_it_runs_from_the_command_line(tmp_path):
    config = {
        "rows": synthetic_log(60, seed=1),
        "output_dir": str(tmp_path / "cli"),
        "max_epochs": 3,
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(config))
    result = subprocess.run(
        [sys.executable, "-m", "trainer.algorithms.prompt_oirl", "--config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    final = json.loads(result.stdout.strip().splitlines()[-1])["final"]
    assert final["queries"] == 60 and (tmp_path / "cli" / "selector.json").is_file()


@pytest.mark.slow
def test_it_embeds_queries_with_a_local_model(tiny_model_dir, tmp_path):
    config = PromptRewardConfig(encoder="model", encoder_model=tiny_model_dir, max_epochs=5, seed=0)
    metrics = train(config, synthetic_log(120, seed=2), tmp_path / "model-encoder")
    assert metrics["eval_queries"] == 24
    selector = PromptSelector.load(tmp_path / "model-encoder")
    assert selector.encoder_spec["path"] == tiny_model_dir and selector.mean is not None
    answer = choose_strategy("Hey! thanks friend #3?", tmp_path / "model-encoder")
    assert set(answer["scores"]) == set(STRATEGY_NAMES)
