"""Training jobs and the model registry.

The job row is the source of truth: a worker claims a job by a conditional update, writes a
heartbeat while it runs, and a periodic reaper fails jobs whose worker went silent.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from trainer import kinds
from trainer.algorithms import acquisition


def _kind_choices(name: str, table) -> type[models.TextChoices]:
    """An enum of job kinds from trainer/kinds.py's table: `Kind.PPO == "ppo"`."""
    members = [(k.name.upper(), (k.name, k.label)) for k in table]
    return models.TextChoices(name, members, module=__name__, qualname=name)


class ModelVersion(models.Model):
    class Role(models.TextChoices):
        POLICY = "policy", "Policy"
        REWARD = "reward", "Reward model"
        # Which prompt strategy to use for a query (a prompt_reward job, Prompt-OIRL).
        PROMPT_SELECTOR = "prompt_selector", "Prompt selector"

    project = models.ForeignKey(
        "annotator.Project", on_delete=models.CASCADE, related_name="model_versions"
    )
    name = models.CharField(max_length=200)
    role = models.CharField(max_length=16, choices=Role.choices)
    path = models.CharField(
        max_length=1000, help_text="Local checkpoint directory or Hugging Face model id."
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    job = models.ForeignKey(
        "TrainingJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    metrics = models.JSONField(default=dict, blank=True)
    config = models.JSONField(default=dict, blank=True)
    # A LoRA adapter (trainer/algorithms/lora.py) is loaded on its base, never merged unless an
    # admin asks (model_services.model_merge): the base's path, and its version when the
    # project's registry has it.
    adapter_base = models.CharField(
        max_length=1000, blank=True, help_text="Base model of a LoRA adapter; empty: full weights."
    )
    base_model = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="adapters"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.role})"

    @property
    def is_adapter(self) -> bool:
        return bool(self.adapter_base)


