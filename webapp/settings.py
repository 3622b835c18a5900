"""Prefloop settings: everything that differs between machines comes from the environment.

Development (`DJANGO_DEBUG=1`) works with no other variable set: SQLite in ./var and a
throwaway secret key. Production refuses to start without `DJANGO_SECRET_KEY` and turns on
the HTTPS protections that `manage.py check --deploy` asks for.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from trainer.kinds import JOB_KINDS
from webapp.env import env_bool, env_int, env_list, env_rate, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PREFLOOP_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it (50+ random characters) or set DJANGO_DEBUG=1 "
            "for a local development run."
        )
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"  # noqa: S105
# Earlier secret keys, still accepted for sessions, signed links and judges' stored API keys.
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS", [])

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here: /api/docs/ works offline
    "django_htmx",
    "template_partials",
    "annotator",
    "trainer",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"
ASGI_APPLICATION = "webapp.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "webapp.navigation.navigation",
            ],
        },
    }
]

# --- Database -------------------------------------------------------------------------------
# SQLite is the embedded default. WAL lets readers run beside the writer, and IMMEDIATE
# transactions take the write lock at BEGIN, which serialises the queue's claim so two
# labelers can never take the same slot on SQLite either.
_default_db = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
if "DATABASE_URL" not in os.environ:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", _default_db),
        conn_max_age=env_int("DJANGO_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # Refuses a login while the account or the address is locked out, before the password check.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = VAR_DIR / "media"

# --- Uploads --------------------------------------------------------------------------------
# Import files are read into memory and validated whole before anything is written.
PREFLOOP_IMPORT_MAX_BYTES = env_int("PREFLOOP_IMPORT_MAX_BYTES", 20 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = PREFLOOP_IMPORT_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = PREFLOOP_IMPORT_MAX_BYTES + 1024 * 1024

# How often one user may import (API and project page together), e.g. 60/hour; "off": no limit.
PREFLOOP_IMPORT_RATE = env_rate("PREFLOOP_IMPORT_RATE", "60/hour")

# --- Abuse limits ---------------------------------------------------------------------------
# API requests per token (per address before login); over it: 429 with Retry-After. Generous
# enough for a labeling script flat out (about 10 requests/s).
PREFLOOP_API_RATE = env_rate("PREFLOOP_API_RATE", "3000/min")
# The counters live in this cache; with several web processes use Redis so they share them.
_cache_url = env_str("PREFLOOP_CACHE_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _cache_url}
        if _cache_url
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
# Logins (django-axes): after this many failures in a row an account, and separately an
# address, is locked out for PREFLOOP_LOGIN_COOLOFF_MINUTES (0: until an admin unlocks it in
# the Django admin's "Access attempts", or with `manage.py axes_reset`).
AXES_ENABLED = env_bool("PREFLOOP_LOGIN_LOCKOUT", True)
AXES_FAILURE_LIMIT = env_int("PREFLOOP_LOGIN_FAILURE_LIMIT", 5)
_cooloff = env_int("PREFLOOP_LOGIN_COOLOFF_MINUTES", 15)
AXES_COOLOFF_TIME = timedelta(minutes=_cooloff) if _cooloff > 0 else None
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one locks
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "webapp.lockout.locked_out"
AXES_CLIENT_IP_CALLABLE = "annotator.audit.client_address"
AXES_VERBOSE = False

# --- HTTPS and cookies ----------------------------------------------------------------------
HTTPS = env_bool("DJANGO_HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_BEHIND_PROXY", False) else None
)
# How many proxies in front of the app append to X-Forwarded-For; the audit log and the login
# lock-out take the client's address from there (0: REMOTE_ADDR, no proxy trusted).
PREFLOOP_TRUSTED_PROXIES = env_int("PREFLOOP_TRUSTED_PROXIES", 0)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webapp.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    # JSON a database cannot store (NUL, lone surrogates, deep nesting, huge numbers) is a 400
    # naming the field (webapp/parsers.py), not a 500 from the database.
    "DEFAULT_PARSER_CLASSES": [
        "webapp.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_CLASSES": ["annotator.throttling.ApiRateThrottle"],
    # `format` is a query parameter of our own (import and export formats).
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Prefloop API",
    "DESCRIPTION": "Labeling, export and training-job API of Prefloop.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Request bodies are JSON (the import also takes JSONL, CSV and a multipart file, declared
    # on its view); requests and responses get their own components, so read-only fields are
    # not asked for and the request side carries its constraints (non-empty strings...).
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    "COMPONENT_SPLIT_REQUEST": True,
    # API ids (annotator/converters.py): integers in the 64-bit range.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}},
    # Two different "kind" fields; named here so the schema (and check --deploy) has no warning.
    # The error answers of every operation (401, 404, 429, ...), with their bodies.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "annotator.api_schema.document_errors",
    ],
    "ENUM_NAME_OVERRIDES": {
        "LabelingKindEnum": "annotator.models.Kind",
        "TrainingJobKindEnum": "trainer.models.TrainingJob.Kind",
    },
}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
# No result backend by default: tasks report through the database. Set one (e.g. the broker's
# Redis URL) to wait on task results, as the worker smoke test does.
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"trainer.tasks.run_training_job": {"queue": "gpu"}}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Longer than the longest training job, or Redis re-delivers a job that is still running.
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 48 * 3600),
    # A broker that does not answer is given up on quickly: requests never wait on it (what
    # they send is recorded in the database and swept, trainer/outbox.py).
    "socket_connect_timeout": env_int("CELERY_BROKER_CONNECT_TIMEOUT", 1),
    # A broker that accepted the connection and then hangs (stopped, partitioned): longer than
    # the worker's 1 s blocking read, short enough that a request gives up in seconds.
    "socket_timeout": env_int("CELERY_BROKER_SOCKET_TIMEOUT", 2),
}
CELERY_BROKER_CONNECTION_TIMEOUT = env_int("CELERY_BROKER_CONNECT_TIMEOUT", 1)
# Publishing: no retry. What does not go out at once is sent by the outbox sweep.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 0, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1,
}  # fmt: skip
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The outbox sweep: loops marked due and jobs whose message did not go out (or went out and
# may have been lost with the broker's data) are delivered from here (trainer/outbox.py).
PREFLOOP_OUTBOX_SWEEP_SECONDS = env_int("PREFLOOP_OUTBOX_SWEEP_SECONDS", 5)
# A queued job whose launch did not note its message as sent within this many seconds.
PREFLOOP_OUTBOX_GRACE = env_int("PREFLOOP_OUTBOX_GRACE", 5)
# A queued job whose message went out this long ago is sent again (a duplicate is harmless).
PREFLOOP_JOB_RESEND_AFTER = env_int("PREFLOOP_JOB_RESEND_AFTER", 600)
# Beat messages expire after one period: a busy solo worker skips the stale ones instead of
# running a backlog of identical sweeps when it comes free.
CELERY_BEAT_SCHEDULE = {
    "sweep-outbox": {
        "task": "trainer.tasks.sweep_outbox",
        "schedule": float(PREFLOOP_OUTBOX_SWEEP_SECONDS),
        "options": {"expires": float(PREFLOOP_OUTBOX_SWEEP_SECONDS)},
    },
    "reap-training-jobs": {
        "task": "trainer.tasks.reap_jobs", "schedule": 30.0, "options": {"expires": 30.0},
    },
    "advance-loops": {
        "task": "trainer.tasks.advance_all_loops", "schedule": 30.0, "options": {"expires": 30.0},
    },
}  # fmt: skip

# --- Training jobs --------------------------------------------------------------------------
PREFLOOP_MODELS_DIR = Path(env_str("PREFLOOP_MODELS_DIR", str(VAR_DIR / "models")))
# Encrypts AI judges' API keys stored in the app (trainer/judging/keys.py): a Fernet key
# (`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`).
# Empty: one derived from SECRET_KEY, so changing SECRET_KEY makes stored keys unreadable
# (the judge's job says so; enter the key again) unless the old one is in SECRET_KEY_FALLBACKS.
PREFLOOP_ENCRYPTION_KEY = env_str("PREFLOOP_ENCRYPTION_KEY", "")
# Earlier keys, still read (comma-separated): after changing the key, keep the old one here
# and run `manage.py rotate_judge_keys`, as Django's SECRET_KEY_FALLBACKS for the secret key.
PREFLOOP_ENCRYPTION_KEY_FALLBACKS = env_list("PREFLOOP_ENCRYPTION_KEY_FALLBACKS", [])


def _fernet_key_check(name: str, value: str) -> None:
    from cryptography.fernet import Fernet  # its own check of the key's form

    try:
        Fernet(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} is not a Fernet key (32 bytes, url-safe base64). Make one with "
            'python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())".'
        ) from None


if PREFLOOP_ENCRYPTION_KEY:
    _fernet_key_check("PREFLOOP_ENCRYPTION_KEY", PREFLOOP_ENCRYPTION_KEY)
for _key in PREFLOOP_ENCRYPTION_KEY_FALLBACKS:
    _fernet_key_check("PREFLOOP_ENCRYPTION_KEY_FALLBACKS", _key)
# A running job whose worker has been silent this long is failed by the reaper.
PREFLOOP_JOB_HEARTBEAT_TIMEOUT = env_int("PREFLOOP_JOB_HEARTBEAT_TIMEOUT", 60)
# Workers report their devices (trainer/inventory.py) this often; three missed reports and a
# worker is no longer counted by the memory check.
PREFLOOP_WORKER_REPORT_SECONDS = env_int("PREFLOOP_WORKER_REPORT_SECONDS", 60)
# The queue training jobs go to (CELERY_TASK_ROUTES above): the memory check reads its workers.
PREFLOOP_TRAINING_QUEUE = "gpu"
# After a cancel, how long a job may take to save and stop before its process group is killed.
PREFLOOP_JOB_CANCEL_GRACE = env_int("PREFLOOP_JOB_CANCEL_GRACE", 60)
# Wall-clock budget per job kind, in seconds (PREFLOOP_JOB_TIME_LIMIT_<KIND> overrides one).
# A job past its budget is asked to save and stop, then killed like a cancelled one, and fails.
# Enforced by the worker's supervisor: Celery's own limits do not apply under the solo pool.
# The defaults come from the table of job kinds (trainer/kinds.py: plain Python, no Django).
PREFLOOP_JOB_TIME_LIMITS = {
    kind.name: env_int(f"PREFLOOP_JOB_TIME_LIMIT_{kind.name.upper()}", kind.hours * 3600)
    for kind in JOB_KINDS
}
if CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] <= max(PREFLOOP_JOB_TIME_LIMITS.values()):
    raise ImproperlyConfigured(
        "CELERY_VISIBILITY_TIMEOUT must be longer than the longest job time limit "
        f"({max(PREFLOOP_JOB_TIME_LIMITS.values())} s), or Redis re-delivers running jobs."
    )
# An accelerate config file (`accelerate config` writes one) on a worker with several GPUs: DPO,
# SFT, RLOO and GRPO jobs then run through `accelerate launch --config_file` with its processes,
# unless a job names its own file (its config's accelerate_config). Empty: one process.
PREFLOOP_ACCELERATE_CONFIG = env_str("PREFLOOP_ACCELERATE_CONFIG", "")
if PREFLOOP_ACCELERATE_CONFIG and not Path(PREFLOOP_ACCELERATE_CONFIG).is_file():
    raise ImproperlyConfigured(
        f"PREFLOOP_ACCELERATE_CONFIG={PREFLOOP_ACCELERATE_CONFIG!r} is not a file; write one with "
        "`accelerate config --config_file PATH`, or unset the variable."
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
