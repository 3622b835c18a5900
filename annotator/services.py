"""Everything that writes labeling data: projects, members, the queue and answers.

The queue's rules (issue #2):
- "next task" resumes the labeler's own live lease first, so a double click or a second tab
  never hands out a second task;
- it never returns a task the labeler answered or skipped, nor one whose overlap is already
  covered by annotations plus live leases;
- order: priority (high first), then fewest annotations, then oldest.

Concurrency: a claim locks the task row (`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL)
and only then counts live leases in a fresh statement, so every claimer of one task is
serialised and sees the leases of those before it. Submissions take the same row lock.
A claim first locks the labeler's user row (FOR NO KEY UPDATE), so one labeler's claims are
serialised too and the resume check sees a lease taken a moment ago in another tab.
On SQLite, IMMEDIATE transactions (settings.py) serialise all writers, which gives the same
guarantee.
"""

import random
import time
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from annotator import selectors
from annotator.answers import validate_answer
from annotator.exceptions import (
    AlreadyAnswered,
    AnswerGone,
    LabelerPaused,
    LeaseLost,
    NotAssigned,
    NotYours,
    ServiceError,
    UndoExpired,
)
from annotator.gold import gold_floor_check
from annotator.models import (
    Annotation,
    AnnotationRevision,
    Assignment,
    Completion,
    Kind,
    LabelerKind,
    Membership,
    Project,
    Repeat,
    Task,
)
from annotator.signals import annotation_created
from webapp import sql

# How many candidate tasks a claim tries before answering "nothing left" when every one it
# locked turned out full (only under heavy contention on one task).
_CLAIM_ATTEMPTS = 20
# Pauses (seconds) before asking again when the queue's open tasks are all held, for the
# moment, by other labelers' claims in flight (a claim's transaction lasts milliseconds).
_BUSY_WAITS = (0.01, 0.02, 0.05, 0.1, 0.2)


# --- Projects and members -------------------------------------------------------------------


def project_create(*, created_by: AbstractBaseUser, **fields) -> Project:
    """Create a project; its creator becomes its first admin."""
    with transaction.atomic():
        project = Project(created_by=created_by, **fields)
        project.full_clean()
        project.save()
        Membership.objects.create(project=project, user=created_by, role=Membership.Role.ADMIN)
    return project


def membership_set(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    """Add a member or change their role (idempotent)."""
    if role not in Membership.Role.values:
        raise ServiceError(f"role must be one of {', '.join(Membership.Role.values)}", field="role")
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    return membership


def api_token_regenerate(*, user: AbstractBaseUser) -> Token:
    """Give the user a new API token; the old one stops working at once."""
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user)


# Users in this group are scripted labelers (trainer's simulate_labelers): their annotations
# are stored with labeler_kind "simulated", and the UI and the exports mark them.
SIMULATED_GROUP = "simulated"


def labeler_simulated_ensure(*, project: Project, username: str) -> Token:
    """A simulated labeler on the project, created if need be, and its API token (idempotent).

    It has no usable password: it only labels over the API.
    """
    with transaction.atomic():
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        user.groups.add(Group.objects.get_or_create(name=SIMULATED_GROUP)[0])
        if not Membership.objects.filter(project=project, user=user).exists():
            membership_set(project=project, user=user, role=Membership.Role.LABELER)
        return Token.objects.get_or_create(user=user)[0]


# --- The queue ------------------------------------------------------------------------------
#
# "Next task" is the hot path of labeling (bench/labeling_load.py), so its statements are
# written by hand (see webapp/sql.py): the ORM spent more CPU building them than the
# database spent running them. Every one is portable SQL (PostgreSQL and SQLite).

_LEASE_FIELDS = ("id", "task", "labeler", "status", "shown_order", "created_at", "expires_at")


def _has_room(*, task_id: int, labeler_id: int, now) -> tuple[str, list]:
    """SQL for "the task's overlap is not yet covered by its answers and the live leases of
    labelers other than this one", with its parameters. Counted when it runs: inside the
    statement that takes the lease (the claim) or after the task's row lock (a late submit)."""
    task, lease = sql.table(Task), sql.table(Assignment)
    condition = f"""
        (SELECT t.annotation_count FROM {task} t WHERE t.id = %s) + (
            SELECT COUNT(*) FROM {lease} l
            WHERE l.task_id = %s AND l.status = %s AND l.expires_at > %s AND l.labeler_id <> %s
        ) < (SELECT t.overlap FROM {task} t WHERE t.id = %s)
    """  # noqa: S608 -- table names only
    at = connection.ops.adapt_datetimefield_value(now)
    return condition, [task_id, task_id, Assignment.Status.ACTIVE, at, labeler_id, task_id]


