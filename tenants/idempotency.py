"""Idempotency-Key for every tenant POST (API.md, "Idempotency"): the first answer is kept 24 hours
and replayed to retries with the same body; a different body is 422, a retry while the first still
runs is 409. The claim is a row with a unique (tenant, key), so concurrent retries race safely."""

import hashlib
import hmac
import json
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from config.exceptions import Conflict, IdempotencyKeyReused
from config.logging import request_id_var
from config.sealing import seal, sealing_key, unseal
from config.serializers import json_has_nul
from tenants.models import IdempotencyRecord

HEADER = "HTTP_IDEMPOTENCY_KEY"
KEEP = timedelta(hours=24)
# A claim whose request has not finished after this long (its process died) may be taken over.
STALE_CLAIM = timedelta(minutes=2)


class Replay(Exception):
    def __init__(self, record: IdempotencyRecord) -> None:
        super().__init__(record.key)
        self.record = record


def _caller(request: Request) -> str:
    api_key = getattr(request, "api_key", None)
    return f"key:{api_key.id}" if api_key is not None else f"user:{request.user.pk}"


def _body(request: Request) -> bytes:
    """The body as far as "the same body" goes: JSON compared as JSON (whatever its key order and
    spacing), anything else byte for byte."""
    try:
        document = json.loads(request.body)
    except (ValueError, RecursionError):
        return request.body
    # ASCII: a lone surrogate (refused later, by the serializer) has no UTF-8 form.
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _request_hash(request: Request, caller: str | None = None) -> str:
    """The request as far as a replay must match it: who sent it too, so that a key that another user
    or API key of the tenant happened to use is 422, never that caller's answer (say, a logout-all
    that ended someone else's sessions, not theirs)."""
    caller = caller or _caller(request)
    # Keyed: a body may hold a password (a new user's, a password change), and a plain digest of it
    # would let whoever reads the table test guesses at the speed of SHA-256.
    digest = hmac.new(settings.SECRET_KEY.encode(), digestmod=hashlib.sha256)
    digest.update(f"{request.method} {request.path} {caller}\n".encode())
    digest.update(_body(request))
    return digest.hexdigest()


def _seal_key(request: Request) -> bytes:
    """The key that seals an answer's secrets for its replays. It is derived from the request's body
    (a password, a refresh token), which the table does not hold: whoever reads the table cannot
    open them, while a retry that sends the same body can."""
    head = f"{request.method} {request.path} {request.META.get(HEADER)}\n".encode()
    return sealing_key("idempotency seal", head, _body(request))


def _seal(value: Any, *, request: Request) -> dict[str, str]:
    return {"sealed": seal(str(value).encode(), key=_seal_key(request))}


def _unseal(value: Any, *, request: Request) -> str | None:
    """The secret again, or None when it cannot be opened (not what `_seal` stored for this body)."""
    text = value.get("sealed") if isinstance(value, dict) else None
    opened = unseal(text, key=_seal_key(request)) if isinstance(text, str) else None
    return opened.decode() if opened is not None else None


def idempotency_begin(
    *,
    request: Request,
    tenant_id: uuid.UUID | None = None,
    caller: str | None = None,
) -> IdempotencyRecord | None:
    """Claims the request's key, or raises Replay / 409 / 422. None when the request has no key.

    The tenant and the caller are the request's own unless given: a login or a refresh knows who
    sends it only once it has checked the credentials in its body."""
    raw = request.META.get(HEADER)
    if raw is None:
        return None
    try:
        key = raw.encode("latin-1").decode()  # WSGI hands headers over as latin-1: its bytes are UTF-8
    except UnicodeError:
        key = raw  # not UTF-8: its bytes, one character each, as it was always read
    if not 1 <= len(key) <= 255:
        raise exceptions.ValidationError({"Idempotency-Key": ["Must be 1 to 255 characters."]})
    tenant_id = tenant_id or request.tenant.pk
    now = timezone.now()
    fingerprint = _request_hash(request, caller)
    record = None
    # A claim freed between the two statements (its request failed, or the record expired and was
    # pruned) is gone by the second: the key is claimed again.
    for _ in range(3):
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(
                    tenant_id=tenant_id, key=key, request_hash=fingerprint, expires_at=now + KEEP
                )
        except IntegrityError:
            pass
        with transaction.atomic():
            record = (
                IdempotencyRecord.objects.select_for_update().filter(tenant_id=tenant_id, key=key).first()
            )
            if record is None:
                continue
            expired = record.expires_at <= now
            abandoned = record.status_code is None and record.created_at <= now - STALE_CLAIM
            if expired or abandoned:
                record.request_hash, record.status_code, record.response_body = fingerprint, None, None
                record.created_at, record.expires_at = now, now + KEEP
                record.save()
                return record
        break
    if record is None:
        raise Conflict("A request with this Idempotency-Key is being claimed and freed; retry later.")
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused()
    if record.status_code is None:
        raise Conflict("A request with this Idempotency-Key is still being processed; retry later.")
    raise Replay(record)


