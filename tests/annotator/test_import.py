import json

import pytest
from django.test import override_settings

from annotator.exceptions import ImportFailed
from annotator.importing import project_import
from annotator.models import Completion, Kind, Project, Prompt, Task
from tests.factories import ProjectFactory


def jsonl(*objs) -> bytes:
    return "\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs).encode()


def task_shapes(project):
    return sorted(
        (t.kind, t.task_completions.count()) for t in Task.objects.filter(project=project)
    )


@pytest.mark.django_db
class TestCutting:
    def test_a_pairwise_line_with_two_completions_is_one_task(self):
        project = ProjectFactory(kind=Kind.PAIRWISE, overlap=3)
        data = jsonl({"prompt": "p", "completions": ["x", "y"], "meta": {"src": "t"}})
        assert project_import(project=project, data=data, fmt="jsonl") == 1
        task = Task.objects.get()
        assert task.overlap == 3 and task.prompt.meta == {"src": "t"}
        texts = task.task_completions.order_by("position").values_list("completion__text")
        assert [t for (t,) in texts] == ["x", "y"]

    def test_a_wide_pairwise_line_becomes_every_pair(self):
        project = ProjectFactory(kind=Kind.PAIRWISE)
        data = jsonl({"prompt": "p", "completions": ["a", "b", "c", "d"]})
        assert project_import(project=project, data=data, fmt="jsonl") == 6  # 4 * 3 / 2
        assert Completion.objects.count() == 4
        pairs = {
            tuple(t.completions.values_list("text", flat=True).order_by("text"))
            for t in Task.objects.all()
        }
        assert pairs == {("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")}

    def test_a_wide_pairwise_line_can_become_a_ranking_task(self):
        project = ProjectFactory(kind=Kind.PAIRWISE, wide_lines=Project.WideLines.RANKING)
        data = jsonl(
            {"prompt": "p", "completions": ["a", "b", "c"]},
            {"prompt": "q", "completions": ["a", "b"]},
        )
        project_import(project=project, data=data, fmt="jsonl")
        assert task_shapes(project) == [(Kind.PAIRWISE, 2), (Kind.RANKING, 3)]

    def test_likert_makes_one_task_per_completion(self):
        project = ProjectFactory(kind=Kind.LIKERT)
        data = jsonl({"prompt": "p", "completions": ["a", "b", "c"]})
        assert project_import(project=project, data=data, fmt="jsonl") == 3
        assert task_shapes(project) == [(Kind.LIKERT, 1)] * 3

    def test_ranking_makes_one_task_of_k(self):
        project = ProjectFactory(kind=Kind.RANKING)
        data = jsonl({"prompt": "p", "completions": list("abcdefghi")})
        project_import(project=project, data=data, fmt="jsonl")
        assert task_shapes(project) == [(Kind.RANKING, 9)]

    def test_it_keeps_chat_transcripts_and_split(self):
        project = ProjectFactory()
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ]
        data = jsonl({"prompt": messages, "completions": ["a", "b"], "split": "eval"})
        project_import(project=project, data=data, fmt="jsonl")
        prompt = Prompt.objects.get()
        assert prompt.messages == messages and prompt.split == "eval" and prompt.is_chat


