"""Every setting of the project. Other modules import this and override only what differs.

Everything that varies between deployments is read from the environment (see ``.env.example``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import environ
from django.utils.translation import gettext_lazy as _
from kombu import Queue

from config.settings.constants import (  # noqa: F401 (SPECTACULAR_SETTINGS is a setting)
    LOG_FORMATTERS,
    SPECTACULAR_SETTINGS,
    UNFOLD_COLORS,
)

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# ops: origins of the SPA (e.g. https://app.example.com) allowed to call /api/ from a browser
# (django-cors-headers) and to open WebSockets with the session cookie. Empty by default.
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "x-csrftoken",
    "x-organization",
    "x-request-id",
    "x-requested-with",
)
CORS_EXPOSE_HEADERS = ["X-Request-ID", "Retry-After"]
# ops: Content-Security-Policy (django-csp; apps/core/csp.py makes /workspace/ stricter). No
# script, style, font or connection to another origin; images may come from https (WeChat's
# avatar CDN). 'unsafe-inline'/'unsafe-eval' for scripts only because the admin theme runs
# Alpine.js and Django's admin and Swagger UI keep inline scripts; the workspace has neither.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", "'unsafe-inline'", "'unsafe-eval'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:", "https:"],
        "media-src": ["'self'", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
    }
}
# The absolute origin the platforms post webhooks to (the connection's webhook_url is built on it).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

# --- Applications -------------------------------------------------------------------------------
PROJECT_APPS = [
    "apps.core",
    "apps.accounts",
    "apps.orgs",
    "apps.media",
    "apps.integrations",
    "apps.billing",
    "apps.wechat_accounts",
    "apps.conversations",
    "apps.sop",
    "apps.monitoring",
    "apps.reports",
]
INSTALLED_APPS = [
    "daphne",
    # console (issue 15): the admin theme, before django.contrib.admin; the admin's own site
    # is apps.core.admin_site.ConsoleAdminSite (every member signs in; roles in OrgScopedAdmin).
    "unfold.apps.BasicAppConfig",
    "unfold.contrib.filters",
    "unfold.contrib.forms",
    "unfold.contrib.inlines",
    "apps.core.admin_apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from here, not from a CDN
    "channels",
    "django_celery_beat",
    "corsheaders",
    "csp",
    *PROJECT_APPS,
]

MIDDLEWARE = [
    # ops: request id (X-Request-ID in, out) and the log context of the request.
    "apps.core.logcontext.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    # ops: Content-Security-Policy on every response (apps/core/csp.py; policy below).
    "apps.core.csp.ProjectCSPMiddleware",
    # monitoring: HTTP request counts and latency for /metrics (kept in Redis).
    "apps.monitoring.prometheus.PrometheusRequestMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "admin:index"

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
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- Database: PostgreSQL through DATABASE_URL, SQLite under var/ when unset ----------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Server-side parameters and prepared statements (issue 19): psycopg prepares a statement
    # run DB_PREPARE_THRESHOLD times on a connection, so PostgreSQL parses and plans the core
    # loop's statements once per connection instead of on every call. Switch both off behind a
    # transaction-mode pooler that does not keep prepared statements.
    _db_options = DATABASES["default"].setdefault("OPTIONS", {})
    _db_options["server_side_binding"] = env.bool("DB_SERVER_SIDE_BINDING", default=True)
    if _db_options["server_side_binding"]:
        # Executions before psycopg prepares a statement (Django's default None: never).
        _db_options["prepare_threshold"] = env.int("DB_PREPARE_THRESHOLD", default=5)
    # A connection pool instead of persistent connections (config/asgi.py switches it on for the
    # web process): under ASGI each request runs in a thread of its own, and a persistent
    # connection per request thread piled up until PostgreSQL refused clients ("too many
    # clients" at 40 webhooks/s in bench/e2e; 64 connections from 8 clients in bench/ingest).
    if env.bool("DB_POOL", default=False):
        _db_options["pool"] = {
            "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
            "max_size": env.int("DB_POOL_MAX_SIZE", default=10),
            "timeout": env.float("DB_POOL_TIMEOUT_SECONDS", default=10),
        }
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them; Django requires 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: REDIS_URL, or the embedded Redis on a unix socket under var/ when unset ---------------
REDIS_URL = env.str("REDIS_URL", default="")
if not REDIS_URL:
    from apps.core.embedded_redis import ensure_running

    REDIS_URL = f"unix://{ensure_running(VAR_DIR)}?db=0"


def _celery_url(redis_url: str) -> str:
    """Kombu spells a unix socket ``redis+socket://``; redis-py spells it ``unix://``."""
    parsed = urlparse(redis_url)
    if parsed.scheme == "unix":
        db = parse_qs(parsed.query).get("db", ["0"])[0]
        return f"redis+socket://{parsed.path}?virtual_host={db}"
    return redis_url


CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="sa"),
        "TIMEOUT": 300,
    }
}
CHANNELS_BLOCK_SECONDS = env.float("CHANNELS_BLOCK_SECONDS", default=1.0)
CHANNEL_LAYERS = {
    "default": {
        # ops: channels-redis with a 1 s blocking receive (apps/core/channel_layer.py), so a
        # disconnecting consumer stops at once instead of being killed by Daphne.
        "BACKEND": "apps.core.channel_layer.PromptRedisChannelLayer",
        "CONFIG": {
            # redis-py 8 reads with a 5 s socket timeout by default, the same as the layer's
            # blocking BZPOPMIN: the race killed idle consumers. Read timeout above the block;
            # and more than redis-py's default 100 pooled connections for reconnect storms.
            "hosts": [
                {
                    "address": REDIS_URL,
                    "socket_timeout": 15,
                    "max_connections": env.int("CHANNELS_REDIS_MAX_CONNECTIONS", default=500),
                }
            ],
            "prefix": env.str("CHANNELS_PREFIX", default="asgi"),
            "capacity": 1000,
            "expiry": 60,
        },
    }
}

