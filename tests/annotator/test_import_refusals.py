"""Import refuses what a database cannot store (NUL, lone surrogates), and JSON the parser
cannot take (deep nesting, huge or non-finite numbers), with a 400 naming the line and the
field, on PostgreSQL and SQLite alike; nothing of the file is written."""

import pytest

from annotator.exceptions import ImportFailed
from annotator.importing import project_import
from annotator.models import Prompt, Task
from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db

GOOD = '{"prompt": "p", "completions": ["x", "y"]}'
P = '{"prompt": "p", "completions": ["x", "y"], '  # a good line's start, to add one key to


def refused(project, data: str, fmt: str = "jsonl") -> list[dict]:
    with pytest.raises(ImportFailed) as failed:
        project_import(project=project, data=data.encode(), fmt=fmt)
    assert not Prompt.objects.exists() and not Task.objects.exists()
    return failed.value.errors


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ('{"prompt": "a\\u0000b", "completions": ["x", "y"]}', "prompt", "NUL"),
        ('{"prompt": "p", "completions": ["x", "y\\u0000"]}', "completions[1]", "NUL"),
        (P + '"meta": {"k\\u0000": 1}}', "meta.k\x00", "NUL"),
        ('{"prompt": "p", "completions": ["x", "\\ud800"]}', "completions[1]", "surrogate"),
        (
            '{"prompt": [{"role": "user", "content": "\\udfff"}], "completions": ["x", "y"]}',
            "prompt[0].content", "surrogate",
        ),
        (P + '"priority": 99999999999}', "priority", "between"),
        (P + '"meta": {"n": 1e999}}', "meta.n", "out of range"),
        (P + '"meta": {"n": NaN}}', "meta.n", "NaN"),
        (P + '"meta": {"n": 1' + "0" * 5000 + "}}", "meta.n", "digits"),
    ],
)  # fmt: skip
def test_it_names_the_line_and_field_of_a_value_it_cannot_store(project, line, field, reason):
    errors = refused(project, f"{GOOD}\n{line}\n{GOOD}")
    assert len(errors) == 1 and errors[0]["line"] == 2, errors
    assert reason in errors[0]["error"]
    assert errors[0].get("field", "") == field


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deep_nesting_is_a_line_error(project, depth):
    deep = "[" * depth + "]" * depth
    errors = refused(
        project, f'{GOOD}\n{{"prompt": "p", "completions": ["x", "y"], "meta": {{"d": {deep}}}}}'
    )
    assert errors[0]["line"] == 2 and "nested deeper than 32" in errors[0]["error"]


def test_a_csv_with_a_nul_names_the_line(project):
    errors = refused(project, "prompt,completion_1,completion_2\np,x,y\nq,x\x00,y\n", fmt="csv")
    assert [e["line"] for e in errors] == [3] and "NUL" in errors[0]["error"]


def test_a_csv_with_deep_prompt_messages_names_the_line_and_column(project):
    deep = '"' + "[" * 5000 + "]" * 5000 + '"'
    errors = refused(project, f"prompt_messages,completion_1,completion_2\n{deep},x,y\n", fmt="csv")
    assert errors[0]["line"] == 2 and errors[0]["field"] == "prompt_messages"
    assert "nested deeper" in errors[0]["error"]


@pytest.mark.parametrize(
    "body",
    [
        GOOD + '\n{"prompt": "a\\u0000b", "completions": ["x", "y"]}\n',
        f"{GOOD}\n{P}" + '"meta": ' + "[" * 50_000 + "]" * 50_000 + "}\n",
    ],
    ids=["nul", "deep"],
)  # fmt: skip
def test_the_import_api_answers_400_naming_the_line(project, alice, body):
    resp = api_client_for(alice).post(
        f"/api/v1/projects/{project.id}/import/?format=jsonl",
        body.encode(),
        content_type="application/jsonl",
    )
    assert resp.status_code == 400, resp.content
    assert resp.json()["errors"][0]["line"] == 2
    assert not Task.objects.exists()
