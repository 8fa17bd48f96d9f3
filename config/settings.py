"""Settings, all from the environment (django-environ); see README.md "Configuration".

The defaults run the embedded set-up: SQLite, a local-memory cache and in-process Celery.
They are safe for development only: with DEBUG off the development SECRET_KEY is refused.
"""

import re
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Refused when DEBUG is off.
DEV_SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production-0123456789"  # nosec B105

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)


def secret_problem(value: str, minimum: int) -> str | None:
    """Why a signing key is not fit for production: the development one, a placeholder, too short, or
    too plain to be random."""
    if value == DEV_SECRET_KEY:
        return "is the development default"
    if "change-me" in value.lower() or "changeme" in value.lower():
        return "is a placeholder"
    if len(value) < minimum:
        return f"must be at least {minimum} characters long"
    if len(set(value)) < 8:
        return "is not random (too few different characters)"
    return None


if not DEBUG and (problem := secret_problem(SECRET_KEY, 50)):
    raise ImproperlyConfigured(
        f"SECRET_KEY {problem}. Set SECRET_KEY to a long random value "
        "(python -c 'import secrets; print(secrets.token_urlsafe(64))'), or DEBUG=true for local development."
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
SERVICE_NAME = "backend-api"

INSTALLED_APPS = [
    "config.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "corsheaders",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "tenants",
    "accounts",
    "apikeys",
    "recommendations",
    "usage",
]

MIDDLEWARE = [
    "config.middleware.RequestContextMiddleware",
    "usage.middleware.UsageMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "config.middleware.BodySizeLimitMiddleware",
    # The Pages* ones serve the console's pages only: API requests skip them (config.middleware).
    "config.middleware.PagesSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "config.middleware.PagesAuthenticationMiddleware",
    "config.middleware.PagesMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.ExceptionEnvelopeMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
APPEND_SLASH = False

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

# --- Database -------------------------------------------------------------------------------------
# django-prometheus' backends are the stock ones plus query metrics for /metrics (for PostgreSQL, with
# a health check of our own: config.postgresql).
_DB_ENGINES = {
    "django.db.backends.postgresql": "config.postgresql",
    "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
}
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ENGINE"] = _DB_ENGINES.get(
    DATABASES["default"]["ENGINE"], DATABASES["default"]["ENGINE"]
)
IS_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
if IS_POSTGRES:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    # Not Django's health check (a SELECT 1 before every request's first query): config.postgresql
    # checks each connection at the request's start without a round trip, so that after a database
    # restart no request fails on a connection the server has closed.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    # A query a connection repeats (an item read, a user's history) is prepared after five runs:
    # PostgreSQL then skips parsing and planning it (config.postgresql prepares it again when a
    # migration changed its columns). DB_PREPARED_STATEMENTS=false behind a pooler that cannot keep
    # prepared statements (PgBouncer in transaction mode without max_prepared_statements).
    if env.bool("DB_PREPARED_STATEMENTS", default=True):
        DATABASES["default"]["OPTIONS"].update({"server_side_binding": True, "prepare_threshold": 5})
else:
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Redis ------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "rb",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
                # An unreachable cache reads as a miss: requests fall back to the database.
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
else:
    # The same cache metrics as with Redis (django_cache_get_total, hits, misses), in each process.
    CACHES = {
        "default": {"BACKEND": "django_prometheus.cache.backends.locmem.LocMemCache", "KEY_PREFIX": "rb"}
    }
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

# --- Celery ---------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
# Without a broker the tasks run in-process, so the embedded set-up needs no worker.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=CELERY_BROKER_URL == "memory://")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "accounts-sessions-prune": {"task": "accounts.tasks.sessions_prune", "schedule": 3600.0},
    "apikeys-expire": {"task": "apikeys.tasks.api_keys_expire", "schedule": 60.0},
    "usage-flush": {
        "task": "usage.tasks.usage_flush",
        "schedule": env.float("USAGE_FLUSH_INTERVAL_SECONDS", default=2.0),
        "options": {"expires": 10},
    },
    "engines-train": {"task": "recommendations.tasks.engines_train_stale", "schedule": 3600.0},
    "usage-rollup": {"task": "usage.tasks.usage_rollup_recent", "schedule": 3600.0},
    "usage-partitions": {"task": "usage.tasks.usage_partitions_maintain", "schedule": 6 * 3600.0},
    "idempotency-expire": {"task": "tenants.tasks.idempotency_records_expire", "schedule": 3600.0},
    "usage-invoices": {"task": "usage.tasks.invoices_generate_previous_month", "schedule": 6 * 3600.0},
}