# --- Celery -------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=_celery_url(REDIS_URL))
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# Tasks run on workers; test settings switch this on for unit tests (code reads it to skip
# countdown waits that an eager run would turn into recursion).
CELERY_TASK_ALWAYS_EAGER = False
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Named queues (issue 19), so a slow AI provider cannot starve webhook processing or sends: run a
# worker per group in production (`celery -A config worker -Q ai`, docker-compose's worker-*
# services, `--scale` each). A worker started without -Q consumes every queue below (make run,
# the tests). Tasks not routed here go to "celery".
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_QUEUE_NAMES = ["webhook", "ai", "send", "sop", "monitoring", "celery"]
CELERY_TASK_QUEUES = [Queue(name, routing_key=name) for name in CELERY_QUEUE_NAMES]
CELERY_TASK_ROUTES = {
    # inbound: webhook events, then media the customer sent
    "apps.integrations.tasks.webhook_event_process": {"queue": "webhook"},
    "apps.conversations.tasks.message_media_fetch": {"queue": "webhook"},
    # the AI turn (seconds per call)
    "apps.conversations.tasks.ai_turn_run": {"queue": "ai"},
    "apps.conversations.tasks.analysis_backfill_run": {"queue": "ai"},
    # platform I/O: the outbound pipeline, moments, friend requests, logins, contact sync
    "apps.wechat_accounts.tasks.*": {"queue": "send"},
    "apps.conversations.tasks.outbound_*": {"queue": "send"},
    "apps.sop.tasks.*": {"queue": "sop"},
    # checks, alerts, notifications, reports and housekeeping
    "apps.monitoring.tasks.*": {"queue": "monitoring"},
    "apps.reports.tasks.*": {"queue": "monitoring"},
    "apps.billing.tasks.*": {"queue": "monitoring"},
    "apps.integrations.tasks.integration_call_prune": {"queue": "monitoring"},
    "apps.integrations.tasks.connection_test": {"queue": "monitoring"},
    "apps.conversations.tasks.conversations_lifecycle": {"queue": "monitoring"},
    "apps.conversations.tasks.core_loop_recover": {"queue": "monitoring"},
}
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
# harden: a task acknowledged late whose worker died (SIGKILL, OOM, lost host) is handed to
# another worker by the Redis broker only after the visibility timeout. It must exceed the
# longest task's time limit (else a task still running is delivered twice), and no more than
# that plus a margin (it was 3600 s: an hour of waiting). CELERY_LONGEST_TASK_TIME_LIMIT is
# the largest time_limit of any task (contacts_sync, 1900 s; a test keeps the two equal). A
# countdown (ETA) longer than the timeout would be redelivered too: enqueues cap theirs at
# CELERY_MAX_COUNTDOWN_SECONDS and the task defers again when woken early. The core loop does
# not wait for either: webhook claims, AI turns and sends carry leases of seconds that the
# periodic recovery checks (README, "Crash recovery").
CELERY_LONGEST_TASK_TIME_LIMIT = env.int("CELERY_LONGEST_TASK_TIME_LIMIT", default=1900)
CELERY_VISIBILITY_MARGIN_SECONDS = env.int("CELERY_VISIBILITY_MARGIN_SECONDS", default=60)
CELERY_VISIBILITY_TIMEOUT = CELERY_LONGEST_TASK_TIME_LIMIT + CELERY_VISIBILITY_MARGIN_SECONDS
CELERY_MAX_COUNTDOWN_SECONDS = CELERY_VISIBILITY_TIMEOUT - CELERY_VISIBILITY_MARGIN_SECONDS
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
# Periodic tasks are declared once, here; each app adds its entries below its own heading.
CELERY_BEAT_SCHEDULE: dict = {}
# wechat_accounts: online checks (fanned out per org, spread over the interval), outbound
# recovery (expired send leases, lost queue tasks, deferred sends now due), scheduled Moments.
CELERY_BEAT_SCHEDULE["wechat-accounts-check-online"] = {
    "task": "apps.wechat_accounts.tasks.accounts_check_online_all_orgs",
    "schedule": 300.0,
    "options": {"expires": 290},
}
CELERY_BEAT_SCHEDULE["wechat-accounts-outbound-recover"] = {
    "task": "apps.wechat_accounts.tasks.outbound_recover_all_orgs",
    "schedule": 60.0,
    "options": {"expires": 55},
}
CELERY_BEAT_SCHEDULE["wechat-accounts-moments-due"] = {
    "task": "apps.wechat_accounts.tasks.moments_post_due_all_orgs",
    "schedule": 60.0,
    "options": {"expires": 55},
}
# monitoring (realtime): stats_update to live monitor sockets, offline events for expired presence.
CELERY_BEAT_SCHEDULE["monitoring-ws-stats-push"] = {
    "task": "apps.monitoring.tasks.ws_stats_push",
    "schedule": 60.0,
    "options": {"expires": 55},
}
# sop: the scheduler tick (claims due deliveries, hands them to the outbound pipeline).
CELERY_BEAT_SCHEDULE["sop-tick"] = {
    "task": "apps.sop.tasks.sop_tick_all_orgs",
    "schedule": float(env.int("SOP_TICK_SECONDS", default=30)),
    "options": {"expires": max(1, env.int("SOP_TICK_SECONDS", default=30) - 5)},
}
# conversations: re-enqueue webhook events stuck in "received", reschedule lost AI turns, wake
# snoozed conversations.
# harden: every 15 s (was 30), so a dead worker's claims and turns heal in seconds.
CONVERSATION_RECOVER_INTERVAL_SECONDS = env.int("CONVERSATION_RECOVER_INTERVAL_SECONDS", default=15)
CELERY_BEAT_SCHEDULE["conversations-recover"] = {
    "task": "apps.conversations.tasks.core_loop_recover",
    "schedule": float(CONVERSATION_RECOVER_INTERVAL_SECONDS),
    "options": {"expires": max(1, CONVERSATION_RECOVER_INTERVAL_SECONDS - 2)},
}
# conversations (issue 17): AI session lifecycle, draft expiry, auto-resolve of idle chats.
CELERY_BEAT_SCHEDULE["conversations-lifecycle"] = {
    "task": "apps.conversations.tasks.conversations_lifecycle",
    "schedule": 60.0,
    "options": {"expires": 55},
}
# media (conversations): re-enqueue downloads of received media whose task was lost.
CELERY_BEAT_SCHEDULE["conversations-media-fetch-recover"] = {
    "task": "apps.conversations.tasks.media_fetch_recover",
    "schedule": 300.0,
    "options": {"expires": 290},
}
# billing: mark reservations left by crashed workers as expired (they stop counting at expiry).
CELERY_BEAT_SCHEDULE["billing-expire-reservations"] = {
    "task": "apps.billing.tasks.reservations_expire_all_orgs",
    "schedule": 60.0,
    "options": {"expires": 55},
}
# reports: recompute the figures that changed (per org), and nightly the last days from scratch.
CELERY_BEAT_SCHEDULE["reports-refresh"] = {
    "task": "apps.reports.tasks.reports_refresh_all_orgs",
    "schedule": float(env.int("REPORTS_REFRESH_SECONDS", default=60)),
    "options": {"expires": max(1, env.int("REPORTS_REFRESH_SECONDS", default=60) - 5)},
}
CELERY_BEAT_SCHEDULE["reports-rebuild-recent"] = {
    "task": "apps.reports.tasks.reports_rebuild_recent_all_orgs",
    "schedule": 86400.0,
    "options": {"expires": 3600},
}

