"""Everything that writes AI judges and acts on their verdicts (docs/ai-judges.md).

A judge is configured here (trainer/models.py: Judge) and labels through its account of kind
`ai` (annotator/judging.py). `judge_run` queues a judging job (trainer/kinds.py: `judge`), which
runs in the job runner's child process (trainer/algorithms/judges.py); each batch of verdicts
the child sends is stored by `judge_batch_store`, in one transaction, with the mixing policy's
decision of which tasks people see as well. A judging job that fails pauses its judge, with
the reason shown on the judge's page.
"""

import random
import re
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotator.exceptions import ServiceError
from annotator.judging import (
    VerdictIn,
    answer_allowed,
    is_consistent,
    judge_verdicts_store,
    judgeable,
    labeler_ai_ensure,
    tasks_for_judging,
    tasks_hold,
    tasks_release,
)
from annotator.models import JudgeVerdict, Kind, Project, Task
from annotator.quality.calibration import (
    calibrate,
    calibrate_likert,
    calibrate_ranking,
    judge_items,
    likert_items,
    ranking_items,
)
from trainer import services
from trainer.algorithms.judges import BACKEND_KINDS, DEFAULT_RUBRICS, KINDS, JudgeConfig
from trainer.exceptions import JobError
from trainer.judging import keys
from trainer.models import Judge, ModelVersion, TrainingJob

# What the judge page and the API may set and show (the key is set apart: SECRET_FIELDS).
FIELDS = (
    "backend", "base_url", "model", "api_key_env", "timeout_s", "retries", "concurrency",
    "callable_path", "model_path", "reward_model", "rubrics", "principles", "chain_of_thought",
    "cost_per_1k_prompt", "cost_per_1k_completion", "min_confidence", "audit_share",
    "min_agreement", "min_calibration_tasks", "people_priority", "hold_s",
)  # fmt: skip
# Write-only: a key to store encrypted (trainer/judging/keys.py), or clear_api_key to drop it.
SECRET_FIELDS = ("api_key", "clear_api_key")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def judge_create(*, project: Project, name: str, **fields) -> Judge:
    """A judge and its labeler account `judge-<project id>-<name>`."""
    name = (name or "").strip()
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,60}", name):
        raise ServiceError("Name the judge with letters, digits, . _ or - (at most 60).",
                           field="name")  # fmt: skip
    if Judge.objects.filter(project=project, name=name).exists():
        raise ServiceError(f"The project already has a judge named {name!r}.", field="name")
    with transaction.atomic():
        user = labeler_ai_ensure(project=project, username=f"judge-{project.id}-{name}")
        judge = Judge(project=project, name=name, user=user)
        _set(judge, fields)
        judge.save()
    return judge


def judge_update(*, judge: Judge, **fields) -> Judge:
    _set(judge, fields)
    judge.save()
    return judge


def _set(judge: Judge, fields: dict) -> None:
    fields = dict(fields)
    api_key, clear_api_key = fields.pop("api_key", None), fields.pop("clear_api_key", False)
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ServiceError(f"Unknown judge setting(s): {', '.join(sorted(unknown))}.")
    for key, value in fields.items():
        setattr(judge, key, value)
    if judge.api_key_env and not _ENV_NAME.match(judge.api_key_env):
        raise ServiceError(
            "Give the *name* of an environment variable (letters, digits, _), never the key.",
            field="api_key_env",
        )
    if clear_api_key:
        judge.api_key_encrypted = ""
    if api_key:
        try:
            judge.api_key_encrypted = keys.encrypt(keys.check(api_key))
        except ValueError as exc:
            raise ServiceError(str(exc), field="api_key") from None
    if judge.api_key_encrypted and judge.api_key_env:
        raise ServiceError(
            "Give the key one way: stored here (api_key) or in the workers' environment "
            "variable api_key_env, not both. Empty one of them.",
            field="api_key",
        )
    unknown_kinds = set(judge.rubrics or {}) - set(KINDS)
    if unknown_kinds:
        raise ServiceError(
            f"Rubrics are per task kind ({', '.join(KINDS)}), not "
            f"{', '.join(sorted(unknown_kinds))}.",
            field="rubrics",
        )
    if judge.reward_model_id and judge.reward_model.project_id != judge.project_id:
        raise ServiceError("That reward model belongs to another project.", field="reward_model")
    for name in ("audit_share", "min_agreement", "min_confidence"):
        if not 0.0 <= float(getattr(judge, name)) <= 1.0:
            raise ServiceError(f"{name} is a share from 0 to 1.", field=name)
    try:
        judge_config(judge)
    except ValueError as exc:
        raise ServiceError(f"Invalid judge: {exc}.", field="backend") from None


