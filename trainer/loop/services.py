"""The feedback loop's state machine (issue #5): labels -> reward model -> policy -> samples.

Each project with an enabled LoopPolicy has a current LoopRound. `loop_advance` looks at it
and makes at most one transition:

    collecting --(enough new comparisons, or a retrain request)--> reward job
               (or, when the loop starts with SFT and has not yet: --> sft job on the
               demonstrations, which waits for at least one demonstration)
    sft        --(sft job succeeded)--> reward job; the SFT model is the round's previous
               policy, and the reward models and the KL reference start from it from now on
    reward     --(reward job succeeded)--> policy job (PPO | RAFT | DPO) from the last policy
    policy     --(policy job succeeded)--> generate jobs: new policy, previous policy (, base)
    generating --(all generate jobs succeeded)--> pairwise tasks new-vs-previous; next round

Leaving collecting also asks for the last round's reward model's accuracy on the labels just
collected, and a round's end for its samples scored by its reward model (trainer/
measure.py: both on a gpu worker, in a child process).

Every transition is a conditional update of the round's status, acted on only by the caller
that changed the row, so it happens once however many annotations or job ends call in at the
same moment. All state lives in the database: a restarted worker just calls loop_advance again
(Celery beat does every 30 s as a safety net; annotations and job ends call it at once).
"""

import random
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from annotator.export.params import source_weights_from
from annotator.models import Completion, Kind, Prompt, Task
from annotator.task_services import NewTask, tasks_create
from trainer import outbox, services
from trainer.algorithms import acquisition
from trainer.configs import validate_config
from trainer.exceptions import JobError
from trainer.kinds import KINDS, KL_KINDS, LOOP_ALGORITHMS
from trainer.loop import measure
from trainer.loop.selectors import (
    loop_sft_model,
    loop_start_policy,
    usable_comparisons,
    usable_demonstrations,
)
from trainer.models import LoopPolicy, LoopRound, ModelVersion, TrainingJob
from trainer.snapshots import strategy_templates

Status = LoopRound.Status
JobStatus = TrainingJob.Status


def loop_current_round(*, policy: LoopPolicy) -> LoopRound:
    latest = LoopRound.objects.filter(project_id=policy.project_id).order_by("-number").first()
    if latest is not None:
        return latest
    round_, _ = LoopRound.objects.get_or_create(
        project_id=policy.project_id,
        number=1,
        defaults={"previous_policy": policy.base_policy},
    )
    return round_


def _move(round_: LoopRound, old: str, new: str, **fields) -> bool:
    return bool(LoopRound.objects.filter(id=round_.id, status=old).update(status=new, **fields))


def loop_advance(*, project_id: int) -> str | None:
    """Make the next transition of the project's loop, if one is due. Returns the new status."""
    policy = LoopPolicy.objects.select_related("base_policy").filter(project_id=project_id).first()
    if policy is None or not policy.enabled or policy.paused:
        return None
    round_ = loop_current_round(policy=policy)
    step = {
        Status.COLLECTING: _after_collecting,
        Status.SFT: _after_sft,
        Status.REWARD: _after_reward,
        Status.POLICY: _after_policy,
        Status.GENERATING: _after_generating,
    }.get(round_.status)
    if step is None:
        return None
    try:
        with transaction.atomic():
            return step(policy, round_)
    except JobError as exc:
        _fail(round_, f"Could not start the next job: {exc}")
        return Status.FAILED


def loop_advance_if_due(*, project_id: int) -> str | None:
    """Advance the loop if a label or a job end marked it due (trainer/outbox.py); a no-op if the
    sweep got there first."""
    if not outbox.loop_advance_claim(project_id=project_id):
        return None
    return loop_advance(project_id=project_id)


def loops_advance_all() -> None:
    """Every enabled loop, advanced if due: the safety net for a lost trigger message."""
    for project_id in LoopPolicy.objects.filter(enabled=True).values_list("project_id", flat=True):
        loop_advance(project_id=project_id)


def _fail(round_: LoopRound, error: str) -> None:
    LoopRound.objects.filter(id=round_.id).exclude(status__in=[Status.DONE, Status.STOPPED]).update(
        status=Status.FAILED, error=error, finished_at=timezone.now()
    )