# --- Auth and API -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # harden: simplejwt plus refresh-token families and the logout denylist (Redis).
        "apps.core.jwt.FamilyJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "apps.core.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        # strict: a boolean filter refuses values other than true/false (issue 18).
        "apps.core.api.filters.StrictDjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    # strict: JSON fields typed by their model default, filters only on lists (issue 18).
    "DEFAULT_SCHEMA_CLASS": "apps.core.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.api.exceptions.exception_handler",
    # ops: API-wide limits in Redis (apps/core/api/throttles.py); rates below.
    "DEFAULT_THROTTLE_CLASSES": [
        "apps.core.api.throttles.UserThrottle",
        "apps.core.api.throttles.OrgThrottle",
        "apps.core.api.throttles.AnonThrottle",
    ],
    # strict: JSON bodies only (the schema's request types); file uploads declare multipart.
    # A form body cannot say null or a nested object, and an unparsable one read as empty.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "AUTH_HEADER_TYPES": ("Bearer",),
}

# Failed logins allowed per window before 429 (per e-mail and per client IP).
LOGIN_FAILURES_PER_EMAIL = env.int("LOGIN_FAILURES_PER_EMAIL", default=5)
LOGIN_FAILURES_PER_IP = env.int("LOGIN_FAILURES_PER_IP", default=20)
LOGIN_FAILURE_WINDOW_SECONDS = env.int("LOGIN_FAILURE_WINDOW_SECONDS", default=900)
INVITATION_TTL_DAYS = env.int("INVITATION_TTL_DAYS", default=7)
# Only behind a reverse proxy that sets it: otherwise clients could spoof their address.
TRUST_X_FORWARDED_FOR = env.bool("TRUST_X_FORWARDED_FOR", default=False)

# SPECTACULAR_SETTINGS: plain data, in config/settings/constants.py (imported above).

# --- Billing ------------------------------------------------------------------------------------
# A reservation not settled or released within this many seconds stops counting against budgets.
BILLING_RESERVATION_TTL_SECONDS = env.int("BILLING_RESERVATION_TTL_SECONDS", default=600)
# Output tokens assumed by `reserve` when the caller gives no estimate (e.g. the call's max_tokens).
BILLING_DEFAULT_OUTPUT_TOKENS = env.int("BILLING_DEFAULT_OUTPUT_TOKENS", default=512)
BILLING_DEFAULT_CURRENCY = env.str("BILLING_DEFAULT_CURRENCY", default="CNY")
BILLING_DEFAULT_SOFT_THRESHOLDS = [80, 95]
# Longest a process keeps an organisation's budgets and prices cached for metering (each call
# also checks a Redis token that every budget/price write changes; see apps/billing/config_cache).
BILLING_CONFIG_CACHE_SECONDS = env.int("BILLING_CONFIG_CACHE_SECONDS", default=60)

# --- Secrets at rest ----------------------------------------------------------------------------
# Comma-separated Fernet keys: the first encrypts, all decrypt (rotation: prepend a new key, then
# run `manage.py reencrypt_fields`).
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])

