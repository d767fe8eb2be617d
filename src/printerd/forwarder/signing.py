"""
Standard Webhooks signatures: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``.

A secret is ``whsec_`` followed by the base64 of the key, the form every official Standard
Webhooks library reads (they strip ``whsec_`` and base64-decode the rest); a plain string would
be signed with a key no receiver's library derives, so it is refused when the settings load.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret; ValueError says what is wrong with any other."""
    hint = "make one with `printerd webhook-secret`"
    if not secret.startswith(PREFIX):
        raise ValueError(f"secret must be {PREFIX} followed by base64 ({hint})")
    encoded = secret[len(PREFIX):]
    try:
        # Padding is optional, as the official libraries read it.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError(f"secret: what follows {PREFIX} is not base64 ({hint})") from None
    if not key:
        raise ValueError(f"secret: the key after {PREFIX} is empty ({hint})")
    return key


def new_secret(key_bytes: int = 32) -> str:
    """A fresh random secret in the ``whsec_`` form."""
    return PREFIX + base64.b64encode(secrets.token_bytes(key_bytes)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, message_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """True if any of the space-separated signatures in ``header`` matches."""
    expected = sign(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in header.split())
