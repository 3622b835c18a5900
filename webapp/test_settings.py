"""Settings for the test suite: the production settings with test-only defaults.

Only defaults are set here, so DATABASE_URL and CELERY_BROKER_URL from the environment still
pick PostgreSQL and Redis.
"""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-0123456789-abcdefghijklmnopqrst")
os.environ.setdefault("DJANGO_HTTPS", "0")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")

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