# --- Integrations (apps.integrations) -----------------------------------------------------------
# (connect, read) timeouts in seconds of WeChat platform calls and of AI calls.
INTEGRATION_HTTP_TIMEOUT = (
    env.float("INTEGRATION_CONNECT_TIMEOUT", default=5),
    env.float("INTEGRATION_READ_TIMEOUT", default=30),
)
AI_HTTP_TIMEOUT = (
    env.float("AI_CONNECT_TIMEOUT", default=5),
    env.float("AI_READ_TIMEOUT", default=60),
)
# AI requests in flight per organisation across all workers (the seed's 10); further calls wait
# in order up to AI_IN_FLIGHT_WAIT_SECONDS, then fail with ConcurrencyTimeout.
AI_MAX_IN_FLIGHT_PER_ORG = env.int("AI_MAX_IN_FLIGHT_PER_ORG", default=10)
AI_IN_FLIGHT_WAIT_SECONDS = env.float("AI_IN_FLIGHT_WAIT_SECONDS", default=30)
# harden: a slot's lease, renewed every third of it while the call runs: a killed worker's
# slot is free again within this many seconds.
AI_IN_FLIGHT_LEASE_SECONDS = env.float("AI_IN_FLIGHT_LEASE_SECONDS", default=10)
# AIApp rows are read through the cache for this long (invalidated on save and delete).
AI_APP_CACHE_SECONDS = env.int("AI_APP_CACHE_SECONDS", default=300)
# Call-log rows older than this are deleted daily; the stats endpoints default to this window.
INTEGRATION_CALL_RETENTION_DAYS = env.int("INTEGRATION_CALL_RETENTION_DAYS", default=30)
INTEGRATION_STATS_DEFAULT_HOURS = env.int("INTEGRATION_STATS_DEFAULT_HOURS", default=24)
# Ports of `manage.py simulate` (and of the demo connection / AI app that point at it).
SIMULATOR_HOST = env.str("SIMULATOR_HOST", default="127.0.0.1")
SIMULATOR_PORTS = {
    "gewe": env.int("SIMULATOR_GEWE_PORT", default=2531),
    "ecloud": env.int("SIMULATOR_ECLOUD_PORT", default=2541),
    "fastgpt": env.int("SIMULATOR_FASTGPT_PORT", default=3010),
    "dify": env.int("SIMULATOR_DIFY_PORT", default=3020),
    "openai": env.int("SIMULATOR_OPENAI_PORT", default=3030),
    "dashscope": env.int("SIMULATOR_DASHSCOPE_PORT", default=3040),
}
# demo (issue 15): seconds until a QR login on the running simulators (`manage.py simulate`,
# `make run`) confirms itself, so the account page shows the whole login flow.
SIMULATOR_LOGIN_CONFIRM_SECONDS = env.float("SIMULATOR_LOGIN_CONFIRM_SECONDS", default=5.0)
# integrations: daily prune of the call log.
CELERY_BEAT_SCHEDULE["integrations-call-prune"] = {
    "task": "apps.integrations.tasks.integration_call_prune",
    "schedule": 24 * 3600.0,
    "options": {"expires": 3600},
}

# --- i18n ---------------------------------------------------------------------------------------
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="zh-hans")
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True

# --- Console: the admin with django-unfold (issue 15; apps.core.admin_site, navigation) ---------
# The sidebar (grouped by task, filtered by role) is apps.core.navigation.NAVIGATION: add items
# there. The home page (dashboard) is built by apps.console.dashboard.
# The home page's live cards view (top layer; the admin site in the kernel knows only this path).
CONSOLE_DASHBOARD_CARDS_VIEW = "apps.console.dashboard.dashboard_cards_view"
UNFOLD = {
    "SITE_TITLE": _("AI Sales Assistant"),
    "SITE_HEADER": _("AI Sales Assistant"),
    "SITE_SYMBOL": "support_agent",
    "SITE_URL": "/",
    "SITE_FAVICONS": [
        {"rel": "icon", "type": "image/svg+xml", "href": lambda r: f"/{STATIC_URL}favicon.svg"}
    ],
    "SHOW_HISTORY": True,
    "SHOW_VIEW_ON_SITE": False,
    "DASHBOARD_CALLBACK": "apps.console.dashboard.dashboard_callback",
    "SCRIPTS": [lambda request: "/jsi18n/", lambda request: f"/{STATIC_URL}app/console.js"],
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": False,
        "navigation": "apps.core.navigation.sidebar",
    },
    "COLORS": UNFOLD_COLORS,
}

# --- Static files and e-mail --------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Daphne serves /static/ itself when set (development, or a single box without a CDN in front).
SERVE_STATIC = env.bool("SERVE_STATIC", default=DEBUG)
MEDIA_URL = "media/"
MEDIA_ROOT = VAR_DIR / "media"

# --- Media: uploads, media received from WeChat, signed URLs for the platforms (apps.media) -----
# Where the bytes live, chosen by settings alone: "filesystem" (under MEDIA_ROOT; nothing to
# install, nothing serves it publicly) or "s3" (S3-compatible object storage: AWS S3, MinIO,
# Alibaba OSS, Tencent COS; install the optional requirements/s3.txt for boto3).
MEDIA_STORAGE = env.str("MEDIA_STORAGE", default="filesystem")
# Signed platform URLs live this long; "storage" uses an S3 storage's own presigned URLs instead.
MEDIA_SIGNED_URL_TTL_SECONDS = env.int("MEDIA_SIGNED_URL_TTL_SECONDS", default=3600)
MEDIA_PLATFORM_URLS = env.str("MEDIA_PLATFORM_URLS", default="signed")
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if MEDIA_STORAGE == "s3":
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("MEDIA_S3_BUCKET"),
            "endpoint_url": env.str("MEDIA_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("MEDIA_S3_REGION", default="") or None,
            "access_key": env.str("MEDIA_S3_ACCESS_KEY", default="") or None,
            "secret_key": env.str("MEDIA_S3_SECRET_KEY", default="") or None,
            # "virtual" for Alibaba OSS and Tencent COS, "path" for MinIO.
            "addressing_style": env.str("MEDIA_S3_ADDRESSING_STYLE", default="") or None,
            "signature_version": env.str("MEDIA_S3_SIGNATURE_VERSION", default="s3v4"),
            "location": env.str("MEDIA_S3_PREFIX", default="media"),
            "default_acl": None,  # private objects (the bucket's default)
            "querystring_auth": True,
            "querystring_expire": MEDIA_SIGNED_URL_TTL_SECONDS,
            "file_overwrite": False,
        },
    }
