"""Everything that writes users and sessions, and the tokens that stand for a session."""

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework import exceptions
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import User, UserSession
from config.exceptions import Conflict, TenantCancelled, TenantSuspended
from tenants.audit import audit_record, snapshot
from tenants.models import Tenant

logger = logging.getLogger(__name__)

INVALID_REFRESH = "The refresh token is invalid, expired or already used."


# A user's fields as the audit trail shows them before and after a change.
USER_FIELDS = ("email", "tenant", "role", "is_active", "is_staff", "is_superuser")


def email_digest(email: str) -> str:
    """What the log says of an email it may not show (a failed login's may be a mistyped password):
    enough to find one address's lines, given the address."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def tenant_access_check(tenant: Tenant | None) -> None:
    """Raises the 403 of API.md when the tenant's credentials may not be used."""
    if tenant is None or tenant.status == Tenant.Status.ACTIVE:
        return
    if tenant.status == Tenant.Status.SUSPENDED:
        raise TenantSuspended()
    raise TenantCancelled()


def _token_pair(*, session: UserSession) -> TokenPair:
    refresh = RefreshToken.for_user(session.user)
    refresh["sid"] = str(session.id)
    if session.user.tenant_id:
        refresh["tid"] = str(session.user.tenant_id)
    session.refresh_jti = refresh["jti"]
    session.expires_at = timezone.now() + settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"]
    access = refresh.access_token
    return TokenPair(
        access_token=str(access),
        refresh_token=str(refresh),
        expires_in=int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds()),
    )


def session_start(*, user: User, ip: str | None, user_agent: str) -> tuple[UserSession, TokenPair]:
    now = timezone.now()
    session = UserSession(user=user, ip=ip, user_agent=user_agent[:512], created_at=now, last_used_at=now)
    pair = _token_pair(session=session)
    with transaction.atomic():
        session.save()
        User.objects.filter(pk=user.pk).update(last_login=now)
    return session, pair


def refresh_token_decode(raw: str) -> RefreshToken:
    """The refresh token's signed claims, or 401."""
    try:
        token = RefreshToken(raw)  # type: ignore[arg-type]
        uuid.UUID(str(token.get("sid")))
    except (TokenError, ValueError, TypeError) as exc:
        raise exceptions.AuthenticationFailed(INVALID_REFRESH) from exc
    return token


def refresh_token_owner(*, token: RefreshToken) -> tuple[uuid.UUID | None, str]:
    """The tenant and the caller a refresh token speaks for, from its signed claims alone (a token
    already exchanged too: a retry of that exchange is told apart by its Idempotency-Key)."""
    tenant_id = token.get("tid")
    user_id = token.get(settings.SIMPLE_JWT["USER_ID_CLAIM"])
    return (uuid.UUID(tenant_id) if tenant_id else None), f"user:{user_id}"


def access_token_seconds_left(raw: str) -> int:
    """Of an access token this service issued (read back from its sealed replay): its signature was
    checked when it was made, and its expiry is what is asked here, so neither is checked again."""
    token = AccessToken(raw, verify=False)  # type: ignore[arg-type]
    return max(0, int(token["exp"] - timezone.now().timestamp()))


# A login's first answer, asked for again once its tokens were refreshed or its session ended.
LOGIN_SPENT = (
    "The login made under this Idempotency-Key was used since (its tokens refreshed, or its session "
    "ended): log in with a new key."
)


def session_replay_check(*, refresh_token: str | None, reuse_ends_session: bool) -> None:
    """Before a login's or a refresh's answer is given again: its session must still be open, its
    user and tenant active, and its pair unused. For a refresh, a pair used since is a reuse of the
    token that was exchanged for it: 401, and its session ends as any reused refresh token's does. For
    a login, whose password was right, its first answer is gone: 409."""
    if refresh_token is None:  # stored, but it cannot be opened again
        raise Conflict("The first answer to this Idempotency-Key cannot be given again; use a new key.")
    token = refresh_token_decode(refresh_token)
    session = UserSession.objects.select_related("user", "user__tenant").filter(id=token["sid"]).first()
    if session is None or not session.user.is_active:
        raise exceptions.AuthenticationFailed(INVALID_REFRESH)
    tenant_access_check(session.user.tenant)
    spent = session.refresh_jti != token["jti"]
    if not reuse_ends_session and (spent or not session.is_open(timezone.now())):
        raise Conflict(LOGIN_SPENT)
    if not session.is_open(timezone.now()):
        raise exceptions.AuthenticationFailed(INVALID_REFRESH)
    if spent:
        session_end(session=session, reason="refresh_reused")
        raise exceptions.AuthenticationFailed(INVALID_REFRESH)


