"""API-key authentication: `Authorization: Bearer rk_...` or `X-API-Key: rk_...`."""

import hmac
import logging
import threading
import time

from django.core.cache import cache
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.authentication import JWT_MARK
from accounts.services import tenant_access_check
from apikeys.models import KEY_PREFIX, key_digest
from apikeys.services import CachedKey, api_key_refresh, api_key_resolve
from apikeys.tasks import api_key_touch
from config.http import bearer_credential
from usage.ratelimit import StaleGeneration, rate_limit_request

logger = logging.getLogger(__name__)

INVALID_KEY = "Invalid API key."
TWO_CREDENTIALS = (
    "Send one credential: an X-API-Key header or an Authorization: Bearer header, not two that differ."
)
MAX_KEY_LENGTH = 128
TOUCH_INTERVAL_SECONDS = 60

# Per process: when each key's last_used_at was last sent for writing. With the shared cache
# check below, a key's row is written at most once a minute whatever the number of processes.
_touched: dict[str, float] = {}
_touched_lock = threading.Lock()


class ApiKeyUser:
    """The `request.user` of an API-key request: authenticated, but no person and no role."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    role = None
    pk = None

    def __init__(self, api_key: CachedKey) -> None:
        self.api_key = api_key

    def __str__(self) -> str:
        return f"API key {self.api_key.id}"


def _touch(entry: CachedKey) -> None:
    now = time.monotonic()
    with _touched_lock:
        if now - _touched.get(entry.id, -TOUCH_INTERVAL_SECONDS) < TOUCH_INTERVAL_SECONDS:
            return
        _touched[entry.id] = now
    if not cache.add(f"apikey-touched:{entry.id}", 1, TOUCH_INTERVAL_SECONDS):
        return
    try:
        api_key_touch.apply_async((entry.id, timezone.now().isoformat()), retry=False)
    except Exception:
        # last_used_at is a convenience; a broker outage must not fail the request.
        logger.warning("Could not queue the last_used_at update of API key %s", entry.id, exc_info=True)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiKeyUser, CachedKey] | None:
        raw = request.META.get("HTTP_X_API_KEY")
        authorization = request.META.get("HTTP_AUTHORIZATION")
        if raw is None:
            credential = bearer_credential(authorization or "")
            if credential is None or credential.startswith(JWT_MARK.decode()):
                return None
            raw = credential
        elif (bearer := bearer_credential(authorization or "")) is not None and bearer != raw.strip():
            # Whose request is it? Neither is chosen over the other. (Another scheme, such as the Basic
            # credential of a proxy in front, is not ours to read.)
            raise exceptions.AuthenticationFailed(TWO_CREDENTIALS)
        raw = raw.strip()
        if not raw.startswith(KEY_PREFIX) or len(raw) > MAX_KEY_LENGTH:
            raise exceptions.AuthenticationFailed(INVALID_KEY)
        digest = key_digest(raw)
        remembered, generation = api_key_resolve(digest=digest)
        entry = self._admit(request, remembered, digest)
        try:
            confirmed = rate_limit_request(
                request._request,
                tenant_id=entry.tenant_id,
                plan=entry.tenant_plan,
                limits=entry.limits,
                generation=generation,
            )
        except StaleGeneration:
            entry = self._admit(request, api_key_refresh(digest=digest)[0], digest)
            rate_limit_request(
                request._request, tenant_id=entry.tenant_id, plan=entry.tenant_plan, limits=entry.limits
            )
        else:
            if generation is not None and not confirmed:
                # Redis did not answer, so nothing vouches for the remembered key: read it afresh
                # (the limiter is backing off, so this asks the shared cache or the database only).
                entry = self._admit(request, api_key_refresh(digest=digest)[0], digest)
        _touch(entry)
        return ApiKeyUser(entry), entry

    @staticmethod
    def _admit(request: Request, entry: CachedKey | None, digest: str) -> CachedKey:
        """Refuses an unknown or unusable key, and a suspended or cancelled tenant's; else puts the key on
        the request."""
        request._request.api_key = None  # a refusal after a stale remembered key carries no key
        if entry is None or not hmac.compare_digest(entry.key_hash, digest):
            raise exceptions.AuthenticationFailed(INVALID_KEY)
        if not entry.is_usable(timezone.now()):
            # A known tenant's revoked or expired key: refused, and metered as such.
            request._request.tenant = entry.tenant
            raise exceptions.AuthenticationFailed(INVALID_KEY)
        request._request.tenant = entry.tenant
        request._request.api_key = entry
        tenant_access_check(request._request.tenant)
        return entry

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
