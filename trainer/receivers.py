"""Listeners on the labeling app's signals. They run inside the label's transaction, so they
only write a row; what goes to Celery is sent after the commit, best effort (trainer/outbox.py)."""

from trainer import outbox


def on_annotation_created(sender, *, project_id: int, **kwargs) -> None:
    # One statement per annotation (it runs inside every submit, see webapp/sql.py): mark
    # the loop due. Only the first label since the last advance sends a message.
    outbox.loop_advance_request(project_id=project_id)
