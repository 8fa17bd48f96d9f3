"""JWT authentication: a valid access token of an open session of an active user."""

import uuid

from django.conf import settings
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework_simplejwt import authentication as simplejwt
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User, UserSession
from accounts.services import tenant_access_check
from config.http import bearer_credential
from usage.limits import tenant_rate_limits
from usage.ratelimit import rate_limit_request

INVALID_ACCESS = "The access token is invalid or expired."
# Every JWT starts with the base64 of '{"'; anything else in the header is left to the API-key class.
JWT_MARK = b"eyJ"


class JWTAuthentication(simplejwt.JWTAuthentication):
    def get_raw_token(self, header: bytes) -> bytes | None:
        credential = bearer_credential(header.decode("latin-1"))
        return credential.encode("latin-1") if credential else None

    def authenticate(self, request: Request) -> tuple[User, AccessToken] | None:  # type: ignore[override]
        header = self.get_header(request)
        if header is None:
            return None
        raw_token = self.get_raw_token(header)
        if raw_token is None or not raw_token.startswith(JWT_MARK):
            return None
        try:
            token = AccessToken(raw_token)  # type: ignore[arg-type]
            session_id = uuid.UUID(str(token.get("sid")))
        except (TokenError, InvalidToken, ValueError, TypeError) as exc:
            raise exceptions.AuthenticationFailed(INVALID_ACCESS) from exc

        # One query: the session (ended by logout-all, password change...), its user, tenant and limits.
        session = (
            UserSession.objects.select_related("user", "user__tenant", "user__tenant__rate_limit")
            .filter(id=session_id, user_id=token.get(settings.SIMPLE_JWT["USER_ID_CLAIM"]))
            .first()
        )
        if session is None:
            raise exceptions.AuthenticationFailed(INVALID_ACCESS)
        user = session.user
        tenant = user.tenant
        if session.ended_at is not None or not user.is_active:
            if tenant is not None and str(tenant.id) == str(token.get("tid")):
                # The token is the tenant's (its signature says so): its refusal is metered for the
                # tenant, as a revoked key's is. Not for the tenant a moved user belongs to now.
                request._request.tenant = tenant
            raise exceptions.AuthenticationFailed(INVALID_ACCESS)
        request._request.tenant = tenant
        request._request.auth_session_id = session.id
        tenant_access_check(tenant)
        if tenant is not None:
            rate_limit_request(
                request._request,
                tenant_id=str(tenant.id),
                plan=tenant.plan,
                limits=tenant_rate_limits(tenant),
            )
        return user, token
