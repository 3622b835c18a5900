"""What a request hands to Celery is written in its own transaction and sent by something that
retries, so a web request never waits on (or fails with) the broker.

Two kinds of work leave the web this way, each recorded on a row that already exists:

- "the loop needs advancing": LoopPolicy.advance_due_since, set in the transaction of the label
  (or job end) that may move the loop on. Only the request that sets it sends a message, after
  its commit, so a burst of labels on one project makes one advance message, not one each
  (debounced). The task that advances clears the mark first (a claim by conditional update).
- "run this job": a queued TrainingJob; TrainingJob.sent_at says when its message was last
  handed to the broker.

Sending is best effort (`send`): a 1 s connection timeout, 2 s for a broker that hangs, no
retry, never raises. What
was not sent, or was sent and lost, is picked up by `outbox_sweep` (Celery beat, every few
seconds): due loops are advanced there and then, unsent or long-queued jobs are sent again.
A job sent twice still runs once: the worker claims it by conditional update (job_claim).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from trainer.models import LoopPolicy, TrainingJob
from trainer.tasks import advance_loop, run_training_job
from webapp import sql

logger = logging.getLogger(__name__)


def send(task, *args, queue: str | None = None) -> bool:
    """Hand a message to the broker if it answers at once; False (logged) if not. Never raises:
    the caller has recorded the work in the database, and the sweep sends what this did not."""
    try:
        if queue is None:
            task.delay(*args)
        else:
            task.apply_async(args, queue=queue)
    except Exception as exc:  # any broker or network error: the sweep sends it later
        logger.warning(
            "Broker unavailable, %s%r left to the outbox sweep: %s", task.name, args, exc
        )
        return False
    return True


# --- The loop's advance mark ----------------------------------------------------------------


def loop_advance_mark(*, project_id: int) -> bool:
    """Mark the project's loop as needing an advance, in the caller's transaction. True only for
    the caller that set the mark (the one that should send the message); False if the loop is
    off or paused, or already marked. One statement: it runs inside every labeling submit."""
    statement = f"""
        UPDATE {sql.table(LoopPolicy)} SET advance_due_since = %s
        WHERE project_id = %s AND enabled AND NOT paused AND advance_due_since IS NULL
        RETURNING id"""  # noqa: S608 -- table name only
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    return sql.one(statement, [now, project_id]) is not None


def loop_advance_request(*, project_id: int) -> None:
    """Mark the loop due and, once committed, send the advance message (best effort)."""
    if loop_advance_mark(project_id=project_id):
        loop_advance_send_on_commit(project_id=project_id)


def loop_advance_send_on_commit(*, project_id: int) -> None:
    transaction.on_commit(lambda: send(advance_loop, project_id))


def loop_advance_claim(*, project_id: int) -> bool:
    """Clear the mark; True if it was set. Cleared before the advance runs, so labels committed
    while it runs mark the loop again and are never missed."""
    marked = LoopPolicy.objects.filter(project_id=project_id, advance_due_since__isnull=False)
    return bool(marked.update(advance_due_since=None))


def loops_due() -> list[int]:
    marked = LoopPolicy.objects.filter(advance_due_since__isnull=False)
    return list(marked.values_list("project_id", flat=True))


# --- Queued jobs ----------------------------------------------------------------------------


def job_send_on_commit(*, job_id: int) -> None:
    """Send the job's message once the job row is committed, and note that it went out."""
    transaction.on_commit(lambda: _job_send(job_id))


def _job_send(job_id: int) -> bool:
    if not send(run_training_job, job_id):
        return False
    try:
        TrainingJob.objects.filter(id=job_id, status=TrainingJob.Status.QUEUED).update(
            sent_at=timezone.now()
        )
    except Exception as exc:  # the database went away: the sweep sends it again, harmlessly
        logger.warning("Could not note job %s as sent: %s", job_id, exc)
    return True


def jobs_to_resend(*, now=None) -> list[int]:
    """Queued jobs whose message never went out (after a short grace for the launch's own
    send), or went out so long ago that it may have been lost with the broker's data."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.PREFLOOP_OUTBOX_GRACE)
    queued = TrainingJob.objects.filter(status=TrainingJob.Status.QUEUED)
    unsent = queued.filter(sent_at__isnull=True, created_at__lt=now - grace)
    stale = queued.filter(sent_at__lt=now - timedelta(seconds=settings.PREFLOOP_JOB_RESEND_AFTER))
    return sorted(
        set(unsent.values_list("id", flat=True)) | set(stale.values_list("id", flat=True))
    )


def outbox_sweep() -> dict:
    """Deliver what the requests recorded: advance every due loop here and now, send again the
    jobs that need it. Run by Celery beat every few seconds (PREFLOOP_OUTBOX_SWEEP_SECONDS)."""
    # Imported here, not at the top: the loop's services send through this module.
    from trainer.loop.services import loop_advance

    advanced = []
    for project_id in loops_due():
        if not loop_advance_claim(project_id=project_id):
            continue
        try:
            loop_advance(project_id=project_id)
        except Exception:  # one project's failure must not hold up the others, nor the jobs
            logger.exception("Advancing the loop of project %s failed; retried", project_id)
            with transaction.atomic():
                loop_advance_mark(project_id=project_id)
            continue
        advanced.append(project_id)
    resent = [job_id for job_id in jobs_to_resend() if _job_send(job_id)]
    return {"advanced": advanced, "resent": resent}
