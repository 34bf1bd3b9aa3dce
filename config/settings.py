"""TokenLedger settings, read from the environment (12-factor).

With nothing set it runs embedded: SQLite under var/, a local-memory cache and Celery over a filesystem broker.
DATABASE_URL and REDIS_URL switch to PostgreSQL and Redis. See CONTRACT.md for every variable.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import environ

from config.environment import (
    ConfigurationError,
    broker_config,
    cache_config,
    credits_setting,
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

# The gate's statements are planned once per connection (core.statements: SQL PREPARE, then EXECUTE). Turn off
# behind a connection pooler in transaction mode (PgBouncer's default), which hands a session's statements to
# another server connection.
GATE_PREPARED_STATEMENTS = env.bool("GATE_PREPARED_STATEMENTS", default=True)

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
    "axes",
    "core.apps.PlatformConfig",
    "pricing",
    "billing",
    "usage",
    "reconciliation",
    "gateway",
    "console",
    "dashboard",
    "config.apps.CompositionConfig",
]

MIDDLEWARE = [
    "core.request_log.RequestLogMiddleware",
    "core.api_errors.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "usage.throttling.RateLimitHeadersMiddleware",
    # last: turns a sign-in refused by the lockout into its 429 answer (config/sign_in.py)
    "axes.middleware.AxesMiddleware",
    "core.sign_in.SignInFailureMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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

# --- Sign-in throttling (django-axes): the admin, the dashboard sign-in and HTTP Basic ---------------------------
# AXES_FAILURE_LIMIT wrong passwords for one username from one address pause its sign-ins for AXES_COOLOFF_MINUTES,
# even with the right password; other users and other addresses are not affected; a success clears the count.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# the cool-off runs from the lockout: tries during it do not extend it (the owner's own retries would)
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_CALLABLE = "core.sign_in.lockout_response"
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
# Behind TRUSTED_PROXY_COUNT proxies that append to X-Forwarded-For, the client address is read from that header
# (core/client_ip.py); with none (the default) the header is ignored. Sign-in pauses key on that address.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "core.client_ip.client_ip"
AXES_VERBOSE = False  # no start-up line on stderr (commands print one JSON object and one error line at most)

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

# Mail (alerts, summaries): one EMAIL_URL sends real mail (smtp+tls://user:password@host:587, smtp+ssl://...:465;
# django-environ's email_url); without it every message is printed on the console, as the demo wants.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="TokenLedger <billing@tokenledger.local>")

# --- Django REST Framework and OpenAPI -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "core.sign_in.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.DecimalJSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api_errors.api_exception_handler",
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
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "core.openapi.error_responses"],
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
# queuing a task with the broker down gives up after about a second (the request is not held up; see config/celery.py)
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
DJANGO_CELERY_BEAT_TZ_AWARE = True
# A worker is reported stale on /healthz when its last heartbeat is older than this.
WORKER_HEARTBEAT_STALE_SECONDS = env.int("WORKER_HEARTBEAT_STALE_SECONDS", default=180)
# A running job renews its lease every quarter of this; a run whose lease expired is shown as abandoned.
JOB_LEASE_SECONDS = env.int("JOB_LEASE_SECONDS", default=120)
# The period close commits this many periods (invoices and their outbox rows) per transaction.
BILLING_CLOSE_CHUNK = env.int("BILLING_CLOSE_CHUNK", default=500)

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
        "json": {"()": "core.request_log.JsonLineFormatter"},
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

# --- HTTPS (README, Configuration): HTTPS=1 in production turns on secure cookies, the redirect to https and HSTS,
# so that `manage.py check --deploy` is clean; TRUST_X_FORWARDED_PROTO=1 behind a proxy that terminates TLS and sets
# X-Forwarded-Proto (only then: a client could otherwise claim https itself). Each can be set on its own too.
HTTPS = env.bool("HTTPS", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=HTTPS)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=HTTPS)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # a load balancer's health check may come over plain http
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=HTTPS)
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Usage metering and authorization ---------------------------------------------------------------------------
USAGE_MAX_BATCH = 1000
USAGE_METADATA_MAX_BYTES = 4096
# events older than this (by occurred_at) are refused and dead-lettered; so are events this far in the future
USAGE_LATE_EVENT_WINDOW_DAYS = env.int("USAGE_LATE_EVENT_WINDOW_DAYS", default=35)
USAGE_FUTURE_SKEW_SECONDS = env.int("USAGE_FUTURE_SKEW_SECONDS", default=300)
# events per minute per account on POST /api/usage/events, counted in events (a batch of 1,000 counts 1,000); 0: off
USAGE_EVENTS_PER_MINUTE = env.int("USAGE_EVENTS_PER_MINUTE", default=30_000)
# Retry-After of the 503 a rate-limited endpoint answers while Redis cannot be reached
RATE_LIMIT_UNAVAILABLE_RETRY_SECONDS = env.int("RATE_LIMIT_UNAVAILABLE_RETRY_SECONDS", default=10)
RESERVATION_TTL_SECONDS = env.int("RESERVATION_TTL_SECONDS", default=600)
# after an unpaid invoice, authorization answers account_past_due once this grace period has passed
PAST_DUE_GRACE_DAYS = env.int("PAST_DUE_GRACE_DAYS", default=7)

# The account dashboard (docs/dashboard.md). A new account warns its people when its available credits are below
# LOW_BALANCE_THRESHOLD_DEFAULT (credits; the owner changes it on the alerts page, 0 turns it off). SUPPORT_EMAIL,
# when set, is the contact the dashboard names next to a negative balance.
LOW_BALANCE_THRESHOLD_DEFAULT = credits_setting(
    "LOW_BALANCE_THRESHOLD_DEFAULT", env.str("LOW_BALANCE_THRESHOLD_DEFAULT", default="10000")
)
SUPPORT_EMAIL = env.str("SUPPORT_EMAIL", default="")
# characters per token used by /api/usage/estimate, by provider (Decimal strings)
ESTIMATE_CHARS_PER_TOKEN = {"openai": Decimal("4"), "anthropic": Decimal("3.5"), "default": Decimal("4")}
ESTIMATE_CACHE_SECONDS = 3600
# a full batch of 1,000 events with metadata fits; larger bodies answer 413
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=8 * 1024 * 1024)

# --- Customers API (server keys) -------------------------------------------------------------------------------
# the plan of a customer created without one
CUSTOMERS_DEFAULT_PLAN = env.str("CUSTOMERS_DEFAULT_PLAN", default="jive")
# an Idempotency-Key's first answer is kept at least this long; the cleanup job deletes older ones
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24)
PORTAL_SESSION_TTL_SECONDS = env.int("PORTAL_SESSION_TTL_SECONDS", default=300)
# where a portal link points (the dashboard's public address); empty: the address the API was called at
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="")
# hosts a portal session's return_url may point at (comma-separated); empty: any http(s) host
PORTAL_RETURN_URL_HOSTS = env.list("PORTAL_RETURN_URL_HOSTS", default=[])

# --- Alerts and retention ---------------------------------------------------------------------------------------
ALERT_DAILY_COST_USD = env.str("ALERT_DAILY_COST_USD", default="5")
ANOMALY_FACTOR = env.str("ANOMALY_FACTOR", default="5")
ANOMALY_MIN_EVENTS = env.int("ANOMALY_MIN_EVENTS", default=20)
ANOMALY_MIN_USD = env.str("ANOMALY_MIN_USD", default="1")
RETENTION_RESERVATIONS_DAYS = env.int("RETENTION_RESERVATIONS_DAYS", default=30)
RETENTION_DELIVERY_LOG_DAYS = env.int("RETENTION_DELIVERY_LOG_DAYS", default=90)
# pending dead letters are never deleted: only replayed or discarded ones past this age
RETENTION_DEAD_LETTERS_DAYS = env.int("RETENTION_DEAD_LETTERS_DAYS", default=90)
# Alert webhooks go to https URLs on public addresses only (SSRF); http too when this is on (for receivers without
# TLS); hosts listed in WEBHOOK_ALLOWED_INTERNAL_HOSTS (names or IP addresses, comma-separated) may be internal.
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=False)
WEBHOOK_ALLOWED_INTERNAL_HOSTS = env.list("WEBHOOK_ALLOWED_INTERNAL_HOSTS", default=[])
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

# --- Metering gateway (docs/gateway.md) --------------------------------------------------------------------------
# the Fernet key that encrypts upstream provider keys at rest (Fernet.generate_key()); unset: derived from SECRET_KEY,
# so changing SECRET_KEY then makes the stored keys unreadable (they must be set again in the console)
GATEWAY_ENCRYPTION_KEY = env.str("GATEWAY_ENCRYPTION_KEY", default="")
if GATEWAY_ENCRYPTION_KEY:
    from cryptography.fernet import Fernet

    try:
        Fernet(GATEWAY_ENCRYPTION_KEY.encode())
    except ValueError:
        sys.exit("TokenLedger: GATEWAY_ENCRYPTION_KEY must be a Fernet key (32 url-safe base64-encoded bytes)")
# the largest request body the gateway accepts (413 beyond it, in the provider's error format)
GATEWAY_MAX_BODY_BYTES = env.int("GATEWAY_MAX_BODY_BYTES", default=8 * 1024 * 1024)
# how long the gateway waits for each next part of a request body (408 after it, in the provider's error format): a
# client that stops sending would otherwise hold its connection forever; one that sends slowly is not cut off
GATEWAY_BODY_TIMEOUT_SECONDS = env.float("GATEWAY_BODY_TIMEOUT_SECONDS", default=30.0)
