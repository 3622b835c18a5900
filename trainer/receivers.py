"""Listeners on the labeling app's signals: they only hand work to Celery."""

from trainer.models import LoopPolicy


def on_annotation_created(sender, *, project_id: int, **kwargs) -> None:
    # One cheap query per annotation; the loop's own checks run on a worker.
    if LoopPolicy.objects.filter(project_id=project_id, enabled=True, paused=False).exists():
        from trainer.tasks import advance_loop

        advance_loop.delay(project_id)
