"""Listeners on the labeling app's signals: they only hand work to Celery."""

from annotator import sql
from trainer.models import LoopPolicy


def on_annotation_created(sender, *, project_id: int, **kwargs) -> None:
    # One cheap query per annotation (written by hand: it runs on every submit, see
    # annotator/sql.py); the loop's own checks run on a worker.
    statement = f"""SELECT 1 FROM {sql.table(LoopPolicy)}
                    WHERE project_id = %s AND enabled AND NOT paused"""  # noqa: S608
    if sql.one(statement, [project_id]) is not None:
        from trainer.tasks import advance_loop

        advance_loop.delay(project_id)