def _claim_candidate(
    *, project_id: int, labeler_id: int, now, tried: list[int], lock: bool = True
) -> tuple[int, bool] | None:
    """The first task this labeler may take, in serving order, locked where the database can
    (`FOR UPDATE SKIP LOCKED`: tasks other claimers hold are passed over, not waited for).

    Returns (task id, renew): `renew` says the labeler holds an expired lease on it, the only
    lease of theirs a claimable task can have. Every subquery is a scalar one on purpose: one
    index probe per candidate, walked in the queue index's order until the first fit. (NOT
    EXISTS and EXISTS let PostgreSQL plan an anti-join or a hash over all the labeler's
    leases, which grows with everything they ever labeled.)
    """
    task, lease = sql.table(Task), sql.table(Assignment)
    at = connection.ops.adapt_datetimefield_value(now)
    locking = "FOR UPDATE OF t SKIP LOCKED" if lock and _skips_locked_rows() else ""
    not_tried = f"AND t.id NOT IN ({', '.join(['%s'] * len(tried))})" if tried else ""
    statement = f"""
        SELECT t.id,
               (SELECT COUNT(*) FROM {lease} r WHERE r.task_id = t.id AND r.labeler_id = %s)
        FROM {task} t
        WHERE t.project_id = %s AND NOT t.is_complete AND t.gold IS NULL {not_tried}
          AND (t.held_until IS NULL OR t.held_until <= %s)
          AND t.annotation_count + (
                SELECT COUNT(*) FROM {lease} l
                WHERE l.task_id = t.id AND l.status = %s AND l.expires_at > %s
              ) < t.overlap
          AND (
                SELECT COUNT(*) FROM {lease} m
                WHERE m.task_id = t.id AND m.labeler_id = %s
                  AND (m.status IN (%s, %s) OR m.expires_at > %s)
              ) = 0
        ORDER BY t.priority DESC, t.annotation_count, t.id
        LIMIT 1 {locking}
    """  # noqa: S608 -- only the models' table names are formatted in; values are bound
    Status = Assignment.Status
    params = [labeler_id, project_id, *tried, at, Status.ACTIVE, at, labeler_id]
    params += [Status.SUBMITTED, Status.SKIPPED, at]
    row = sql.one(statement, params)
    if row is None:
        return None
    return row[0], bool(row[1])


def _skips_locked_rows() -> bool:
    features = connection.features
    return features.has_select_for_update_skip_locked and features.has_select_for_update_of


def _next_candidate(
    *, project_id: int, labeler_id: int, now, tried: list[int]
) -> tuple[int, bool] | None:
    """`_claim_candidate`, told apart from a queue that only looks empty because another
    labeler's claim holds its last open tasks for a moment.

    SKIP LOCKED passes such a task over, so near the end of a queue a labeler could be told
    "nothing left" while a task they may still answer is only being leased to someone else.
    When the locked read finds nothing, an unlocked read (it never waits) says whether a task
    is there; if so, ask again after a short pause, and say "nothing now" only once the other
    claims have committed and still leave no room, or after `_BUSY_WAITS`."""
    candidate = dict(project_id=project_id, labeler_id=labeler_id, now=now, tried=tried)
    for pause in (*_BUSY_WAITS, None):
        row = _claim_candidate(**candidate)
        if row is not None or not _skips_locked_rows():
            return row
        if pause is None or _claim_candidate(**candidate, lock=False) is None:
            return None
        time.sleep(pause)
    return None  # not reached: the last pass (pause None) returns


def _resume_lease(*, project_id: int, labeler_id: int, now, uncount: bool) -> Assignment | None:
    """The labeler's live lease on an open task of this project, if they hold one.

    `uncount`: a request that resumes a held lease takes no new task, so it gives back the
    claim the membership lock counted (it paces gold tasks); on PostgreSQL in this same
    statement, elsewhere in a second one only when there is a lease to resume."""
    task, lease = sql.table(Task), sql.table(Assignment)
    select = f"""
        SELECT {sql.columns(Assignment, "a", _LEASE_FIELDS)}
        FROM {lease} a JOIN {task} t ON t.id = a.task_id
        WHERE a.labeler_id = %s AND a.status = %s AND a.expires_at > %s
          AND t.project_id = %s AND (NOT t.is_complete OR t.gold IS NOT NULL)
        ORDER BY a.created_at
        LIMIT 1
    """  # noqa: S608 -- table and column names only
    at = connection.ops.adapt_datetimefield_value(now)
    params = [labeler_id, Assignment.Status.ACTIVE, at, project_id]
    in_one = uncount and connection.vendor == "postgresql"
    if in_one:
        select = f"""
            WITH r AS ({select}),
                 u AS (UPDATE {sql.table(Membership)} SET claims = claims - 1
                       WHERE project_id = %s AND user_id = %s AND claims > 0
                         AND EXISTS (SELECT 1 FROM r))
            SELECT * FROM r
        """  # noqa: S608 -- table names only
        params += [project_id, labeler_id]
    row = sql.one(select, params)
    if row is None:
        return None
    if uncount and not in_one:
        _uncount_claim(project_id=project_id, labeler_id=labeler_id)
    return sql.instance(Assignment, row, _LEASE_FIELDS)


