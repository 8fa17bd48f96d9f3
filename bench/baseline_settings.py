"""Baselines of the benchmark: the same Django and DRF, with no middleware, no database, no auth.
What a request costs here is the ceiling of the framework on this machine; baseline C adds the two
Redis round trips of every API-key request: what the design costs before any work of its own."""

import os

SECRET_KEY = "benchmark-baseline-only-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["rest_framework"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.baseline_urls"
DATABASES: dict = {}
USE_TZ = True
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}
# Baseline C's Redis: the benchmark's own (REDIS_URL of its stack).
BASELINE_REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9")
