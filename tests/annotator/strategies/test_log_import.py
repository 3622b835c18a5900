"""The offline-log import: (query, strategy, response, outcome) rows, all or nothing."""

import json

import pytest

from annotator.exceptions import ImportFailed
from annotator.models import Completion, Prompt, PromptStrategy
from annotator.strategies.log_import import strategy_log_import
from annotator.strategies.outcomes import outcome_table
from tests.factories import ProjectFactory, PromptFactory

pytestmark = pytest.mark.django_db


def jsonl(*rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_it_imports_rows_as_prompts_completions_and_strategies():
    project = ProjectFactory()
    PromptStrategy.objects.create(project=project, name="plain")
    existing = PromptFactory(project=project, text="What is 2+2?")
    data = jsonl(
        {"query": "What is 2+2?", "strategy": "plain", "response": "4", "outcome": "correct"},
        {"query": "What is 2+2?", "strategy": "cot", "response": "5", "outcome": "incorrect"},
        {"query": "Name a colour", "strategy": "cot", "response": "red", "outcome": 0.75},
    )
    done = strategy_log_import(project=project, data=data, fmt="jsonl")
    assert (done.rows, done.queries, done.new_strategies) == (3, 2, ["cot"])
    assert Prompt.objects.filter(project=project).count() == 2  # the existing query is reused
    assert Completion.objects.filter(prompt=existing).count() == 2
    table = outcome_table(project=project, source="imported")
    values = {(r.query, s): c.value for r in table.rows for s, c in r.cells.items()}
    assert values == {
        ("What is 2+2?", "plain"): 1.0,
        ("What is 2+2?", "cot"): 0.0,
        ("Name a colour", "cot"): 0.75,
    }


def test_it_reads_csv():
    project = ProjectFactory()
    data = b"query,strategy,outcome,response\nq one,a,1,x\nq one,b,false,\n"
    assert strategy_log_import(project=project, data=data, fmt="csv").rows == 2


def test_it_names_every_bad_line_and_writes_nothing():
    project = ProjectFactory()
    data = (
        jsonl({"query": "ok", "strategy": "a", "outcome": 1})
        + b"not json\n"
        + jsonl(
            {"query": "q", "strategy": "a", "outcome": 2},
            {"query": "q", "strategy": "has space", "outcome": 1},
            {"query": "", "strategy": "a", "outcome": 1},
            {"query": "q", "strategy": "a", "outcome": 1, "extra": 1},
        )
    )
    with pytest.raises(ImportFailed) as caught:
        strategy_log_import(project=project, data=data, fmt="jsonl")
    errors = {e["line"]: e for e in caught.value.errors}
    assert sorted(errors) == [2, 3, 4, 5, 6]
    assert "invalid JSON" in errors[2]["error"]
    assert errors[3]["field"] == "outcome" and "score from 0 to 1" in errors[3]["error"]
    assert errors[4]["field"] == "strategy"
    assert errors[5]["field"] == "query"
    assert "unknown key(s) extra" in errors[6]["error"]
    assert not Prompt.objects.filter(project=project).exists()
    assert not PromptStrategy.objects.filter(project=project).exists()


def test_a_csv_without_the_columns_is_refused():
    with pytest.raises(ImportFailed) as caught:
        strategy_log_import(project=ProjectFactory(), data=b"query,outcome\nq,1\n", fmt="csv")
    assert caught.value.errors == [{"line": 1, "error": "header needs the column(s) strategy"}]