def task_claim_next(*, project: Project, labeler: AbstractBaseUser) -> Assignment | None:
    """Give the labeler their next task as a lease, or None when nothing is left for them.

    Raises LabelerPaused when the labeler is paused for the project (under the gold floor).
    Gold tasks are paced here (docs/quality.md): one in `project.gold_every` leases, at a
    random place in each block of that many, never the same gold task twice."""
    tried: list[int] = []
    with transaction.atomic():
        # One claim at a time per labeler: a second tab or a double click waits here, then
        # resumes the lease the first one took instead of taking a second task.
        now = timezone.now()
        if not connection.features.has_select_for_update:
            # SQLite: the IMMEDIATE transaction already serialises writers, so the resume
            # check may come first and only a request for a new task is counted.
            resumed = _resume_lease(
                project_id=project.id, labeler_id=labeler.pk, now=now, uncount=False
            )
            if resumed is not None:
                return resumed
        member = _lock_member(project=project, labeler_id=labeler.pk, count=True)
        if member is not None and member.paused:
            raise LabelerPaused(member.paused_reason or "You are paused on this project.")
        if connection.features.has_select_for_update:
            resumed = _resume_lease(
                project_id=project.id, labeler_id=labeler.pk, now=now, uncount=member is not None
            )
            if resumed is not None:
                return resumed
        if member is not None and member.repeat_id is not None:
            repeat = _serve_repeat(repeat_id=member.repeat_id, project=project, now=now)
            if repeat is not None:
                return repeat
        gold_due = member is not None and _gold_due(project, member)
        for _ in range(_CLAIM_ATTEMPTS):
            row = _next_candidate(
                project_id=project.id, labeler_id=labeler.pk, now=now, tried=tried
            )
            if row is None:
                if member is not None and (project.gold_every or project.repeat_share):
                    # Nothing served: the request paces nothing.
                    _uncount_claim(project_id=project.id, labeler_id=labeler.pk)
                return None
            if gold_due:
                # Gold only among real work: when the queue is empty for them, nothing is.
                gold_due = False
                gold = _lease_gold(project=project, labeler_id=labeler.pk, now=now)
                if gold is not None:
                    return gold
            task_id, renew = row
            leased = _lease(
                task_id=task_id, labeler_id=labeler.pk, project=project, now=now, renew=renew
            )
            if leased is not None:
                return leased
            tried.append(task_id)
    return None


@dataclass(frozen=True)
class _Member:
    claims: int  # requests for a new task, this one included
    paused: bool
    paused_reason: str
    gold_seen: int  # gold tasks leased to the labeler so far
    gold_total: int  # gold tasks in the project
    repeat_id: int | None  # a swap repeat due (or served and held), if any


def _lock_member(
    *, project_id: int | None = None, project: Project | None = None, labeler_id: int, count: bool
) -> _Member | None:
    """Lock the labeler's membership row, so one labeler's claims (and undos) on a project
    are serialised; on a claim (`count`) count the request and read what paces gold tasks,
    all in the one statement that takes the lock. None for a superuser who is no member (then
    their user row is locked, as before memberships paced anything)."""
    project_id = project.id if project is not None else project_id
    member, task, lease = sql.table(Membership), sql.table(Task), sql.table(Assignment)
    gold, params = "0, 0", []
    if project is not None and project.gold_every:
        gold = f"""(SELECT COUNT(*) FROM {lease} a JOIN {task} g ON g.id = a.task_id
                    WHERE g.project_id = %s AND g.gold IS NOT NULL AND a.labeler_id = %s),
                   (SELECT COUNT(*) FROM {task} g WHERE g.project_id = %s
                    AND g.gold IS NOT NULL)"""  # noqa: S608 -- table names only
        params = [project_id, labeler_id, project_id]
    repeat = "NULL"
    if project is not None and project.repeat_share:
        repeat = f"""(SELECT r.id FROM {sql.table(Repeat)} r
                      WHERE r.labeler_id = %s AND r.project_id = %s AND r.status IN (%s, %s)
                        AND r.due_claims <= {member}.claims
                      ORDER BY CASE WHEN r.status = %s THEN 0 ELSE 1 END, r.due_claims
                      LIMIT 1)"""  # noqa: S608 -- table names only
        # One held (served, or given back by an undo) comes back before any other is due.
        params += [labeler_id, project_id, Repeat.Status.PENDING, Repeat.Status.ACTIVE,
                   Repeat.Status.ACTIVE]  # fmt: skip
    statement = f"""
        UPDATE {member} SET claims = claims + %s WHERE project_id = %s AND user_id = %s
        RETURNING claims, paused_at, paused_reason, {gold}, {repeat}
    """  # noqa: S608 -- table names only
    row = sql.one(statement, [1 if count else 0, project_id, labeler_id, *params])
    if row is None:
        _lock_labeler(labeler_id)
        return None
    claims, paused, reason, seen, total, repeat_id = row
    # paused_at itself: SQLite's RETURNING misreads `paused_at IS NOT NULL` as true.
    return _Member(claims, paused is not None, reason, seen, total, repeat_id)


def _uncount_claim(*, project_id: int, labeler_id: int) -> None:
    """A request that resumed a held lease took no new task: it does not pace gold."""
    sql.run(
        f"UPDATE {sql.table(Membership)} SET claims = claims - 1 "  # noqa: S608
        "WHERE project_id = %s AND user_id = %s AND claims > 0",
        [project_id, labeler_id],
    )


def _gold_due(project: Project, member: _Member) -> bool:
    """One gold task in each block of `gold_every` claims, at a random place in the block:
    owed while fewer were leased than blocks begun, and then taken with the chance that
    spreads it evenly over the block's remaining places (certain at its last)."""
    every = project.gold_every
    if not every or member.gold_seen >= member.gold_total:
        return False
    block = (member.claims - 1) // every
    if member.gold_seen > block:
        return False
    remaining = every - (member.claims - 1) % every
    return member.gold_seen < block or random.random() * remaining < 1