# Uploads (composer, API, SOP steps) above this answer 413; media fetched from WeChat may be
# larger, up to the second value.
MEDIA_MAX_UPLOAD_BYTES = env.int("MEDIA_MAX_UPLOAD_BYTES", default=10 * 1024 * 1024)
MEDIA_INBOUND_MAX_BYTES = env.int("MEDIA_INBOUND_MAX_BYTES", default=50 * 1024 * 1024)
# Downloads of received media: attempts, backoff base / cap (seconds), HTTP timeout (seconds).
MEDIA_DOWNLOAD_MAX_ATTEMPTS = env.int("MEDIA_DOWNLOAD_MAX_ATTEMPTS", default=5)
MEDIA_DOWNLOAD_RETRY_BASE_SECONDS = env.float("MEDIA_DOWNLOAD_RETRY_BASE_SECONDS", default=10)
MEDIA_DOWNLOAD_RETRY_MAX_SECONDS = env.float("MEDIA_DOWNLOAD_RETRY_MAX_SECONDS", default=600)
MEDIA_DOWNLOAD_TIMEOUT_SECONDS = env.float("MEDIA_DOWNLOAD_TIMEOUT_SECONDS", default=60)

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="noreply@sales-assistant.local")
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))

# --- Realtime (apps.core.ws, chat and monitor consumers) ----------------------------------------
# Seconds a socket without ?token= has to send {"type": "auth", ...} before it is closed (4401).
WS_AUTH_TIMEOUT_SECONDS = env.float("WS_AUTH_TIMEOUT_SECONDS", default=5)
# Server ping interval, and how long a silent client may stay before it is closed (4408).
WS_HEARTBEAT_INTERVAL_SECONDS = env.float("WS_HEARTBEAT_INTERVAL_SECONDS", default=30)
WS_HEARTBEAT_TIMEOUT_SECONDS = env.float("WS_HEARTBEAT_TIMEOUT_SECONDS", default=60)
# Live connections per user across every Daphne process (the 6th is refused with 4429).
WS_MAX_CONNECTIONS_PER_USER = env.int("WS_MAX_CONNECTIONS_PER_USER", default=5)
# A connection's slot in Redis is a lease renewed every heartbeat; a crashed process's slots
# expire after this many seconds. Must be larger than the heartbeat interval.
WS_CONNECTION_LEASE_SECONDS = env.float("WS_CONNECTION_LEASE_SECONDS", default=90)
# Conversations one /ws/chat/ socket may join at once, and messages per catch-up ("sync") reply.
WS_MAX_JOINED_CONVERSATIONS = env.int("WS_MAX_JOINED_CONVERSATIONS", default=50)
WS_SYNC_LIMIT = env.int("WS_SYNC_LIMIT", default=500)
# Registry connections per Daphne process; when all are busy a consumer waits for one.
WS_REDIS_MAX_CONNECTIONS = env.int("WS_REDIS_MAX_CONNECTIONS", default=100)
# Lifetime of the JWT a same-origin page (the workspace, the console) fetches from
# /workspace/ws-token/ with its session for the WebSocket auth message (static/app/live.js).
WORKSPACE_WS_TOKEN_SECONDS = env.int("WORKSPACE_WS_TOKEN_SECONDS", default=60)
# The ASGI process's garbage collector (apps/core/gc_tuning.py): survivors are frozen every
# ASGI_GC_FREEZE_SECONDS so a full collection never stalls every socket; everything is collected
# once every ASGI_GC_FULL_SECONDS. 0 switches a step off (both 0: Python's defaults).
ASGI_GC_FREEZE_SECONDS = env.float("ASGI_GC_FREEZE_SECONDS", default=10)
ASGI_GC_FULL_SECONDS = env.float("ASGI_GC_FULL_SECONDS", default=3600)

# --- Notifications (apps.monitoring) ------------------------------------------------------------
# Dotted path of the SMS backend class (see apps/monitoring/sms.py); the console backend logs.
NOTIFICATIONS_SMS_BACKEND = env.str(
    "NOTIFICATIONS_SMS_BACKEND", default="apps.monitoring.sms.ConsoleSMSBackend"
)
# Timeout of one outgoing notification webhook call (WeCom / DingTalk robot or generic URL).
NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS = env.float(
    "NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS", default=5
)

