"""manage.py export_dataset writes the same bytes as the API."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from annotator.models import Kind
from tests.annotator.exportkit import labelers, pick, prompt_for, task_over


def test_it_writes_the_same_file_as_the_api(project, alice, api_as, tmp_path):
    (l1,) = labelers(1)
    task, (a, _) = task_over(prompt_for(project, "Q"), ["yes", "no"], kind=Kind.PAIRWISE)
    pick(task, l1, a)
    response = api_as(alice).get(
        f"/api/v1/projects/{project.id}/export/", {"format": "csv", "split": "train"}
    )
    served = b"".join(response.streaming_content)

    out = tmp_path / "prefs.csv"
    stdout = StringIO()
    call_command(
        "export_dataset", "--project", str(project.id), "--format", "csv", "--split", "train",
        "--until", response["X-Export-Until"], "--out", str(out), stdout=stdout,
    )  # fmt: skip

    assert out.read_bytes() == served
    summary = json.loads(stdout.getvalue())
    assert (summary["rows"], summary["bytes"]) == (1, len(served))


def test_it_refuses_bad_options_and_a_push_without_a_token(project, tmp_path, monkeypatch):
    out = str(tmp_path / "x.jsonl")
    with pytest.raises(CommandError, match="aspect"):
        call_command("export_dataset", "--project", str(project.id), "--aspect", "x", "--out", out)
    monkeypatch.setattr("annotator.management.commands.export_dataset._hub_token", lambda: None)
    with pytest.raises(CommandError, match="token"):
        call_command(
            "export_dataset", "--project", str(project.id), "--out", out, "--push-to-hub", "a/b"
        )
    with pytest.raises(CommandError, match="No project"):
        call_command("export_dataset", "--project", "999999", "--out", out)