def _serve_repeat(*, repeat_id: int, project: Project, now) -> Assignment | None:
    """Serve (or serve again) a swap repeat, as a lease that looks like any other: the task,
    its responses in the first answer's order reversed. Not saved as an Assignment; `id` is
    the first lease's, which the labeling page reads the task through.

    By conditional update: the claim's lock statement read the repeat before it waited for
    the lock, and another tab may have answered it since; then None."""
    expires_at = now + timedelta(seconds=project.lease_seconds)
    statement = f"""
        UPDATE {sql.table(Repeat)} SET status = %s, expires_at = %s
        WHERE id = %s AND status IN (%s, %s)
        RETURNING task_id, labeler_id, shown_order,
          (SELECT n.assignment_id FROM {sql.table(Annotation)} n WHERE n.id = annotation_id)
    """  # noqa: S608 -- table names only
    at = connection.ops.adapt_datetimefield_value(expires_at)
    row = sql.one(
        statement,
        [Repeat.Status.ACTIVE, at, repeat_id, Repeat.Status.PENDING, Repeat.Status.ACTIVE],
    )
    if row is None:
        return None
    task_id, labeler_id, shown, first_lease = row
    assignment = Assignment(
        id=first_lease, task_id=task_id, labeler_id=labeler_id, status=Assignment.Status.ACTIVE,
        shown_order=sql.value(Repeat, "shown_order", shown), created_at=now,
        expires_at=expires_at,
    )  # fmt: skip
    assignment.is_repeat = True
    return assignment


def _repeat_schedule(*, annotation: Annotation, project: Project, shown_order: list) -> None:
    """Maybe (with the project's repeat share) bring this pairwise answer back to its
    labeler later, the two responses swapped: after 3 to 10 more requests for a task."""
    statement = f"""
        INSERT INTO {sql.table(Repeat)} (project_id, task_id, labeler_id, annotation_id, status,
            due_claims, shown_order, verdict, answer, created_at)
        SELECT %s, %s, %s, %s, %s, m.claims + %s, %s, %s, %s, %s FROM {sql.table(Membership)} m
        WHERE m.project_id = %s AND m.user_id = %s
    """  # noqa: S608 -- table names only
    sql.run(
        statement,
        [
            project.id, annotation.task_id, annotation.labeler_id, annotation.id,
            Repeat.Status.PENDING, random.randint(3, 10),
            sql.param(Repeat, "shown_order", list(reversed(shown_order))), "",
            sql.param(Repeat, "answer", {}),
            connection.ops.adapt_datetimefield_value(timezone.now()), project.id,
            annotation.labeler_id,
        ],
    )  # fmt: skip


def repeat_held(*, task_id: int, labeler_id: int) -> Repeat | None:
    """The swap repeat of this task the labeler holds right now, if any."""
    return Repeat.objects.filter(
        task_id=task_id, labeler_id=labeler_id, status=Repeat.Status.ACTIVE
    ).first()


def _repeat_answer(
    *, task: Task, labeler: AbstractBaseUser, answer: dict, time_spent_ms: int | None
) -> "SubmitResult | None":
    """Store the answer to a held swap repeat apart from the annotations, or None if the
    labeler holds no repeat of this task. The answer gets an id from the annotations' own
    sequence, so to its labeler (the submit's answer, Undo, My annotations) it is one more
    answer like any other."""
    repeat = (
        Repeat.objects.select_for_update()
        .filter(task_id=task.pk, labeler_id=labeler.pk, status=Repeat.Status.ACTIVE)
        .first()
    )
    if repeat is None:
        return None
    fields = validate_answer(
        task=task, project=task.project, shown_order=repeat.shown_order, answer=answer
    )
    repeat.verdict = fields.get("verdict", "")
    repeat.chosen_id = fields.get("chosen_id")
    repeat.status = Repeat.Status.ANSWERED
    repeat.answered_at = timezone.now()
    repeat.answer_id = sql.next_id(Annotation)
    repeat.answer = ANSWER_FIELDS | fields | {"time_spent_ms": time_spent_ms}
    repeat.save(update_fields=["verdict", "chosen", "status", "answered_at", "answer_id", "answer"])
    repeat.task = task
    return SubmitResult(annotation=selectors.repeat_as_annotation(repeat), late=False, repeat=True)


def _lease_gold(*, project: Project, labeler_id: int, now) -> Assignment | None:
    """A gold task of the project the labeler was never given, at random, leased to them."""
    task, lease = sql.table(Task), sql.table(Assignment)
    statement = f"""
        SELECT t.id FROM {task} t
        WHERE t.project_id = %s AND t.gold IS NOT NULL
          AND (SELECT COUNT(*) FROM {lease} m WHERE m.task_id = t.id AND m.labeler_id = %s) = 0
        ORDER BY RANDOM() LIMIT 1
    """  # noqa: S608 -- table names only
    row = sql.one(statement, [project.id, labeler_id])
    if row is None:
        return None
    return _lease(
        task_id=row[0], labeler_id=labeler_id, project=project, now=now, renew=False, gold=True
    )


def _lock_labeler(labeler_id: int) -> None:
    if not connection.features.has_select_for_update:
        return  # SQLite: the IMMEDIATE transaction already holds the database's write lock
    # NO KEY UPDATE: does not block the foreign-key checks of the labeler's own inserts.
    sql.run(
        f"SELECT 1 FROM {sql.table(get_user_model())} WHERE id = %s FOR NO KEY UPDATE",  # noqa: S608
        [labeler_id],
    )


