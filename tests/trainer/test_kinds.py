"""trainer/kinds.py is the one table of job kinds: every list of kinds agrees with it."""

import dataclasses
import importlib

from django.conf import settings
from django.db.migrations.loader import MigrationLoader

from trainer import api, configs, job_child, runner, services, snapshots, views
from trainer.kinds import (
    COMPLETIONS,
    JOB_KINDS,
    JUDGMENTS,
    KINDS,
    LABELS,
    LAUNCHABLE,
    LOOP_ALGORITHMS,
    OUTCOMES,
    PROMPTS,
    TASKS,
    choices,
)
from trainer.loop import services as loop_services
from trainer.loop import views as loop_views
from trainer.loop.api import LoopPolicySerializer
from trainer.models import LoopPolicy, TrainingJob

NAMES = [k.name for k in JOB_KINDS]
LOOP_NAMES = [k.name for k in LOOP_ALGORITHMS]


def test_it_gives_the_models_choices_from_the_table():
    assert TrainingJob.Kind.choices == choices(JOB_KINDS)
    assert LoopPolicy.Algorithm.choices == choices(LOOP_ALGORITHMS)
    assert TrainingJob.Kind.PPO == "ppo" and TrainingJob.Kind.REWARD.label == "Reward model"


def test_it_has_a_migration_for_every_kind_in_the_table():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    state = loader.project_state(loader.graph.leaf_nodes("trainer")).apps
    job = state.get_model("trainer", "TrainingJob")._meta.get_field("kind")
    loop = state.get_model("trainer", "LoopPolicy")._meta.get_field("algorithm")
    assert [value for value, _ in job.choices] == NAMES
    assert [value for value, _ in loop.choices] == LOOP_NAMES


def test_it_runs_and_configures_every_kind_from_the_table():
    assert job_child.ALGORITHMS == {k.name: (k.module, k.config_class) for k in JOB_KINDS}
    for kind in JOB_KINDS:
        cls = configs.config_class(kind.name)
        assert dataclasses.is_dataclass(cls)
        assert cls is getattr(importlib.import_module(kind.module), kind.config_class)
        assert callable(importlib.import_module(kind.module).train)


def test_it_offers_every_kind_in_the_launch_forms_and_the_api():
    # All but judging, which starts from its judge (docs/ai-judges.md).
    assert views._launchable_kinds() == choices(LAUNCHABLE)
    assert [k.name for k in LAUNCHABLE] == [k.name for k in JOB_KINDS if k.data != TASKS]
    assert list(api.JobIn().fields["kind"].choices) == [k.name for k in LAUNCHABLE]
    algorithm = loop_views.LoopSettingsForm.base_fields["algorithm"]
    assert [value for value, _ in algorithm.choices] == LOOP_NAMES
    assert list(LoopPolicySerializer().fields["algorithm"].choices) == LOOP_NAMES


def test_it_derives_snapshots_registry_and_loop_rules_from_the_table():
    assert snapshots.LABEL_KINDS == {k.name for k in JOB_KINDS if k.data == LABELS}
    assert snapshots.PROMPT_KINDS == {k.name for k in JOB_KINDS if k.data == PROMPTS}
    assert snapshots.TASK_KINDS == {k.name for k in JOB_KINDS if k.data == TASKS}
    assert snapshots.OUTCOME_KINDS == {k.name for k in JOB_KINDS if k.data == OUTCOMES}
    assert (
        snapshots.LABEL_KINDS
        | snapshots.PROMPT_KINDS
        | snapshots.TASK_KINDS
        | snapshots.OUTCOME_KINDS
        == set(NAMES)
    )
    assert snapshots.TRAINING_KINDS == set(NAMES) - {"generate", "judge"}
    assert set(services.OUTPUT_ROLES) | {COMPLETIONS, JUDGMENTS} == {k.makes for k in JOB_KINDS}
    assert services.OUTPUT_ROLES[KINDS["reward"].makes] == "reward"
    assert services.OUTPUT_ROLES[KINDS["dpo"].makes] == "policy"
    assert services.OUTPUT_ROLES[KINDS["prompt_reward"].makes] == "prompt_selector"
    assert runner.DISTRIBUTED_KINDS == {k.name for k in JOB_KINDS if k.distributed}
    assert loop_services.KL_ALGORITHMS == {"ppo", "rloo", "grpo"}
    assert [k.name for k in LOOP_ALGORITHMS if not k.needs_reward_model] == ["dpo"]


def test_it_gives_every_kind_a_time_limit_from_the_table():
    assert set(settings.PREFLOOP_JOB_TIME_LIMITS) == set(NAMES)
    assert all(k.hours > 0 for k in JOB_KINDS)
