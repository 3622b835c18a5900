"""The one table of job kinds. Everything that lists kinds derives from it: the model's choices
(TrainingJob.Kind), the loop's algorithm choices (LoopPolicy.Algorithm), the launch forms and the
API, the config classes (trainer/configs.py), the training child (trainer/job_child.py), the
snapshots (trainer/snapshots.py) and the registry (which model a finished job makes,
trainer/services.py). Adding a kind is a row here, its module in trainer/algorithms/, and the
migration Django writes for the new choice (docs/architecture.md).

Plain Python, no Django: the training child process reads it too.
"""

from dataclasses import dataclass

# What a kind's snapshot holds.
LABELS = "labels"  # the humans' preferences (and rankings, demonstrations)
PROMPTS = "prompts"  # prompts only: the kind samples its own responses
TASKS = "tasks"  # open pairwise tasks with their responses: an AI judge answers them
OUTCOMES = "outcomes"  # the outcome per (query, prompt strategy) (annotator/strategies)
# What a finished job of the kind leaves.
REWARD_MODEL = "reward"  # a reward model version
POLICY = "policy"  # a policy version
COMPLETIONS = "completions"  # samples, stored as completions of their prompts
JUDGMENTS = "judgments"  # an AI judge's verdicts, stored batch by batch while it runs
PROMPT_SELECTOR = "prompt_selector"  # a per-query prompt-strategy selector (Prompt-OIRL)


@dataclass(frozen=True)
class JobKind:
    name: str  # stored in TrainingJob.kind
    label: str  # shown in forms and lists
    module: str  # trainer/algorithms module with `train(config, rows, output_dir, ...)`
    config_class: str  # its config dataclass
    data: str  # LABELS, PROMPTS, TASKS or OUTCOMES
    makes: str  # REWARD_MODEL, POLICY, COMPLETIONS or PROMPT_SELECTOR
    hours: int  # default wall-clock budget of a job (PREFLOOP_JOB_TIME_LIMIT_<KIND> overrides)
    loop_algorithm: bool = False  # a loop round may train its policy with it
    kl: bool = False  # penalised by KL to a frozen reference policy
    # Trains through transformers' Trainer (TRL's trainers), which shards the batches over the
    # processes of an `accelerate launch` (RAFT: its SFT step, each process sampling a share of
    # the prompts); our own other loops would only run N identical copies, so run as one. A
    # distributed kind's config also takes ACCELERATE_CONFIG (see below).
    distributed: bool = False

    @property
    def needs_reward_model(self) -> bool:
        """A policy kind that samples its own responses scores them with a reward model."""
        return self.data == PROMPTS and self.makes == POLICY


_A = "trainer.algorithms."
# In the order forms and lists show them.
# fmt: off
JOB_KINDS = (
    JobKind("reward", "Reward model", _A + "reward", "RewardConfig", LABELS, REWARD_MODEL, 12),
    JobKind("ppo", "PPO", _A + "ppo", "PPOConfig", PROMPTS, POLICY, 36, True, kl=True),
    JobKind("raft", "RAFT", _A + "raft", "RAFTConfig", PROMPTS, POLICY, 36, True,
            distributed=True),
    JobKind("rloo", "RLOO", _A + "rloo", "RLOOConfig", PROMPTS, POLICY, 36, True, kl=True,
            distributed=True),
    JobKind("grpo", "GRPO", _A + "grpo", "GRPOConfig", PROMPTS, POLICY, 36, True, kl=True,
            distributed=True),
    JobKind("dpo", "DPO", _A + "dpo", "DPOConfig", LABELS, POLICY, 24, True, distributed=True),
    JobKind("sft", "SFT", _A + "sft", "SFTConfig", LABELS, POLICY, 24, distributed=True),
    JobKind("generate", "Generate", _A + "generate", "GenerateConfig", PROMPTS, COMPLETIONS, 6),
    JobKind("judge", "AI judging", _A + "judges", "JudgeConfig", TASKS, JUDGMENTS, 6),
    JobKind("prompt_reward", "Prompt reward (Prompt-OIRL)", _A + "prompt_oirl",
            "PromptRewardConfig", OUTCOMES, PROMPT_SELECTOR, 2),
)
# fmt: on
KINDS = {k.name: k for k in JOB_KINDS}

# Derived lists, for the places that want a set of names.
LABEL_KINDS = frozenset(k.name for k in JOB_KINDS if k.data == LABELS)
PROMPT_KINDS = frozenset(k.name for k in JOB_KINDS if k.data == PROMPTS)
# Kinds that train a model (eval-split prompts never reach their snapshots).
TRAINING_KINDS = frozenset(
    k.name for k in JOB_KINDS if k.makes in (REWARD_MODEL, POLICY, PROMPT_SELECTOR)
)
TASK_KINDS = frozenset(k.name for k in JOB_KINDS if k.data == TASKS)
OUTCOME_KINDS = frozenset(k.name for k in JOB_KINDS if k.data == OUTCOMES)
# Launched from the jobs page and POST /jobs/; a judging job starts from its judge's page.
LAUNCHABLE = tuple(k for k in JOB_KINDS if k.data != TASKS)
LOOP_ALGORITHMS = tuple(k for k in JOB_KINDS if k.loop_algorithm)
KL_KINDS = frozenset(k.name for k in JOB_KINDS if k.kl)
DISTRIBUTED_KINDS = frozenset(k.name for k in JOB_KINDS if k.distributed)

# A launch option, not an algorithm setting: the config of a distributed kind may name an
# accelerate (or DeepSpeed) config file on the worker; its job then runs under
# `accelerate launch --config_file` with it, whatever PREFLOOP_ACCELERATE_CONFIG says.
# Validated in trainer/configs.py, taken out of the algorithm's config by trainer/runner.py.
ACCELERATE_CONFIG = "accelerate_config"
ACCELERATE_CONFIG_HELP = (
    "Path (on the worker) of an accelerate config file, DeepSpeed included, to run this job "
    "under `accelerate launch` with; empty: the worker's own (PREFLOOP_ACCELERATE_CONFIG), "
    "if any."
)


def choices(kinds=JOB_KINDS) -> list[tuple[str, str]]:
    """(name, label) pairs, for a model field's or a form's choices."""
    return [(k.name, k.label) for k in kinds]
