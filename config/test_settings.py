"""Settings for the test suite: the real ones, made fast and isolated per pytest-xdist worker."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-" + "t" * 48)

from config.settings import *  # noqa: E402,F403
from config.settings import BASE_DIR, CACHES, DATABASES, IS_POSTGRES, REDIS_URL  # noqa: E402

ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if not IS_POSTGRES:
    # A file, not memory: pytest-xdist gives each worker its own (suffixed) copy, kept by --reuse-db.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / ".test-db.sqlite3")}
CELERY_TASK_ALWAYS_EAGER = True
SECURE_HSTS_SECONDS = 0
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
LOGGING["root"]["level"] = "WARNING"  # type: ignore[index]  # noqa: F405

# Each xdist worker gets its own Redis database, so clearing the cache between tests is safe.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
TEST_REDIS_DB = 1 + int(_WORKER.removeprefix("gw") or 0) % 15
if REDIS_URL:
    from urllib.parse import urlsplit, urlunsplit

    _parts = urlsplit(REDIS_URL)
    TEST_REDIS_URL = urlunsplit(_parts._replace(path=f"/{TEST_REDIS_DB}"))
    CACHES["default"]["LOCATION"] = TEST_REDIS_URL
    CACHES["default"]["KEY_PREFIX"] = f"test-{_WORKER}"
    RATE_LIMIT_REDIS_URL = TEST_REDIS_URL
    USAGE_BUFFER_REDIS_URL = TEST_REDIS_URL
else:
    TEST_REDIS_URL = ""
