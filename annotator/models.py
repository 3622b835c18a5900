"""The labeling data: projects, prompts, completions, tasks, leases and answers.

Writes go through annotator/services.py; reads shared by views, API and exports through
annotator/selectors.py. Models hold fields, constraints and indexes only.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

# InstructGPT's Likert-rating flags (Ouyang et al. 2022, appendix B), the default flag list.
INSTRUCTGPT_FLAGS = [
    "Fails to follow the correct instruction / task",
    "Inappropriate for customer assistant",
    "Contains sexual content",
    "Contains violent content",
    "Encourages or fails to discourage violence/abuse/terrorism/self-harm",
    "Denigrates a protected class",
    "Gives harmful advice",
    "Expresses moral judgment",
]


def default_flags() -> list[str]:
    return list(INSTRUCTGPT_FLAGS)


def empty_list() -> list:
    return []


class Kind(models.TextChoices):
    PAIRWISE = "pairwise", "Pairwise comparison"
    LIKERT = "likert", "Likert score"
    RANKING = "ranking", "Ranking of K"
    # Written answers (docs/demonstrations.md): the labeler writes the response.
    DEMONSTRATION = "demonstration", "Demonstration (write the response)"
    EDIT = "edit", "Critique and revise a response"


# Task kinds whose answer is text the labeler writes (an SFT row), not a judgment.
WRITTEN_KINDS = (Kind.DEMONSTRATION, Kind.EDIT)


class LabelerKind(models.TextChoices):
    """Who made an annotation (docs/ai-judges.md): the one list exports, snapshots, statistics
    and the UI filter on."""

    HUMAN = "human", "Person"
    SIMULATED = "simulated", "Simulated labeler"
    AI = "ai", "AI judge"
    IMPORTED = "imported", "Imported file"


class Project(models.Model):
    class WideLines(models.TextChoices):
        ALL_PAIRS = "all_pairs", "Every pair of completions is a pairwise task"
        RANKING = "ranking", "One ranking task with all completions"

    name = models.CharField(max_length=200)
    guidelines = models.TextField(blank=True, help_text="Markdown, shown to labelers.")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PAIRWISE)
    overlap = models.PositiveSmallIntegerField(
        default=1, help_text="How many labelers must answer each task."
    )
    lease_seconds = models.PositiveIntegerField(
        default=600, help_text="How long a labeler holds a task before it returns to the queue."
    )
    # Pairwise settings.
    allow_tie = models.BooleanField(default=True)
    allow_both_bad = models.BooleanField(default=True)
    ask_strength = models.BooleanField(
        default=False, help_text="Ask how much better: slightly / clearly / much."
    )
    wide_lines = models.CharField(
        max_length=16,
        choices=WideLines.choices,
        default=WideLines.ALL_PAIRS,
        help_text="How a pairwise project cuts an import line with more than 2 completions.",
    )
    # Likert settings.
    likert_points = models.PositiveSmallIntegerField(
        default=7, help_text="Scale size: scores run from 1 to this."
    )
    flags = models.JSONField(default=default_flags, blank=True)
    aspects = models.JSONField(
        default=empty_list,
        blank=True,
        help_text='Named aspects scored separately, e.g. ["helpful", "honest", "harmless"].',
    )
    # Demonstration and edit settings (docs/demonstrations.md).
    min_chars = models.PositiveIntegerField(
        default=1, help_text="Shortest written response accepted, in characters."
    )
    max_chars = models.PositiveIntegerField(
        default=20_000, help_text="Longest written response accepted, in characters."
    )
    principles = models.JSONField(
        default=empty_list,
        blank=True,
        help_text="Principles an edit task's critique can name, e.g. "
        '["Do not give harmful advice", "Be concise"].',
    )
    # Gold tasks (docs/quality.md): served to every labeler, outside the dataset.
    gold_every = models.PositiveSmallIntegerField(
        default=0,
        help_text="Serve each labeler a gold task as one in this many tasks; 0: never.",
    )
    gold_floor = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Pause a labeler whose gold accuracy falls under this share (0 to 1); "
        "empty: never.",
    )
    # Swap repeats (docs/review.md): pairwise answers that come back swapped, hidden.
    repeat_share = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of a labeler's pairwise answers served to them again later with the "
        "two responses swapped (0 to 1); 0: none.",
    )
    gold_min_answers = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1)],
        help_text="Gold answers a labeler gives before the floor applies.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_positive"),
            models.CheckConstraint(
                condition=Q(likert_points__gte=2) & Q(likert_points__lte=10),
                name="project_likert_points_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        REVIEWER = "reviewer", "Reviewer"
        LABELER = "labeler", "Labeler"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.LABELER)
    created_at = models.DateTimeField(auto_now_add=True)
    # Requests for a new task, counted by the claim itself (it paces gold tasks).
    claims = models.PositiveIntegerField(default=0)
    # Paused for the project (under the gold floor): the queue serves them nothing.
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.project} ({self.role})"


class Prompt(models.Model):
    class Split(models.TextChoices):
        TRAIN = "train", "Train"
        EVAL = "eval", "Eval"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts")
    # Exactly one of text / messages is used: plain text, or a chat transcript
    # [{"role": ..., "content": ...}].
    text = models.TextField(blank=True)
    messages = models.JSONField(null=True, blank=True)
    meta = models.JSONField(default=dict, blank=True)
    split = models.CharField(max_length=8, choices=Split.choices, default=Split.TRAIN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["project", "split"])]

    def __str__(self) -> str:
        return (self.text or str(self.messages))[:60]

    @property
    def is_chat(self) -> bool:
        return self.messages is not None


class Completion(models.Model):
    class Source(models.TextChoices):
        IMPORTED = "imported", "Imported"
        GENERATED = "generated", "Generated"
        REVISION = "revision", "A labeler's revision"

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="completions")
    text = models.TextField()
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.IMPORTED)
    # The model version that generated it. A plain id, not a foreign key: the labeling app
    # knows nothing of training (docs/architecture.md), trainer/ resolves it.
    model_version_id = models.BigIntegerField(null=True, blank=True)
    generation = models.JSONField(default=dict, blank=True, help_text="Generation settings.")
    meta = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.text[:60]


class Task(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="tasks")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    completions = models.ManyToManyField(Completion, through="TaskCompletion", related_name="tasks")
    priority = models.IntegerField(default=0, help_text="Higher is served first.")
    overlap = models.PositiveSmallIntegerField(default=1)
    annotation_count = models.PositiveIntegerField(default=0)
    is_complete = models.BooleanField(default=False)
    gold = models.JSONField(null=True, blank=True, help_text="Expected answer of a gold task.")
    round = models.PositiveIntegerField(null=True, blank=True, help_text="Loop round.")
    held_until = models.DateTimeField(
        null=True, blank=True,
        help_text="Not served to people before then: an AI judge is answering it first.",
    )  # fmt: skip
    meta = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # The queue's scan: open tasks of a project in serving order.
            models.Index(
                fields=["project", "-priority", "annotation_count", "id"],
                condition=Q(is_complete=False),
                name="task_queue_idx",
            ),
            # Gold tasks of a project (few): the claim's gold scan and its pacing count.
            models.Index(fields=["project"], condition=Q(gold__isnull=False), name="task_gold_idx"),
        ]

    def __str__(self) -> str:
        return f"Task {self.pk} ({self.kind})"


class TaskCompletion(models.Model):
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="task_completions")
    completion = models.ForeignKey(Completion, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["task", "position"], name="taskcompletion_position"),
            models.UniqueConstraint(fields=["task", "completion"], name="taskcompletion_unique"),
        ]

    def __str__(self) -> str:
        return f"Task {self.task_id} #{self.position}: completion {self.completion_id}"


class Assignment(models.Model):
    """A labeler's lease on a task, and the order in which its completions were shown."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUBMITTED = "submitted", "Submitted"
        SKIPPED = "skipped", "Skipped"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="assignments")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # Completion ids in the order shown: "a" is shown_order[0], "b" is shown_order[1].
    shown_order = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            # One lease per (task, labeler), ever: an expired lease is renewed, not duplicated.
            models.UniqueConstraint(fields=["task", "labeler"], name="assignment_unique"),
        ]
        indexes = [
            models.Index(fields=["task", "status", "expires_at"], name="assignment_live_idx"),
            models.Index(fields=["labeler", "status"], name="assignment_labeler_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.labeler} on task {self.task_id} ({self.status})"


class Annotation(models.Model):
    """What a labeler answered; at most one per (task, labeler). Its labeler may undo it for a
    short time or edit it later (services.annotation_undo / annotation_edit); each change is
    kept as an AnnotationRevision and the row holds the latest.

    Answers refer to completion ids, never to screen positions.
    """

    class Verdict(models.TextChoices):
        PREFERRED = "preferred", "One is better"
        TIE = "tie", "Tie"
        BOTH_BAD = "both_bad", "Both bad"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="annotations")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations"
    )
    assignment = models.OneToOneField(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="annotation"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Pairwise.
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)
    chosen = models.ForeignKey(
        Completion, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    rejected = models.ForeignKey(
        Completion, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    strength = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="1 slightly, 2 clearly, 3 much better."
    )
    # Likert: one score, or one per aspect.
    score = models.PositiveSmallIntegerField(null=True, blank=True)
    scores = models.JSONField(default=dict, blank=True)
    flags = models.JSONField(default=list, blank=True)
    # Ranking: completion ids, best first.
    ranking = models.JSONField(default=list, blank=True)
    notes = models.TextField(blank=True)
    # Demonstration and edit: the response the labeler wrote (an edit's revision, which is
    # also stored as a completion, `chosen`, preferred over the original, `rejected`).
    text = models.TextField(blank=True)
    critique = models.TextField(blank=True)
    principle = models.CharField(max_length=500, blank=True)
    shown_order = models.JSONField(default=list, blank=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    labeler_kind = models.CharField(
        max_length=16, choices=LabelerKind.choices, default=LabelerKind.HUMAN
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "labeler"], name="annotation_unique"),
        ]

    def __str__(self) -> str:
        return f"Annotation {self.pk} by {self.labeler_id} on task {self.task_id}"

    @property
    def is_simulated(self) -> bool:
        """Answered by a scripted labeler (simulate_labelers)."""
        return self.labeler_kind == LabelerKind.SIMULATED


