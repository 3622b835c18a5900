"""The generate job under several prompt strategies (docs/prompt-optimisation.md)."""

import json

import pytest

from trainer.algorithms.generate import COMPLETIONS_FILENAME, GenerateConfig
from trainer.algorithms.strategy_prompts import expand_rows, render_prompt

COT = {
    "system_prompt": "You are a careful tutor.",
    "instruction": "Q: {query}\nThink step by step.",
}
PLAIN = {"system_prompt": "", "instruction": ""}


def test_a_strategy_wraps_a_plain_prompt_and_a_chat_transcript():
    assert render_prompt("What is 2+2?", COT) == (
        "You are a careful tutor.\n\nQ: What is 2+2?\nThink step by step."
    )
    assert render_prompt("What is 2+2?", {"instruction": "Answer briefly."}) == (
        "Answer briefly.\nWhat is 2+2?"
    )
    assert render_prompt("What is 2+2?", PLAIN) == "What is 2+2?"
    chat = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "What is 2+2?"},
    ]
    out = render_prompt(chat, COT)
    assert out[0] == {"role": "system", "content": "You are a careful tutor.\n\nBe kind."}
    assert out[1]["content"] == "hi"  # only the last user message is the query
    assert out[3]["content"] == "Q: What is 2+2?\nThink step by step."
    assert chat[3]["content"] == "What is 2+2?"  # the row's own prompt is left alone
    assert render_prompt([{"role": "user", "content": "x"}], COT)[0]["role"] == "system"


def test_rows_expand_to_one_per_strategy_and_refuse_a_missing_template():
    rows = [{"prompt_id": 1, "prompt": "q1", "strategies": {"cot": COT, "plain": PLAIN}}]
    out = expand_rows(rows, ["cot", "plain"])
    assert [(r["strategy"], r["query"], r["prompt_id"]) for r in out] == [
        ("cot", "q1", 1),
        ("plain", "q1", 1),
    ]
    assert "strategies" not in out[0] and "Think step by step" in out[0]["prompt"]
    with pytest.raises(ValueError, match="no template for the strategy concise"):
        expand_rows(rows, ["cot", "concise"])


def test_the_config_checks_its_strategy_names():
    with pytest.raises(ValueError, match="list of strategy names"):
        GenerateConfig(model_name_or_path="m", strategies="cot")
    with pytest.raises(ValueError, match="twice"):
        GenerateConfig(model_name_or_path="m", strategies=["cot", "cot"])
    with pytest.raises(ValueError, match="two or more strategies"):
        GenerateConfig(model_name_or_path="m", strategies=["cot"], compare_strategies=True)


@pytest.mark.django_db
def test_a_generate_job_with_an_unknown_strategy_is_refused(project):
    from annotator.models import PromptStrategy
    from trainer import services
    from trainer.exceptions import JobError
    from trainer.models import TrainingJob

    PromptStrategy.objects.create(project=project, name="cot", instruction="{query} Think.")
    config = {"model_name_or_path": "m", "strategies": ["cot", "persona"]}
    with pytest.raises(JobError, match=r"Unknown prompt strategy 'persona'.*strategies are cot"):
        services.job_create(project=project, kind="generate", config=config)
    with pytest.raises(JobError, match="list of strategy names"):
        services.job_create(project=project, kind="generate", config={**config, "strategies": 3})
    assert not TrainingJob.objects.exists()


@pytest.mark.django_db
def test_the_api_refuses_an_unknown_strategy_with_its_name(project, alice):
    from tests.conftest import api_client_for

    response = api_client_for(alice).post(
        "/api/v1/jobs/",
        {
            "project": project.id,
            "kind": "generate",
            "config": {"model_name_or_path": "m", "strategies": ["nope"]},
        },
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "Unknown prompt strategy 'nope'" in json.dumps(response.json())


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from trainer.algorithms.tiny import build_tiny_policy

    return str(build_tiny_policy(tmp_path_factory.mktemp("tiny") / "policy", pretrain_steps=0))


@pytest.mark.slow
@pytest.mark.django_db
def test_a_generate_job_samples_each_prompt_under_each_strategy(project, tiny_model, tmp_path):
    from annotator.models import Annotation, Completion, Kind, Prompt, PromptStrategy, Task
    from annotator.strategies.outcomes import outcome_table
    from trainer import runner
    from trainer.configs import validate_config
    from trainer.models import ModelVersion, TrainingJob
    from trainer.services import model_dir

    PromptStrategy.objects.create(project=project, name="cot", **COT)
    PromptStrategy.objects.create(
        project=project, name="terse", system_prompt="Answer in one word."
    )
    policy = ModelVersion.objects.create(project=project, name="p", role="policy", path=tiny_model)
    prompts = [Prompt.objects.create(project=project, text=f"What is {i} + {i}?") for i in (1, 2)]
    job = TrainingJob.objects.create(
        project=project,
        kind="generate",
        output_dir=str(tmp_path / "generate"),
        input_model=policy,
        config=validate_config(
            kind="generate",
            config={
                "model_name_or_path": tiny_model,
                "max_new_tokens": 5,
                "num_samples": 2,
                "device": "cpu",
                "strategies": ["terse", "cot"],
                "compare_strategies": True,
            },
            input_model=policy,
        ),
    )
    status = runner.job_run(job_id=job.id, worker="test")
    job.refresh_from_db()
    assert status == TrainingJob.Status.SUCCEEDED, job.error + job.log_tail
    assert job.snapshot_rows == 2  # prompts; each is sampled under both strategies

    out = [json.loads(line) for line in (model_dir(job) / COMPLETIONS_FILENAME).open()]
    assert len(out) == 2 * 2 * 2
    for row in out:
        assert row["query"] in {p.text for p in prompts}
        if row["strategy"] == "cot":
            assert row["prompt"] == (
                f"You are a careful tutor.\n\nQ: {row['query']}\nThink step by step."
            )
        else:
            assert row["prompt"] == f"Answer in one word.\n\n{row['query']}"

    generated = Completion.objects.filter(meta__job=job.id)
    assert generated.count() == 8
    counts = {
        (p.id, s): generated.filter(prompt=p, meta__strategy=s).count()
        for p in prompts
        for s in ("cot", "terse")
    }
    assert set(counts.values()) == {2}

    # One pairwise task per prompt between the strategies' first samples.
    tasks = Task.objects.filter(project=project).order_by("prompt_id")
    assert [t.prompt_id for t in tasks] == [p.id for p in prompts]
    for task in tasks:
        shown = list(task.completions.all())
        assert {c.meta["strategy"] for c in shown} == {"cot", "terse"}
        assert {c.meta["sample_index"] for c in shown} == {0}
        assert task.meta == {"strategies": ["cot", "terse"], "job": job.id}

    # Once labeled, the outcome table's pairwise source counts them.
    task = tasks[0]
    cot = task.completions.get(meta__strategy="cot")
    terse = task.completions.get(meta__strategy="terse")
    Annotation.objects.create(
        task=task, labeler=project.created_by, kind=Kind.PAIRWISE, verdict="preferred",
        chosen=cot, rejected=terse,
    )  # fmt: skip
    table = outcome_table(project=project, source="pairwise")
    cells = {(row.prompt_id, s): (c.value, c.n) for row in table.rows for s, c in row.cells.items()}
    assert cells == {(prompts[0].id, "cot"): (1.0, 1), (prompts[0].id, "terse"): (0.0, 1)}
