"""docs/prompt-optimisation.md's worked example runs as written: its offline log imports through
the API into the outcome table it shows, and its Python example trains and chooses."""

import json
import os
import subprocess
import sys

import pytest

from annotator.models import Membership
from tests.conftest import api_client_for
from tests.factories import MembershipFactory, ProjectFactory
from tests.test_docs import DOCS, blocks

DOC = DOCS / "prompt-optimisation.md"


def block(lang: str) -> str:
    found = [b.body for b in blocks(DOC) if b.lang == lang]
    assert len(found) == 1, f"expected one {lang} block in {DOC.name}"
    return found[0]


@pytest.mark.django_db
def test_the_log_imports_into_the_table_the_doc_shows(alice):
    project = ProjectFactory()
    MembershipFactory(project=project, user=alice, role=Membership.Role.ADMIN)
    api = api_client_for(alice)
    base = f"/api/v1/projects/{project.id}/strategies/"
    imported = api.post(f"{base}import/", block("jsonl").encode(), content_type="application/jsonl")
    assert imported.status_code == 201, imported.content
    table = api.get(f"{base}outcomes/").json()
    for row in table["rows"]:
        assert isinstance(row.pop("prompt_id"), int)
    assert table == json.loads(block("json"))


def test_the_python_example_runs(tmp_path):
    script = tmp_path / "example.py"
    script.write_text(block("python"), encoding="utf-8")
    env = os.environ | {"PYTHONPATH": str(DOCS.parent), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    printed = result.stdout.splitlines()
    assert printed[0].startswith("{'query_id': 'q0', 'query': 'A shop has")
    assert printed[2].startswith("code_first {")
    assert (tmp_path / "var" / "selector" / "selector.json").is_file()
