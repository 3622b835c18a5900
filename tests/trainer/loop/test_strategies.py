"""The loop's generate step under prompt strategies (docs/prompt-optimisation.md)."""

import json

import pytest

from annotator.models import PromptStrategy, Task
from tests.trainer.loop.test_services import advance, current, label, no_broker, policy  # noqa: F401
from trainer import services
from trainer.loop import services as loop
from trainer.models import TrainingJob

STRATEGIES = ["plain", "cot"]


def finish_under_strategies(job: TrainingJob):
    """A generate job's output as the algorithm writes it with strategies: per prompt and
    strategy, two samples."""
    job.refresh_from_db()
    services.job_claim(job_id=job.id, worker="w")
    out = services.model_dir(job)
    out.mkdir(parents=True, exist_ok=True)
    rows = [
        {"prompt_id": pid, "completion": f"{job.input_model.name} {s} {pid} {k}",
         "sample_index": k, "strategy": s}
        for pid in job.dataset["prompt_ids"]
        for s in job.config["strategies"]
        for k in (0, 1)
    ]  # fmt: skip
    (out / "completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    services.job_finish(job_id=job.id, worker="w", status=TrainingJob.Status.SUCCEEDED)


def test_the_loop_compares_policies_under_the_same_strategy(policy):  # noqa: F811
    project = policy.project
    PromptStrategy.objects.create(project=project, name="plain")
    PromptStrategy.objects.create(project=project, name="cot", instruction="{query} Think.")
    assert not loop.loop_configs_check(
        base_policy=policy.base_policy,
        algorithm=None,
        data={"generate_config": {"strategies": STRATEGIES}},
    )
    policy.generate_config = {"strategies": STRATEGIES}
    policy.save()

    label(project, 5)
    advance(policy)
    round_ = current(policy)
    for step in ("reward_job", "policy_job"):
        job = getattr(round_, step)
        job.refresh_from_db()
        services.job_claim(job_id=job.id, worker="w")
        services.job_finish(job_id=job.id, worker="w", status=TrainingJob.Status.SUCCEEDED)
        advance(policy)
        round_.refresh_from_db()
    assert round_.status == "generating"
    generate = list(TrainingJob.objects.filter(id__in=round_.generate_jobs.values()))
    assert {tuple(g.config["strategies"]) for g in generate} == {tuple(STRATEGIES)}
    for g in generate:
        finish_under_strategies(g)
    advance(policy)
    round_.refresh_from_db()

    # 5 prompts x 2 strategies, new against previous, each under one strategy.
    assert round_.tasks_created == 10
    tasks = Task.objects.filter(round=1)
    assert tasks.count() == 10
    for task in tasks:
        shown = list(task.completions.all())
        assert {c.meta["strategy"] for c in shown} == {task.meta["loop"]["strategy"]}
        assert {c.meta["sample_index"] for c in shown} == {0}
        assert len({c.model_version_id for c in shown}) == 2
    assert {t.meta["loop"]["strategy"] for t in tasks} == set(STRATEGIES)


@pytest.mark.django_db
def test_the_loop_refuses_an_unknown_strategy(policy):  # noqa: F811
    errors = loop.loop_configs_check(
        base_policy=policy.base_policy,
        algorithm=None,
        data={"generate_config": {"strategies": ["cot"]}},
    )
    assert "Unknown prompt strategy 'cot'" in errors["generate_config"]
