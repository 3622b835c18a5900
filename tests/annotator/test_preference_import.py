"""Import of existing preference data: every TRL form, rated responses, bad rows, the API,
the page, the `source` filter, and the round trip through the export."""

import io
import json
import re

import pytest

from annotator.exceptions import ImportFailed
from annotator.models import Annotation, Completion, Kind, Task
from annotator.preference_import import IMPORTED_GROUP, preferences_import
from tests.annotator.exportkit import labelers, pick, prompt_for, rank, rate, run_export, task_over
from tests.factories import ProjectFactory


def jsonl(*objs) -> bytes:
    return "\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs).encode()


def imported(project, data, fmt="jsonl", filename="prefs.jsonl"):
    return preferences_import(project=project, data=data, fmt=fmt, filename=filename)


def triples(project) -> list[tuple]:
    """(prompt text or messages, chosen text, rejected text, strength) in task order."""
    out = []
    for a in Annotation.objects.filter(task__project=project).order_by("task_id"):
        prompt = a.task.prompt
        out.append((prompt.messages or prompt.text, a.chosen.text, a.rejected.text, a.strength))
    return out


@pytest.mark.django_db
class TestForms:
    def test_explicit_prompt(self):
        project = ProjectFactory()
        result = imported(project, jsonl({"prompt": "2+2?", "chosen": "4", "rejected": "5"}))
        assert (result.preferences, result.prompts) == (1, 1)
        assert triples(project) == [("2+2?", "4", "5", None)]
        task = Task.objects.get()
        assert task.kind == Kind.PAIRWISE and task.is_complete and task.annotation_count == 1
        a = Annotation.objects.get()
        assert a.labeler_kind == "imported" and not a.is_simulated
        assert a.labeler.username == result.labeler == f"imported-{project.id}-prefs.jsonl"
        assert a.labeler.groups.filter(name=IMPORTED_GROUP).exists()
        assert not a.labeler.has_usable_password()

    def test_conversational_explicit_prompt(self):
        project = ProjectFactory()
        line = {
            "prompt": [{"role": "system", "content": "Be brief."},
                       {"role": "user", "content": "Sky colour?"}],
            "chosen": [{"role": "assistant", "content": "Blue."}],
            "rejected": [{"role": "assistant", "content": "Green."}],
        }  # fmt: skip
        imported(project, jsonl(line))
        assert triples(project) == [(line["prompt"], "Blue.", "Green.", None)]

    def test_implicit_prompt_strings_split_where_they_part(self):
        project = ProjectFactory()
        line = {
            "chosen": "\n\nHuman: Sky colour?\n\nAssistant: Blue.",
            "rejected": "\n\nHuman: Sky colour?\n\nAssistant: Green.",
        }
        imported(project, jsonl(line))
        # As TRL's extract_prompt: the space before the parting point goes with the replies.
        assert triples(project) == [
            ("\n\nHuman: Sky colour?\n\nAssistant:", " Blue.", " Green.", None)
        ]

    def test_implicit_prompt_conversations(self):
        project = ProjectFactory()
        user = {"role": "user", "content": "Sky colour?"}
        line = {
            "chosen": [user, {"role": "assistant", "content": "Blue."}],
            "rejected": [user, {"role": "assistant", "content": "Green."}],
        }
        imported(project, jsonl(line))
        assert triples(project) == [([user], "Blue.", "Green.", None)]

    def test_rated_responses_give_every_pair_with_different_scores(self):
        project = ProjectFactory()
        line = {
            "instruction": "Name a colour.",
            "completions": [
                {"response": "Red", "overall_score": 7.5},
                {"response": "Blue", "overall_score": 9},
                {"response": "Rock", "overall_score": 2},
                {"response": "Teal", "overall_score": 7.5},  # ties Red: no pair between them
            ],
        }
        result = imported(project, jsonl(line))
        assert (result.preferences, result.prompts) == (5, 1)
        assert {t[1:3] for t in triples(project)} == {
            ("Blue", "Red"),
            ("Red", "Rock"),
            ("Blue", "Rock"),
            ("Blue", "Teal"),
            ("Teal", "Rock"),
        }
        scores = dict(Completion.objects.values_list("text", "meta"))
        assert scores["Red"] == {"score": 7.5} and scores["Rock"] == {"score": 2.0}
        # One prompt, its four responses stored once each.
        assert Completion.objects.count() == 4

    def test_margin_split_and_round_are_kept(self):
        project = ProjectFactory()
        data = jsonl(
            {"prompt": "p", "chosen": "a", "rejected": "b", "margin": 2.0, "split": "eval",
             "round": 3},
            {"prompt": "q", "chosen": "a", "rejected": "b", "margin": 0.7},
        )  # fmt: skip
        imported(project, data)
        first, second = Task.objects.order_by("id")
        assert (first.prompt.split, first.round, first.annotations.get().strength) == (
            "eval", 3, 2,
        )  # fmt: skip
        # A margin that is no strength (1, 2, 3) is kept with the task, not invented.
        assert second.annotations.get().strength is None and second.meta["margin"] == 0.7

    def test_parquet_in_every_form(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        project = ProjectFactory()
        table = pa.Table.from_pylist(
            [
                {"prompt": "p1", "chosen": "a", "rejected": "b"},
                {"prompt": "p2", "chosen": "c", "rejected": "d"},
            ]
        )
        sink = io.BytesIO()
        pq.write_table(table, sink)
        result = imported(project, sink.getvalue(), fmt="parquet", filename="hh.parquet")
        assert result.preferences == 2
        assert [t[:3] for t in triples(project)] == [("p1", "a", "b"), ("p2", "c", "d")]

    def test_each_import_has_its_own_account(self):
        project = ProjectFactory()
        one = imported(project, jsonl({"prompt": "p", "chosen": "a", "rejected": "b"}))
        two = imported(project, jsonl({"prompt": "p", "chosen": "a", "rejected": "b"}))
        assert one.labeler != two.labeler and two.labeler.startswith(one.labeler)


@pytest.mark.django_db
class TestBadRows:
    def errors(self, data, fmt="jsonl"):
        project = ProjectFactory()
        with pytest.raises(ImportFailed) as caught:
            imported(project, data, fmt=fmt)
        assert not Task.objects.exists() and not Annotation.objects.exists()
        return [(e["line"], e["error"]) for e in caught.value.errors]

    def test_every_bad_line_is_reported_and_nothing_is_written(self):
        good = {"prompt": "p", "chosen": "a", "rejected": "b"}
        errors = self.errors(
            jsonl(
                good,
                {"prompt": "p", "chosen": "a"},
                "{not json",
                {"prompt": "p", "chosen": "a", "rejected": "a"},
                {"chosen": "abc", "rejected": "xyz"},
                {"prompt": [{"role": "wizard", "content": "x"}], "chosen": "a", "rejected": "b"},
                {"prompt": "p", "chosen": [{"role": "user", "content": "a"}], "rejected": "b"},
                {"prompt": "p", "responses": [{"text": "a", "score": 1}, {"text": "b"}]},
                {
                    "prompt": "p",
                    "responses": [{"text": "a", "score": 1}, {"text": "b", "score": 1}],
                },  # noqa: E501
                {"text": "what is this"},
                {**good, "split": "dev"},
                [1, 2],
            )
        )
        assert [line for line, _ in errors] == list(range(2, 13))
        messages = dict(errors)
        assert "both chosen and rejected" in messages[2]
        assert "invalid JSON" in messages[3]
        assert "same text" in messages[4]
        assert "share no prompt" in messages[5]
        assert "role must be one of" in messages[6]
        assert "one assistant message" in messages[7]
        assert "has no score" in messages[8]
        assert "same score" in messages[9]
        assert "not a preference" in messages[10]
        assert "split must be one of" in messages[11]
        assert "JSON object" in messages[12]

    def test_an_empty_file_is_refused(self):
        assert self.errors(b"\n\n") == [(0, "the file has no preferences to import")]

    def test_a_bad_parquet_row_is_named_by_its_row_number(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = io.BytesIO()
        rows = [{"prompt": "p", "chosen": "a", "rejected": "b"}] * 2
        rows.append({"prompt": "p", "chosen": "a", "rejected": ""})
        pq.write_table(pa.Table.from_pylist(rows), sink)
        assert self.errors(sink.getvalue(), fmt="parquet") == [(3, "rejected is empty")]

    def test_a_file_that_is_no_parquet_is_refused(self):
        ((line, error),) = self.errors(b"nope", fmt="parquet")
        assert line == 0 and error.startswith("not a Parquet file")


@pytest.mark.django_db
class TestTellingApart:
    def test_the_source_filter_and_raw_export_tell_imported_answers_apart(self):
        project = ProjectFactory()
        (person,) = labelers(1)
        task, (x, _) = task_over(prompt_for(project, "mine"), ["x", "y"], kind=Kind.PAIRWISE)
        pick(task, person, x)
        imported(project, jsonl({"prompt": "theirs", "chosen": "a", "rejected": "b"}))
        every, _ = run_export(project)
        humans, _ = run_export(project, source="human")
        only_imported, _ = run_export(project, source="imported")
        assert [r["prompt"] for r in every] == ["mine", "theirs"]
        assert [r["prompt"] for r in humans] == ["mine"]
        assert [r["prompt"] for r in only_imported] == ["theirs"]
        raw, _ = run_export(project, schema="raw")
        assert [r["labeler_kind"] for r in raw] == ["human", "imported"]

    def test_the_labelers_statistics_mark_the_import_account(self):
        from annotator.quality import stats

        project = ProjectFactory()
        (person,) = labelers(1)
        task, (x, _) = task_over(prompt_for(project, "mine"), ["x", "y"], kind=Kind.PAIRWISE)
        pick(task, person, x)
        result = imported(project, jsonl({"prompt": "theirs", "chosen": "a", "rejected": "b"}))
        by = {s.username: s for s in stats.labeler_stats(project)}
        assert by[result.labeler].imported and not by[result.labeler].simulated
        assert not by[person.username].imported


@pytest.mark.django_db
def test_the_api_imports_and_answers_bad_lines_with_their_numbers(project, alice, bob, api_as):
    url = f"/api/v1/projects/{project.id}/import/preferences/?filename=hh.jsonl"
    good = jsonl({"prompt": "p", "chosen": "a", "rejected": "b"})
    response = api_as(alice).post(url, good, content_type="application/jsonl")
    assert response.status_code == 201, response.content
    assert response.json() == {
        "preferences": 1, "prompts": 1, "labeler": f"imported-{project.id}-hh.jsonl",
    }  # fmt: skip
    bad = api_as(alice).post(url, jsonl({"prompt": "p"}), content_type="application/jsonl")
    assert bad.status_code == 400 and bad.json()["errors"][0]["line"] == 1
    assert api_as(bob).post(url, good, content_type="application/jsonl").status_code == 403


@pytest.mark.django_db
def test_the_page_imports_a_file_and_shows_bad_lines(client, project, alice):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(alice)
    url = f"/projects/{project.id}/import/preferences/"
    bad = SimpleUploadedFile("hh.jsonl", jsonl({"prompt": "p", "chosen": "<b>x</b>"}))
    page = client.post(url, {"pref-file": bad, "pref-format": "auto"})
    assert page.status_code == 200
    body = page.content.decode()
    assert "Nothing was imported" in body and "both chosen and rejected" in body
    good = SimpleUploadedFile("hh.jsonl", jsonl({"prompt": "p", "chosen": "a", "rejected": "b"}))
    response = client.post(url, {"pref-file": good, "pref-format": "auto"}, follow=True)
    assert "Imported 1 preference(s)" in response.content.decode()
    assert Annotation.objects.filter(labeler_kind="imported").count() == 1


# --- Round trip -----------------------------------------------------------------------------

IDS = ("task_id", "prompt_id", "chosen_id", "rejected_id")


def _renumbered(data: bytes) -> bytes:
    """The export with its database ids replaced by their order of first appearance, column by
    column, and each row's labeler list by its length: what a new project cannot keep."""
    seen: dict = {}
    out = []
    for line in data.splitlines():
        row = json.loads(line)
        for name in IDS:
            row[name] = seen.setdefault((name, row[name]), len([k for k in seen if k[0] == name]))
        row["labelers"] = len(row["labelers"])
        row["group"] = re.sub(r"\d+", str(row["task_id"]), row["group"])
        out.append(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(out).encode()


@pytest.mark.django_db
def test_a_preference_export_imported_into_a_new_project_exports_the_same_bytes():
    from annotator.export import ExportParams, export_start

    source = ProjectFactory()
    people = labelers(3)
    chat = [{"role": "user", "content": "Hi <there> \u00e9"}]
    rows = [
        (prompt_for(source, 'plain "quoted"\nline'), ["good", "bad"], 0, None, None),
        (prompt_for(source, messages=chat), ["hello", "go away"], 1, 2, None),
        (prompt_for(source, "eval one", split="eval"), ["yes", "no"], 2, 3, 4),
        (prompt_for(source, "tab\there"), ["=1+1", "-2"], 0, 1, 1),
    ]
    for prompt, texts, who, strength, round_ in rows:
        task, (first, _) = task_over(prompt, texts, kind=Kind.PAIRWISE, round_=round_)
        pick(task, people[who], first, strength=strength)

    def export(project) -> bytes:
        job = export_start(project=project, params=ExportParams())
        return b"".join(job.chunks())

    original = export(source)
    assert len(original.splitlines()) == 4
    target = ProjectFactory()
    imported(target, original, filename="project-export.jsonl")
    again = export(target)
    assert _renumbered(again) == _renumbered(original)
    # What a new project must change is the ids alone: every other byte is the same.
    strip = [
        {k: v for k, v in json.loads(line).items() if k not in (*IDS, "labelers", "group")}
        for line in original.splitlines()
    ]
    assert strip == [
        {k: v for k, v in json.loads(line).items() if k not in (*IDS, "labelers", "group")}
        for line in again.splitlines()
    ]


def _every_kind_of_row(project) -> None:
    """Preferences of every origin: single and several answers (strengths, a dissent), a chat,
    an eval prompt with a round, a ranking, a Likert gap and an edit's revision."""
    people = labelers(3)
    chat = [{"role": "user", "content": "Hi <there> \u00e9"}, {"role": "assistant", "content": "?"}]
    rows = [
        (prompt_for(project, 'plain "quoted"\nline'), ["good", "bad"], [(0, 0, None)], None),
        (prompt_for(project, messages=chat), ["hello", "go away"], [(1, 0, 2)], None),
        (prompt_for(project, "eval one", split="eval"), ["yes", "no"], [(2, 0, 3)], 4),
        # Three answers: two for the first response (strengths 1 and 2), one against.
        (prompt_for(project, "tab\there"), ["=1+1", "-2"], [(0, 0, 1), (1, 0, 2), (2, 1, None)],
         None),
    ]  # fmt: skip
    for prompt, texts, answers, round_ in rows:
        task, completions = task_over(prompt, texts, kind=Kind.PAIRWISE, round_=round_)
        for who, index, strength in answers:
            pick(task, people[who], completions[index], strength=strength)
    ranked, (a, b, c) = task_over(prompt_for(project, "rank"), ["x", "y", "z"], kind=Kind.RANKING)
    rank(ranked, people[0], [b, a, c])
    rank(ranked, people[1], [b, c, a])
    prompt = prompt_for(project, "rate these")
    for text, score in (("fine", 6), ("poor", 2)):
        task, _ = task_over(prompt, [text], kind=Kind.LIKERT)
        rate(task, people[0], score)
    edit, (original,) = task_over(prompt_for(project, "edit me"), ["Teh end."], kind=Kind.EDIT)
    revision = Completion.objects.create(prompt=edit.prompt, text="The end.")
    Annotation.objects.create(
        task=edit, labeler=people[2], kind=Kind.EDIT, verdict=Annotation.Verdict.PREFERRED,
        chosen=revision, rejected=original, text="The end.", critique="A typo.",
    )  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("aggregate", ["majority", "all"])
def test_an_export_without_ids_round_trips_byte_for_byte(fmt, aggregate):
    from annotator.export import ExportParams, export_start

    params = ExportParams(ids=False, aggregate=aggregate, format=fmt)

    def export(project) -> bytes:
        return b"".join(export_start(project=project, params=params).chunks())

    source = ProjectFactory()
    _every_kind_of_row(source)
    original = export(source)
    target = ProjectFactory()
    result = imported(target, original, fmt=fmt, filename=f"export.{fmt}")
    assert export(target) == original
    # Every row came back: one task per row, each answered by the import's account.
    rows = run_export(source, ids=False, aggregate=aggregate)[0]
    assert result.preferences == len(rows) == (14 if aggregate == "all" else 8)
    assert set(rows[0]) == {
        "prompt", "chosen", "rejected", "margin", "votes", "agreement", "round", "split",
        "source",
    }  # fmt: skip
    assert {r["source"] for r in rows} == {"pairwise", "ranking", "likert", "edit"}
    again = run_export(target, aggregate=aggregate)[0]
    assert {r["labelers"][0] for r in again} == {
        Annotation.objects.filter(task__project=target).values_list("labeler_id", flat=True)[0]
    }


@pytest.mark.django_db
def test_kept_numbers_are_filtered_like_counted_ones():
    project = ProjectFactory()
    data = jsonl(
        {"prompt": "p", "chosen": "a", "rejected": "b", "votes": 3, "agreement": 0.67},
        {"prompt": "q", "chosen": "a", "rejected": "b", "votes": 1, "agreement": 1.0},
    )  # fmt: skip
    imported(project, data)
    rows, dropped = run_export(project, min_votes=2)
    assert [(r["prompt"], r["votes"]) for r in rows] == [("p", 3)]
    rows, dropped = run_export(project, min_agreement=0.7)
    assert [r["prompt"] for r in rows] == ["q"] and dropped


@pytest.mark.django_db
def test_bad_kept_numbers_are_named_with_their_lines():
    project = ProjectFactory()
    data = jsonl(
        {"prompt": "p", "chosen": "a", "rejected": "b", "votes": 0},
        {"prompt": "p", "chosen": "a", "rejected": "b", "agreement": 1.5},
        {"prompt": "p", "chosen": "a", "rejected": "b", "source": "guess"},
        {"prompt": "p", "chosen": "a", "rejected": "b", "votes": "3"},
    )
    with pytest.raises(ImportFailed) as failed:
        imported(project, data)
    assert [(e["line"], e["field"]) for e in failed.value.errors] == [
        (1, "votes"), (2, "agreement"), (3, "source"), (4, "votes"),
    ]  # fmt: skip
    assert (
        "source must be one of pairwise, ranking, likert, edit" in failed.value.errors[2]["error"]
    )
    assert not Task.objects.filter(project=project).exists()