def _lease(
    *, task_id: int, labeler_id: int, project: Project, now, renew: bool, gold: bool = False
) -> Assignment | None:
    """Lease the locked candidate task to the labeler, or None if its overlap is covered.

    The check and the write are one statement, run after the task's row lock was taken, so
    its counts see every lease and answer committed by the claimers who held that lock
    before us (a claim by conditional insert or update). A gold task has no overlap: every
    labeler answers it once (the unique lease per task and labeler sees to "once").
    """
    expires_at = now + timedelta(seconds=project.lease_seconds)
    if gold:
        has_room, room = "1 = 1", []
    else:
        has_room, room = _has_room(task_id=task_id, labeler_id=labeler_id, now=now)
    if renew:
        found = _lease_renew(task_id, labeler_id, expires_at, has_room, room)
    else:
        found = _lease_insert(task_id, labeler_id, now, expires_at, has_room, room)
    if found is None:
        return None
    lease_id, shown, created_at, content = found
    assignment = sql.loaded(
        Assignment(
            id=lease_id, task_id=task_id, labeler_id=labeler_id,
            status=Assignment.Status.ACTIVE, shown_order=shown, created_at=created_at,
            expires_at=expires_at,
        )
    )  # fmt: skip
    assignment.task_content = content  # for selectors.lease_view: not read twice
    return assignment


def _lease_renew(task_id, labeler_id, expires_at, has_room: str, room: list):
    """Extend the labeler's expired lease on the task: (id, shown order, created) or None."""
    statement = f"""
        UPDATE {sql.table(Assignment)} SET expires_at = %s
        WHERE task_id = %s AND labeler_id = %s AND status = %s AND {has_room}
        RETURNING id, shown_order, created_at
    """  # noqa: S608 -- table names only
    params = [connection.ops.adapt_datetimefield_value(expires_at), task_id, labeler_id]
    row = sql.one(statement, [*params, Assignment.Status.ACTIVE, *room])
    if row is None:
        return None
    lease_id, shown, created_at = row
    return (
        lease_id,
        sql.value(Assignment, "shown_order", shown),
        sql.value(Assignment, "created_at", created_at),
        None,  # the task's content is read when it is shown
    )


def _lease_insert(task_id, labeler_id, now, expires_at, has_room: str, room: list):
    """A new lease, completions in a fresh random order: (id, shown order, created, the
    task's content) or None."""
    ops = connection.ops
    content = selectors.task_content(task_id)
    # Shown in a fresh random order per lease, to cancel position bias.
    shown = random.sample(list(content["completions"]), len(content["completions"]))
    row = sql.one(
        f"""INSERT INTO {sql.table(Assignment)}
                (task_id, labeler_id, status, shown_order, created_at, expires_at, skip_reason)
            SELECT %s, %s, %s, %s, %s, %s, %s WHERE {has_room}
            RETURNING id""",  # noqa: S608 -- table names only
        [
            task_id, labeler_id, Assignment.Status.ACTIVE,
            sql.param(Assignment, "shown_order", shown), ops.adapt_datetimefield_value(now),
            ops.adapt_datetimefield_value(expires_at), "", *room,
        ],
    )  # fmt: skip
    return None if row is None else (row[0], shown, now, content)


def task_skip(*, task: Task, labeler: AbstractBaseUser, reason: str = "") -> Assignment:
    """Skip a leased task: it is never served to this labeler again."""
    reason = (reason or "").strip()[:200]
    skipped_repeat = Repeat.objects.filter(
        task=task, labeler=labeler, status=Repeat.Status.ACTIVE
    ).update(status=Repeat.Status.SKIPPED, answered_at=timezone.now())
    if skipped_repeat:
        return Assignment.objects.get(task=task, labeler=labeler)
    updated = Assignment.objects.filter(
        task=task, labeler=labeler, status=Assignment.Status.ACTIVE
    ).update(status=Assignment.Status.SKIPPED, skip_reason=reason, finished_at=timezone.now())
    assignment = Assignment.objects.filter(task=task, labeler=labeler).first()
    if assignment is None:
        raise NotAssigned("You do not hold this task; ask for the next task first.")
    if not updated and assignment.status == Assignment.Status.SUBMITTED:
        raise AlreadyAnswered(
            "You already answered this task.", annotation_id=assignment.annotation.id
        )
    return assignment


# --- Answers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitResult:
    annotation: Annotation
    late: bool  # accepted although the lease had expired
    repeat: bool = False  # the answer to a swap repeat (stored apart, not an annotation)


def annotation_submit(
    *,
    task: Task,
    labeler: AbstractBaseUser,
    answer: dict,
    time_spent_ms: int | None = None,
    is_simulated: bool = False,
) -> SubmitResult:
    """Store a labeler's answer to a task they hold.

    Idempotent per (task, labeler): a second submit raises AlreadyAnswered with the first
    annotation's id. A submit after the lease expired is accepted while the overlap is not
    yet covered by others; otherwise LeaseLost says so. Nothing is ever dropped silently.
    A simulated labeler's answers are always marked simulated.
    """
    try:
        with transaction.atomic():
            return _submit(
                task=task, labeler=labeler, answer=answer, time_spent_ms=time_spent_ms,
                is_simulated=is_simulated,
            )  # fmt: skip
    except IntegrityError:
        # A second submit of the same answer that waited on the task's row lock read the
        # lease as it was before the first one committed; the unique constraint on
        # (task, labeler) stops it, and the labeler is told which answer stands. Caught out
        # here rather than around the insert, which spares a savepoint on every submit.
        answered_id = _answer_id(task=task, labeler=labeler)
        if answered_id is None:
            raise
        raise AlreadyAnswered(
            "You already answered this task.", annotation_id=answered_id
        ) from None