def session_refresh(*, token: RefreshToken) -> tuple[UserSession, TokenPair]:
    """Exchanges the session's current refresh token for a new pair; the old one stops working.

    The swap is one conditional UPDATE, so of two concurrent refreshes with the same token only one
    wins. A token that was already exchanged ends its session: someone else may be holding it.
    """
    session = (
        UserSession.objects.select_related("user", "user__tenant")
        .filter(id=token["sid"], user_id=token.get(settings.SIMPLE_JWT["USER_ID_CLAIM"]))
        .first()
    )
    now = timezone.now()
    if session is None or not session.is_open(now) or not session.user.is_active:
        raise exceptions.AuthenticationFailed(INVALID_REFRESH)
    tenant_access_check(session.user.tenant)
    old_jti = token["jti"]
    pair = _token_pair(session=session)
    swapped = UserSession.objects.filter(id=session.id, refresh_jti=old_jti, ended_at__isnull=True).update(
        refresh_jti=session.refresh_jti, expires_at=session.expires_at, last_used_at=now
    )
    if not swapped:
        session_end(session=session, reason="refresh_reused")
        logger.warning(
            "A refresh token was used again: its session is ended",
            extra={"context": {"session_id": str(session.id), "user_id": str(session.user_id)}},
        )
        raise exceptions.AuthenticationFailed(INVALID_REFRESH)
    session.last_used_at = now
    return session, pair


def session_end(*, session: UserSession, reason: str) -> None:
    UserSession.objects.filter(id=session.id, ended_at__isnull=True).update(
        ended_at=timezone.now(), end_reason=reason
    )


def session_end_by_refresh_token(*, token: RefreshToken) -> None:
    UserSession.objects.filter(
        id=token["sid"], user_id=token.get(settings.SIMPLE_JWT["USER_ID_CLAIM"]), ended_at__isnull=True
    ).update(ended_at=timezone.now(), end_reason="logout")


def sessions_end_all(*, user: User, reason: str, keep: uuid.UUID | None = None) -> int:
    """Ends every open session of the user (but `keep`); their access and refresh tokens die with them."""
    sessions = UserSession.objects.filter(user=user, ended_at__isnull=True)
    if keep is not None:
        sessions = sessions.exclude(id=keep)
    return sessions.update(ended_at=timezone.now(), end_reason=reason)


def user_logout_everywhere(*, user: User, reason: str) -> int:
    """Ends every API session of the user and every console session too, wherever the session store
    keeps them: each is signed with the user's console epoch (User.get_session_auth_hash), renewed
    here. Answers how many API sessions ended."""
    with transaction.atomic():
        ended = sessions_end_all(user=user, reason=reason)
        User.objects.filter(pk=user.pk).update(console_epoch=F("console_epoch") + 1)
    user.refresh_from_db(fields=["console_epoch"])
    return ended


def sessions_prune(*, before: datetime) -> int:
    """Deletes sessions that ended or expired before `before` (kept until then for the audit)."""
    deleted, _ = UserSession.objects.filter(expires_at__lt=before).delete()
    ended, _ = UserSession.objects.filter(ended_at__lt=before).delete()
    return deleted + ended


def password_validate(*, password: str, user: User, field: str = "password") -> None:
    """Django's validators; their messages become a 400 on `field`."""
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as exc:
        raise exceptions.ValidationError({field: list(exc.messages)}) from exc


def user_create(
    *, tenant: Tenant, email: str, password: str, role: str, actor: User | None = None, source: str = "api"
) -> User:
    """`actor` and `source`: who creates the user, and from where, for the audit trail."""
    user = User(tenant=tenant, email=email, role=role)
    password_validate(password=password, user=user)
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
            audit_record(
                actor=actor,
                action="user.create",
                obj=user,
                source=source,
                tenant=tenant,
                after=snapshot(user, USER_FIELDS),
            )
    except IntegrityError as exc:
        raise Conflict(f"A user with the email {user.email} already exists.") from exc
    return user