# --- WeChat accounts and the outbound pipeline (apps.wechat_accounts) ---------------------------
# Length of the per-minute sliding windows (account, organisation, global). Tests shorten it.
WECHAT_SEND_WINDOW_SECONDS = env.float("WECHAT_SEND_WINDOW_SECONDS", default=60)
# Sends per window across each organisation, and across the whole deployment (0 = no limit).
WECHAT_SEND_ORG_LIMIT_PER_MINUTE = env.int("WECHAT_SEND_ORG_LIMIT_PER_MINUTE", default=600)
WECHAT_SEND_GLOBAL_LIMIT_PER_MINUTE = env.int("WECHAT_SEND_GLOBAL_LIMIT_PER_MINUTE", default=6000)
# Multiplies every account's human-like delay range (0 disables the delay, e.g. in tests).
WECHAT_SEND_DELAY_SCALE = env.float("WECHAT_SEND_DELAY_SCALE", default=1.0)
# A claimed send ("sending") is recovered by the periodic task after its lease expires.
WECHAT_SEND_LEASE_SECONDS = env.int("WECHAT_SEND_LEASE_SECONDS", default=120)
# An AI reply due at once gets its first delivery attempt in the AI worker right after its
# commit, instead of a second task on the send queue (issue 19); waits and retries still queue.
OUTBOUND_INLINE_FIRST_ATTEMPT = env.bool("OUTBOUND_INLINE_FIRST_ATTEMPT", default=True)
# Attempts per message on retryable errors, and the backoff base / cap in seconds.
WECHAT_SEND_MAX_ATTEMPTS = env.int("WECHAT_SEND_MAX_ATTEMPTS", default=3)
WECHAT_SEND_RETRY_BASE_SECONDS = env.float("WECHAT_SEND_RETRY_BASE_SECONDS", default=5)
WECHAT_SEND_RETRY_MAX_SECONDS = env.float("WECHAT_SEND_RETRY_MAX_SECONDS", default=300)
# The ambiguous case (the platform call may have gone through but no answer was stored: read
# timeout, or a worker killed during the call): "at_most_once" marks the message failed
# ("delivery unknown") so a person decides; "at_least_once" sends it again (may duplicate).
WECHAT_SEND_AMBIGUOUS_POLICY = env.str("WECHAT_SEND_AMBIGUOUS_POLICY", default="at_most_once")
# Queued messages older than this (e.g. the account stayed offline) fail as expired.
WECHAT_SEND_QUEUE_TTL_SECONDS = env.int("WECHAT_SEND_QUEUE_TTL_SECONDS", default=86400)
# A queued message untouched this long is re-enqueued by the recovery task (lost broker task).
WECHAT_SEND_STALE_QUEUED_SECONDS = env.int("WECHAT_SEND_STALE_QUEUED_SECONDS", default=300)
# QR login: poll interval of the background task, and how long a login may stay pending.
WECHAT_LOGIN_POLL_SECONDS = env.float("WECHAT_LOGIN_POLL_SECONDS", default=5)
WECHAT_LOGIN_TIMEOUT_SECONDS = env.int("WECHAT_LOGIN_TIMEOUT_SECONDS", default=600)
# Online check period (the beat entry above) over which per-account checks are spread.
WECHAT_ONLINE_CHECK_INTERVAL_SECONDS = env.int("WECHAT_ONLINE_CHECK_INTERVAL_SECONDS", default=300)
# Contact sync: wxids per detail request (GeWe getBriefInfo allows 100, E云 getContact 20).
WECHAT_CONTACT_SYNC_BATCH = env.int("WECHAT_CONTACT_SYNC_BATCH", default=100)
# Moments timeline cache lifetime.
WECHAT_MOMENTS_TIMELINE_TTL_SECONDS = env.int("WECHAT_MOMENTS_TIMELINE_TTL_SECONDS", default=300)

# --- Monitoring: health checks, alerts, /metrics (apps.monitoring) -------------------------------
# The beat's fan-out period; each organisation runs at its own interval (30 s by default).
MONITORING_TICK_SECONDS = env.int("MONITORING_TICK_SECONDS", default=10)
CELERY_BEAT_SCHEDULE["monitoring-tick"] = {
    "task": "apps.monitoring.tasks.monitoring_tick",
    "schedule": float(MONITORING_TICK_SECONDS),
    "options": {"expires": max(1, MONITORING_TICK_SECONDS - 1)},
}
CELERY_BEAT_SCHEDULE["monitoring-retention-clean"] = {
    "task": "apps.monitoring.tasks.monitoring_retention_clean",
    "schedule": 24 * 3600.0,
    "options": {"expires": 3600},
}
# Consecutive failed checks of a target before service_down.
MONITORING_DOWN_AFTER_FAILURES = env.int("MONITORING_DOWN_AFTER_FAILURES", default=2)
# Anomaly (z-score) evaluation runs at most this often per organisation.
MONITORING_ANOMALY_EVERY_SECONDS = env.int("MONITORING_ANOMALY_EVERY_SECONDS", default=300)
# /readyz: a worker must have answered a ping, and the beat ticked, within these many seconds.
MONITORING_WORKER_STALE_SECONDS = env.int("MONITORING_WORKER_STALE_SECONDS", default=120)
MONITORING_BEAT_STALE_SECONDS = env.int("MONITORING_BEAT_STALE_SECONDS", default=120)
MONITORING_RETENTION_BATCH = env.int("MONITORING_RETENTION_BATCH", default=5000)
# The one-word prompt of a live AI app check (a minimal chat turn, never billed).
MONITORING_AI_CHECK_PROMPT = env.str("MONITORING_AI_CHECK_PROMPT", default="ping")
# /metrics (Prometheus): a Bearer token, or client IPs / networks allowed without one.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])

# --- SOP campaigns (apps.sop) -------------------------------------------------------------------
# The tick's period (the beat entry above), deliveries claimed per batch and batches per tick.
SOP_TICK_SECONDS = env.int("SOP_TICK_SECONDS", default=30)
SOP_TICK_BATCH = env.int("SOP_TICK_BATCH", default=500)
SOP_TICK_MAX_BATCHES = env.int("SOP_TICK_MAX_BATCHES", default=20)
# A claimed delivery not handed over within this time (crashed worker) is claimed again.
SOP_CLAIM_LEASE_SECONDS = env.int("SOP_CLAIM_LEASE_SECONDS", default=300)
# Attempts (AI generation errors) before a delivery fails, and the first retry's delay.
SOP_MAX_ATTEMPTS = env.int("SOP_MAX_ATTEMPTS", default=3)
SOP_RETRY_BASE_SECONDS = env.float("SOP_RETRY_BASE_SECONDS", default=60)
# Upper bound of the messages a dry run renders.
SOP_DRY_RUN_MAX = env.int("SOP_DRY_RUN_MAX", default=100)