def _answer_id(*, task: Task, labeler: AbstractBaseUser) -> int | None:
    answers = Annotation.objects.filter(task=task, labeler=labeler)
    return answers.values_list("id", flat=True).first()


def _submit(
    *, task: Task, labeler: AbstractBaseUser, answer: dict, time_spent_ms, is_simulated: bool
) -> SubmitResult:
    # The same row lock as claims take, so submit and claim counts never interleave; the
    # lease and any earlier answer (which can outlive its lease) come in the same statement.
    # Whether the labeler is a simulated one comes along too.
    lock = "FOR UPDATE OF t" if connection.features.has_select_for_update_of else ""
    user_groups = sql.table(get_user_model().groups.through)
    statement = f"""
        SELECT t.annotation_count, t.overlap, t.kind, t.project_id, t.gold IS NOT NULL,
               (SELECT n.id FROM {sql.table(Annotation)} n
                WHERE n.task_id = t.id AND n.labeler_id = %s),
               (SELECT COUNT(*) FROM {user_groups} ug JOIN {sql.table(Group)} g
                  ON g.id = ug.group_id WHERE ug.user_id = %s AND g.name = %s),
               {sql.columns(Assignment, "a", _LEASE_FIELDS)}
        FROM {sql.table(Task)} t
        LEFT JOIN {sql.table(Assignment)} a ON a.task_id = t.id AND a.labeler_id = %s
        WHERE t.id = %s {lock}
    """  # noqa: S608 -- table and column names only
    params = [labeler.pk, labeler.pk, SIMULATED_GROUP, labeler.pk, task.pk]
    annotation_count, overlap, kind, project_id, gold, answered_id, simulated, *lease = sql.one(
        statement, params
    )
    if answered_id is not None:
        repeated = _repeat_answer(
            task=task, labeler=labeler, answer=answer, time_spent_ms=time_spent_ms
        )
        if repeated is not None:
            return repeated
        # Once a swap repeat of it was answered, that is the labeler's latest answer to it.
        latest = Repeat.objects.filter(
            task_id=task.pk, labeler_id=labeler.pk, status=Repeat.Status.ANSWERED
        ).values_list("answer_id", flat=True)
        raise AlreadyAnswered(
            "You already answered this task.", annotation_id=latest.first() or answered_id
        )
    if lease[0] is None:
        raise NotAssigned("You do not hold this task; ask for the next task first.")
    assignment = sql.instance(Assignment, lease, _LEASE_FIELDS)
    if assignment.status == Assignment.Status.SKIPPED:
        raise NotAssigned("You skipped this task; it can no longer be answered.")
    fields = validate_answer(
        task=task, project=task.project, shown_order=assignment.shown_order, answer=answer
    )
    if kind == Kind.EDIT:
        fields |= _revision(task=task, original_id=assignment.shown_order[0], text=fields["text"])
    now = timezone.now()
    late = assignment.expires_at <= now
    # A gold task has no overlap to fill: a late answer to it always counts.
    if late and not gold and not _room_left(task_id=task.pk, labeler_id=labeler.pk, now=now):
        raise LeaseLost(
            "Your lease on this task expired and other labelers have since covered it; "
            "your answer was not stored. Ask for the next task."
        )
    annotation = sql.insert(
        Annotation(
            task_id=task.pk, labeler_id=labeler.pk, assignment_id=assignment.pk, kind=kind,
            shown_order=assignment.shown_order, time_spent_ms=time_spent_ms,
            labeler_kind=(
                LabelerKind.SIMULATED if is_simulated or simulated else LabelerKind.HUMAN
            ),
            **fields,
        )
    )  # fmt: skip
    count = annotation_count + 1
    sql.run(
        f"UPDATE {sql.table(Assignment)} SET status = %s, finished_at = %s WHERE id = %s",  # noqa: S608
        [Assignment.Status.SUBMITTED, connection.ops.adapt_datetimefield_value(now),
         assignment.pk],
    )  # fmt: skip
    sql.run(
        f"UPDATE {sql.table(Task)} SET annotation_count = %s, is_complete = %s WHERE id = %s",  # noqa: S608
        [count, count >= overlap or bool(gold), task.pk],
    )
    if gold:
        # Rare (one task in gold_every): the floor is checked on gold answers only.
        gold_floor_check(project=task.project, labeler_id=labeler.pk)
    elif kind == Kind.PAIRWISE and random.random() < task.project.repeat_share:
        _repeat_schedule(
            annotation=annotation, project=task.project, shown_order=assignment.shown_order
        )
    # Inside the transaction: listeners only write a row here and send nothing before the
    # commit, so the answer never waits on anything outside the database.
    annotation_created.send(sender=Annotation, annotation_id=annotation.id, project_id=project_id)
    return SubmitResult(annotation=annotation, late=late)