@pytest.mark.django_db
class TestValidation:
    def test_it_reports_every_bad_line_and_imports_nothing(self):
        project = ProjectFactory(kind=Kind.PAIRWISE)
        data = jsonl(
            {"prompt": "good", "completions": ["a", "b"]},
            "{not json",
            {"prompt": "", "completions": ["a", "b"]},
            {"prompt": "one", "completions": ["a"]},
            {"prompt": [{"role": "robot", "content": "x"}], "completions": ["a", "b"]},
            {"prompt": "p", "completions": ["a", 3]},
            {"prompt": "p", "completions": ["a", "b"], "url": "http://example.com/x"},
            {"prompt": "p", "completions": ["a", "b"], "split": "dev"},
            "[1, 2]",
        )
        with pytest.raises(ImportFailed) as err:
            project_import(project=project, data=data, fmt="jsonl")
        errors = {e["line"]: e["error"] for e in err.value.errors}
        assert sorted(errors) == [2, 3, 4, 5, 6, 7, 8, 9]
        assert "invalid JSON" in errors[2]
        assert "prompt is empty" in errors[3]
        assert "at least 2 completions" in errors[4]
        assert "role" in errors[5]
        assert "completions[1]" in errors[6]
        assert "unknown key(s) url" in errors[7]
        assert "split" in errors[8]
        assert "object" in errors[9]
        assert not Prompt.objects.exists() and not Task.objects.exists()

    def test_it_refuses_a_file_over_the_size_limit(self):
        project = ProjectFactory()
        data = jsonl({"prompt": "p" * 200, "completions": ["a", "b"]})
        with override_settings(PREFLOOP_IMPORT_MAX_BYTES=100):
            with pytest.raises(ImportFailed) as err:
                project_import(project=project, data=data, fmt="jsonl")
        assert "limit" in err.value.errors[0]["error"]

    def test_it_refuses_non_utf8(self):
        with pytest.raises(ImportFailed) as err:
            project_import(project=ProjectFactory(), data=b"\xff\xfe{", fmt="jsonl")
        assert "UTF-8" in err.value.errors[0]["error"]

    def test_it_refuses_an_empty_file(self):
        with pytest.raises(ImportFailed):
            project_import(project=ProjectFactory(), data=b"\n\n", fmt="jsonl")

    def test_it_refuses_more_than_nine_completions(self):
        data = jsonl({"prompt": "p", "completions": [str(i) for i in range(10)]})
        with pytest.raises(ImportFailed) as err:
            project_import(project=ProjectFactory(kind=Kind.RANKING), data=data, fmt="jsonl")
        assert "at most 9" in err.value.errors[0]["error"]


@pytest.mark.django_db
class TestCsv:
    def test_it_imports_csv_with_quoted_newlines_and_meta(self):
        project = ProjectFactory(kind=Kind.PAIRWISE)
        data = (
            b"prompt,completion_1,completion_2,split,meta.source\n"
            b'"Write a haiku","line one\nline two",short,eval,forum\n'
            b"Plain,x,y,,\n"
        )
        assert project_import(project=project, data=data, fmt="csv") == 2
        prompt = Prompt.objects.get(text="Write a haiku")
        assert prompt.split == "eval" and prompt.meta == {"source": "forum"}
        assert prompt.completions.filter(text="line one\nline two").exists()

    def test_it_reads_chat_prompts_from_prompt_messages(self):
        project = ProjectFactory(kind=Kind.PAIRWISE)
        messages = json.dumps([{"role": "user", "content": "Hi, there"}]).replace('"', '""')
        data = f'prompt_messages,completion_1,completion_2\n"{messages}",a,b\n'.encode()
        project_import(project=project, data=data, fmt="csv")
        assert Prompt.objects.get().messages == [{"role": "user", "content": "Hi, there"}]

    def test_it_reports_bad_csv_rows_by_line(self):
        project = ProjectFactory(kind=Kind.PAIRWISE)
        data = b"prompt,completion_1,completion_2\nok,a,b\n,a,b\nonly,a,\n"
        with pytest.raises(ImportFailed) as err:
            project_import(project=project, data=data, fmt="csv")
        assert [e["line"] for e in err.value.errors] == [3, 4]
        assert not Task.objects.exists()

    def test_it_needs_completion_columns(self):
        with pytest.raises(ImportFailed) as err:
            project_import(project=ProjectFactory(), data=b"prompt,answer\nx,y\n", fmt="csv")
        assert "completion_1" in err.value.errors[0]["error"]


@pytest.mark.django_db
def test_it_stores_a_gold_answer_on_the_lines_tasks():
    project = ProjectFactory(kind=Kind.PAIRWISE)
    data = jsonl({"prompt": "p", "completions": ["a", "b"], "gold": {"preferred": 0}})
    project_import(project=project, data=data, fmt="jsonl")
    assert Task.objects.get().gold == {"preferred": 0}
    with pytest.raises(ImportFailed) as err:
        project_import(
            project=project,
            data=jsonl({"prompt": "p", "completions": ["a", "b"], "gold": 1}),
            fmt="jsonl",
        )
    assert "gold" in err.value.errors[0]["error"]