def judge_config(judge: Judge) -> dict:
    """The job's config for this judge (JudgeConfig's fields; validated)."""
    model_path = judge.model_path
    if judge.backend == Judge.Backend.REWARD_MODEL:
        rm = judge.reward_model or (
            ModelVersion.objects.filter(project=judge.project, role=ModelVersion.Role.REWARD)
            .order_by("-id")
            .first()
        )
        if rm is None:
            raise ValueError("the project has no reward model yet")
        model_path = rm.path
    config = JudgeConfig(
        backend=judge.backend, base_url=judge.base_url, model=judge.model,
        api_key_env=keys.STORED_KEY_ENV if judge.api_key_encrypted else judge.api_key_env,
        timeout_s=judge.timeout_s, retries=judge.retries,
        concurrency=judge.concurrency, callable_path=judge.callable_path,
        model_path=model_path, rubric=rubric_of(judge, "pairwise"),
        likert_rubric=rubric_of(judge, "likert"), ranking_rubric=rubric_of(judge, "ranking"),
        chain_of_thought=judge.chain_of_thought,
        cost_per_1k_prompt=judge.cost_per_1k_prompt,
        cost_per_1k_completion=judge.cost_per_1k_completion,
    )  # fmt: skip
    if judge.principles:
        config.principles = list(judge.principles)
    from dataclasses import asdict

    return asdict(config)


def rubric_of(judge: Judge, kind: str) -> str:
    """The judge's prompt template for a task kind: its own, or the default."""
    return (judge.rubrics or {}).get(kind) or DEFAULT_RUBRICS[kind]


def judged_kinds(judge: Judge) -> tuple[str, ...]:
    """The task kinds this judge is given (a reward model gives no Likert scores)."""
    return BACKEND_KINDS[judge.backend]


def judge_run(
    *, judge: Judge, created_by: AbstractBaseUser | None = None, max_tasks: int | None = None,
    round: int | None = None, include_complete: bool = False, config: dict | None = None,
) -> TrainingJob:  # fmt: skip
    """Queue a judging job over the tasks this judge has not judged yet."""
    if judge.paused:
        raise JobError(f"The judge is paused ({judge.paused_reason}); resume it first.")
    try:
        base = judge_config(judge)
    except ValueError as exc:
        raise JobError(f"The judge cannot run: {exc}.") from None
    if not tasks_for_judging(project=judge.project, labeler=judge.user, limit=1, round=round,
                             include_complete=include_complete,
                             kinds=judged_kinds(judge)):  # fmt: skip
        raise JobError(
            "Nothing to judge: this judge has judged every open "
            + " / ".join(judged_kinds(judge))
            + " task."
        )
    dataset: dict = {"judge": judge.id}
    if max_tasks:
        dataset["max_tasks"] = max_tasks
    if round is not None:
        dataset["round"] = round
    if include_complete:
        dataset["include_complete"] = True
    with transaction.atomic():
        job = services.job_create(
            project=judge.project, kind="judge", config={**base, **(config or {})},
            created_by=created_by, dataset=dataset,
        )  # fmt: skip
        if judge.hold_s and not include_complete:
            # People wait (at most hold_s) for the judge's answer on what it is about to judge.
            tasks = judgeable(project=judge.project, labeler=judge.user,
                              kinds=judged_kinds(judge), round=round)  # fmt: skip
            tasks_hold(tasks=tasks[:max_tasks] if max_tasks else tasks, seconds=judge.hold_s)
    return job


def judge_pause(*, judge: Judge, reason: str) -> None:
    Judge.objects.filter(id=judge.id).update(paused=True, paused_reason=reason[:2000])


def judge_resume(*, judge: Judge) -> None:
    Judge.objects.filter(id=judge.id).update(paused=False, paused_reason="")


