"""Small secrets kept where others can read them (the idempotency table, a page's cursor), encrypted
and authenticated with AES-GCM under keys derived from SECRET_KEY."""

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

NONCE_BYTES = 12


def sealing_key(purpose: str, *material: bytes) -> bytes:
    """A key of its own for each purpose (and, where given, for each piece of material)."""
    digest = hmac.new(settings.SECRET_KEY.encode(), purpose.encode() + b"\n", hashlib.sha256)
    for part in material:
        digest.update(part)
    return digest.digest()


def seal(data: bytes, *, key: bytes, context: bytes = b"") -> str:
    """URL-safe text; `context` (a tenant's id, say) must be given again to open it."""
    nonce = os.urandom(NONCE_BYTES)
    return base64.urlsafe_b64encode(nonce + AESGCM(key).encrypt(nonce, data, context)).decode().rstrip("=")


def unseal(text: str, *, key: bytes, context: bytes = b"") -> bytes | None:
    """The data again, or None for anything `seal` did not make with this key and context."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context)
    except (InvalidTag, TypeError, ValueError):
        return None
