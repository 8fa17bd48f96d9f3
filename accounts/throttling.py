"""Slows down password guessing: failed logins are counted per email and per client address.

Each attempt takes its place in both counts before the password is checked (one atomic increment in
the shared cache), and gives it back unless the password was wrong. So a burst of guesses sent at once is
refused past the limit like guesses sent one after the other, while good logins never count."""

import hashlib
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from config.exceptions import RateLimitExceeded
from config.http import client_ip

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Counter:
    scope: str
    key: str
    limit: int
    seconds_left: float


def _counters(request: HttpRequest, email: str) -> list[Counter]:
    """The attempt's two counts, each in its fixed window of the rate's period ("5/m": 5 a minute)."""
    now = time.time()
    counters = []
    for scope, value, rate in (
        ("email", email.strip().lower(), settings.LOGIN_FAILURE_RATE_PER_EMAIL),
        ("ip", client_ip(request) or "unknown", settings.LOGIN_FAILURE_RATE_PER_IP),
    ):
        limit, unit = rate.split("/")
        period = PERIODS[unit[-1]] * int(unit[:-1] or 1)
        window = int(now // period)
        digest = hashlib.sha256(value.encode()).hexdigest()
        counters.append(
            Counter(
                scope, f"login-failures:{scope}:{digest}:{window}", int(limit), (window + 1) * period - now
            )
        )
    return counters


def _attempt_count(*, request: HttpRequest, email: str) -> list[Counter]:
    """Counts the attempt, or refuses it (429, counting nothing) when either count is full. Returns what
    to give back with _attempt_give_back."""
    taken: list[Counter] = []
    try:
        for counter in _counters(request, email):
            cache.add(counter.key, 0, timeout=math.ceil(counter.seconds_left) + 1)
            count = cache.incr(counter.key)
            taken.append(counter)
            if count > counter.limit:
                _attempt_give_back(taken)
                logger.warning(
                    "Login attempt refused: too many failures",
                    extra={"context": {"scope": counter.scope, "ip": client_ip(request)}},
                )
                wait = max(1, math.ceil(counter.seconds_left))
                raise RateLimitExceeded(
                    wait=counter.seconds_left,
                    detail=f"Too many failed logins; try again in {wait} s.",
                    details={"scope": counter.scope},
                )
    except RateLimitExceeded:
        raise
    except Exception:
        # The throttle must not lock everyone out when its cache is down: log it and let the login through.
        logger.warning("Login throttle unavailable (cache error)", exc_info=True)
        _attempt_give_back(taken)
        return []
    return taken


def _attempt_give_back(counters: list[Counter]) -> None:
    """An attempt that did not fail (the password was right, or never checked: the database was
    down, or the attempt was refused) gives its places back."""
    for counter in counters:
        try:
            cache.decr(counter.key)
        except Exception:  # expired meanwhile, or the cache is down: nothing left to give back
            logger.debug("Login throttle count %s not given back", counter.key, exc_info=True)


@dataclass
class Attempt:
    """What the code checking a password says of it: `failed` when the password was wrong."""

    failed: bool = False


@contextmanager
def login_attempt(*, request: HttpRequest, email: str) -> Iterator[Attempt]:
    """Around a password check: counts the attempt first (or refuses it, 429), and gives the count
    back unless the check marked the attempt failed, whether it returned or raised (a database down
    is not a wrong password)."""
    counted = _attempt_count(request=request, email=email)
    attempt = Attempt()
    try:
        yield attempt
    finally:
        if not attempt.failed:
            _attempt_give_back(counted)