def _job_outcome(round_: LoopRound, job: TrainingJob | None, what: str) -> bool | None:
    """True if the job succeeded, None while it runs; a failed job fails the round."""
    if job is None:
        return None
    if job.status == JobStatus.SUCCEEDED:
        return True
    if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        _fail(round_, f"The {what} job {job.id} {job.status}: {job.error or 'no error message'}")
    return None


def _after_collecting(policy: LoopPolicy, round_: LoopRound) -> str | None:
    fresh = usable_comparisons(project_id=policy.project_id, since=_labels_since(round_))
    if not policy.retrain_requested and fresh < policy.reward_after:
        return None
    if sft_due(policy, round_):
        return _start_sft(policy, round_)
    if not _move(round_, Status.COLLECTING, Status.REWARD):
        return None
    LoopPolicy.objects.filter(id=policy.id).update(retrain_requested=False)
    _start_reward(policy, round_)
    _measure_last_reward_model(round_)
    return Status.REWARD


def _start_reward(policy: LoopPolicy, round_: LoopRound) -> None:
    """The round's reward job, started from the loop's SFT model if it has one (InstructGPT
    starts its reward model from the SFT model), else from the base policy."""
    start = loop_start_policy(policy=policy)
    config = {"model_name_or_path": start.path, **policy.reward_config}
    weights = policy.reward_source_weights
    dataset = {"source_weights": weights} if weights else {}
    job = services.job_create(
        project=policy.project, kind="reward", config=config, input_model=start, dataset=dataset
    )
    LoopRound.objects.filter(id=round_.id).update(reward_job=job)


def sft_due(policy: LoopPolicy, round_: LoopRound) -> bool:
    """Whether this round opens with SFT on demonstrations: the loop is set to start with SFT
    and has not trained its SFT model yet, and no round has finished (switching the option on
    in a loop that already ran rounds does not go back to SFT)."""
    if not policy.sft_first or round_.sft_job_id is not None:
        return False
    if loop_sft_model(project_id=policy.project_id) is not None:
        return False
    return not LoopRound.objects.filter(project_id=policy.project_id, status=Status.DONE).exists()


def _start_sft(policy: LoopPolicy, round_: LoopRound) -> str | None:
    """The SFT job on the project's demonstrations and revisions (the `sft` export's rows, as
    a launched SFT job with `demonstrations: true` takes them). With none written yet the round
    waits in collecting: the loop page says so."""
    if not usable_demonstrations(project_id=policy.project_id):
        return None
    if not _move(round_, Status.COLLECTING, Status.SFT):
        return None
    LoopPolicy.objects.filter(id=policy.id).update(retrain_requested=False)
    job = services.job_create(
        project=policy.project,
        kind="sft",
        config=dict(policy.sft_config),
        input_model=round_.previous_policy,
        dataset={"demonstrations": True},
    )
    LoopRound.objects.filter(id=round_.id).update(sft_job=job)
    _measure_last_reward_model(round_)
    return Status.SFT


def _after_sft(policy: LoopPolicy, round_: LoopRound) -> str | None:
    if not _job_outcome(round_, round_.sft_job, "SFT"):
        return None
    sft_model = round_.sft_job.output_model
    # The round's policy step trains on from the SFT model, and compares with it.
    if not _move(round_, Status.SFT, Status.REWARD, previous_policy=sft_model):
        return None
    _start_reward(policy, round_)
    return Status.REWARD


def _measure_last_reward_model(round_: LoopRound) -> None:
    """The labels this round collected are fresh to the last round's reward model: measure its
    accuracy on them (on a gpu worker), as the loop page's fresh accuracy."""
    last = (
        LoopRound.objects.filter(project_id=round_.project_id, number__lt=round_.number)
        .exclude(reward_job__output_model=None)
        .select_related("reward_job__output_model")
        .order_by("-number")
        .first()
    )
    if last is not None:
        model = last.reward_job.output_model
        measure.reward_model_fresh_accuracy_request(model_version=model)


def _labels_since(round_: LoopRound):
    """Round 1 counts every label so far; later rounds count those since they started."""
    return round_.started_at if round_.number > 1 else None


def _after_reward(policy: LoopPolicy, round_: LoopRound) -> str | None:
    if not _job_outcome(round_, round_.reward_job, "reward-model"):
        return None
    if not _move(round_, Status.REWARD, Status.POLICY):
        return None
    reward_model = round_.reward_job.output_model
    reference = kl_reference(policy, round_)
    job = services.job_create(
        project=policy.project,
        kind=policy.algorithm,
        config=policy_job_config(policy, reference),
        input_model=round_.previous_policy,
        reward_model=reward_model if KINDS[policy.algorithm].needs_reward_model else None,
    )
    LoopRound.objects.filter(id=round_.id).update(policy_job=job, reference_policy=reference)
    return Status.POLICY


