"""Provider keys encrypted at rest (Fernet: AES-128-CBC with an HMAC-SHA256, from `cryptography`).

The encryption key comes from `GATEWAY_ENCRYPTION_KEY` (a Fernet key: `Fernet.generate_key()`); when it is unset,
it is derived from SECRET_KEY (HKDF-SHA256 with a purpose label), so rotating SECRET_KEY makes stored upstream keys
unreadable: set GATEWAY_ENCRYPTION_KEY in production and the two can change apart.
"""

from __future__ import annotations

import base64
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class UpstreamKeyUnreadable(Exception):
    """The stored key cannot be decrypted with the key in the environment (it was changed): set the key again."""


@cache
def _fernet(configured: str, secret_key: str) -> Fernet:
    if configured:
        return Fernet(configured.encode())
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"tokenledger gateway upstream keys")
    return Fernet(base64.urlsafe_b64encode(derived.derive(secret_key.encode())))


def _cipher() -> Fernet:
    return _fernet(settings.GATEWAY_ENCRYPTION_KEY, settings.SECRET_KEY)


def upstream_key_encrypt(clear: str) -> str:
    return _cipher().encrypt(clear.encode()).decode()


def upstream_key_decrypt(token: str) -> str:
    try:
        return _cipher().decrypt(token.encode()).decode()
    except InvalidToken:
        raise UpstreamKeyUnreadable(
            "The upstream's key cannot be decrypted with GATEWAY_ENCRYPTION_KEY; set the key again in the console."
        ) from None
