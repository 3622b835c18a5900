import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("prefloop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _report_devices(sender=None, **kwargs):
    """Each worker reports its devices now and then periodically (trainer/inventory.py)."""
    from trainer.inventory import on_worker_ready

    on_worker_ready(sender=sender, **kwargs)