# --- Conversations and the core loop (apps.conversations, apps.integrations webhooks) -----------
# Webhook bodies above this size answer 413; rejected bodies are stored truncated (chars below).
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=1024 * 1024)
# ops: events a minute one connection may post before 429 + Retry-After (0 disables). Far above
# any real account (a busy team is ~20 a second); stops a leaked webhook URL flooding the inbox.
WEBHOOK_RATE_LIMIT_PER_MINUTE = env.int("WEBHOOK_RATE_LIMIT_PER_MINUTE", default=12000)
WEBHOOK_REJECTED_BODY_CHARS = env.int("WEBHOOK_REJECTED_BODY_CHARS", default=2000)
# harden: JSON nested deeper than this is refused with 400 (platform payloads are ~5 deep).
WEBHOOK_MAX_JSON_DEPTH = env.int("WEBHOOK_MAX_JSON_DEPTH", default=32)
# Seconds a web process caches the connection of a webhook secret (a rotated or disabled secret
# keeps working that long in each process; 0 looks it up on every request).
WEBHOOK_CONNECTION_CACHE_SECONDS = env.float("WEBHOOK_CONNECTION_CACHE_SECONDS", default=10)
# Events still "received" after this many seconds are enqueued again (lost broker task); after
# WEBHOOK_MAX_ATTEMPTS processing attempts an event is marked failed.
WEBHOOK_STUCK_SECONDS = env.int("WEBHOOK_STUCK_SECONDS", default=60)
# harden: a worker's claim on an event it processes lasts this long; only an event whose claim
# expired (the worker died) or whose enqueue failed is re-enqueued by the sweep, and one never
# claimed only after the broker's visibility timeout (then the broker lost it). An event
# merely waiting on the queue is left alone (a sweep once flooded the queue to 2,129 tasks).
WEBHOOK_CLAIM_LEASE_SECONDS = env.float("WEBHOOK_CLAIM_LEASE_SECONDS", default=20)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=5)
# Messages older than this when they arrive (history replay after a re-login) are stored but
# never answered by the AI.
WEBHOOK_STALE_MESSAGE_SECONDS = env.int("WEBHOOK_STALE_MESSAGE_SECONDS", default=600)
# Customer messages within this window are answered together in one AI turn (0 = at once).
CONVERSATION_MERGE_WINDOW_SECONDS = env.float("CONVERSATION_MERGE_WINDOW_SECONDS", default=2.0)
# One AI turn per conversation at a time across workers: the Redis lock's lifetime, renewed
# every third of it while the turn runs (harden: was 180 s, a killed worker's chat waited that
# long); a crashed worker's lock expires after it. Busy turns retry after this delay.
CONVERSATION_AI_LOCK_SECONDS = env.int("CONVERSATION_AI_LOCK_SECONDS", default=15)
CONVERSATION_AI_BUSY_RETRY_SECONDS = env.float("CONVERSATION_AI_BUSY_RETRY_SECONDS", default=1.0)
# How long an AI turn waits for one of its organisation's AI_MAX_IN_FLIGHT_PER_ORG slots before
# it is re-queued (busy): short, so one organisation's slow provider never holds worker threads
# that other organisations' turns need.
CONVERSATION_AI_SLOT_WAIT_SECONDS = env.float("CONVERSATION_AI_SLOT_WAIT_SECONDS", default=0.5)
# Turn attempts (each AI call itself retries transient errors in the client) before a handoff.
CONVERSATION_AI_MAX_ATTEMPTS = env.int("CONVERSATION_AI_MAX_ATTEMPTS", default=2)
# Messages of history sent to OpenAI-compatible apps (FastGPT/Dify keep their own session).
CONVERSATION_AI_CONTEXT_MESSAGES = env.int("CONVERSATION_AI_CONTEXT_MESSAGES", default=20)
# The provider session is "idle" after this long without AI activity and "expired" (a new one
# starts) after the second value (seed 003's active / idle / expired).
CONVERSATION_AI_SESSION_IDLE_SECONDS = env.int("CONVERSATION_AI_SESSION_IDLE_SECONDS", default=1800)
CONVERSATION_AI_SESSION_EXPIRE_SECONDS = env.int(
    "CONVERSATION_AI_SESSION_EXPIRE_SECONDS", default=86400
)
# Output tokens reserved in the budget per AI turn before the call.
CONVERSATION_AI_RESERVE_OUTPUT_TOKENS = env.int(
    "CONVERSATION_AI_RESERVE_OUTPUT_TOKENS", default=512
)
# Long answers are split into WeChat-sized messages of at most this many characters.
CONVERSATION_REPLY_CHUNK_CHARS = env.int("CONVERSATION_REPLY_CHUNK_CHARS", default=600)
# harden: at most this many messages per answer (the last kept one ends with "…"), and at most
# this many characters of the customer's text go to the AI (the cut is noted in the input).
CONVERSATION_REPLY_MAX_CHUNKS = env.int("CONVERSATION_REPLY_MAX_CHUNKS", default=5)
CONVERSATION_AI_INPUT_MAX_CHARS = env.int("CONVERSATION_AI_INPUT_MAX_CHARS", default=4000)
# A reply the salesperson sends from the phone pauses the AI of that chat this long.
CONVERSATION_PHONE_PAUSE_SECONDS = env.int("CONVERSATION_PHONE_PAUSE_SECONDS", default=1800)
# Customer words that hand the chat to a person (organisations add theirs in
# Organization.settings["handoff_keywords"]).
CONVERSATION_HANDOFF_KEYWORDS = env.list(
    "CONVERSATION_HANDOFF_KEYWORDS", default=["转人工", "人工客服", "真人", "人工服务"]
)
# Sentiment score (-1..1) at or below which a chat goes to a person (when analysis is on).
CONVERSATION_HANDOFF_SENTIMENT_SCORE = env.float(
    "CONVERSATION_HANDOFF_SENTIMENT_SCORE", default=-0.7
)
# Intent / sentiment analysis of customer messages (Organization.settings "ai_analysis" wins).
CONVERSATION_AI_ANALYSIS_ENABLED = env.bool("CONVERSATION_AI_ANALYSIS_ENABLED", default=False)
# Streamed partial text is pushed as ai_processing_status at most this often (seconds).
CONVERSATION_STREAM_PUSH_INTERVAL = env.float("CONVERSATION_STREAM_PUSH_INTERVAL", default=0.2)
# Unanswered AI-triggering messages older than this are re-scheduled by the recovery task.
CONVERSATION_AI_RECOVER_SECONDS = env.int("CONVERSATION_AI_RECOVER_SECONDS", default=60)
# harden: a running AI turn's lease, renewed while its worker calls the AI (and the turn's
# conversation lock with it). A turn still "running" after its lease is re-queued by the
# recovery, or closed with a reason after CONVERSATION_AI_TURN_MAX_LOST lost attempts.
CONVERSATION_AI_TURN_LEASE_SECONDS = env.float("CONVERSATION_AI_TURN_LEASE_SECONDS", default=20)
CONVERSATION_AI_TURN_MAX_LOST = env.int("CONVERSATION_AI_TURN_MAX_LOST", default=5)
# Longest a process keeps an organisation's reply app lists cached for the AI turn (each turn
# also checks a Redis token that every AIApp / AccountAIApp write changes; see
# apps/conversations/ai_app_cache).
CONVERSATION_AI_APP_CACHE_SECONDS = env.int("CONVERSATION_AI_APP_CACHE_SECONDS", default=60)
# --- AI failover, drafts, group sessions, lifecycle (issue 17, conversations) ------------------
# Per AI app: attempts and exponential backoff base (seed 004: 3 attempts, 5 s) before the turn
# fails over to the next app of the account's / organisation's list.
AI_APP_ATTEMPTS = env.int("AI_APP_ATTEMPTS", default=3)
AI_APP_RETRY_BASE_SECONDS = env.float("AI_APP_RETRY_BASE_SECONDS", default=5.0)
AI_APP_RETRY_MAX_SECONDS = env.float("AI_APP_RETRY_MAX_SECONDS", default=20.0)
# Circuit breaker per AI app (Redis, shared by all workers): opens after AI_BREAKER_FAILURES
# failures within AI_BREAKER_WINDOW_SECONDS, lets one probe through after the cool-down; a probe
# whose worker died is handed to the next caller after AI_BREAKER_PROBE_SECONDS.
AI_BREAKER_FAILURES = env.int("AI_BREAKER_FAILURES", default=5)
AI_BREAKER_WINDOW_SECONDS = env.float("AI_BREAKER_WINDOW_SECONDS", default=60)
AI_BREAKER_COOLDOWN_SECONDS = env.float("AI_BREAKER_COOLDOWN_SECONDS", default=30)
AI_BREAKER_PROBE_SECONDS = env.float("AI_BREAKER_PROBE_SECONDS", default=120)
# Defaults of the organisation settings (apps.conversations.ai_settings) of the lifecycle:
# a group member's provider session restarts after this idle time (seed 004: per hour).
CONVERSATION_GROUP_SESSION_IDLE_SECONDS = env.int(
    "CONVERSATION_GROUP_SESSION_IDLE_SECONDS", default=3600
)
CONVERSATION_DRAFT_EXPIRY_MINUTES = env.int("CONVERSATION_DRAFT_EXPIRY_MINUTES", default=120)
CONVERSATION_AUTO_RESOLVE_IDLE_DAYS = env.int("CONVERSATION_AUTO_RESOLVE_IDLE_DAYS", default=7)
# Group member / group names are looked up at the platform at most this often per group.
CONVERSATION_GROUP_NAMES_REFRESH_SECONDS = env.int(
    "CONVERSATION_GROUP_NAMES_REFRESH_SECONDS", default=3600
)
# Analysis backfill: calls in flight at once (the seed's batch limit is 10).
CONVERSATION_ANALYSIS_BATCH_CONCURRENCY = env.int(
    "CONVERSATION_ANALYSIS_BATCH_CONCURRENCY", default=10
)
# Benchmarks only: serve a bare JSON endpoint at /bench/bare/ to compare webhook throughput.
BENCH_BARE_ENDPOINT = env.bool("BENCH_BARE_ENDPOINT", default=False)

