"""TokenLedger settings, read from the environment (12-factor).

With nothing set it runs embedded: SQLite under var/, a local-memory cache and Celery over a filesystem broker.
DATABASE_URL and REDIS_URL switch to PostgreSQL and Redis. See CONTRACT.md for every variable.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import environ

from config.environment import (
    ConfigurationError,
    broker_config,
    cache_config,
    database_config,
    redis_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

try:
    DEBUG = env.bool("DEBUG", default=False)
except ValueError:
    sys.exit("TokenLedger: DEBUG must be true or false")
VAR_DIR = Path(env.str("TOKENLEDGER_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        sys.exit("TokenLedger: SECRET_KEY must be set when DEBUG is off (set DEBUG=1 for local development)")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"

try:
    REDIS_URL = redis_url(env.str("REDIS_URL", default=""))
    DATABASES = {
        "default": database_config(
            url=env.str("DATABASE_URL", default=""),
            default_sqlite_path=VAR_DIR / "tokenledger.sqlite3",
        )
    }
    CACHES = {"default": cache_config(redis=REDIS_URL)}
    CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS = broker_config(redis=REDIS_URL, var_dir=VAR_DIR)
except ConfigurationError as exc:
    sys.exit(f"TokenLedger: {exc}")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "config.apps.PlatformConfig",
    "pricing",
    "billing",
    "usage",
    "reconciliation",
]

MIDDLEWARE = [
    "config.request_log.RequestLogMiddleware",
    "config.api_errors.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
            ],
        },
    },
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="TokenLedger <billing@tokenledger.local>")

# --- Django REST Framework and OpenAPI -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.DecimalJSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api_errors.api_exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "TokenLedger API",
    "DESCRIPTION": "Pricing, metering, authorization, credits, billing and reconciliation for AI features.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # served from the installed sidecar package: the docs page loads nothing from the internet
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # every operation's error answers (401, 403, 404, 413, 429, 503, ...) in the one error shape
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "config.openapi.error_responses"],
    # several bodies have a `status` field with different choices; each set gets its own name
    "ENUM_NAME_OVERRIDES": {
        "UsageStatusEnum": ["ok", "moderate", "high", "exceeded"],
        "EventResultStatusEnum": ["recorded", "duplicate", "rejected"],
        "InvoiceStatusEnum": "billing.models.Invoice.Status",
        "ReconciliationRunStatusEnum": ["running", "completed", "failed"],
    },
}

# --- Celery -----------------------------------------------------------------------------------------------------
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360
CELERY_TASK_ACKS_LATE = False  # only idempotent tasks opt in, per task
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
DJANGO_CELERY_BEAT_TZ_AWARE = True
# A worker is reported stale on /healthz when its last heartbeat is older than this.
WORKER_HEARTBEAT_STALE_SECONDS = env.int("WORKER_HEARTBEAT_STALE_SECONDS", default=180)

# --- Stripe (off when unset) -------------------------------------------------------------------------------------
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
STRIPE_API_VERSION = env.str("STRIPE_API_VERSION", default="2026-10-28.endive")
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)
STRIPE_EVENT_MAX_ATTEMPTS = env.int("STRIPE_EVENT_MAX_ATTEMPTS", default=8)
STRIPE_EVENT_STUCK_SECONDS = env.int("STRIPE_EVENT_STUCK_SECONDS", default=600)
TOPUP_MIN_USD = Decimal(env.str("TOPUP_MIN_USD", default="5"))
TOPUP_MAX_USD = Decimal(env.str("TOPUP_MAX_USD", default="500"))
AUTO_RECHARGE_MAX_FAILURES = env.int("AUTO_RECHARGE_MAX_FAILURES", default=3)
AUTO_RECHARGE_COOLDOWN_SECONDS = env.int("AUTO_RECHARGE_COOLDOWN_SECONDS", default=900)

# --- Pricing ----------------------------------------------------------------------------------------------------
PRICING_CACHE_TTL_SECONDS = env.int("PRICING_CACHE_TTL_SECONDS", default=300)
# Whether account users see provider prices (USD per 1M tokens) or only their own price in credits.
PRICING_SHOW_PROVIDER_PRICES = env.bool("PRICING_SHOW_PROVIDER_PRICES", default=True)
TOPUP_PACKS_USD = [Decimal("5"), Decimal("10"), Decimal("25"), Decimal("50"), Decimal("100")]

# --- Logging: one line per request; JSON lines when DEBUG is off ------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.request_log.JsonLineFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain" if DEBUG else "json"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "tokenledger.request": {"level": "INFO"},
    },
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)

# --- Usage metering and authorization ---------------------------------------------------------------------------
USAGE_MAX_BATCH = 1000
USAGE_METADATA_MAX_BYTES = 4096
# events older than this (by occurred_at) are refused and dead-lettered; so are events this far in the future
USAGE_LATE_EVENT_WINDOW_DAYS = env.int("USAGE_LATE_EVENT_WINDOW_DAYS", default=35)
USAGE_FUTURE_SKEW_SECONDS = env.int("USAGE_FUTURE_SKEW_SECONDS", default=300)
RESERVATION_TTL_SECONDS = env.int("RESERVATION_TTL_SECONDS", default=600)
# after an unpaid invoice, authorization answers account_past_due once this grace period has passed
PAST_DUE_GRACE_DAYS = env.int("PAST_DUE_GRACE_DAYS", default=7)
# characters per token used by /api/usage/estimate, by provider (Decimal strings)
ESTIMATE_CHARS_PER_TOKEN = {"openai": Decimal("4"), "anthropic": Decimal("3.5"), "default": Decimal("4")}
ESTIMATE_CACHE_SECONDS = 3600
# a full batch of 1,000 events with metadata fits; larger bodies answer 413
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=8 * 1024 * 1024)

# --- Alerts and retention ---------------------------------------------------------------------------------------
ALERT_DAILY_COST_USD = env.str("ALERT_DAILY_COST_USD", default="5")
ANOMALY_FACTOR = env.str("ANOMALY_FACTOR", default="5")
ANOMALY_MIN_EVENTS = env.int("ANOMALY_MIN_EVENTS", default=20)
ANOMALY_MIN_USD = env.str("ANOMALY_MIN_USD", default="1")
RETENTION_RESERVATIONS_DAYS = env.int("RETENTION_RESERVATIONS_DAYS", default=30)
RETENTION_DELIVERY_LOG_DAYS = env.int("RETENTION_DELIVERY_LOG_DAYS", default=90)
# pending dead letters are never deleted: only replayed or discarded ones past this age
RETENTION_DEAD_LETTERS_DAYS = env.int("RETENTION_DEAD_LETTERS_DAYS", default=90)
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

# --- Reconciliation (defaults also in reconciliation/conf.py; see docs/reconciliation.md) -----------------------
RECONCILIATION_INBOX = Path(env.str("RECONCILIATION_INBOX", default=str(VAR_DIR / "reconciliation-inbox")))
RECONCILIATION_TOLERANCE_PCT = env.str("RECONCILIATION_TOLERANCE_PCT", default="5")
RECONCILIATION_TOLERANCE_USD = env.str("RECONCILIATION_TOLERANCE_USD", default="0.05")
RECONCILIATION_REQUEST_TOLERANCE_PCT = env.str("RECONCILIATION_REQUEST_TOLERANCE_PCT", default="5")
RECONCILIATION_REQUEST_TOLERANCE_USD = env.str("RECONCILIATION_REQUEST_TOLERANCE_USD", default="0.000001")
RECONCILIATION_ALERT_MATCH_RATE = env.str("RECONCILIATION_ALERT_MATCH_RATE", default="0.95")
RECONCILIATION_ALERT_DISCREPANCY_USD = env.str("RECONCILIATION_ALERT_DISCREPANCY_USD", default="10")
RECONCILIATION_UPLOAD_MAX_BYTES = env.int("RECONCILIATION_UPLOAD_MAX_BYTES", default=256 * 1024 * 1024)
RECONCILIATION_REQUEST_TIME_SLACK_SECONDS = env.int("RECONCILIATION_REQUEST_TIME_SLACK_SECONDS", default=3600)
