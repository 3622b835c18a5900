"""Production settings: `check --deploy` is clean, a missing secret stops the start, no signup.

The settings are read at import, so each case runs manage.py in a subprocess with a clean
environment (none of the test settings' DJANGO_* defaults leak in).
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "PREFLOOP_", "CELERY_")) and k != "DATABASE_URL"
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "PREFLOOP_VAR_DIR": str(tmp_path),
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "example.com",
    }
    env |= overrides
    return {k: v for k, v in env.items() if v is not None}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_it_passes_check_deploy_without_a_warning(tmp_path):
    done = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _env(tmp_path))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output, output


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off(tmp_path):
    env = _env(tmp_path)
    del env["DJANGO_SECRET_KEY"]
    done = _run(["manage.py", "check"], env)
    assert done.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY is not set" in done.stderr


def test_it_starts_without_a_secret_key_in_debug(tmp_path):
    env = _env(tmp_path, DJANGO_DEBUG="1")
    del env["DJANGO_SECRET_KEY"]
    done = _run(["manage.py", "check"], env)
    assert done.returncode == 0, done.stderr


def test_it_reads_the_proxy_and_https_settings_from_the_environment(tmp_path):
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'hosts': s.ALLOWED_HOSTS, 'origins': s.CSRF_TRUSTED_ORIGINS, "
        "'proxy': s.SECURE_PROXY_SSL_HEADER, 'redirect': s.SECURE_SSL_REDIRECT, "
        "'secure_cookie': s.SESSION_COOKIE_SECURE, 'debug': s.DEBUG}))"
    )
    env = _env(
        tmp_path,
        DJANGO_ALLOWED_HOSTS="labels.example.com, www.example.com",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://labels.example.com",
        DJANGO_BEHIND_PROXY="1",
    )
    done = _run(["-c", script], env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "hosts": ["labels.example.com", "www.example.com"],
        "origins": ["https://labels.example.com"],
        "proxy": ["HTTP_X_FORWARDED_PROTO", "https"],
        "redirect": True,
        "secure_cookie": True,
        "debug": False,
    }


@pytest.mark.parametrize("path", ["/accounts/signup/", "/accounts/register/", "/signup/"])
def test_it_has_no_signup_page(client, db, path):
    # Accounts are made by an admin (Django admin or createsuperuser), never by visitors.
    assert client.get(path).status_code == 404
    assert client.post(path, {"username": "mallory", "password": "x"}).status_code == 404


def test_it_refuses_an_encryption_key_that_is_not_a_fernet_key(tmp_path):
    bad = _run(["manage.py", "check"], _env(tmp_path, PREFLOOP_ENCRYPTION_KEY="hunter2"))
    assert bad.returncode != 0
    assert "ImproperlyConfigured: PREFLOOP_ENCRYPTION_KEY is not a Fernet key" in bad.stderr
    good_key = "q0JdCkBXxiq7bEYGbEJlyZBFNbW5UbWWQaVZ5dJwxxM="  # 32 bytes, url-safe base64
    good = _run(["manage.py", "check"], _env(tmp_path, PREFLOOP_ENCRYPTION_KEY=good_key))
    assert good.returncode == 0, good.stderr
    old = _env(tmp_path, PREFLOOP_ENCRYPTION_KEY=good_key,
               PREFLOOP_ENCRYPTION_KEY_FALLBACKS=f"{good_key},not-a-key")  # fmt: skip
    bad_old = _run(["manage.py", "check"], old)
    assert "PREFLOOP_ENCRYPTION_KEY_FALLBACKS is not a Fernet key" in bad_old.stderr