# ops: generous API-wide limits (429 + Retry-After): per user, per organisation, per anonymous
# client address. No person or SPA reaches them; a runaway script does.
API_THROTTLE_USER_RATE = env.str("API_THROTTLE_USER_RATE", default="1200/min")
API_THROTTLE_ORG_RATE = env.str("API_THROTTLE_ORG_RATE", default="6000/min")
API_THROTTLE_ANON_RATE = env.str("API_THROTTLE_ANON_RATE", default="300/min")

# --- Reports (apps.reports) ---------------------------------------------------------------------
# SOP deliveries change status by bulk update (no signal): each refresh looks back this far.
REPORTS_SOP_LOOKBACK_SECONDS = env.int("REPORTS_SOP_LOOKBACK_SECONDS", default=600)
# The nightly rebuild recomputes this many recent days of every organisation.
REPORTS_REBUILD_RECENT_DAYS = env.int("REPORTS_REBUILD_RECENT_DAYS", default=3)
# The longest range one report request may cover (days).
REPORTS_MAX_RANGE_DAYS = env.int("REPORTS_MAX_RANGE_DAYS", default=366)
# Computed reports are cached until the figures next change, at most this long (0: no cache).
REPORTS_CACHE_SECONDS = env.int("REPORTS_CACHE_SECONDS", default=3600)

# --- Logging ------------------------------------------------------------------------------------
# LOG_FORMAT: "text" (readable, the local default) or "json" (one object per line, the production
# default). Every line carries the request id, organisation, user, Celery task id and the
# conversation or account at hand (apps.core.logcontext); never a message body or a secret.
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": LOG_FORMATTERS,
    # harden: every handler masks known credentials (apps.core.secrets), traceback included.
    "filters": {
        "context": {"()": "apps.core.logcontext.ContextFilter"},
        "secrets": {"()": "apps.core.secrets.SecretMaskingFilter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context", "secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