def judge_job_ended(*, job: TrainingJob) -> None:
    """Called when a judging job ends: what it held and did not answer goes back to people;
    a failed one pauses its judge with the reason."""
    judge = Judge.objects.filter(id=(job.dataset or {}).get("judge")).first()
    if judge is None:
        return
    tasks_release(project=job.project, labeler=judge.user)
    if job.status == TrainingJob.Status.FAILED:
        judge_pause(judge=judge, reason=f"Judging job {job.id} failed: {job.error}")


# --- The mixing policy -------------------------------------------------------------------------


@dataclass(frozen=True)
class Trust:
    """What the mixing policy knows of a judge when a batch comes in."""

    agreement: float | None  # measured agreement with people's majority
    calibrated: int  # tasks with both labels
    asked_people: int  # consistent verdicts sent to people: calibration to come


def judge_trust(judge: Judge, kind: str = Kind.PAIRWISE) -> Trust:
    """Measured on the labels the judge gives, on tasks of one kind: an inconsistent verdict,
    or one the project does not allow (a tie where people cannot tie), makes no label and
    calibrates nothing here (the calibration page still shows them)."""
    project = judge.project
    if kind == Kind.LIKERT:
        figures = calibrate_likert(likert_items(project=project, labeler_id=judge.user_id))
    elif kind == Kind.RANKING:
        figures = calibrate_ranking(ranking_items(project=project, labeler_id=judge.user_id))
    else:
        items = [
            item
            for item in judge_items(project=project, labeler_id=judge.user_id)
            if answer_allowed(project, item.first)
        ]
        figures = calibrate(items)
    asked = (
        JudgeVerdict.objects.filter(
            labeler_id=judge.user_id, to_people=True, consistent=True, task__kind=kind
        )
        .exclude(reason="not allowed")
        .count()
    )
    return Trust(figures["agreement"], figures["tasks"], asked)


def route(*, judge: Judge, trust: Trust, task_id: int, consistent: bool,
          confidence: float | None) -> tuple[bool, str]:  # fmt: skip
    """(also to people?, why). The order of the reasons is the order they are checked in."""
    if not consistent:
        return True, "inconsistent"
    if confidence is not None and confidence < judge.min_confidence:
        return True, "unsure"
    if trust.calibrated < judge.min_calibration_tasks:
        # Not measured yet: people see its tasks until enough have both labels.
        if trust.asked_people < judge.min_calibration_tasks:
            return True, "calibrating"
    elif trust.agreement is not None and trust.agreement < judge.min_agreement:
        return True, "low agreement"
    # Reproducible: the same judge and task always draw the same number.
    if random.Random(f"{judge.id}:{task_id}").random() < judge.audit_share:
        return True, "audit"
    return False, ""


def judge_batch_store(*, job_id: int, results: list[dict]) -> int:
    """One batch from a judging job's process, stored whole. Returns the annotations made.
    Each kind of task is routed on the judge's measured agreement on that kind."""
    job = TrainingJob.objects.select_related("project").get(id=job_id)
    judge = Judge.objects.select_related("user").get(id=job.dataset["judge"])
    kinds = dict(
        Task.objects.filter(id__in=[r["task_id"] for r in results]).values_list("id", "kind")
    )
    trusts: dict[str, Trust] = {}
    asked: dict[str, int] = {}
    verdicts = []
    for r in results:
        kind = kinds.get(r["task_id"], Kind.PAIRWISE)
        if kind not in trusts:
            trusts[kind] = judge_trust(judge, kind)
            asked[kind] = trusts[kind].asked_people
        trust = trusts[kind]
        consistent = is_consistent(first=r["first"], second=r["second"],
                                   shown_order=r["shown_order"], kind=kind)  # fmt: skip
        to_people, reason = route(
            judge=judge, trust=Trust(trust.agreement, trust.calibrated, asked[kind]),
            task_id=r["task_id"], consistent=consistent, confidence=r.get("confidence"),
        )  # fmt: skip
        asked[kind] += to_people and consistent
        verdicts.append(
            VerdictIn(
                task_id=r["task_id"], shown_order=r["shown_order"], first=r["first"],
                second=r["second"], confidence=r.get("confidence"),
                rationale=r.get("rationale") or "", usage=r.get("usage") or {},
                to_people=to_people, reason=reason, flags=list(r.get("flags") or []),
            )
        )  # fmt: skip
    return judge_verdicts_store(
        project=job.project, labeler=judge.user, verdicts=verdicts, job_id=job.id,
        people_priority=judge.people_priority,
    )  # fmt: skip