def _other_active_admins(user: User) -> bool:
    return (
        User.objects.filter(tenant_id=user.tenant_id, role=User.Role.ADMIN, is_active=True)  # type: ignore[misc]
        .exclude(pk=user.pk)
        .exists()
    )


LAST_ADMIN = "A tenant must keep at least one active admin."


def user_change_keeps_an_admin(*, user: User, role: str | None, is_active: bool | None) -> bool:
    """Whether the tenant of `user` still has an active admin after this change of role or state."""
    losing_admin = (
        user.tenant_id is not None
        and user.role == User.Role.ADMIN
        and user.is_active
        and ((role is not None and role != User.Role.ADMIN) or is_active is False)
    )
    return not losing_admin or _other_active_admins(user)


def tenant_admins_lock(tenant_id: uuid.UUID | str | None) -> None:
    """Inside a transaction, before a change that may take an admin away: holds the tenant's row, so
    that two admins removing each other at once are checked one after the other, and the second sees
    that the first is gone."""
    if tenant_id is not None:
        # FOR NO KEY UPDATE: the tenant's other writes (rows that refer to it) are not held up.
        list(Tenant.objects.select_for_update(no_key=True).filter(pk=tenant_id).values_list("pk", flat=True))


def user_update(
    *,
    user: User,
    email: str | None = None,
    role: str | None = None,
    is_active: bool | None = None,
    actor: User | None = None,
) -> User:
    changes = {
        name: value
        for name, value in (("email", email), ("role", role), ("is_active", is_active))
        if value is not None
    }
    try:
        with transaction.atomic():
            tenant_admins_lock(user.tenant_id)
            # `user` was read before the lock: a deactivation or a change of role that committed since
            # must be checked against and kept, so the row is read again and only what was asked written.
            stored = User.objects.select_for_update().get(pk=user.pk)
            if not user_change_keeps_an_admin(user=stored, role=role, is_active=is_active):
                raise Conflict(LAST_ADMIN)
            deactivated = is_active is False and stored.is_active
            before = snapshot(stored, USER_FIELDS)
            for name, value in changes.items():
                setattr(stored, name, value)
            if changes:
                stored.save(update_fields=[*changes, "updated_at"])
            after = snapshot(stored, USER_FIELDS)
            if after != before:
                audit_record(
                    actor=actor,
                    action="user.update",
                    obj=stored,
                    tenant=stored.tenant,
                    before=before,
                    after=after,
                )
            if deactivated:
                sessions_end_all(user=stored, reason="deactivated")
    except IntegrityError as exc:
        raise Conflict(f"A user with the email {email} already exists.") from exc
    return stored


def user_deactivate(*, user: User, actor: User | None = None) -> None:
    user_update(user=user, is_active=False, actor=actor)


def user_password_change(
    *, user: User, current_password: str, new_password: str, session_id: uuid.UUID | None
) -> None:
    """Changes the password and ends every other session of the user."""
    if not user.check_password(current_password):
        raise exceptions.ValidationError({"current_password": ["The current password is not correct."]})
    password_validate(password=new_password, user=user, field="new_password")
    user.set_password(new_password)
    with transaction.atomic():
        user.save(update_fields=["password", "updated_at"])
        password_change_record(user=user, source="api", keep=session_id)


def password_reset_record(*, user: User, actor: User, source: str) -> None:
    """After staff set a user's password: every session of the user ends, and the audit trail says so."""
    _logout_by_staff(
        user=user, actor=actor, source=source, action="user.password_reset", reason="password_reset_by_staff"
    )


def user_force_logout(*, user: User, actor: User, source: str) -> None:
    """Staff end every session of the user, API and console alike."""
    _logout_by_staff(
        user=user, actor=actor, source=source, action="user.force_logout", reason="forced_by_staff"
    )


def _logout_by_staff(*, user: User, actor: User, source: str, action: str, reason: str) -> None:
    ended = user_logout_everywhere(user=user, reason=reason)
    after = {"sessions_ended": ended}
    audit_record(actor=actor, action=action, obj=user, source=source, tenant=user.tenant, after=after)


def password_change_record(*, user: User, source: str, keep: uuid.UUID | None = None) -> None:
    """After a user changed their own password (API or console): their other sessions end, and the
    audit trail says so."""
    ended = sessions_end_all(user=user, reason="password_changed", keep=keep)
    audit_record(
        actor=user,
        action="user.password_change",
        obj=user,
        source=source,
        tenant=user.tenant,
        after={"sessions_ended": ended},
    )