# The algorithms whose policy job holds the policy near a frozen reference with a KL penalty
# (RAFT has no penalty; DPO's reference is the policy it starts from, by construction).
KL_ALGORITHMS = KL_KINDS & {k.name for k in LOOP_ALGORITHMS}
# GRPO's KL weight in the loop when its config sets none: TRL's default is 0 (no penalty at
# all), which over rounds lets the policy drift as far as the reward model pays it to.
LOOP_GRPO_BETA = 0.04


def kl_reference(policy: LoopPolicy, round_: LoopRound) -> ModelVersion | None:
    """The policy the KL penalty holds this round's policy near: the loop's base policy, or its
    SFT model when it started with SFT (InstructGPT's reference is the SFT model), or the
    previous round's when the loop is set so."""
    if policy.algorithm not in KL_ALGORITHMS:
        return None
    if policy.reference == LoopPolicy.Reference.PREVIOUS:
        return round_.previous_policy
    return loop_start_policy(policy=policy)


def policy_job_config(policy: LoopPolicy, reference: ModelVersion | None) -> dict:
    """The loop's policy config with the round's KL reference, and GRPO's loop default beta.
    A reference path the admin wrote in the config wins."""
    config = dict(policy.policy_config)
    if reference is not None:
        config.setdefault("ref_model_path", reference.path)
    if policy.algorithm == LoopPolicy.Algorithm.GRPO:
        config.setdefault("beta", LOOP_GRPO_BETA)
    return config


def _after_policy(policy: LoopPolicy, round_: LoopRound) -> str | None:
    if not _job_outcome(round_, round_.policy_job, "policy"):
        return None
    if not _move(round_, Status.POLICY, Status.GENERATING):
        return None
    prompt_ids = _round_prompts(policy, round_)
    models = {"new": round_.policy_job.output_model, "previous": round_.previous_policy}
    if policy.compare_with_base and round_.previous_policy_id != policy.base_policy_id:
        models["base"] = policy.base_policy
    jobs = {
        role: services.job_create(
            project=policy.project,
            kind="generate",
            config=generate_job_config(policy, role),
            input_model=model,
            dataset={"prompt_ids": prompt_ids},
        ).id
        for role, model in models.items()
    }
    LoopRound.objects.filter(id=round_.id).update(generate_jobs=jobs, prompt_ids=prompt_ids)
    return Status.GENERATING


def generate_job_config(policy: LoopPolicy, role: str) -> dict:
    """The loop's generate config; with routing, the new and the previous policy sample
    `candidates` responses per prompt, the pairs to label are chosen among them."""
    config = dict(policy.generate_config)
    if role in ("new", "previous") and policy.candidates > 1:
        config["num_samples"] = policy.candidates
    return config


def routing_on(policy: LoopPolicy) -> bool:
    """Whether the loop chooses its train-prompt pairs (issue #10) rather than queueing the new
    policy's first sample against the previous one's on every train prompt, as before."""
    return policy.acquisition != "random" or policy.candidates > 1 or policy.pairs_per_round > 0


def round_train_prompts(round_: LoopRound) -> list[int]:
    """The round's train-split prompts (its eval prompts measure it and are never routed)."""
    return sorted(
        Prompt.objects.filter(id__in=round_.prompt_ids, split=Prompt.Split.TRAIN).values_list(
            "id", flat=True
        )
    )


def _round_prompts(policy: LoopPolicy, round_: LoopRound) -> list[int]:
    """M train prompts (a fresh sample each round) and every eval prompt."""
    prompts = Prompt.objects.filter(project_id=policy.project_id)
    train = list(prompts.filter(split=Prompt.Split.TRAIN).values_list("id", flat=True))
    evals = list(prompts.filter(split=Prompt.Split.EVAL).values_list("id", flat=True))
    sample = random.Random(f"{policy.project_id}:{round_.number}").sample(
        train, min(policy.train_prompts, len(train))
    )
    return sorted(sample) + sorted(evals)


