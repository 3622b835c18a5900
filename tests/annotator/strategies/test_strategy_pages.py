"""The strategies pages and API: who may see them, what they write, and safe exports."""

import json

import pytest
from django.urls import reverse

from annotator.models import Completion, PromptStrategy
from tests.conftest import api_client_for
from tests.factories import PromptFactory

pytestmark = pytest.mark.django_db


def test_an_admin_adds_edits_and_deletes_a_strategy(client, alice, project):
    client.force_login(alice)
    url = reverse("strategy_list", args=[project.id])
    response = client.post(url, {"name": "cot", "instruction": "{query}\nThink step by step."})
    assert response.status_code == 302
    strategy = PromptStrategy.objects.get(project=project, name="cot")
    page = client.get(reverse("strategy_edit", args=[project.id, strategy.id]))
    assert "Think step by step." in page.content.decode()
    client.post(
        reverse("strategy_edit", args=[project.id, strategy.id]),
        {"name": "cot2", "system_prompt": "Be brief", "instruction": ""},
    )
    strategy.refresh_from_db()
    assert (strategy.name, strategy.system_prompt) == ("cot2", "Be brief")
    again = client.post(url, {"name": "cot2"})
    assert again.status_code == 400 and "already has a strategy" in again.content.decode()
    client.post(reverse("strategy_delete", args=[project.id, strategy.id]))
    assert not PromptStrategy.objects.filter(project=project).exists()


def test_the_import_form_lists_bad_lines(client, alice, project):
    client.force_login(alice)
    from django.core.files.uploadedfile import SimpleUploadedFile

    bad = SimpleUploadedFile("log.jsonl", b'{"query": "q", "strategy": "a", "outcome": 7}\n')
    response = client.post(
        reverse("strategy_list", args=[project.id]),
        {"action": "import", "format": "jsonl", "file": bad},
    )
    assert response.status_code == 400
    assert "Line 1 (outcome)" in response.content.decode()
    good = SimpleUploadedFile("log.jsonl", b'{"query": "q", "strategy": "a", "outcome": 1}\n')
    response = client.post(
        reverse("strategy_list", args=[project.id]),
        {"action": "import", "format": "jsonl", "file": good},
        follow=True,
    )
    assert "Imported 1 rows over 1 queries" in response.content.decode()


def test_the_outcome_table_page_and_its_csv_are_safe(client, alice, project):
    client.force_login(alice)
    prompt = PromptFactory(project=project, text='=HYPERLINK("http://x")')
    Completion.objects.create(prompt=prompt, text="r", meta={"strategy": "@evil", "outcome": 1})
    Completion.objects.create(
        prompt=prompt, text="r", meta={"strategy": "<b>plain</b>", "outcome": 0}
    )
    page = client.get(reverse("strategy_outcomes", args=[project.id]))
    html = page.content.decode()
    assert page.status_code == 200 and "&lt;b&gt;plain&lt;/b&gt;" in html and "<b>plain" not in html
    csv = client.get(reverse("strategy_outcomes_export", args=[project.id])).content.decode()
    header, row = csv.splitlines()[:2]
    assert header == "prompt_id,query,split,<b>plain</b>,'@evil"  # names sorted
    assert row.startswith(f'{prompt.id},"\'=HYPERLINK(""http://x"")",train,0.0,1.0')
    bad = client.get(reverse("strategy_outcomes", args=[project.id]), {"likert_threshold": "x"})
    assert bad.status_code == 400


def test_labelers_are_refused_and_outsiders_see_nothing(client, bob, charlie, project):
    for user, code in ((bob, 403), (charlie, 404)):
        client.force_login(user)
        for name in ("strategy_list", "strategy_outcomes", "strategy_outcomes_export"):
            assert client.get(reverse(name, args=[project.id])).status_code == code


def test_the_api_manages_strategies_and_reads_the_table(alice, bob, charlie, project):
    api = api_client_for(alice)
    base = f"/api/v1/projects/{project.id}/strategies/"
    created = api.post(base, {"name": "cot", "instruction": "{query} Think."}, format="json")
    assert created.status_code == 201 and created.json()["name"] == "cot"
    strategy_id = created.json()["id"]
    clash = api.post(base, {"name": "cot"}, format="json")
    assert clash.status_code == 400 and clash.json()["field"] == "name"
    patched = api.patch(f"{base}{strategy_id}/", {"system_prompt": "S"}, format="json")
    assert patched.json()["system_prompt"] == "S"
    log = b'{"query": "q1", "strategy": "cot", "outcome": 1}\n' + (
        b'{"query": "q1", "strategy": "plain", "outcome": 0}\n'
    )
    imported = api.post(f"{base}import/", log, content_type="application/jsonl")
    assert imported.status_code == 201 and imported.json()["new_strategies"] == ["plain"]
    bad = api.post(f"{base}import/", b'{"query": "q"}\n', content_type="application/jsonl")
    assert bad.status_code == 400 and bad.json()["errors"][0]["line"] == 1
    table = api.get(f"{base}outcomes/").json()
    assert table["source"] == "imported" and table["strategies"] == ["cot", "plain"]
    assert table["rows"][0]["outcomes"] == {
        "cot": {"value": 1.0, "n": 1},
        "plain": {"value": 0.0, "n": 1},
    }
    assert api.get(f"{base}").json()["strategies"][0]["name"] == "cot"
    assert api.delete(f"{base}{strategy_id}/").status_code == 204
    assert api_client_for(bob).get(base).status_code == 403
    assert api_client_for(charlie).get(f"{base}outcomes/").status_code == 404
    assert json.loads(api_client_for(charlie).get(base).content)["detail"]