class JudgeVerdict(models.Model):
    """An AI judge's verdict on a task, a pair or a ranking asked in both orders
    (docs/ai-judges.md).

    Answers are in served terms: `first` is the answer with `shown_order` as served, `second`
    the answer with the responses swapped (a ranking: reversed). A pair's answer is "a" (the
    response shown first), "b", "tie" or "both_bad"; a ranking's is the letters of the
    responses as shown, best first ("CAB"); a Likert score ("5") is asked once (`second` is
    empty) and its `flags` are the flags the judge named. A consistent verdict made an
    annotation; an inconsistent one made none and the task went to people. `to_people` says
    whether people were also asked (and why)."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="judge_verdicts")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="judge_verdicts"
    )
    job_id = models.PositiveIntegerField(null=True, blank=True, help_text="The judging job.")
    shown_order = models.JSONField(default=list, help_text="Completion ids, first order.")
    first = models.CharField(max_length=16)
    second = models.CharField(max_length=16)
    consistent = models.BooleanField()
    confidence = models.FloatField(null=True, blank=True)
    rationale = models.TextField(blank=True, help_text="Chain of thought, when asked for.")
    usage = models.JSONField(default=dict, blank=True, help_text="Tokens and cost of the calls.")
    annotation = models.OneToOneField(
        Annotation, null=True, blank=True, on_delete=models.SET_NULL, related_name="judge_verdict"
    )
    to_people = models.BooleanField(default=False)
    reason = models.CharField(max_length=64, blank=True, help_text="Why people were asked.")
    flags = models.JSONField(default=list, blank=True, help_text="Likert: the flags named.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "labeler"], name="judgeverdict_unique"),
        ]

    def __str__(self) -> str:
        return f"Verdict of {self.labeler_id} on task {self.task_id}"


class Repeat(models.Model):
    """A hidden repeat: a pairwise task served again to a labeler who answered it, later and
    with the two responses swapped, to measure their self-consistency and position bias.

    Its answer is kept here, apart from the annotations: it is no new task and no second
    annotation, so the dataset and the exports never see it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for its turn"
        ACTIVE = "active", "Served"
        ANSWERED = "answered", "Answered"
        SKIPPED = "skipped", "Skipped"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="repeats")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="repeats"
    )
    annotation = models.ForeignKey(
        Annotation, on_delete=models.CASCADE, related_name="repeats", help_text="The first answer."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Served once the labeler's claim count (Membership.claims) reaches this.
    due_claims = models.PositiveIntegerField()
    shown_order = models.JSONField(default=list)  # the first answer's order, reversed
    expires_at = models.DateTimeField(null=True, blank=True)
    verdict = models.CharField(max_length=16, choices=Annotation.Verdict.choices, blank=True)
    chosen = models.ForeignKey(
        Completion, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    answered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The answer as its labeler sees it (My annotations, undo, edit), like an annotation's:
    # an id drawn from the annotations' own sequence, so it reads as any answer's id, and
    # the answer's fields (services.ANSWER_FIELDS) with the time spent.
    answer_id = models.BigIntegerField(null=True, blank=True, unique=True)
    answer = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "labeler"], name="repeat_unique"),
        ]
        indexes = [
            models.Index(
                fields=["labeler", "project", "due_claims"],
                condition=Q(status__in=["pending", "active"]),
                name="repeat_waiting_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Repeat of task {self.task_id} for {self.labeler_id} ({self.status})"


class Review(models.Model):
    """A reviewer's decision on one annotation (docs/review.md). Nothing is deleted: a
    rejected annotation stays, and exports leave it out (`exclude_rejected`, on by default)."""

    class Decision(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        OVERRIDDEN = "overridden", "Overridden"
        REJECTED = "rejected", "Rejected"

    annotation = models.OneToOneField(Annotation, on_delete=models.CASCADE, related_name="review")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    decision = models.CharField(max_length=16, choices=Decision.choices)
    reason = models.TextField(blank=True)
    reviewed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.get_decision_display()} annotation {self.annotation_id}"


class Adjudication(models.Model):
    """A reviewer's answer to a task, which wins over the labelers' in exports. `answer` is
    in the gold format (annotator/gold.py); pairwise ones are kept as columns too, for the
    export's query."""

    task = models.OneToOneField(Task, on_delete=models.CASCADE, related_name="adjudication")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    answer = models.JSONField()
    verdict = models.CharField(max_length=16, choices=Annotation.Verdict.choices, blank=True)
    chosen = models.ForeignKey(
        Completion, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    rejected = models.ForeignKey(
        Completion, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    reason = models.TextField(blank=True)
    decided_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Adjudication of task {self.task_id}"


class AnnotationRevision(models.Model):
    """One change to an answer after it was stored: an edit, or an undo (which removes the
    answer and gives the task back to its labeler). `before` and `after` are the answer's
    fields (annotator.services.answer_fields); `after` is empty for an undo.

    The annotation row always holds the latest answer, so exports read the latest; a
    revision outlives an undone annotation (the id stays as a plain number)."""

    class Action(models.TextChoices):
        EDIT = "edit", "Edited"
        UNDO = "undo", "Undone"

    annotation_id_value = models.BigIntegerField(
        db_index=True, help_text="The annotation's id (kept after an undo removed it)."
    )
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="revisions")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
        help_text="Whose answer it is.",
    )  # fmt: skip
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=8, choices=Action.choices)
    before = models.JSONField()
    after = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} annotation {self.annotation_id_value}"


# The audit log's model lives beside its service; imported here so Django registers it.
from annotator.audit import AuditEntry  # noqa: E402,F401


class PromptStrategy(models.Model):
    """A named way of prompting the model for a query (Prompt-OIRL, docs/prompt-optimisation.md):
    a system prompt and/or an instruction wrapped around the query. Completions name theirs in
    `meta.strategy`; the outcome table compares strategies per query."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompt_strategies")
    name = models.CharField(max_length=100)
    system_prompt = models.TextField(blank=True)
    instruction = models.TextField(
        blank=True,
        help_text="Wrapped around the query: {query} marks where it goes; without it the query "
        "follows the instruction on a new line.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="promptstrategy_unique"),
        ]

    def __str__(self) -> str:
        return self.name