def _after_generating(policy: LoopPolicy, round_: LoopRound) -> str | None:
    jobs = {j.id: j for j in TrainingJob.objects.filter(id__in=round_.generate_jobs.values())}
    outcomes = [
        _job_outcome(round_, jobs.get(jid), "generate") for jid in round_.generate_jobs.values()
    ]
    if not all(outcomes):
        return None
    if not _candidates_scored(policy, round_):
        return None
    if not _move(round_, Status.GENERATING, Status.DONE, finished_at=timezone.now()):
        return None
    created = _queue_comparisons(policy, round_, jobs)
    LoopRound.objects.filter(id=round_.id).update(tasks_created=created)
    _judge_first(policy, round_)
    measure.round_scores_request(round_=round_)
    LoopRound.objects.create(
        project_id=policy.project_id,
        number=round_.number + 1,
        previous_policy=round_.policy_job.output_model,
    )
    return Status.DONE


# A scoring request still queued after this long is sent again (its message may be lost).
CANDIDATES_RESEND_AFTER = timedelta(minutes=15)


def _candidates_scored(policy: LoopPolicy, round_: LoopRound) -> bool:
    """True once the routing rule has what it needs: nothing for `random`, else the
    candidates' scores under the round's reward model, asked for here the first time (scored on
    a gpu worker, which advances the loop when they are stored). A failed scoring fails the
    round."""
    if not routing_on(policy) or policy.acquisition not in acquisition.SCORED_RULES:
        return True
    state = round_.acquisition or {}
    status = state.get("status")
    if status == "done":
        return True
    if status == "failed":
        _fail(round_, f"Scoring the candidates for routing failed: {state.get('error', '')}")
        return False
    requested = state.get("requested_at")
    stale = requested and timezone.now() - _parse(requested) > CANDIDATES_RESEND_AFTER
    if status is None or stale:
        measure.round_candidates_request(round_=round_)
    return False


def _parse(value: str):
    from django.utils.dateparse import parse_datetime

    return parse_datetime(value)


def _judge_first(policy: LoopPolicy, round_: LoopRound) -> None:
    """The loop's AI judge, if any and not paused, judges the round's new tasks first."""
    from trainer.judging.services import judge_run

    judge = policy.judge
    if judge is None or judge.paused:
        return
    try:
        judge_run(judge=judge, round=round_.number)
    except JobError as exc:  # a judge that cannot run leaves the tasks to people
        LoopRound.objects.filter(id=round_.id).update(error=f"AI judge: {exc}")


def _queue_comparisons(policy: LoopPolicy, round_: LoopRound, jobs: dict) -> int:
    """Pairwise tasks: the new policy's first sample against each other policy's on every
    prompt; with routing, on train prompts only the pairs the acquisition rule chose."""
    model_ids = {role: jobs[jid].input_model_id for role, jid in round_.generate_jobs.items()}
    prompts = {role: round_.prompt_ids for role in round_.generate_jobs if role != "new"}
    routed = []
    if routing_on(policy):
        train = set(round_train_prompts(round_))
        prompts["previous"] = [p for p in round_.prompt_ids if p not in train]
        routed = _routed_pairs(policy, round_, model_ids, sorted(train))
    tasks = _first_sample_pairs(policy, round_, model_ids, prompts) + routed
    return tasks_create(project=policy.project, tasks=tasks)


def _loop_meta(round_: LoopRound, model_ids: dict, against: str, other: str) -> dict:
    return {
        "round": round_.number,
        "new": model_ids["new"],
        "other": model_ids[other],
        "against": against,
    }


def _first_sample_pairs(
    policy: LoopPolicy, round_: LoopRound, model_ids: dict, prompts: dict[str, list[int]]
) -> list[NewTask]:
    """The new policy's first sample against each other role's first, on that role's prompts;
    when the generate config names prompt strategies, under the same strategy."""
    by_role = {}
    for role, job_id in round_.generate_jobs.items():
        # One sample per prompt (and prompt strategy, when the generate config names some) per
        # policy: the first. Policies are compared under the same strategy.
        rows = Completion.objects.filter(meta__job=job_id, meta__sample_index=0)
        by_role[role] = {(c.prompt_id, c.meta.get("strategy")): c for c in rows}
    new = by_role.pop("new")
    keys: dict[int, list] = {}
    for key in sorted(new, key=lambda k: k[1] or ""):
        keys.setdefault(key[0], []).append(key)
    tasks = []
    for role, other in by_role.items():
        for prompt_id in prompts.get(role, ()):
            for key in keys.get(prompt_id, ()):
                if key not in other:
                    continue
                loop = _loop_meta(round_, model_ids, role, role)
                if key[1] is not None:
                    loop["strategy"] = key[1]
                tasks.append(
                    NewTask(
                        prompt_id=prompt_id,
                        kind=Kind.PAIRWISE,
                        completion_ids=(new[key].id, other[key].id),
                        priority=policy.task_priority,
                        round=round_.number,
                        meta={"loop": loop},
                    )
                )
    return tasks


