"""The application's own settings, with one route more (bench.app_urls): baseline B', a DRF view
without authentication served through the whole middleware stack the API runs behind."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.app_urls"
