"""Slows down password guessing: failed logins are counted per email and per client address."""

import logging
import math

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage

from config.exceptions import RateLimitExceeded
from config.http import client_ip

logger = logging.getLogger(__name__)


def _counters(request: HttpRequest, email: str) -> list[tuple[str, str, str]]:
    return [
        ("login-failures-email", email.strip().lower(), settings.LOGIN_FAILURE_RATE_PER_EMAIL),
        ("login-failures-ip", client_ip(request) or "unknown", settings.LOGIN_FAILURE_RATE_PER_IP),
    ]


def _usage(request: HttpRequest, group: str, value: str, rate: str, increment: bool) -> dict | None:
    try:
        return get_usage(
            request, group=group, key=lambda _group, _request: value, rate=rate, increment=increment
        )
    except Exception:
        # The throttle must not lock everyone out when its cache is down: log it and let the login through.
        logger.warning("Login throttle unavailable (cache error)", exc_info=True)
        return None


def login_throttle_check(*, request: HttpRequest, email: str) -> None:
    for group, value, rate in _counters(request, email):
        usage = _usage(request, group, value, rate, increment=False)
        if usage and usage["count"] >= usage["limit"]:
            raise RateLimitExceeded(
                wait=usage["time_left"],
                detail=f"Too many failed logins; try again in {max(1, math.ceil(usage['time_left']))} s.",
                details={"scope": group.removeprefix("login-failures-")},
            )


def login_failure_record(*, request: HttpRequest, email: str) -> None:
    for group, value, rate in _counters(request, email):
        _usage(request, group, value, rate, increment=True)
