"""Celery tasks of the labeling app. They run on the light `default` queue."""

from celery import shared_task


@shared_task
def ping() -> str:
    """Answer "pong": proves that a worker is up and consuming the `default` queue."""
    return "pong"
