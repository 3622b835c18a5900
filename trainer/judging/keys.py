"""AI judges' API keys stored in the app, encrypted (docs/ai-judges.md).

An admin may type an endpoint's key on the judge's page or send it over the API instead of
naming an environment variable on the workers. It is stored only as a Fernet token
(`cryptography`: AES-128-CBC with an HMAC-SHA256, so a changed token is refused), under
`settings.PREFLOOP_ENCRYPTION_KEY` or, when that is empty, a key derived from `SECRET_KEY`.
No page, API response, job config, log or export holds it: the job's config names the
environment variable `STORED_KEY_ENV`, which the worker's runner sets, decrypted, in the judging
job's process only (trainer/runner.py), and strips from every other job's.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

# The variable a judging job's process finds its stored key in.
STORED_KEY_ENV = "PREFLOOP_JUDGE_API_KEY"
MAX_KEY_CHARS = 1000


UNREADABLE = (
    "The judge's stored API key cannot be read: the installation's encryption key "
    "(PREFLOOP_ENCRYPTION_KEY, or SECRET_KEY when that is empty) has changed since it was "
    "stored, and no key in PREFLOOP_ENCRYPTION_KEY_FALLBACKS reads it."
)


class KeyUnreadable(Exception):
    """The stored key cannot be decrypted with this installation's encryption key."""


def _derived(secret_key: str) -> bytes:
    digest = hashlib.sha256(b"prefloop judge api keys\0" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def _fernet() -> MultiFernet:
    """Encrypts with the first key; decrypts with any: the configured key (or the one derived
    from SECRET_KEY), then PREFLOOP_ENCRYPTION_KEY_FALLBACKS, then keys derived from the secret
    key and its fallbacks (so moving from the derived key to a configured one loses nothing)."""
    configured = settings.PREFLOOP_ENCRYPTION_KEY
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    keys = [configured.encode()] if configured else []
    keys += [k.encode() for k in settings.PREFLOOP_ENCRYPTION_KEY_FALLBACKS]
    keys += [_derived(secret) for secret in secrets]
    return MultiFernet([Fernet(key) for key in dict.fromkeys(keys)])


def encrypt(key: str) -> str:
    return _fernet().encrypt(key.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        raise KeyUnreadable(f"{UNREADABLE} Enter the API key again on the judge's page.") from None


def rotate(token: str) -> str:
    """The token re-encrypted with the current key (KeyUnreadable when no key reads it)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except (InvalidToken, ValueError):
        raise KeyUnreadable(f"{UNREADABLE} Enter the API key again on the judge's page.") from None


def check(key: str) -> str:
    """The key as typed, trimmed; ValueError with a message when it cannot be one."""
    key = key.strip()
    if len(key) > MAX_KEY_CHARS:
        raise ValueError(f"An API key has at most {MAX_KEY_CHARS} characters.")
    if any(c.isspace() for c in key) or not key.isprintable():
        raise ValueError("An API key has no spaces or line breaks.")
    return key