def idempotency_finish(
    *,
    record: IdempotencyRecord,
    request: Request,
    response: Response,
    redact: tuple[str, ...] = (),
    sealed: tuple[str, ...] = (),
) -> None:
    """Keeps the answer for replays; a server error or a 429 (both passing) frees the key so that a
    retry can run again. Fields in `redact` are never kept; those in `sealed` are kept encrypted."""
    if response.status_code >= 500 or response.status_code == 429:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return
    body: Any = response.data
    if (redact or sealed) and isinstance(body, dict):
        body = {
            name: None if name in redact else _seal(value, request=request) if name in sealed else value
            for name, value in body.items()
        }
    if json_has_nul(body):
        # An answer echoing a NUL of the request (a refusal): it cannot be stored, so it is not kept,
        # and a retry is answered afresh, the same way.
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        status_code=response.status_code, response_body=body
    )


def replay_response(record: IdempotencyRecord, *, request: Request, sealed: tuple[str, ...] = ()) -> Response:
    """The first answer again; an error's envelope names this request's id, as X-Request-ID does."""
    body = record.response_body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = {**body, "error": {**body["error"], "request_id": request_id_var.get()}}
    elif sealed and isinstance(body, dict):
        body = {
            name: _unseal(value, request=request) if name in sealed and value is not None else value
            for name, value in body.items()
        }
    return Response(body, status=record.status_code, headers={"Idempotent-Replayed": "true"})


def idempotency_records_prune() -> int:
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted


class IdempotentPostMixin:
    """For DRF views of a tenant's own objects: POSTs honour Idempotency-Key. A view whose caller is
    known only from its body (a login, a refresh) claims the key itself with `idempotency_claim`."""

    # Fields of an answer that must never be stored (a new API key's secret): replays show null.
    idempotency_redact: tuple[str, ...] = ()
    # Fields stored sealed with a key only the same request's body gives (a login's tokens).
    idempotency_sealed: tuple[str, ...] = ()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        self._idempotency = None
        if request.method == "POST" and HEADER in request.META:
            # Read before the parsers consume the stream: the fingerprint is of the raw bytes.
            request.body  # noqa: B018
            if getattr(request, "tenant", None) is not None:
                self._idempotency = idempotency_begin(request=request)

    def idempotency_claim(self, request: Request, *, tenant_id: uuid.UUID | None, caller: str) -> None:
        """Claims the key for a caller the view has identified; staff have no tenant to scope it to."""
        if request.method == "POST" and tenant_id is not None:
            self._idempotency = idempotency_begin(request=request, tenant_id=tenant_id, caller=caller)

    def idempotency_replay_check(self, answer: Response) -> None:
        """Raises to refuse a replay the state of things no longer allows (tokens since used)."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, Replay):
            answer = replay_response(exc.record, request=self.request, sealed=self.idempotency_sealed)
            try:
                self.idempotency_replay_check(answer)
            except exceptions.APIException as refused:
                return super().handle_exception(refused)  # type: ignore[misc]
            return answer
        return super().handle_exception(exc)  # type: ignore[misc]

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        record = getattr(self, "_idempotency", None)
        if record is not None:
            self._idempotency = None
            idempotency_finish(
                record=record,
                request=request,
                response=response,
                redact=self.idempotency_redact,
                sealed=self.idempotency_sealed,
            )
        return response