def _revision(*, task: Task, original_id: int, text: str) -> dict:
    """An edit task's answer as a preference too: the revision, stored as a completion of the
    prompt, chosen over the original (docs/demonstrations.md). An unchanged response is no
    preference."""
    original = Completion.objects.filter(id=original_id).values_list("text", flat=True).first()
    if original is None or original.strip() == text:
        return {"verdict": "", "chosen_id": None, "rejected_id": None}
    revision = Completion.objects.create(
        prompt_id=task.prompt_id, text=text, source=Completion.Source.REVISION,
        meta={"revises": original_id, "task": task.pk},
    )  # fmt: skip
    return {
        "verdict": Annotation.Verdict.PREFERRED, "chosen_id": revision.id,
        "rejected_id": original_id,
    }  # fmt: skip


def _room_left(*, task_id: int, labeler_id: int, now) -> bool:
    has_room, params = _has_room(task_id=task_id, labeler_id=labeler_id, now=now)
    return bool(sql.one(f"SELECT {has_room}", params)[0])


# --- Correcting answers ---------------------------------------------------------------------

# How long after a submit its labeler may take the answer back (the task returns to them).
UNDO_SECONDS = 30

# An answer's own fields, as stored, with their values when unset. What a revision records.
ANSWER_FIELDS = {
    "verdict": "", "chosen_id": None, "rejected_id": None, "strength": None, "score": None,
    "scores": {}, "flags": [], "ranking": [], "notes": "", "text": "", "critique": "",
    "principle": "",
}  # fmt: skip


def answer_fields(annotation: Annotation) -> dict:
    return {name: getattr(annotation, name) for name in ANSWER_FIELDS}


def _lock_answer(*, annotation_id: int, user: AbstractBaseUser) -> Annotation:
    """The answer, its row locked, after its task's row (the lock order of submit)."""
    task_id = Annotation.objects.filter(id=annotation_id).values_list("task_id", flat=True).first()
    if task_id is not None:
        list(Task.objects.select_for_update().filter(id=task_id).values_list("id"))
    annotation = (
        Annotation.objects.select_for_update(of=("self",))
        .select_related("task__project")
        .filter(id=annotation_id)
        .first()
    )
    if annotation is None:
        raise AnswerGone("That answer no longer exists: it was undone.")
    if annotation.labeler_id != user.pk:
        raise NotYours("Only the labeler who gave an answer can change it.")
    return annotation


def _give_back_held(
    *, user: AbstractBaseUser, project_id: int, task_id: int, now, repeat_id: int | None = None
) -> None:
    """Before an undo hands a task back: whatever else the labeler holds in the project goes
    back (another task's lease expires, which the claim renews; a swap repeat they were served
    waits for its turn again), so they hold one thing, the answer they took back."""
    Assignment.objects.filter(
        labeler=user, task__project_id=project_id, status=Assignment.Status.ACTIVE,
        expires_at__gt=now,
    ).exclude(task_id=task_id).update(expires_at=now)  # fmt: skip
    held = Repeat.objects.filter(labeler=user, project_id=project_id, status=Repeat.Status.ACTIVE)
    if repeat_id is not None:
        held = held.exclude(id=repeat_id)
    held.update(status=Repeat.Status.PENDING, expires_at=None)


def annotation_undo(*, annotation_id: int, user: AbstractBaseUser) -> Assignment:
    """Take back one's answer within UNDO_SECONDS of giving it: the answer is removed (kept as
    a revision), the task's overlap slot is freed, and the task is leased back to its labeler
    with the order it was shown in, ahead of any other task they were holding.
    A swap repeat's answer is taken back the same way (annotator/models.Repeat).
    """
    if (repeat_id := _repeat_answered(annotation_id)) is not None:
        return _repeat_undo(repeat_id=repeat_id, user=user)
    with transaction.atomic():
        # The labeler's lock first, as a claim takes it, so a claim in another tab cannot
        # interleave with the lease handed back here.
        project_id = (
            Annotation.objects.filter(id=annotation_id)
            .values_list("task__project_id", flat=True)
            .first()
        )
        if project_id is not None:
            _lock_member(project_id=project_id, labeler_id=user.pk, count=False)
        annotation = _lock_answer(annotation_id=annotation_id, user=user)
        now = timezone.now()
        if (now - annotation.created_at).total_seconds() > UNDO_SECONDS:
            raise UndoExpired(
                f"An answer can be undone for {UNDO_SECONDS} seconds only; "
                "change it from My annotations instead."
            )
        task = annotation.task
        AnnotationRevision.objects.create(
            annotation_id_value=annotation.id, task=task, labeler_id=user.pk, changed_by=user,
            action=AnnotationRevision.Action.UNDO, before=answer_fields(annotation),
        )  # fmt: skip
        annotation.delete()
        count = Task.objects.get(id=task.id).annotation_count - 1
        Task.objects.filter(id=task.id).update(
            annotation_count=count, is_complete=count >= task.overlap or task.gold is not None
        )
        _give_back_held(user=user, project_id=task.project_id, task_id=task.id, now=now)
        expires_at = now + timedelta(seconds=task.project.lease_seconds)
        Assignment.objects.filter(task=task, labeler=user).update(
            status=Assignment.Status.ACTIVE, finished_at=None, expires_at=expires_at
        )
        return Assignment.objects.get(task=task, labeler=user)