def _routed_pairs(
    policy: LoopPolicy, round_: LoopRound, model_ids: dict, train: list[int]
) -> list[NewTask]:
    """The pairs the acquisition rule chooses among each train prompt's candidates (every
    sample of the new and the previous policy), best first, at priorities above the loop's
    task priority so the queue serves the most useful first. Each task keeps the rule, its
    score and the candidates it chose from in `meta["acquisition"]` (admins only)."""
    roles = {jid: role for role, jid in round_.generate_jobs.items() if role in ("new", "previous")}
    rows = Completion.objects.filter(meta__job__in=list(roles), prompt_id__in=train).order_by("id")
    state = round_.acquisition or {}
    scores = state.get("scores", {})
    groups: dict[int, list[acquisition.Candidate]] = {}
    role_of = {}
    for c in rows.only("id", "prompt_id", "text", "meta"):
        role_of[c.id] = roles[int(c.meta["job"])]
        groups.setdefault(c.prompt_id, []).append(
            acquisition.Candidate(c.id, tuple(scores.get(str(c.id), ())), c.text)
        )
    picks = acquisition.choose_pairs(
        policy.acquisition,
        groups,
        budget=policy.pairs_per_round or None,
        seed=policy.project_id * 100_003 + round_.number,
    )
    priorities = acquisition.priorities(picks, base=policy.task_priority)
    reward = {c.key: c.reward for group in groups.values() for c in group}
    tasks = []
    for rank, (pick, priority) in enumerate(zip(picks, priorities, strict=True)):
        a, b = (pick.a, pick.b) if role_of[pick.a] == "new" else (pick.b, pick.a)
        candidates = [c.key for c in groups[pick.prompt]]
        meta = {
            "loop": _loop_meta(round_, model_ids, role_of[b], role_of[b])
            | {"new": model_ids[role_of[a]]},
            "acquisition": {
                "rule": pick.rule,
                "score": pick.score,
                "rank": rank + 1,
                "margin": reward[a] - reward[b] if scores else None,
                "reward_model": state.get("reward_model"),
                "candidates": candidates,
                "rewards": {str(k): reward[k] for k in candidates} if scores else {},
            },
        }
        tasks.append(
            NewTask(
                prompt_id=pick.prompt,
                kind=Kind.PAIRWISE,
                completion_ids=(a, b),
                priority=priority,
                round=round_.number,
                meta=meta,
            )
        )
    summary = {"rule": policy.acquisition, "pairs": len(tasks), "candidates": len(role_of)}
    LoopRound.objects.filter(id=round_.id).update(acquisition=state | summary)
    return tasks


# --- Controls ---------------------------------------------------------------------------------


# Stands in for the round's reward model when a policy config is checked before any exists.
REWARD_PLACEHOLDER = "(the round's reward model)"


def loop_configs_check(*, base_policy: ModelVersion, algorithm: str | None, data: dict) -> dict:
    """Check the loop's job configs now rather than when a round starts their job (where a
    bad one would fail that round): {config name: error} for each one that is wrong.

    `data` is the loop's settings as given (a form's or a serializer's): the configs it holds
    are checked, the policy config only when there is an algorithm to check it against."""

    # DPO trains on the labels themselves; the others score their samples with a reward model.
    scored = algorithm not in KINDS or KINDS[algorithm].needs_reward_model
    kinds = {
        "reward_config": ("reward", {"model_name_or_path": base_policy.path}),
        "policy_config": (algorithm, {"reward_model_path": REWARD_PLACEHOLDER} if scored else {}),
        "generate_config": ("generate", {}),
        "sft_config": ("sft", {}),
    }
    if not algorithm:
        del kinds["policy_config"]
    errors = {}
    if data.get("reward_source_weights"):
        try:
            source_weights_from(data["reward_source_weights"])
        except ValueError as exc:
            errors["reward_source_weights"] = str(exc)
    for name, (kind, defaults) in kinds.items():
        if name not in data:
            continue
        config = data[name]
        try:
            validate_config(kind=kind, config={**defaults, **config}, input_model=base_policy)
            if kind == "generate":  # the round's samples under the project's prompt strategies
                strategy_templates(project=base_policy.project, names=config.get("strategies"))
        except JobError as exc:
            errors[name] = str(exc)
    return errors