# --- Auth -----------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCESS_TOKEN_EXPIRE_MINUTES = env.int("ACCESS_TOKEN_EXPIRE_MINUTES", default=15)
REFRESH_TOKEN_EXPIRE_DAYS = env.int("REFRESH_TOKEN_EXPIRE_DAYS", default=7)
JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY", default=SECRET_KEY)
if not DEBUG and (problem := secret_problem(JWT_SIGNING_KEY, 32)):
    raise ImproperlyConfigured(f"JWT_SIGNING_KEY {problem}. Leave it unset to sign with SECRET_KEY.")
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=ACCESS_TOKEN_EXPIRE_MINUTES),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=REFRESH_TOKEN_EXPIRE_DAYS),
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "sub",
    "ISSUER": "recommender-backend",
    "UPDATE_LAST_LOGIN": False,
}
# Failed logins allowed per email and per client address before 429 ("5/m": five a minute).
LOGIN_FAILURE_RATE_PER_EMAIL = env.str("LOGIN_FAILURE_RATE_PER_EMAIL", default="5/m")
LOGIN_FAILURE_RATE_PER_IP = env.str("LOGIN_FAILURE_RATE_PER_IP", default="20/m")
for _rate in (LOGIN_FAILURE_RATE_PER_EMAIL, LOGIN_FAILURE_RATE_PER_IP):
    if not re.fullmatch(r"[1-9]\d*/([1-9]\d*)?[smhd]", _rate):
        raise ImproperlyConfigured(f"A login failure rate is a count per period, such as 5/m, not {_rate!r}.")
# Proxies in front of us that append to X-Forwarded-For; 0 means REMOTE_ADDR is the client.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
FIRST_SUPERUSER_EMAIL = env.str("FIRST_SUPERUSER_EMAIL", default="")
FIRST_SUPERUSER_PASSWORD = env.str("FIRST_SUPERUSER_PASSWORD", default="")

# --- Rate limits ----------------------------------------------------------------------------------
RATE_LIMIT_ENABLED = env.bool("RATE_LIMIT_ENABLED", default=True)
RATE_LIMIT_REDIS_URL = env.str("RATE_LIMIT_REDIS_URL", default=REDIS_URL)
# Seconds to wait for Redis before letting the request through unlimited (fail open).
RATE_LIMIT_REDIS_TIMEOUT = env.float("RATE_LIMIT_REDIS_TIMEOUT", default=0.1)

# --- Usage and billing ----------------------------------------------------------------------------
USAGE_BUFFER_REDIS_URL = env.str("USAGE_BUFFER_REDIS_URL", default=REDIS_URL)
USAGE_BUFFER_REDIS_TIMEOUT = env.float("USAGE_BUFFER_REDIS_TIMEOUT", default=0.1)
# A batch taken by a worker that has not been stored after this long is stored again by the next flush.
USAGE_INFLIGHT_TIMEOUT_SECONDS = env.int("USAGE_INFLIGHT_TIMEOUT_SECONDS", default=60)
USAGE_RAW_RETENTION_DAYS = env.int("USAGE_RAW_RETENTION_DAYS", default=90)
USAGE_FLUSH_BATCH_SIZE = env.int("USAGE_FLUSH_BATCH_SIZE", default=5000)
# The plan catalogue of the billing job: a monthly price, requests included, then a price per 1,000.
PLAN_PRICES = {
    "starter": {"base_cents": 4_900, "included_requests": 1_000_000, "overage_per_1000_cents": 10},
    "pro": {"base_cents": 29_900, "included_requests": 10_000_000, "overage_per_1000_cents": 5},
    "enterprise": {"base_cents": 199_900, "included_requests": 100_000_000, "overage_per_1000_cents": 2},
}

