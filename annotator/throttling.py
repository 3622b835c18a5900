"""Request rate limits: per API token (or address, before login) and per importer.

A fixed window counter in Django's cache: one `incr` per request and no database query, so
the labeling hot path stays as cheap as it was (tests/annotator/test_api_hot_path.py). Over
the limit the API answers 429 with `Retry-After` (the seconds until the window ends), which
DRF adds from `wait()`. With several web processes, point PREFLOOP_CACHE_URL at Redis so they
share the counts; the default in-process cache counts per process.
"""

import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle

from annotator.audit import client_address


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """'120/min' -> (120, 60); None, '' or 'off' -> None (no limit)."""
    if not rate or rate.strip().lower() in {"off", "none", "0"}:
        return None
    count, _, period = rate.strip().partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[:1].lower()]
    return int(count), seconds


# What the windows are counted by; a test holds it still so that no window ends mid-test.
clock = time.time


def rate_hit(*, scope: str, ident: str, rate: str | None) -> float | None:
    """Count one request; None if it is within `rate`, else the seconds until it would be."""
    parsed = parse_rate(rate)
    if parsed is None:
        return None
    limit, period = parsed
    now = clock()
    window = int(now // period)
    key = f"rate:{scope}:{ident}:{window}"
    try:
        count = cache.incr(key)  # one cache operation per request, once the window has begun
    except ValueError:  # the window's first request (or its key expired)
        count = 1 if cache.add(key, 1, timeout=period + 1) else cache.incr(key)
    if count <= limit:
        return None
    return max(1.0, (window + 1) * period - now)


def caller(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"addr:{client_address(request)}"


class _Throttle(BaseThrottle):
    scope = ""
    setting = ""

    def allow_request(self, request, view) -> bool:
        self._wait = rate_hit(
            scope=self.scope, ident=caller(request), rate=getattr(settings, self.setting)
        )
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait


class ApiRateThrottle(_Throttle):
    """Every API request, per token (PREFLOOP_API_RATE)."""

    scope = "api"
    setting = "PREFLOOP_API_RATE"


class ImportRateThrottle(_Throttle):
    """Imports, per user (PREFLOOP_IMPORT_RATE), over the API and the project page alike."""

    scope = "import"
    setting = "PREFLOOP_IMPORT_RATE"


def import_wait(request: HttpRequest) -> float | None:
    """The project page's import form counts against the same limit as the API."""
    return rate_hit(scope="import", ident=caller(request), rate=settings.PREFLOOP_IMPORT_RATE)
