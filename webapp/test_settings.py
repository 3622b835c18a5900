"""Settings for the test suite: the production settings with test-only defaults.

Only defaults are set here, so DATABASE_URL and CELERY_BROKER_URL from the environment still
pick PostgreSQL and Redis.
"""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-0123456789-abcdefghijklmnopqrst")
os.environ.setdefault("DJANGO_HTTPS", "0")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")


def _xdist_worker_env() -> None:
    """Under pytest-xdist (./scripts/test runs two processes), each process gets its own Redis
    database and var directory, so its Celery workers never take the other's tasks;
    pytest-django already gives each its own test database. Set in the environment, so the
    workers and servers the tests start inherit them."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or os.environ.get("PREFLOOP_XDIST_WORKER") == worker:
        return
    index = int(worker[2:])
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
    base, _, db = broker.rpartition("/")
    if db.isdigit() and base.startswith("redis"):
        os.environ["CELERY_BROKER_URL"] = f"{base}/{(int(db) - index) % 16}"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    var = os.environ.get("PREFLOOP_VAR_DIR") or os.path.join(root, "var")
    os.environ["PREFLOOP_VAR_DIR"] = os.path.join(var, worker)
    os.environ["PREFLOOP_XDIST_WORKER"] = worker


_xdist_worker_env()

from webapp.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
WHITENOISE_AUTOREFRESH = True

# The suite logs in with the test client (no request for django-axes) and hits the API and
# import far more often than people do: no lock-out and no rate limits unless a test turns
# them on (tests/test_abuse_limits.py).
AXES_ENABLED = False
PREFLOOP_API_RATE = None
PREFLOOP_IMPORT_RATE = None