def annotation_edit(*, annotation_id: int, user: AbstractBaseUser, answer: dict) -> Annotation:
    """Change one's own answer, while one is a member of its project. The answer is checked
    as a submit is, against the order it was shown in; a change is kept as a revision (who,
    when, before, after) and the annotation row holds the latest. No change: no revision.
    A swap repeat's answer is changed the same way."""
    if (repeat_id := _repeat_answered(annotation_id)) is not None:
        return _repeat_edit(repeat_id=repeat_id, user=user, answer=answer)
    with transaction.atomic():
        annotation = _lock_answer(annotation_id=annotation_id, user=user)
        task = annotation.task
        if selectors.project_role(project=task.project, user=user) is None:
            raise NotYours("You are no longer a member of this project.")
        fields = validate_answer(
            task=task, project=task.project, shown_order=annotation.shown_order, answer=answer
        )
        before = answer_fields(annotation)
        if task.kind == Kind.EDIT and fields["text"] != before["text"]:
            fields |= _revision(
                task=task, original_id=annotation.shown_order[0], text=fields["text"]
            )
        elif task.kind == Kind.EDIT:
            fields |= {k: before[k] for k in ("verdict", "chosen_id", "rejected_id")}
        after = ANSWER_FIELDS | fields
        if after == before:
            return annotation
        for name, value in after.items():
            setattr(annotation, name, value)
        annotation.save(update_fields=[name.removesuffix("_id") for name in ANSWER_FIELDS])
        AnnotationRevision.objects.create(
            annotation_id_value=annotation.id, task=task, labeler_id=user.pk, changed_by=user,
            action=AnnotationRevision.Action.EDIT, before=before, after=after,
        )  # fmt: skip
        return annotation


# --- A swap repeat's answer, corrected as an annotation is ------------------------------------


def _repeat_answered(answer_id: int) -> int | None:
    """The swap repeat whose answer has this id, if it is one (and not an annotation)."""
    return Repeat.objects.filter(answer_id=answer_id).values_list("id", flat=True).first()


def _lock_repeat_answer(*, repeat_id: int, user: AbstractBaseUser) -> Repeat:
    repeat = (
        Repeat.objects.select_for_update(of=("self",))
        .select_related("task__project")
        .filter(id=repeat_id, status=Repeat.Status.ANSWERED)
        .first()
    )
    if repeat is None:
        raise AnswerGone("That answer no longer exists: it was undone.")
    if repeat.labeler_id != user.pk:
        raise NotYours("Only the labeler who gave an answer can change it.")
    return repeat


def _repeat_undo(*, repeat_id: int, user: AbstractBaseUser) -> Assignment:
    """As annotation_undo: the repeat is served again, in its order, with nothing answered."""
    with transaction.atomic():
        project_id = Repeat.objects.filter(id=repeat_id).values_list("project_id", flat=True)[0]
        _lock_member(project_id=project_id, labeler_id=user.pk, count=False)
        repeat = _lock_repeat_answer(repeat_id=repeat_id, user=user)
        now = timezone.now()
        if (now - repeat.answered_at).total_seconds() > UNDO_SECONDS:
            raise UndoExpired(
                f"An answer can be undone for {UNDO_SECONDS} seconds only; "
                "change it from My annotations instead."
            )
        task = repeat.task
        AnnotationRevision.objects.create(
            annotation_id_value=repeat.answer_id, task=task, labeler_id=user.pk, changed_by=user,
            action=AnnotationRevision.Action.UNDO,
            before=answer_fields(selectors.repeat_as_annotation(repeat)),
        )  # fmt: skip
        _give_back_held(
            user=user, project_id=project_id, task_id=task.id, now=now, repeat_id=repeat.id
        )
        expires_at = now + timedelta(seconds=task.project.lease_seconds)
        Repeat.objects.filter(id=repeat.id).update(
            status=Repeat.Status.ACTIVE, expires_at=expires_at, verdict="", chosen=None,
            answered_at=None, answer_id=None, answer={},
        )  # fmt: skip
        first_lease = Annotation.objects.filter(id=repeat.annotation_id).values_list(
            "assignment_id", flat=True
        )[0]
        return Assignment(
            id=first_lease, task=task, labeler_id=user.pk, status=Assignment.Status.ACTIVE,
            shown_order=repeat.shown_order, created_at=now, expires_at=expires_at,
        )  # fmt: skip


def _repeat_edit(*, repeat_id: int, user: AbstractBaseUser, answer: dict) -> Annotation:
    """As annotation_edit, for a swap repeat's answer (its self-consistency reads the latest)."""
    with transaction.atomic():
        repeat = _lock_repeat_answer(repeat_id=repeat_id, user=user)
        task = repeat.task
        if selectors.project_role(project=task.project, user=user) is None:
            raise NotYours("You are no longer a member of this project.")
        fields = validate_answer(
            task=task, project=task.project, shown_order=repeat.shown_order, answer=answer
        )
        before = answer_fields(selectors.repeat_as_annotation(repeat))
        after = ANSWER_FIELDS | fields
        if after == before:
            return selectors.repeat_as_annotation(repeat)
        repeat.answer = repeat.answer | after
        repeat.verdict, repeat.chosen_id = after["verdict"], after["chosen_id"]
        repeat.save(update_fields=["answer", "verdict", "chosen"])
        AnnotationRevision.objects.create(
            annotation_id_value=repeat.answer_id, task=task, labeler_id=user.pk, changed_by=user,
            action=AnnotationRevision.Action.EDIT, before=before, after=after,
        )  # fmt: skip
        return selectors.repeat_as_annotation(repeat)