class TrainingJob(models.Model):
    # Every kind in trainer/kinds.py (a new kind there needs a migration for these choices).
    Kind = _kind_choices("TrainingJob.Kind", kinds.JOB_KINDS)

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    project = models.ForeignKey(
        "annotator.Project", on_delete=models.CASCADE, related_name="training_jobs"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    config = models.JSONField(default=dict, blank=True, help_text="The algorithm's config.")
    dataset = models.JSONField(
        default=dict,
        blank=True,
        help_text="Which labels or prompts the snapshot takes (trainer/snapshots.py).",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    input_model = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reward_model = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    output_model = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The frozen dataset the job trains on.
    snapshot_sha256 = models.CharField(max_length=64, blank=True)
    snapshot_rows = models.PositiveIntegerField(null=True, blank=True)
    output_dir = models.CharField(max_length=1000, blank=True)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(null=True, blank=True)
    metrics = models.JSONField(default=list, blank=True, help_text="Time series: one dict a step.")
    log_tail = models.TextField(blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # When the job's message was last handed to the broker; empty while it never was (the
    # broker was down at launch). The outbox sweep sends it again (trainer/outbox.py).
    sent_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["heartbeat_at"], condition=Q(status="running"), name="job_running_idx"
            ),
            models.Index(fields=["sent_at"], condition=Q(status="queued"), name="job_queued_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} job {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class LoopPolicy(models.Model):
    """How a project's feedback loop runs (issue #5). One per project."""

    # The kinds trainer/kinds.py marks as loop algorithms.
    Algorithm = _kind_choices("LoopPolicy.Algorithm", kinds.LOOP_ALGORITHMS)

    project = models.OneToOneField(
        "annotator.Project", on_delete=models.CASCADE, related_name="loop_policy"
    )
    enabled = models.BooleanField(default=False)
    paused = models.BooleanField(default=False)
    base_policy = models.ForeignKey(
        ModelVersion,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The policy the first round starts from (and the 'base' of comparisons).",
    )
    algorithm = models.CharField(max_length=8, choices=Algorithm.choices, default=Algorithm.RAFT)
    policy_config = models.JSONField(default=dict, blank=True)
    reward_config = models.JSONField(default=dict, blank=True)
    # Per-source weights of the round's reward training rows (docs/ai-judges.md), e.g.
    # {"ai": 0.5}: the reward job's dataset.source_weights. Empty: every label weighs 1.
    reward_source_weights = models.JSONField(
        default=dict,
        blank=True,
        help_text="Weights of the labels by who gave them in each round's reward model, e.g. "
        "{\"ai\": 0.5} to count an AI judge's labels half as much as people's (sources: "
        "human, simulated, ai; unnamed ones weigh 1).",
    )
    generate_config = models.JSONField(default=dict, blank=True)
    # InstructGPT's order (issue #14): SFT on the written demonstrations before the first
    # reward model; the reward model and the first policy step then start from the SFT model.
    sft_first = models.BooleanField(
        default=False,
        help_text="Start with SFT on the project's demonstrations (and edit tasks' revisions) "
        "before the first reward round; the reward model and the policy then start from the "
        "SFT model, which is also the KL reference (InstructGPT's order).",
    )
    sft_config = models.JSONField(default=dict, blank=True)
    reward_after = models.PositiveIntegerField(
        default=200, help_text="Retrain the reward model after this many new usable comparisons."
    )
    train_prompts = models.PositiveIntegerField(
        default=50, help_text="Train-split prompts sampled per round (all eval prompts are used)."
    )
    compare_with_base = models.BooleanField(
        default=False, help_text="Also queue new-policy-versus-base comparisons each round."
    )
    task_priority = models.IntegerField(default=10)
    judge = models.ForeignKey(
        "Judge", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="An AI judge that labels each round's comparisons first; people get the ones "
        "its mixing policy sends them (docs/ai-judges.md).",
    )  # fmt: skip

    class Reference(models.TextChoices):
        BASE = "base", "The base policy"
        PREVIOUS = "previous", "The previous round's policy"

    reference = models.CharField(
        max_length=16,
        choices=Reference.choices,
        default=Reference.BASE,
        help_text="The frozen policy the KL penalty of PPO, RLOO and GRPO holds the policy "
        "near: the base policy (as in InstructGPT), or the previous round's.",
    )
    # Routing (issue #10): which generated pairs become tasks (trainer/algorithms/acquisition.py).
    Acquisition = models.TextChoices(
        "LoopPolicy.Acquisition", [(r.upper().replace("-", "_"), r) for r in acquisition.RULES]
    )
    acquisition = models.CharField(
        max_length=16,
        choices=Acquisition.choices,
        default="random",
        help_text="Which pairs of candidates on train prompts become tasks: random (the "
        "baseline), uncertainty (reward margin closest to zero), disagreement (the reward "
        "ensemble's heads disagree most) or top-two (the two best by reward).",
    )
    candidates = models.PositiveSmallIntegerField(
        default=1,
        help_text="Responses sampled per prompt from the new and from the previous policy; "
        "pairs on train prompts are chosen among all of them.",
    )
    pairs_per_round = models.PositiveIntegerField(
        default=0,
        help_text="Pairs on train prompts queued per round, the most useful first (0: one per "
        "train prompt). Eval prompts always get their new-versus-previous pair.",
    )
    retrain_requested = models.BooleanField(default=False)
    # Set in the transaction of the label (or job end) that may move the loop on, cleared by
    # whoever advances it: the durable, debounced "loop needs advancing" mark (trainer/outbox.py).
    advance_due_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Loop of {self.project}"


class LoopRound(models.Model):
    class Status(models.TextChoices):
        COLLECTING = "collecting", "Collecting labels"
        SFT = "sft", "Fine-tuning on demonstrations (SFT)"
        REWARD = "reward", "Training the reward model"
        POLICY = "policy", "Training the policy"
        GENERATING = "generating", "Sampling the new policy"
        DONE = "done", "Done: comparisons queued"
        FAILED = "failed", "Failed"
        STOPPED = "stopped", "Stopped"

    project = models.ForeignKey(
        "annotator.Project", on_delete=models.CASCADE, related_name="loop_rounds"
    )
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COLLECTING)
    previous_policy = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    # The SFT job on demonstrations that opens the loop's first round (LoopPolicy.sft_first).
    sft_job = models.ForeignKey(
        TrainingJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reward_job = models.ForeignKey(
        TrainingJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    policy_job = models.ForeignKey(
        TrainingJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Generate jobs by role: {"new": job id, "previous": job id, "base"?: job id}.
    generate_jobs = models.JSONField(default=dict, blank=True)
    prompt_ids = models.JSONField(default=list, blank=True)
    # The policy job's KL reference (PPO, RLOO, GRPO), None for the kinds without one.
    reference_policy = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The round's samples scored by one reward model (trainer/loop/measure.py):
    # {"status", "reward_model", "new": mean, "previous": mean, "n", "measured_at"} or "error".
    scores = models.JSONField(default=dict, blank=True)
    # The candidates on train prompts scored by the round's reward model for routing
    # (trainer/loop/measure.py): {"status", "reward_model", "heads", "scores": {completion id:
    # [score per head]}, "measured_at"} or "error"; then what was queued: "rule", "pairs".
    acquisition = models.JSONField(default=dict, blank=True)
    tasks_created = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="loopround_unique"),
        ]

    def __str__(self) -> str:
        return f"Round {self.number} of {self.project} ({self.status})"


class Worker(models.Model):
    """A Celery worker's devices, as it last reported them (trainer/inventory.py): what the
    memory check compares a job's estimate with, and what the jobs page lists."""

    name = models.CharField(max_length=200, unique=True, help_text="Celery node name.")
    queues = models.JSONField(default=list, blank=True)
    # [{"name", "kind": "cuda" | "cpu", "total_bytes", "free_bytes"}]
    devices = models.JSONField(default=list, blank=True)
    seen_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Judge(models.Model):
    """An AI judge of a project (docs/ai-judges.md): how to ask it, and its labeler account of
    kind `ai` (annotator/judging.py), under which its verdicts are stored.

    An endpoint's API key is read on the worker from the environment variable `api_key_env`
    names, or stored here encrypted (`api_key_encrypted`, trainer/judging/keys.py) and never
    shown back."""

    class Backend(models.TextChoices):
        OPENAI = "openai", "OpenAI-compatible endpoint"
        TRANSFORMERS = "transformers", "Local model (transformers)"
        REWARD_MODEL = "reward_model", "The project's reward model"
        CALLABLE = "callable", "Python callable"

    project = models.ForeignKey(
        "annotator.Project", on_delete=models.CASCADE, related_name="judges"
    )
    name = models.CharField(max_length=100)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="judge"
    )
    backend = models.CharField(max_length=16, choices=Backend.choices, default=Backend.OPENAI)
    base_url = models.CharField(max_length=500, blank=True)
    model = models.CharField(max_length=200, blank=True)
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="Environment variable on the worker with the key."
    )
    # A Fernet token of the key (trainer/judging/keys.py); empty: none stored.
    api_key_encrypted = models.TextField(blank=True, default="", editable=False)
    timeout_s = models.FloatField(default=60.0)
    retries = models.PositiveSmallIntegerField(default=3)
    concurrency = models.PositiveSmallIntegerField(default=4)
    callable_path = models.CharField(max_length=300, blank=True)
    model_path = models.CharField(max_length=1000, blank=True)
    reward_model = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="reward_model backend: empty means the project's newest reward model.",
    )  # fmt: skip
    # Rubric per task kind: {"pairwise": template}; empty: the default template.
    rubrics = models.JSONField(default=dict, blank=True)
    principles = models.JSONField(default=list, blank=True)
    chain_of_thought = models.BooleanField(default=False)
    cost_per_1k_prompt = models.FloatField(default=0.0)
    cost_per_1k_completion = models.FloatField(default=0.0)
    # Mixing policy (trainer/judging/services.py): who else sees a judged task.
    min_confidence = models.FloatField(
        default=0.0, help_text="A verdict less sure than this goes to people too."
    )
    audit_share = models.FloatField(
        default=0.1, help_text="Share of settled tasks also sent to people (calibration)."
    )
    min_agreement = models.FloatField(
        default=0.7, help_text="Below this measured agreement with people, all go to people."
    )
    min_calibration_tasks = models.PositiveIntegerField(
        default=30, help_text="Tasks with both labels before the agreement threshold applies."
    )
    people_priority = models.IntegerField(
        default=5, help_text="Added to the priority of a task sent to people."
    )
    hold_s = models.PositiveIntegerField(
        default=600,
        help_text="Seconds people wait for the judge on the tasks a judging job is about to "
        "judge (0: they never wait); after that people may take them whatever the judge does.",
    )
    paused = models.BooleanField(default=False)
    paused_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="judge_unique_name"),
        ]

    def __str__(self) -> str:
        return f"Judge {self.name}"