LIKERT_REFUSED = (
    "The loop needs comparisons: it starts a round after enough pairwise preferences or "
    "rankings, and measures each round with pairwise tasks. This project collects Likert "
    "scores only, so a loop here would never start. Export its labels and train by hand "
    "(docs/training.md), or run the loop in a pairwise or ranking project."
)


def loop_project_check(*, project) -> str | None:
    """Why the project cannot run a loop, or None when it can."""
    if project.kind == Kind.LIKERT:
        return LIKERT_REFUSED
    return None


SFT_REFUSED = (
    "Starting with SFT needs demonstrations, and this project has no demonstration or edit "
    "tasks, so the loop would wait for ever. Start the loop in a demonstration or edit project "
    "(docs/demonstrations.md), or train an SFT model by hand and pick it as the base policy."
)


def loop_sft_check(*, project) -> str | None:
    """Why the loop cannot start with SFT on demonstrations here, or None when it can."""
    if project.kind in (Kind.DEMONSTRATION, Kind.EDIT):
        return None
    if Task.objects.filter(project=project, kind__in=[Kind.DEMONSTRATION, Kind.EDIT]).exists():
        return None
    return SFT_REFUSED


def loop_configure(*, project, base_policy: ModelVersion, **fields) -> LoopPolicy:
    """Create or change the loop. Enabling it after a failed or stopped round opens a new
    round that starts from the last policy that round began with."""
    with transaction.atomic():
        policy, _ = LoopPolicy.objects.update_or_create(
            project=project, defaults={"base_policy": base_policy, **fields}
        )
        latest = LoopRound.objects.filter(project=project).order_by("-number").first()
        if (
            policy.enabled
            and latest is not None
            and latest.status in (Status.FAILED, Status.STOPPED)
        ):
            LoopRound.objects.get_or_create(
                project=project, number=latest.number + 1,
                defaults={"previous_policy": latest.previous_policy},
            )  # fmt: skip
    return policy


def loop_request_retrain(*, policy: LoopPolicy) -> None:
    LoopPolicy.objects.filter(id=policy.id).update(retrain_requested=True)


def loop_pause(*, policy: LoopPolicy, paused: bool) -> None:
    LoopPolicy.objects.filter(id=policy.id).update(paused=paused)


def loop_stop(*, policy: LoopPolicy) -> None:
    """Disable the loop; the current round ends 'stopped' (its running jobs are cancelled)."""
    with transaction.atomic():
        LoopPolicy.objects.filter(id=policy.id).update(enabled=False)
        round_ = LoopRound.objects.filter(project_id=policy.project_id).order_by("-number").first()
        if round_ is None or round_.status in (Status.DONE, Status.FAILED, Status.STOPPED):
            return
        LoopRound.objects.filter(id=round_.id).update(
            status=Status.STOPPED, finished_at=timezone.now()
        )
        for job in _round_jobs(round_):
            if not job.is_finished:
                services.job_cancel(job=job)


LOOP_ACTIONS = ("pause", "resume", "stop", "retrain")


def loop_act(*, policy: LoopPolicy, action: str) -> None:
    """One of the loop's controls; resume and retrain look for a due transition at once."""
    if action in ("pause", "resume"):
        loop_pause(policy=policy, paused=action == "pause")
    elif action == "stop":
        loop_stop(policy=policy)
    elif action == "retrain":
        loop_request_retrain(policy=policy)
    else:
        raise ValueError(f"unknown loop action {action!r}")
    if action in ("resume", "retrain"):
        loop_advance(project_id=policy.project_id)


def _round_jobs(round_: LoopRound) -> list[TrainingJob]:
    ids = [round_.sft_job_id, round_.reward_job_id, round_.policy_job_id]
    ids += round_.generate_jobs.values()
    return list(TrainingJob.objects.filter(id__in=[i for i in ids if i]))