# --- Plans ----------------------------------------------------------------------------------------
DEFAULT_RATE_LIMIT_PER_MINUTE = env.int("DEFAULT_RATE_LIMIT_PER_MINUTE", default=1000)
PLANS = {
    "starter": {"requests_per_minute": None, "requests_per_hour": 50_000, "requests_per_day": 1_000_000},
    "pro": {"requests_per_minute": 5_000, "requests_per_hour": 250_000, "requests_per_day": 5_000_000},
    "enterprise": {
        "requests_per_minute": 20_000,
        "requests_per_hour": 1_000_000,
        "requests_per_day": 20_000_000,
    },
}

# --- HTTP -----------------------------------------------------------------------------------------
MAX_REQUEST_BODY_BYTES = env.int("MAX_REQUEST_BODY_BYTES", default=10 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "idempotency-key",
    "x-api-key",
    "x-request-id",
)
CORS_EXPOSE_HEADERS = (
    "x-request-id",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "ratelimit",
    "ratelimit-policy",
    "retry-after",
    "idempotent-replayed",
)
CORS_URLS_REGEX = r"^/api/.*$"

ML_ENGINE_URL = env.str("ML_ENGINE_URL", default="")
DATA_PIPELINE_URL = env.str("DATA_PIPELINE_URL", default="")
UPSTREAM_CONNECT_TIMEOUT = env.float("UPSTREAM_CONNECT_TIMEOUT", default=0.5)
UPSTREAM_READ_TIMEOUT = env.float("UPSTREAM_READ_TIMEOUT", default=2.0)
UPSTREAM_EMBEDDINGS_READ_TIMEOUT = env.float("UPSTREAM_EMBEDDINGS_READ_TIMEOUT", default=30.0)
UPSTREAM_RETRIES = env.int("UPSTREAM_RETRIES", default=1)
UPSTREAM_BREAKER_THRESHOLD = env.int("UPSTREAM_BREAKER_THRESHOLD", default=5)
UPSTREAM_BREAKER_COOLDOWN = env.float("UPSTREAM_BREAKER_COOLDOWN", default=30.0)
# The built-in engine retrains a tenant after this many new interactions (and hourly if any).
ENGINE_RETRAIN_AFTER_INTERACTIONS = env.int("ENGINE_RETRAIN_AFTER_INTERACTIONS", default=1000)
# Megabytes of item columns each server process keeps from GET /api/v1/items/{id}, good while the
# tenant's catalog is unchanged (0: none kept).
ITEM_CACHE_MB = env.float("ITEM_CACHE_MB", default=32)

# --- Security -------------------------------------------------------------------------------------
# TLS is terminated by the proxy in front of gunicorn, which sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
X_FRAME_OPTIONS = "DENY"
# strict: pages run only their own scripts (the console, /docs, /redoc); relaxed: inline scripts too;
# disabled: no header. JSON answers get "default-src 'none'" unless disabled.
CSP_MODE = env.str("CSP_MODE", default="strict")
if CSP_MODE not in ("strict", "relaxed", "disabled"):
    raise ImproperlyConfigured(f"CSP_MODE must be strict, relaxed or disabled, not {CSP_MODE!r}.")
CSRF_FAILURE_VIEW = "config.exceptions.csrf_failure_view"

# --- DRF and the schema ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apikeys.authentication.ApiKeyAuthentication",
        "accounts.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Not a throttle (the tenant limiter runs in authentication): refusals held until authentication
    # (a body too large, an answer no renderer can give).
    "DEFAULT_THROTTLE_CLASSES": ["config.http.HeldRefusals"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "config.http.ContentNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Recommender backend API",
    "DESCRIPTION": "Catalog, interactions, recommendations, API keys and usage for tenants; "
    "tenant administration for staff.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its viewers are public: a stale credential in the header must not hide them.
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.schema.error_responses",
        "recommendations.schema.batch_limits",
    ],
}

# --- Static files, i18n ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- Logging --------------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
if LOG_FORMAT not in ("json", "console"):
    raise ImproperlyConfigured("LOG_FORMAT must be 'json' or 'console'.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.logging.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "config.logging.JsonFormatter", "service": SERVICE_NAME},
        "console": {"()": "config.logging.ConsoleFormatter"},
    },
    "handlers": {
        "default": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["default"], "level": LOG_LEVEL},
    "loggers": {
        # Our own access line replaces Django's request logging.
        "django.request": {"level": "CRITICAL"},
        "django.server": {"level": "WARNING"},
        "django.db.backends": {"level": "INFO"},
        "celery.app.trace": {"level": "WARNING"},
    },
}
