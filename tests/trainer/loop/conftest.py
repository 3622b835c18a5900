"""Fixtures of the loop's end-to-end tests (test_e2e*.py): a tiny base policy built once per
file and a real Celery worker on the test database. PostgreSQL only: the worker is another
process and must see the test database."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[3]


def _skip_without_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the worker process needs to share the test database (PostgreSQL)")


@pytest.fixture
def needs_postgres():
    _skip_without_postgres()


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> str:
    _skip_without_postgres()
    # Built in a subprocess: torch never runs in this process, which forks the labelers.
    path = tmp_path_factory.mktemp("tiny") / "base"
    code = (
        "import sys; from trainer.algorithms.tiny import build_tiny_policy; "
        "build_tiny_policy(sys.argv[1], pretrain_steps=0, hidden_size=64, layers=2)"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, check=True)
    return str(path)


@pytest.fixture
def worker(tmp_path):
    """One solo worker on both queues and Celery beat, as ./scripts/demo runs them, on the test
    database; yields the path of the worker's log. Beat sweeps the outbox as in production, so
    an advance message that was not sent (a busy machine's broker timeout) is sent again."""
    db = connection.settings_dict
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "webapp.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "PREFLOOP_VAR_DIR": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
    }
    log_path = tmp_path / "worker.log"
    commands = [
        [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "default,gpu",
         "--pool=solo", "--concurrency=1", "--prefetch-multiplier=1", "--without-gossip",
         "--without-mingle", "--hostname", f"e2e-{os.getpid()}@%h", "--loglevel=INFO"],
        [sys.executable, "-m", "celery", "-A", "webapp", "beat", "--loglevel=INFO",
         "--schedule", str(tmp_path / "celerybeat-schedule")],
    ]  # fmt: skip
    with log_path.open("wb") as log:
        processes = [
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            for command in commands
        ]
        yield log_path
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
